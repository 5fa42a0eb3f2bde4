/**
 * Who makes the WebRTC offer (dialer.ts, inbound.ts): the side that dials,
 * at once, so a newcomer's first link needs no `dial` signal round trip
 * first (join time, issue 14); when both ends dial each other at once
 * (glare), the lower id's offer wins and the higher id answers it. The
 * first part: real nodes, a real signal server, WebRTC in Node (the
 * connection manager's rounds never fire: only the dial at registration);
 * the second: inbound.ts's glare rules, signal by signal.
 */
import SimplePeer from 'simple-peer'
import { io } from 'socket.io-client'
import { afterEach, describe, expect, it } from 'vitest'
import { generateIdentity, type Identity } from '../../shared/identity/keys.ts'
import type { Counters } from '../../shared/protocol.ts'
import { createSignalServer } from '../../signal-server/index.ts'
import type { SimplePeerCtor, WebRtcPipe } from '../links/webrtc.ts'
import { loadWrtc } from '../links/wrtc-adapter.ts'
import { OverlayNode } from '../overlay.ts'
import { type Clock, realClock } from './clock.ts'
import { type Dial, Dialer, type DialerDeps } from './dialer.ts'
import { Inbound } from './inbound.ts'
import type { LinkTable } from './link-table.ts'
import type { NodeConfig } from './options.ts'

const cleanup: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

/** Intervals never fire on this clock (no manager round redials); timeouts are real ones. */
const noRounds: Clock = { ...realClock, setInterval: () => ({}), clearInterval: () => {} }

/** simple-peer, noting for each connection whether this node made the offer. */
function recordingPeer(initiators: boolean[]): SimplePeerCtor {
  const Base = SimplePeer as unknown as SimplePeerCtor
  return class extends Base {
    constructor(opts: ConstructorParameters<SimplePeerCtor>[0]) {
      initiators.push(opts.initiator === true)
      super(opts)
    }
  }
}

/** Two identities, the lower id first. */
async function pair(): Promise<[Identity, Identity]> {
  const x = await generateIdentity({ puzzleBits: 0 })
  const y = await generateIdentity({ puzzleBits: 0 })
  return x.id < y.id ? [x, y] : [y, x]
}

async function nodes(network: string, ids: Identity[]) {
  const s = await createSignalServer({ port: 0, host: '127.0.0.1', puzzleBits: 0 })
  cleanup.push(() => s.close())
  const wrtc = await loadWrtc() // node-datachannel (a devDependency)
  return ids.map((identity) => {
    const initiators: boolean[] = []
    const node = new OverlayNode(
      { SimplePeer: recordingPeer(initiators), io: io as never, identity },
      { signal: s.address, network, puzzleBits: 0, wrtc },
      noRounds,
    )
    cleanup.push(() => node.close())
    return { node, initiators }
  })
}

describe('who makes the WebRTC offer', () => {
  it('a newcomer with the higher id offers to the peer the server introduced, asking nothing first', async () => {
    const [low, high] = await pair()
    const [a, b] = (await nodes('offer', [low, high])) as [
      Awaited<ReturnType<typeof nodes>>[0],
      Awaited<ReturnType<typeof nodes>>[0],
    ]
    await a.node.start()
    await b.node.start() // resolves at its first open link
    expect(b.node.links.openPeers()).toEqual([a.node.id])
    expect(b.node.links.get(a.node.id)?.transport).toBe('webrtc')
    // Earlier, the higher id sent `dial` and waited for the lower id's offer.
    expect(b.initiators).toEqual([true])
    expect(a.initiators).toEqual([false])
    expect(a.node.stats()['drop.signal.glare']).toBeUndefined()
  })
})

/** Inbound's side of glare, step by step: a fake dialer whose pipes record what they are fed. */
function glare(ourId: string) {
  const counters: Counters = {}
  const dials = new Map<string, Dial>()
  const pipes: { initiator: boolean; fed: unknown[]; closed?: string }[] = []
  const startWebRtc = (d: Dial, initiator: boolean) => {
    const rec: (typeof pipes)[number] = { initiator, fed: [] }
    pipes.push(rec)
    d.pipe = {
      signal: (x: unknown) => rec.fed.push(x),
      close: (why: string) => {
        rec.closed = why
      },
    } as unknown as WebRtcPipe
    d.offerer = initiator
  }
  const dialer = { dials, startWebRtc, startRelay: () => {}, failDial: () => {} } as unknown as Dialer
  const inbound = new Inbound({
    id: ourId,
    config: { maxLinks: 8, relay: 'auto' } as NodeConfig,
    counters,
    clock: { now: () => 1000 } as never,
    dialer,
    links: { size: 0, get: () => undefined } as unknown as LinkTable,
    signalClient: { signal: async () => {} } as never,
    isSampled: () => true,
    ringNeighbour: () => false,
    relayMismatch: () => {},
    closed: () => false,
  })
  /** Our own dial to `peer`, offering (as Dialer.dial does). */
  const dialOut = (peer: string) => {
    const d: Dial = { peer, mesh: true, inbound: false, relays: 0, started: 0, waiters: [] }
    dials.set(peer, d)
    startWebRtc(d, true)
  }
  return { counters, pipes, inbound, dialOut, dials }
}

