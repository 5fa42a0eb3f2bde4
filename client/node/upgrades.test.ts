/**
 * The upgrade schedule (upgrades.ts) on simulated time: when a relayed link
 * is tried over WebRTC again after a failed try, by what the try saw. A try
 * that failed for load (ICE had connected, the setup timer fired late,
 * nothing could even be signalled, or the peer's answer never came) is tried
 * again 7-10 s later; one that failed as an unconnectable pair does (ICE
 * checked candidate pairs and none worked: 'failed', or still 'checking' when
 * the timer fired on time) waits 3x longer each time and stops after four.
 * The waits are jittered, so tabs that failed together do not retry together,
 * and every relayed link costs MAX_OFFERS offers at most, ever.
 *
 * A fake dialer stands in: each try is a Dial in `dials` that ends, failed or
 * opened, when the test's outcome says, as the real dialer's failDial and
 * linkOpen end it (its waiters settled, the dial gone).
 */
import { describe, expect, it } from 'vitest'
import { mulberry32 } from '../../shared/sim/prng.ts'
import type { Dial } from './dialer.ts'
import { LinkTable, type NodeLink } from './link-table.ts'
import { MAX_AT_ONCE, Upgrades } from './upgrades.ts'

/** How a fake try ends, `ms` after it started. */
interface Outcome {
  ms: number
  /** The try opened a direct link. */
  opens?: boolean
  /** The ICE connection states the try's connection went through. @default ['checking'] */
  ice?: string[]
  /** Signals the try sent (its offer and candidates). @default 3 */
  signalled?: number
  /** The try's dial goes without a word to its waiters (as no path of the real dialer should). */
  vanishes?: boolean
  /** The try's dial resolves, but the relayed link is the one kept. */
  keepsRelay?: boolean
}

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE

/** A link to `peer` as the table holds it. */
const link = (peer: string, transport: 'relay' | 'webrtc'): NodeLink =>
  ({
    peer,
    transport,
    state: 'open',
    close() {},
    stats: { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 },
  }) as unknown as NodeLink

/**
 * One node (id 'a') with relayed links to `peers`, its Upgrades driven as the
 * connection manager drives it (a round every second). `outcome(peer, n)`
 * says how the peer's n-th try ends.
 */
function harness(opts: {
  peers: string[]
  outcome: (peer: string, n: number) => Outcome
  random?: () => number
  firstTryMs?: number
}) {
  const links = new LinkTable()
  for (const p of opts.peers) links.adopt(link(p, 'relay'))
  const dials = new Map<string, Dial>()
  let now = 0
  /** Per peer: when each try started, and when each failed one ended. */
  const starts = new Map<string, number[]>()
  const fails = new Map<string, number[]>()
  const ending: { end: number; d: Dial; o: Outcome }[] = []
  const upgrade = (peer: string) => {
    if (dials.has(peer)) return false
    const mine = starts.get(peer) ?? []
    starts.set(peer, mine)
    const o = opts.outcome(peer, mine.length)
    mine.push(now)
    const d = {
      peer,
      upgrade: true,
      inbound: false,
      started: now,
      waiters: [],
      offerer: true,
      sent: Array.from({ length: o.signalled ?? 3 }, () => ({})),
      pipe: { iceSeen: () => o.ice ?? ['checking'], iceState: () => 'closed' },
    } as unknown as Dial
    dials.set(peer, d)
    ending.push({ end: now + o.ms, d, o })
    return true
  }
  const firstTryMs = opts.firstTryMs ?? 10 * SECOND
  const upgrades = new Upgrades('a', links, { dials, upgrade }, firstTryMs, {
    setupMs: 10 * SECOND,
    now: () => now,
    random: opts.random ?? (() => 0),
  })
  /** Rounds every second up to `until`; tries end at their own times in between. */
  const run = (until: number) => {
    for (let t = now; t <= until; t += SECOND) {
      ending.sort((x, y) => x.end - y.end)
      while (ending[0] && ending[0].end <= t) {
        const { end, d, o } = ending.shift() as (typeof ending)[number]
        now = end
        dials.delete(d.peer)
        if (o.vanishes) continue
        if (o.keepsRelay) {
          for (const w of d.waiters) w.resolve(links.get(d.peer) as NodeLink)
          continue
        }
        if (o.opens) {
          links.remove(links.get(d.peer) as NodeLink)
          links.adopt(link(d.peer, 'webrtc'))
          for (const w of d.waiters) w.resolve(links.get(d.peer) as NodeLink)
        } else {
          fails.set(d.peer, [...(fails.get(d.peer) ?? []), end])
          for (const w of d.waiters) w.reject(new Error(`no direct link to ${d.peer}`))
        }
      }
      now = t
      upgrades.round(t)
    }
    now = until + SECOND
  }
  /** The waits from each failed try's end to the next try's start. */
  const waits = (peer: string) => {
    const s = starts.get(peer) ?? []
    return (fails.get(peer) ?? []).flatMap((f) => {
      const next = s.find((t) => t > f)
      return next === undefined ? [] : [next - f]
    })
  }
  const tries = (peer: string) => starts.get(peer)?.length ?? 0
  return { run, starts, fails, waits, tries, links, dials, upgrades }
}

