/**
 * What one peer's `route` messages may cost us: the routes we pass on for it
 * (at most `routeBudget` per `replyWindowMs`), and the room its routes take
 * in the table of routes whose answers we pass back (a full table forgets a
 * route of the peer holding the most, never an honest peer's few). A
 * flooding neighbour neither makes us send at its rate nor pushes honest
 * routes' answers out; honest recursive lookups keep working.
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { buildRing, type ChordNet, SIM_CHORD_OPTIONS, settleAll, stubChord } from './harness.ts'
import { MAX_STEPS } from './lookup.ts'
import { launchLookups, measureLookups, runChurn } from './measure.ts'
import type { ChordMsg } from './messages.ts'
import { between } from './ring.ts'

// Ids for the stub tests, in ring order: B is the victim, D its successor; E lies past D.
const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const C = 'c'.repeat(40)
const D = 'd'.repeat(40)
const E = 'e'.repeat(40)
/** Hostile peers (their place on the ring does not matter here). */
const H = (i: number) => (0x7000 + i).toString(16).padStart(40, '0')
/** A made-up origin. */
const O = (i: number) => (0x9000_0000 + i).toString(16).padStart(40, '0')

const flush = () => new Promise((r) => setTimeout(r, 0))

/** The routes the budget lets one peer have passed on per window (the default). */
const ROUTES = 256

/** B, whose successor is D and who knows nothing past D: it passes every route for E on to D. */
async function victim() {
  const s = stubChord(B, { iterative: false, requestTimeoutMs: 1000 })
  await s.chord.join(null)
  await s.chord.handle(D, { t: 'newSucc' })
  return s
}

const routesTo = (sent: [string, ChordMsg][], to: string) =>
  sent.filter(([x, m]) => x === to && m.t === 'route').length

describe('routes passed on for one peer', () => {
  it('are at most the budget per window: a flood of 5,000 is passed on 256 times, the rest dropped; another peer’s routes still pass; the next window passes again', async () => {
    const s = await victim()
    for (let i = 0; i < 5000; i++)
      await s.chord.handle(H(0), { t: 'route', r: 1000 + i, k: E, o: O(i), h: 1 })
    // Before: every one of the 5,000 was passed on to D.
    expect(routesTo(s.sent, D)).toBe(ROUTES)
    expect(s.chord.counters['drop.routeBudget']).toBe(5000 - ROUTES)
    // An honest neighbour's budget is its own.
    s.sent.length = 0
    await s.chord.handle(A, { t: 'route', r: 77, k: E, o: C, h: 1 })
    expect(s.sent).toEqual([[D, { t: 'route', r: 77, k: E, o: C, h: 2 }]])
    // A new window: the flooder's routes pass again.
    await s.advance(10_000)
    s.sent.length = 0
    await s.chord.handle(H(0), { t: 'route', r: 99_999, k: E, o: O(0), h: 1 })
    expect(routesTo(s.sent, D)).toBe(1)
  })

  it('from their own origin, over the budget, are answered err busy: the origin falls back at once instead of waiting', async () => {
    const s = await victim()
    for (let i = 0; i <= ROUTES; i++)
      await s.chord.handle(H(0), { t: 'route', r: 1000 + i, k: E, o: H(0), h: 1 })
    expect(routesTo(s.sent, D)).toBe(ROUTES)
    expect(s.sent.at(-1)).toEqual([H(0), { t: 'err', r: 1000 + ROUTES, code: 'busy' }])
  })
})

describe('a recursive lookup whose route is refused', () => {
  it('goes on iteratively at once when the first hop answers err busy (no wait for the route’s timeout)', async () => {
    // B, recursive: D is its successor, so a lookup of E starts with a route to D.
    const s = await victim()
    const lookup = s.chord.lookup(E).catch((e: Error) => e.name)
    await flush()
    const route = s.sent.find(([to, m]) => to === D && m.t === 'route')?.[1]
    if (route?.t !== 'route') throw new Error('no route sent to D')
    const r = route.r
    s.sent.length = 0
    await s.chord.handle(D, { t: 'err', r, code: 'busy' })
    await flush()
    // No time has passed: the iterative lookup already asks D.
    expect(s.chord.counters['lookup.recursiveFallback']).toBe(1)
    expect(s.sent.some(([to, m]) => to === D && m.t !== 'route')).toBe(true)
    void lookup
  })
})

