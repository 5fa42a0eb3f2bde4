/**
 * Inbound admission at the link budget (inbound.ts): a node at `maxLinks`
 * refuses a stranger's setup ('full'), but still lets in a peer that is, or
 * would become, its ring neighbour, up to RING_EXTRA_LINKS more; past that,
 * it refuses everyone. (Found in the browser suite: five tabs with
 * maxLinks 3, the last one refused by all its ring neighbours, could not
 * answer a request that had reached it.)
 */
import { describe, expect, it } from 'vitest'
import type { Counters } from '../../shared/protocol.ts'
import type { Dial, Dialer } from './dialer.ts'
import { Inbound } from './inbound.ts'
import type { LinkTable } from './link-table.ts'
import type { NodeConfig } from './options.ts'

function setup(opts: {
  links: number
  neighbours: string[]
  id?: string
  maxLinks?: number
  relay?: NodeConfig['relay']
}) {
  const counters: Counters = {}
  const dials = new Map<string, Dial>()
  const started: string[] = []
  const refused: string[] = []
  const failed: { peer: string; err: Error }[] = []
  const mismatched: string[] = []
  const dialer = {
    dials,
    startWebRtc: (d: Dial) => started.push(d.peer),
    startRelay: (d: Dial) => started.push(d.peer),
    feedRtc: (d: Dial, s: { s: object }) => d.pipe?.signal(s.s),
    failDial: (d: Dial, err: Error) => failed.push({ peer: d.peer, err }),
  } as unknown as Dialer
  const inbound = new Inbound({
    // The lowest id by default: every peer's 'dial' asks us to make the offer.
    id: opts.id ?? '0'.repeat(40),
    config: { maxLinks: opts.maxLinks ?? 3, relay: opts.relay ?? 'auto' } as NodeConfig,
    counters,
    clock: { now: () => 1000 } as never,
    dialer,
    links: { size: opts.links, get: () => undefined } as unknown as LinkTable,
    signalClient: {
      signal: async (to: string) => {
        refused.push(to)
      },
    } as never,
    isSampled: () => true,
    ringNeighbour: (peer) => opts.neighbours.includes(peer),
    relayMismatch: (peer) => mismatched.push(peer),
    closed: () => false,
  })
  const dial = (from: string) => inbound.onSignal(from, { t: 'dial', mesh: false })
  return { counters, dials, started, refused, failed, mismatched, dial, inbound }
}

const id = (c: string) => c.repeat(40)

describe('inbound admission at the link budget', () => {
  it('below maxLinks, anyone registered is let in', () => {
    const s = setup({ links: 2, neighbours: [] })
    s.dial(id('a'))
    expect(s.started).toEqual([id('a')])
    expect(s.counters['drop.signal.inbound-full.links']).toBeUndefined()
  })

  it('at maxLinks, a peer that is not a ring neighbour is refused, and told so', () => {
    const s = setup({ links: 3, neighbours: [] })
    s.dial(id('a'))
    expect(s.started).toEqual([])
    expect(s.dials.size).toBe(0)
    expect(s.refused).toEqual([id('a')])
    expect(s.counters['drop.signal.inbound-full.links']).toBe(1)
  })

  it('at maxLinks, ring neighbours are let in, two at most beyond the budget', () => {
    const s = setup({ links: 3, neighbours: [id('a'), id('b'), id('c')] })
    s.dial(id('a'))
    s.dial(id('b'))
    s.dial(id('c'))
    s.dial(id('d'))
    expect(s.started).toEqual([id('a'), id('b')])
    expect(s.refused).toEqual([id('c'), id('d')])
    expect(s.counters['drop.signal.inbound-full.links']).toBe(2)
  })
})

describe('refusals of our own dials', () => {
  it("a peer's refusal fails our dial with NoRouteError saying why ('full' may pass: the router asks again)", () => {
    const s = setup({ links: 0, neighbours: [] })
    for (const [c, reason] of [
      ['a', 'full'],
      ['b', 'no-relay'],
    ] as const) {
      s.dials.set(id(c), { peer: id(c), relay: {} } as Dial)
      s.inbound.onSignal(id(c), { t: 'refuse', reason })
    }
    // A refusal for a dial we do not have changes nothing.
    s.inbound.onSignal(id('c'), { t: 'refuse', reason: 'full' })
    expect(s.failed.map((f) => [f.peer, f.err.name, (f.err as { refused?: string }).refused])).toEqual([
      [id('a'), 'NoRouteError', 'full'],
      [id('b'), 'NoRouteError', 'no-relay'],
    ])
    // (relay 'auto': the peer is one we cannot reach now, not a mismatch for the join to report.)
    expect(s.mismatched).toEqual([])
    expect(s.counters['drop.signal.refuse']).toBe(1)
  })

  it("'no-relay' ends only a relay setup the peer has not spoken on, and is a mismatch only for relay 'force'", () => {
    const s = setup({ links: 0, neighbours: [], relay: 'force' })
    const refuse = (c: string) => s.inbound.onSignal(id(c), { t: 'refuse', reason: 'no-relay' })
    // A WebRTC attempt (no relay offered), a relay session the peer has spoken on, no setup at all:
    // the signal server made the refusal up; nothing ends, nothing is noted.
    s.dials.set(id('a'), { peer: id('a') } as Dial)
    s.dials.set(id('b'), { peer: id('b'), relay: {}, link: { stats: { bytesIn: 40 } } } as unknown as Dial)
    for (const c of ['a', 'b', 'c']) refuse(c)
    expect(s.failed).toEqual([])
    expect(s.mismatched).toEqual([])
    expect(s.counters['drop.signal.refuse']).toBe(3)
    // Our relay offer, unanswered: the peer runs relay 'never', and this node 'force'.
    s.dials.set(id('d'), { peer: id('d'), relay: {} } as Dial)
    refuse('d')
    expect(s.failed.map((f) => f.peer)).toEqual([id('d')])
    expect(s.mismatched).toEqual([id('d')])
  })
})