describe('the upgrade schedule', () => {
  it('a try that ended unseen (its dial gone unsettled, or settled with the relayed link kept) does not stop the tries', () => {
    for (const end of [{ vanishes: true }, { keepsRelay: true }]) {
      const h = harness({
        peers: ['b'],
        outcome: (_, n) => (n === 0 ? { ms: 2 * SECOND, ...end } : { ms: 500, opens: true }),
      })
      h.run(2 * MINUTE)
      expect(h.tries('b')).toBe(2)
      expect(h.links.get('b')?.transport).toBe('webrtc')
    }
  })

  it('tries each relayed link we offer for, first after firstTryMs, a few at once, never for a lower id', () => {
    const h = harness({ peers: ['b1', 'b2', 'b3', '0lower'], outcome: () => ({ ms: 500, opens: true }) })
    h.run(9 * SECOND)
    expect(h.tries('b1')).toBe(0) // not before firstTryMs
    h.run(10 * SECOND)
    // Two at once at most; never for a peer with the lower id (it offers, not us).
    expect(['b1', 'b2', 'b3'].map(h.tries)).toEqual([1, 1, 0])
    expect(h.dials.size).toBe(MAX_AT_ONCE)
    h.run(12 * SECOND)
    expect(['b1', 'b2', 'b3', '0lower'].map(h.tries)).toEqual([1, 1, 1, 0])
    expect(h.links.get('b3')?.transport).toBe('webrtc')
  })

  it('a try that failed for load once ICE had connected is tried again 7-10 s after it failed, jittered', () => {
    const when: number[] = []
    for (const r of [0, 0.5, 0.999]) {
      const h = harness({
        peers: ['b'],
        random: () => r,
        // ICE connected, but the channel and the link's handshake did not finish in time.
        outcome: (_p, n) =>
          n === 0 ? { ms: 10 * SECOND, ice: ['checking', 'connected'] } : { ms: 300, opens: true },
      })
      h.run(2 * MINUTE)
      expect(h.tries('b')).toBe(2)
      const [wait] = h.waits('b')
      expect(wait).toBeGreaterThanOrEqual(7 * SECOND) // after the answerer's backoff (UPGRADE_BACKOFF_MS)
      expect(wait).toBeLessThanOrEqual(10 * SECOND)
      when.push(wait as number)
      expect(h.links.get('b')?.transport).toBe('webrtc')
    }
    // Jitter: tabs that failed together do not all come back at the same moment.
    expect(new Set(when).size).toBe(3)
  })

  it('a setup timer that fired late (this tab was busy) counts as load too, and so do a try that signalled nothing and one the peer never answered', () => {
    for (const first of [
      { ms: 14 * SECOND, ice: ['checking'] }, // the 10 s timer ran 4 s late
      { ms: 10 * SECOND, ice: ['checking'], signalled: 0 }, // the offer was never made in time
      { ms: 5, ice: [], signalled: 0 }, // the RTCPeerConnection could not be made
      { ms: 10 * SECOND, ice: ['new'] }, // no answer from the peer in time: it was busy (ICE never began)
    ]) {
      const h = harness({ peers: ['b'], outcome: (_p, n) => (n === 0 ? first : { ms: 300, opens: true }) })
      h.run(2 * MINUTE)
      expect(h.waits('b')).toHaveLength(1)
      expect(h.waits('b')[0]).toBeLessThanOrEqual(10 * SECOND)
    }
  })

  it('16 tabs whose tries failed for load at the same moment do not retry in lockstep', () => {
    const retries: number[] = []
    for (let tab = 0; tab < 16; tab++) {
      const h = harness({
        peers: ['b'],
        random: mulberry32(1000 + tab),
        outcome: (_p, n) =>
          n === 0 ? { ms: 10 * SECOND, ice: ['checking', 'connected'] } : { ms: 300, opens: true },
      })
      h.run(2 * MINUTE)
      retries.push(h.starts.get('b')?.[1] as number)
    }
    // Spread over seconds, not all in one round.
    expect(Math.max(...retries) - Math.min(...retries)).toBeGreaterThanOrEqual(2 * SECOND)
    expect(new Set(retries).size).toBeGreaterThanOrEqual(4)
  })

  it('a pair that cannot connect backs off x3 from each failure and stops after four tries: four offers per hour, and per day', () => {
    for (const fail of [
      { ms: 8 * SECOND, ice: ['checking', 'failed'] }, // ICE failed: no candidate pair worked
      { ms: 10 * SECOND, ice: ['checking'] }, // the timer on time, ICE still checking (a symmetric NAT)
      { ms: 10 * SECOND, ice: ['checking', 'disconnected'] },
    ]) {
      const h = harness({ peers: ['b'], outcome: () => fail })
      h.run(HOUR)
      expect(h.tries('b')).toBe(4)
      // Measured from the failure (the answerer backed off when its end of the try failed).
      const w = h.waits('b')
      expect(w).toHaveLength(3)
      ;[30, 90, 270].forEach((s, i) => {
        expect(w[i]).toBeGreaterThanOrEqual(s * SECOND)
        expect(w[i]).toBeLessThanOrEqual(s * 1.25 * SECOND + SECOND)
      })
      h.run(24 * HOUR)
      expect(h.tries('b')).toBe(4)
    }
  })

  it('a pair whose tries always fail for load: six quick retries, then the backoff; ten offers at most, ever', () => {
    const h = harness({
      peers: ['b'],
      random: mulberry32(7),
      outcome: () => ({ ms: 10 * SECOND, ice: ['checking', 'connected'] }),
    })
    h.run(3 * MINUTE)
    // The first try at 10 s, then one every 17-20 s (10 s of setup, 7-10 s of wait).
    expect(h.tries('b')).toBeGreaterThanOrEqual(7)
    h.run(HOUR)
    expect(h.tries('b')).toBe(10)
    h.run(24 * HOUR)
    expect(h.tries('b')).toBe(10)
  })

  it('a try still under way is not started again, however long it takes', () => {
    const h = harness({ peers: ['b'], outcome: () => ({ ms: 20 * MINUTE, ice: ['checking'] }) })
    h.run(19 * MINUTE)
    expect(h.tries('b')).toBe(1)
  })

  it('starts afresh for a link relayed again, and holds nothing for links gone', () => {
    const h = harness({ peers: ['b'], outcome: () => ({ ms: 8 * SECOND, ice: ['failed'] }) })
    h.run(HOUR)
    expect(h.tries('b')).toBe(4)
    h.links.remove(h.links.get('b') as NodeLink)
    h.run(HOUR + 2 * SECOND)
    h.links.adopt(link('b', 'relay'))
    h.run(HOUR + 14 * SECOND)
    expect(h.tries('b')).toBe(5)
  })
})