describe('the table of routes whose answers we pass back', () => {
  it('keeps an honest route’s place whatever one flooder sends: its answer still goes back', async () => {
    const s = await victim()
    await s.chord.handle(A, { t: 'route', r: 77, k: E, o: C, h: 1 })
    // Before: 1,100 routes from one peer pushed the honest one out (route.relayEvicted), and its answer was lost.
    for (let i = 0; i < 1100; i++)
      await s.chord.handle(H(0), { t: 'route', r: 1000 + i, k: E, o: O(i), h: 1 })
    const answer: ChordMsg = { t: 'routed', r: 77, p: B, s: [D], h: 2 }
    await s.chord.handle(D, answer)
    expect(s.sent.at(-1)).toEqual([A, answer])
    expect(s.chord.counters['route.relayed']).toBe(1)
  })

  it('full of many peers’ routes, forgets one of the peer holding the most: 8 sybils within their budgets do not push out the honest one', async () => {
    const s = await victim()
    await s.chord.handle(A, { t: 'route', r: 77, k: E, o: C, h: 1 })
    for (let p = 0; p < 8; p++)
      for (let i = 0; i < ROUTES; i++)
        await s.chord.handle(H(p), { t: 'route', r: 10_000 * (p + 1) + i, k: E, o: O(i), h: 1 })
    expect(s.chord.counters['drop.routeBudget']).toBeUndefined()
    expect(s.chord.counters['route.relayEvicted']).toBe(8 * ROUTES + 1 - 1024)
    const answer: ChordMsg = { t: 'routed', r: 77, p: B, s: [D], h: 2 }
    await s.chord.handle(D, answer)
    expect(s.sent.at(-1)).toEqual([A, answer])
  })

  it('does not let another peer take over a pending route’s place with the same request id', async () => {
    const s = await victim()
    await s.chord.handle(A, { t: 'route', r: 77, k: E, o: C, h: 1 })
    // H, having seen r = 77 go by, names it in a route of its own: the answer must still go to A.
    await s.chord.handle(H(0), { t: 'route', r: 77, k: E, o: C, h: 1 })
    const answer: ChordMsg = { t: 'routed', r: 77, p: B, s: [D], h: 2 }
    await s.chord.handle(D, answer)
    expect(s.sent.at(-1)).toEqual([A, answer])
  })
})

const sum = (net: ChordNet, name: string) =>
  net.live().reduce((n, x) => n + (net.node(x).counters[name] ?? 0), 0)

/** The member that passed back the most answers of recursive lookups in a trial run (so honest routes go through it). */
async function busiestRelay(net: ChordNet): Promise<string> {
  for (let i = 0; i < 3; i++) await settleAll(net.sim, launchLookups(net, 400).jobs)
  const relayed = (x: string) => net.node(x).counters['route.relayed'] ?? 0
  return net.live().reduce((best, x) => (relayed(x) > relayed(best) ? x : best))
}

describe('recursive lookups in the simulator', () => {
  it('through a node a neighbour floods with 20,000 routes a second: no honest answer is lost, and the flood is passed on at most the budget', async () => {
    const seed = testSeed(81)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 128, { ...SIM_CHORD_OPTIONS, iterative: false })
      const v = await busiestRelay(net)
      const vn = net.node(v)
      const h = net.live().find((x) => x !== v && x !== vn.predecessor() && !vn.successors().includes(x))
      if (!h) throw new Error('no hostile neighbour')
      // The flood's positions lie far from v (it passes them on), with hop counts that make the next
      // node drop them (MAX_STEPS): their places in v's table stay taken until their origins' wait ends.
      const far = () => {
        for (;;) {
          const x = net.sim.randomId()
          if (between(x, vn.successors().at(-1) as string, vn.predecessor() as string)) return x
        }
      }
      // The flood's request ids: 1 … 60,000 (an honest route's is at least 2^32, rpc.ts).
      let passedOn = 0
      net.tamper(v, (_to, m) => {
        if (m.t === 'route' && m.r <= 60_000) passedOn++
        return m
      })
      const fallbacks = sum(net, 'lookup.recursiveFallback')
      // 3 s: every 100 ms, 100 lookups from random members and 2,000 routes from h to v.
      const all = { ok: 0, wrong: 0, failed: 0, ms: [] as number[] }
      const jobs: Promise<void>[] = []
      let r = 1
      for (let round = 0; round < 30; round++) {
        const l = launchLookups(net, 100)
        jobs.push(...l.jobs)
        void Promise.all(l.jobs).then(() => {
          all.ok += l.stats.ok
          all.wrong += l.stats.wrong
          all.ms.push(...l.stats.ms)
        })
        for (let i = 0; i < 2000; i++)
          void vn.handle(h, { t: 'route', r: r++, k: far(), o: O(i), h: MAX_STEPS - 1 })
        await net.sim.runFor(100)
      }
      all.failed = (await settleAll(net.sim, jobs)).filter((x) => x.status === 'rejected').length
      expect(all.ok).toBe(3000)
      // Before: 16 honest answers pushed out of v's table (route.relayEvicted: 46,679), each
      // lookup redone iteratively after 4 timeouts (max 2.06 s; 0.33 s after).
      expect(sum(net, 'lookup.recursiveFallback') - fallbacks).toBe(0)
      expect(Math.max(...all.ms)).toBeLessThan(4 * (SIM_CHORD_OPTIONS.requestTimeoutMs as number))
      // Before: all 60,000 passed on. The run spans the first window and part of the next.
      expect(passedOn).toBeLessThanOrEqual(2 * ROUTES)
      expect(vn.counters['drop.routeBudget']).toBe(60_000 - passedOn)
    })
  })

  it('of an honest ring, quiet or churning, stay within every peer’s budget: none dropped, none redone', async () => {
    const seed = testSeed(82)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 128, { ...SIM_CHORD_OPTIONS, iterative: false })
      // 4,000 lookups at once (31 a node): the busiest link carries about 100 routes.
      const quiet = await measureLookups(net, 4000)
      expect(quiet.ok).toBe(4000)
      const churn = await runChurn(net, { lifetimeMs: 60_000, durationMs: 30_000, lookupsPerSec: 100 })
      expect(churn.ok / (churn.ok + churn.wrong + churn.failed)).toBeGreaterThan(0.98)
      expect(sum(net, 'drop.routeBudget')).toBe(0)
      expect(sum(net, 'route.relayEvicted')).toBe(0)
    })
  })
})