describe('signals against the offer rule', () => {
  // The victim has the highest id here: only a higher id (an earlier version) asks with 'dial'.
  const highest = () => setup({ links: 0, neighbours: [], id: 'f'.repeat(40), maxLinks: 30 })

  it("a lower id's 'dial' and an answer to no offer start nothing: no setup is left holding an inbound slot", () => {
    const s = highest()
    // 'dial' from lower ids (they should offer themselves): 40 strangers' worth, past MAX_INBOUND.
    for (let i = 0; i < 40; i++)
      s.inbound.onSignal(i.toString(16).padStart(40, '0'), { t: 'dial', mesh: true })
    expect(s.dials.size).toBe(0)
    expect(s.counters['drop.signal.wrong-dial']).toBe(40)
    // Answers and candidates of no setup of ours, from 40 peers.
    for (let i = 0; i < 40; i++)
      s.inbound.onSignal(`a${i.toString(16).padStart(39, '0')}`, {
        t: 'rtc',
        s: { type: 'answer', sdp: 'v=0' },
        mesh: true,
      })
    expect(s.dials.size).toBe(0)
    expect(s.counters['drop.signal.no-offer']).toBe(40)
    // An honest offer is still taken.
    s.inbound.onSignal('1'.repeat(40), { t: 'rtc', s: { type: 'offer', sdp: 'v=0' }, mesh: true })
    expect(s.dials.has('1'.repeat(40))).toBe(true)
  })
})

describe('upgrade offers over a relayed link', () => {
  const peer = id('1')
  const offer = { t: 'rtc', s: { type: 'offer', sdp: 'v=0' }, mesh: true } as const
  /** A node linked to `peer` over the relay; `relink()` gives it a new relayed link (a fresh one). */
  function relayed(transport: 'relay' | 'webrtc' = 'relay') {
    const counters: Counters = {}
    const dials = new Map<string, Dial>()
    const clock = { t: 1000, now: () => clock.t }
    let link = { peer, transport, state: 'open', localMesh: true }
    const dialer = {
      dials,
      startWebRtc: (d: Dial) => {
        d.pipe = { signal: () => true } as unknown as NonNullable<Dial['pipe']>
      },
      feedRtc: () => {},
    } as unknown as Dialer
    const inbound = new Inbound({
      id: id('f'),
      config: { maxLinks: 30, relay: 'auto' } as NodeConfig,
      counters,
      clock: clock as never,
      dialer,
      links: { size: 1, get: (p: string) => (p === peer ? link : undefined) } as unknown as LinkTable,
      signalClient: { signal: async () => {} } as never,
      isSampled: () => true,
      ringNeighbour: () => false,
      relayMismatch: () => {},
      closed: () => false,
    })
    /** The peer offers an upgrade (or, over a direct link, a new link): was a setup started? */
    const offered = () => {
      inbound.onSignal(peer, offer)
      const d = dials.get(peer)
      return transport === 'relay' ? d?.upgrade === true : d?.supersedes === link
    }
    /** Our end of the try failed (the dialer's failDial). */
    const fail = () => {
      dials.delete(peer)
      inbound.failed(peer, true)
    }
    const relink = () => {
      link = { ...link }
    }
    return { counters, clock, offered, fail, relink }
  }

  it("after a failed upgrade the peer waits 4 s, not 30: the offerer's quick retry (7-10 s later) is taken", () => {
    const s = relayed()
    expect(s.offered()).toBe(true)
    s.fail()
    s.clock.t += 3900
    expect(s.offered()).toBe(false)
    expect(s.counters['drop.signal.inbound-backoff']).toBe(1)
    s.clock.t += 3100 // 7 s after the failure
    expect(s.offered()).toBe(true)
    expect(s.counters['upgrade.offered']).toBe(2)
  })

  // Upgrades: what an honest offerer sends at most. Supersedes: a server making up offers from a
  // linked peer, one each 4 s backoff, kept the node setting up WebRTC for good.
  for (const [transport, kind] of [
    ['relay', 'upgrade'],
    ['webrtc', 'supersede'],
  ] as const)
    it(`at most ten ${kind} setups per open ${transport} link; a new link starts afresh`, () => {
      const s = relayed(transport)
      let taken = 0
      for (let i = 0; i < 30; i++) {
        if (s.offered()) {
          taken++
          s.fail()
        }
        s.clock.t += 60_000
      }
      expect(taken).toBe(10)
      expect(s.counters[`drop.signal.${kind}-budget`]).toBe(20)
      s.relink()
      expect(s.offered()).toBe(true)
    })

  it('a failed setup that was no upgrade (no open link) still backs the peer off 30 s', () => {
    const s = setup({ links: 0, neighbours: [] })
    s.dial(id('a'))
    expect(s.started).toEqual([id('a')])
    s.dials.delete(id('a'))
    s.inbound.failed(id('a'), true)
    s.dial(id('a'))
    expect(s.started).toEqual([id('a')])
    expect(s.counters['drop.signal.inbound-backoff']).toBe(1)
  })
})
