/**
 * The connection manager's mesh promotion (connections.ts): a node short of
 * mesh links asks links it has to carry the mesh, and a peer agrees only
 * while it has room. Asking the same full peers first every round left a
 * node (the last of eight, cluster-overlay.test.ts) with links to peers that
 * had room and no mesh link at all.
 */
import { describe, expect, it } from 'vitest'
import type { LinkControl } from '../links/link.ts'
import type { Clock } from './clock.ts'
import { ConnectionManager } from './connections.ts'
import type { LinkTable, NodeLink } from './link-table.ts'
import type { NodeConfig } from './options.ts'

/** Seven open links, none in the mesh; `asked` records which peers were asked each round. */
function setup(seed = 1) {
  const asked: string[] = []
  const links = Array.from({ length: 7 }, (_, i) => {
    const peer = `p${i}`
    return {
      peer,
      state: 'open',
      isMesh: false,
      localMesh: false,
      lastUsed: 0,
      openedAt: i,
      setMesh(on: boolean) {
        this.localMesh = on
        asked.push(peer)
      },
      async sendControl(c: LinkControl) {
        if (c.t === 'role') asked.push(peer)
      },
    }
  })
  const table = {
    size: links.length,
    values: () => links.values(),
    has: (p: string) => links.some((l) => l.peer === p),
    meshNeighbours: () => [],
  } as unknown as LinkTable
  let x = seed
  const random = () => {
    x = (x * 48271) % 2147483647
    return x / 2147483647
  }
  const m = new ConnectionManager({
    id: 'me',
    config: { targetPeers: 3, maxPeers: 4, maxLinks: 48 } as NodeConfig,
    counters: {},
    clock: { now: () => 0 } as unknown as Clock,
    random,
    links: table,
    dialer: { dials: new Map(), dial: async () => ({}) as NodeLink },
    bootstrap: { connected: false, peers: async () => [] },
    neededLinks: () => new Set(links.map((l) => l.peer)),
    expire: () => {},
    meshRole: () => {},
    closed: () => false,
  })
  return { m, links, asked }
}

const pex = (peers: string[]): LinkControl => ({ t: 'pex', peers })

describe('mesh promotion', () => {
  it('asks the peers whose peer exchange named the fewest mesh neighbours first', () => {
    const { m, links, asked } = setup()
    // p0-p4 are full (four mesh neighbours each); p5 and p6 have room.
    for (const l of links.slice(0, 5)) m.onControl(l as unknown as NodeLink, pex(['a', 'b', 'c', 'd']))
    m.onControl(links[5] as unknown as NodeLink, pex(['a', 'b']))
    m.onControl(links[6] as unknown as NodeLink, pex(['a']))
    m.manage()
    expect(asked).toHaveLength(3)
    expect(asked.slice(0, 2)).toEqual(['p6', 'p5'])
  })

  it('without peer exchange, the full peers do not take every round: in a few rounds every link is asked', () => {
    const { m, asked } = setup(7)
    for (let round = 0; round < 8; round++) m.manage()
    expect(new Set(asked).size).toBe(7)
    expect(asked).toHaveLength(8 * 3)
  })
})

describe('sendVia: a link opened on demand', () => {
  function via(dial: (peer: string) => Promise<NodeLink>) {
    const counters: Record<string, number> = {}
    const m = new ConnectionManager({
      id: 'me',
      config: { targetPeers: 3, maxPeers: 4, maxLinks: 48 } as NodeConfig,
      counters,
      clock: { now: () => 0 } as unknown as Clock,
      random: () => 0.5,
      links: { size: 0, get: () => undefined, values: () => [].values() } as unknown as LinkTable,
      dialer: { dials: new Map(), dial },
      bootstrap: { connected: false, peers: async () => [] },
      neededLinks: () => new Set(),
      expire: () => {},
      meshRole: () => {},
      closed: () => false,
    })
    return { m, counters }
  }
  const frame = { kind: 3, body: null } as never

  it('a dial that fails tells each queued frame that asked (the router answers noroute), once', async () => {
    let refuse: (e: Error) => void = () => {}
    const { m, counters } = via(() => new Promise<NodeLink>((_, reject) => (refuse = reject)))
    const told: string[] = []
    m.sendVia('x', frame, () => told.push('first'))
    m.sendVia('x', frame) // (a sender that did not ask)
    m.sendVia('x', frame, () => told.push('third'))
    refuse(new Error('x refused: full'))
    await new Promise((r) => setTimeout(r, 0))
    expect(told).toEqual(['first', 'third'])
    expect(counters['send.link-failed']).toBe(1)
    expect(m.viaQueue.size).toBe(0)
  })

  it('a dial that opens sends the frames and tells nobody', async () => {
    const sent: unknown[] = []
    const link = { send: async (f: unknown) => void sent.push(f) } as unknown as NodeLink
    const { m } = via(async () => link)
    const told: string[] = []
    m.sendVia('y', frame, () => told.push('y'))
    m.sendVia('y', frame, () => told.push('y'))
    await new Promise((r) => setTimeout(r, 0))
    expect(sent).toHaveLength(2)
    expect(told).toEqual([])
  })
})