const offer = { t: 'rtc', s: { type: 'offer', sdp: 'v=0' }, mesh: true, o: true }
const theirCandidate = { t: 'rtc', s: { type: 'candidate', candidate: {} }, mesh: true, o: true }
const answer = { t: 'rtc', s: { type: 'answer', sdp: 'v=0' }, mesh: true }

describe('glare: both ends offer at once', () => {
  it('the lower id keeps its offer and drops the other offer and its candidates', () => {
    const g = glare('1'.repeat(40))
    g.dialOut('9'.repeat(40))
    g.inbound.onSignal('9'.repeat(40), offer)
    g.inbound.onSignal('9'.repeat(40), theirCandidate)
    expect(g.pipes).toEqual([{ initiator: true, fed: [] }])
    expect(g.counters['drop.signal.glare']).toBe(2)
    // Its own offer's answer still reaches its pipe.
    g.inbound.onSignal('9'.repeat(40), answer)
    expect(g.pipes[0]?.fed).toEqual([answer.s])
  })

  it("the higher id gives its offer up and answers the lower id's", () => {
    const g = glare('9'.repeat(40))
    g.dialOut('1'.repeat(40))
    g.inbound.onSignal('1'.repeat(40), offer)
    g.inbound.onSignal('1'.repeat(40), theirCandidate)
    expect(g.pipes).toEqual([
      { initiator: true, fed: [], closed: 'glare' },
      { initiator: false, fed: [offer.s, theirCandidate.s] },
    ])
    expect(g.counters['link.glare-yield']).toBe(1)
    expect(g.counters['drop.signal.glare']).toBeUndefined()
  })

  it("an earlier version's offer (no `o` mark) counts as an offer; an answer to no offer of ours is dropped", () => {
    const g = glare('9'.repeat(40))
    g.dialOut('1'.repeat(40))
    g.inbound.onSignal('1'.repeat(40), { t: 'rtc', s: { type: 'offer', sdp: 'v=0' }, mesh: true })
    expect(g.pipes.map((p) => [p.initiator, p.closed])).toEqual([
      [true, 'glare'],
      [false, undefined],
    ])
    const h = glare('9'.repeat(40))
    h.inbound.onSignal('1'.repeat(40), answer)
    expect(h.pipes).toEqual([])
    expect(h.counters['drop.signal.no-offer']).toBe(1)
  })
})

describe('which way a setup answers', () => {
  function dialerWithRing() {
    const counters: Counters = {}
    const sent: { way: string; to: string; t: string }[] = []
    const dialer = new Dialer({
      config: {} as NodeConfig,
      counters,
      overlay: {
        canSignal: () => true, // the ring has a hop toward every id
        signal: async (to: string, data: { t: string }) => void sent.push({ way: 'overlay', to, t: data.t }),
      },
      signalClient: {
        signal: async (to: string, data: { t: string }) => void sent.push({ way: 'server', to, t: data.t }),
      },
    } as unknown as DialerDeps)
    return { dialer, sent, counters }
  }
  const answerOut = { t: 'rtc', s: { type: 'answer', sdp: 'v=0' }, mesh: true } as const

  it('a peer that signalled through the server (a newcomer, not on the ring yet) is answered through the server', async () => {
    const { dialer, sent } = dialerWithRing()
    const peer = '2'.repeat(40)
    dialer.dials.set(peer, {
      peer,
      mesh: true,
      inbound: true,
      relays: 0,
      started: 0,
      waiters: [],
      viaServer: true,
    })
    await dialer.signalTo(peer, answerOut)
    expect(sent).toEqual([{ way: 'server', to: peer, t: 'rtc' }])
  })

  it('a peer that signalled over the ring is answered over the ring (the server is spared)', async () => {
    const { dialer, sent } = dialerWithRing()
    const peer = '2'.repeat(40)
    dialer.dials.set(peer, { peer, mesh: true, inbound: true, relays: 0, started: 0, waiters: [] })
    await dialer.signalTo(peer, answerOut)
    expect(sent).toEqual([{ way: 'overlay', to: peer, t: 'rtc' }])
  })

  it('inbound marks a setup whose signal came through the server', () => {
    const g = glare('9'.repeat(40))
    g.inbound.onSignal('1'.repeat(40), offer, false, true)
    g.inbound.onSignal('3'.repeat(40), offer, false, false)
    expect(g.dials.get('1'.repeat(40))?.viaServer).toBe(true)
    expect(g.dials.get('3'.repeat(40))?.viaServer).toBeUndefined()
  })
})
