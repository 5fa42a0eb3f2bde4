/**
 * The transport seam (transport.ts): whole nodes, the same as in production
 * (host, connection manager, entry, core, public API), over an in-memory
 * transport with no signal server, no WebRTC and no socket. Links are pairs
 * of NodeLinks that pass each frame through the wire encoding and the
 * receiving node's validators, as a real link does. (issue 16's
 * createTestNetwork builds on this seam with loss, latency, partitions and a
 * virtual clock.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateIdentity } from '../../shared/identity/keys.ts'
import { bump } from '../../shared/protocol.ts'
import type { PeerInfo } from '../../shared/signal-events.ts'
import type { Frame } from '../../shared/wire/frame.ts'
import { decodeValue, encodeValue } from '../../shared/wire/value.ts'
import { Emitter } from '../emitter.ts'
import type { LinkControl, LinkEvents, LinkState } from '../links/link.ts'
import { OverlayNode } from '../overlay.ts'
import type { LinkStats, NodeLink } from './link-table.ts'
import type { DialView, Transport, TransportHost } from './transport.ts'

/** One end of an in-memory link. */
class MemLink extends Emitter<LinkEvents> implements NodeLink {
  readonly transport = 'relay' as const
  state: LinkState = 'handshake'
  readonly rtt = 1
  remoteMesh = false
  readonly openedAt: number
  lastUsed: number
  readonly stats: LinkStats = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
  other: MemLink | undefined

  constructor(
    readonly peer: string,
    private readonly host: TransportHost,
    public localMesh: boolean,
  ) {
    super()
    this.openedAt = this.lastUsed = host.clock.now()
  }

  get isMesh(): boolean {
    return this.localMesh && this.remoteMesh
  }

  async send(frame: Frame): Promise<void> {
    if (this.state !== 'open') throw new Error('link closed')
    const bytes = encodeValue(frame.body)
    this.lastUsed = this.host.clock.now()
    this.stats.messagesOut++
    this.stats.bytesOut += bytes.length
    const to = this.other
    queueMicrotask(() => to?.receive(frame.kind, bytes))
  }

  private receive(kind: Frame['kind'], bytes: Uint8Array): void {
    if (this.state !== 'open') return
    this.stats.messagesIn++
    this.stats.bytesIn += bytes.length
    const body = decodeValue(bytes)
    const valid = this.host.validators[kind]
    if (body === null || !valid?.(body)) return bump(this.host.counters, 'drop.mem.invalid')
    this.emit('frame', { kind, body })
  }

  async sendControl(c: LinkControl): Promise<void> {
    const to = this.other
    queueMicrotask(() => to?.control(c))
  }

  private control(c: LinkControl): void {
    if (this.state !== 'open') return
    if (c.t === 'role') this.remoteMesh = c.mesh
    this.emit('control', c)
  }

  setMesh(mesh: boolean): void {
    if (this.localMesh === mesh) return
    this.localMesh = mesh
    void this.sendControl({ t: 'role', mesh })
  }

  open(): void {
    this.state = 'open'
    this.emit('open', undefined)
  }

  close(reason = 'closed'): void {
    if (this.state === 'closed') return
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    this.emit('close', reason)
    if (wasOpen) this.host.closed(this, reason)
    this.other?.close(`bye:${reason}`)
  }
}

/** A network of in-memory transports: a dial links the two ends at once. */
class MemNet {
  readonly hosts = new Map<string, TransportHost>()

  transport = (host: TransportHost): Transport => {
    const net = this
    const id = host.identity.id
    const dials = new Map<string, DialView>()
    const adopt = (h: TransportHost, link: MemLink): NodeLink => {
      const { kept, added } = h.links.adopt(link)
      if (added) h.opened(link)
      return kept
    }
    return {
      dials,
      state: 'registered',
      connected: true,
      async start(): Promise<PeerInfo[]> {
        const peers = [...net.hosts.keys()].map((p) => ({ id: p, lastSeen: host.clock.now() }))
        net.hosts.set(id, host)
        host.sampled(peers)
        return peers
      },
      peers: async () => [...net.hosts.keys()].filter((p) => p !== id).map((p) => ({ id: p, lastSeen: 0 })),
      async dial(peer, mesh): Promise<NodeLink> {
        const open = host.links.get(peer)
        if (open?.state === 'open') return open
        const there = net.hosts.get(peer)
        if (!there || there.isClosed()) {
          host.failed(peer)
          throw new Error(`no node ${peer}`)
        }
        const room = (h: TransportHost) => h.links.meshNeighbours().length < h.config.maxPeers
        const ours = new MemLink(peer, host, mesh && room(host))
        const theirs = new MemLink(id, there, mesh && room(there))
        ours.other = theirs
        theirs.other = ours
        ours.remoteMesh = theirs.localMesh
        theirs.remoteMesh = ours.localMesh
        ours.open()
        theirs.open()
        adopt(there, theirs)
        return adopt(host, ours)
      },
      onSignal: () => {},
      resendSignal: () => {},
      expire: () => {},
      stats: () => ({}),
      failAll: () => {},
      close: () => void net.hosts.delete(id),
    }
  }
}

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const net = new MemNet()
const nodes: OverlayNode[] = []

beforeAll(async () => {
  for (let i = 0; i < 3; i++) {
    const identity = await generateIdentity({ puzzleBits: 0 })
    // No signal server: the `signal` option is not used with a transport of one's own.
    const node = new OverlayNode(
      { identity, transport: net.transport },
      { signal: [], network: 'mem', puzzleBits: 0 },
    )
    await node.start()
    nodes.push(node)
  }
  await until('a full mesh of three', () => nodes.every((n) => n.links.meshNeighbours().length === 2))
})

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()))
})

describe('a node over another transport (no signal server)', () => {
  it('broadcasts, requests, the table and the DHT work as over the signal server', async () => {
    const [a, b, c] = nodes as [OverlayNode, OverlayNode, OverlayNode]
    const got: string[] = []
    c.subscribe<string>('hi', (text, { from }) => got.push(`${from === a.id ? 'a' : '?'}:${text}`))
    await a.broadcast('hi', 'there')
    await until('the broadcast', () => got.length === 1)
    expect(got).toEqual(['a:there'])
    c.handle<{ x: number }, number>('double', ({ x }) => 2 * x)
    expect(await b.request<number>(c.id, 'double', { x: 21 })).toBe(42)
    await a.sync.set('k', 'v')
    await until('the table entry at c', () => c.sync.get('k') === 'v')
    await until('the ring of three', () => nodes.every((n) => n.inspect().ring.successors.length >= 2))
    await b.dht.put('rec', { n: 1 })
    expect(await c.dht.get('rec', { author: b.id })).toEqual({ n: 1 })
  })

  it("inspect() and stats() read the transport's state; nothing of a signal server is counted", () => {
    const [a] = nodes as [OverlayNode]
    expect(a.inspect().signal).toBe('registered')
    expect(a.inspect().links.map((l) => l.mesh)).toEqual([true, true])
    expect(Object.keys(a.stats()).filter((k) => k.startsWith('signal'))).toEqual([])
    expect(a.stats().messagesOut).toBeGreaterThan(0)
    expect(a.stats()['drop.mem.invalid'] ?? 0).toBe(0)
    expect(() => a.signalClient).toThrow(TypeError)
  })
})
