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

/** A WebRTC stack that takes signals and never answers or connects (a peer whose page is going away). */
class SilentPeer {
  on() {}
  once() {}
  signal() {}
  send() {}
  destroy() {}
}

describe('an offer that went to an earlier session of the same identity', () => {
  it('the lower id replays it when the reloaded peer offers, and the link opens over WebRTC, not at the relay fallback', async () => {
    const [low, high] = await pair()
    const s = await createSignalServer({ port: 0, host: '127.0.0.1', puzzleBits: 0 })
    cleanup.push(() => s.close())
    const wrtc = await loadWrtc()
    // The relay fallback is out of reach of this test: only the direct link can open it.
    const config = { signal: s.address, network: 'replay', puzzleBits: 0, wrtc, directTimeoutMs: 30_000 }
    const make = (identity: Identity, SimplePeer: SimplePeerCtor) => {
      const node = new OverlayNode({ SimplePeer, io: io as never, identity }, config, noRounds)
      cleanup.push(() => node.close())
      return node
    }
    // The first session of `high` takes the low id's offer and never answers (it is going away).
    const old = make(high, SilentPeer as unknown as SimplePeerCtor)
    await old.start() // alone: nobody to dial
    const w = make(low, SimplePeer as unknown as SimplePeerCtor)
    const wJoined = w.start() // offers to `old` at registration
    await until(() => (old.stats().signalsIn ?? 0) >= 1)
    await old.close()
    // The reloaded page, same identity: it offers to w, whose own offer (to the old session) wins the glare.
    const again = make(high, SimplePeer as unknown as SimplePeerCtor)
    await again.start()
    await wJoined
    expect(again.links.get(w.id)?.transport).toBe('webrtc')
    expect(w.links.get(again.id)?.transport).toBe('webrtc')
    expect(w.stats()['drop.signal.glare']).toBeGreaterThanOrEqual(1)
    expect(w.stats()['signal.offer-replayed']).toBe(1)
    expect(again.stats()['link.glare-yield']).toBe(1)
    expect(w.stats()['dial.relay-fallback']).toBeUndefined()
  }, 20_000)
})

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 20))
  }
}

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
  const replays: string[] = []
  const replayOffer = (d: Dial) => replays.push(d.peer)
  const dialer = {
    dials,
    startWebRtc,
    replayOffer,
    // (As the dialer's: the hello a signal carries is attempt-hello.test.ts's.)
    feedRtc: (d: Dial, s: { s: object }) => d.pipe?.signal(s.s),
    startRelay: () => {},
    failDial: () => {},
  } as unknown as Dialer
  let linkOpen = false
  const inbound = new Inbound({
    id: ourId,
    config: { maxLinks: 8, relay: 'auto' } as NodeConfig,
    counters,
    clock: { now: () => 1000 } as never,
    dialer,
    links: {
      size: 0,
      get: () =>
        linkOpen
          ? {
              state: 'open',
              transport: 'webrtc',
              close: () => pipes.push({ initiator: false, fed: [], closed: 'link' }),
            }
          : undefined,
    } as unknown as LinkTable,
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
  const openLink = () => {
    linkOpen = true
  }
  return { counters, pipes, inbound, dialOut, dials, replays, openLink }
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

describe('a replayed offer (the glare winner sends its offer again)', () => {
  const low = '1'.repeat(40)
  const high = '9'.repeat(40)
  const replayed = { ...offer, r: true }
  const replayedCandidate = { ...theirCandidate, r: true }

  it('the winner replays its offer once per glare offer it drops, not for the candidates', () => {
    const g = glare(low)
    g.dialOut(high)
    g.inbound.onSignal(high, offer)
    g.inbound.onSignal(high, theirCandidate)
    expect(g.replays).toEqual([high])
  })

  it('a loser that never had the offer yields to the replay and answers it, candidates included', () => {
    const g = glare(high)
    g.dialOut(low)
    g.inbound.onSignal(low, replayed)
    g.inbound.onSignal(low, replayedCandidate)
    expect(g.pipes).toEqual([
      { initiator: true, fed: [], closed: 'glare' },
      { initiator: false, fed: [offer.s, theirCandidate.s] },
    ])
    expect(g.counters['link.glare-yield']).toBe(1)
  })

  it('a loser that answers the offer already drops the replayed offer and takes its candidates', () => {
    const g = glare(high)
    g.dialOut(low)
    g.inbound.onSignal(low, offer)
    g.inbound.onSignal(low, replayed)
    g.inbound.onSignal(low, replayedCandidate)
    expect(g.pipes[1]).toEqual({ initiator: false, fed: [offer.s, theirCandidate.s] })
    expect(g.pipes).toHaveLength(2)
    expect(g.counters['drop.signal.replay-duplicate']).toBe(1)
  })

  it('a replay starts nothing: no setup, no yield to a higher id, and an open link is not superseded', () => {
    const g = glare(high)
    g.inbound.onSignal(low, replayed)
    expect(g.dials.size).toBe(0)
    // From a higher id (it would have lost the glare, so it never replays): dropped.
    const h = glare(low)
    h.dialOut(high)
    h.inbound.onSignal(high, replayed)
    expect(h.pipes).toEqual([{ initiator: true, fed: [] }])
    const k = glare(high)
    k.openLink()
    k.inbound.onSignal(low, replayed)
    expect(k.pipes).toEqual([])
    expect(g.counters['drop.signal.replay']).toBe(1)
    expect(h.counters['drop.signal.replay']).toBe(1)
    expect(k.counters['drop.signal.replay']).toBe(1)
    expect(k.counters['link.superseded']).toBeUndefined()
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
