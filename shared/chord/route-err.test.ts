/**
 * A route dropped for the route budget by a node it was passed to (not by
 * its origin) is answered `err busy` to the node that passed it, which
 * passes the err back the way an answer goes, so the origin looks up
 * iteratively at once instead of waiting out its 4 timeouts. The err is
 * taken only from the node the route was passed to, at most once per
 * route; an err for an unknown id or from another node is dropped and
 * counted, and cancels nothing.
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { buildRing, type ChordNet, SIM_CHORD_OPTIONS, settleAll, stubChord } from './harness.ts'
import { MAX_STEPS } from './lookup.ts'
import { launchLookupsOf } from './measure.ts'
import type { ChordMsg } from './messages.ts'
import { betweenRightIncl } from './ring.ts'

// Ids for the stub tests, in ring order: B passes routes for E on to its successor D.
const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const C = 'c'.repeat(40)
const D = 'd'.repeat(40)
const E = 'e'.repeat(40)
/** A made-up origin. */
const O = (i: number) => (0x9000_0000 + i).toString(16).padStart(40, '0')

const flush = () => new Promise((r) => setTimeout(r, 0))

/** The routes the budget lets one peer have passed on per window (the default). */
const ROUTES = 256

const busy = (r: number): ChordMsg => ({ t: 'err', r, code: 'busy' })

/** B, whose successor is D and who knows nothing past D: it passes every route for E on to D. */
async function relay() {
  const s = stubChord(B, { iterative: false, requestTimeoutMs: 1000 })
  await s.chord.join(null)
  await s.chord.handle(D, { t: 'newSucc' })
  s.sent.length = 0
  return s
}

describe('a route passed on to us, over the budget of the peer that passed it', () => {
  it('is answered err busy to that peer (not only when it is the route’s origin)', async () => {
    const s = await relay()
    for (let i = 0; i < ROUTES; i++) await s.chord.handle(A, { t: 'route', r: 1000 + i, k: E, o: O(i), h: 2 })
    s.sent.length = 0
    await s.chord.handle(A, { t: 'route', r: 5000, k: E, o: C, h: 2 })
    // Before: dropped without a word; C waited its 4 timeouts.
    expect(s.sent).toEqual([[A, busy(5000)]])
    expect(s.chord.counters['drop.routeBudget']).toBe(1)
  })
})

describe('an err busy for a route we passed on', () => {
  it('from the node we passed it to goes back to the peer it came from, once', async () => {
    const s = await relay()
    await s.chord.handle(A, { t: 'route', r: 77, k: E, o: C, h: 1 })
    expect(s.sent).toEqual([[D, { t: 'route', r: 77, k: E, o: C, h: 2 }]])
    s.sent.length = 0
    await s.chord.handle(D, busy(77))
    // Before: taken for an answer to a request of ours (drop.unexpectedReply), and C waited.
    expect(s.sent).toEqual([[A, busy(77)]])
    expect(s.chord.counters['route.errBack']).toBe(1)
    // The route is forgotten: a second err (or a late answer) passes nothing back.
    await s.chord.handle(D, busy(77))
    await s.chord.handle(D, { t: 'routed', r: 77, p: D, s: [E], h: 3 })
    expect(s.sent).toHaveLength(1)
    expect(s.chord.counters['drop.unexpectedReply']).toBe(2)
  })

  it('from any other node is dropped and counted, and cancels nothing: the answer still goes back', async () => {
    const s = await relay()
    await s.chord.handle(A, { t: 'route', r: 77, k: E, o: C, h: 1 })
    s.sent.length = 0
    // E and C saw the route's id (or guessed it); A sent it us. None of them is whom it went to.
    for (const x of [E, C, A]) await s.chord.handle(x, busy(77))
    // An id we never passed on.
    await s.chord.handle(D, busy(78))
    expect(s.sent).toEqual([])
    expect(s.chord.counters['drop.routeErr']).toBe(3)
    expect(s.chord.counters['drop.unexpectedReply']).toBe(1)
    const answer: ChordMsg = { t: 'routed', r: 77, p: D, s: [E], h: 3 }
    await s.chord.handle(D, answer)
    expect(s.sent).toEqual([[A, answer]])
  })
})

describe('a recursive lookup’s origin', () => {
  it('takes an err for its route only from the first hop: another node’s is dropped, the route still waited for', async () => {
    const s = await relay()
    const lookup = s.chord.lookup(E).catch((e: Error) => e.name)
    await flush()
    const route = s.sent.find(([to, m]) => to === D && m.t === 'route')?.[1]
    if (route?.t !== 'route') throw new Error('no route sent to D')
    s.sent.length = 0
    // Before: any node naming the id ended the route.
    await s.chord.handle(A, busy(route.r))
    await flush()
    expect(s.chord.counters['lookup.recursiveFallback']).toBeUndefined()
    expect(s.chord.counters['drop.unexpectedReply']).toBe(1)
    expect(s.sent).toEqual([])
    // The first hop's err (its own, or passed back): iterative at once.
    await s.chord.handle(D, busy(route.r))
    await flush()
    expect(s.chord.counters['lookup.recursiveFallback']).toBe(1)
    expect(s.sent.some(([to, m]) => to === D && m.t !== 'route')).toBe(true)
    void lookup
  })
})

/** Is `k` past every node `x` lists after itself (so `x` passes a route for it on, not answers it)? */
const farFrom = (net: ChordNet, x: string, k: string) =>
  !betweenRightIncl(k, x, net.node(x).successors().at(-1) as string)

describe('recursive lookups through a flooded hop, in the simulator', () => {
  it('a flooder two hops back spends its neighbour’s budget at the next node: the honest origins behind it get err busy and go iterative at once', async () => {
    const seed = testSeed(83)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 128, { ...SIM_CHORD_OPTIONS, iterative: false })
      const ids = net.live()
      const timeout = SIM_CHORD_OPTIONS.requestTimeoutMs as number
      // Random lookups whose routes pass two nodes on (origin -> n -> x -> ...), by their first two hops.
      const paths = new Map<string, [string, string][]>()
      for (let i = 0; i < 20_000; i++) {
        const k = net.sim.randomId()
        const o = ids[Math.floor(net.sim.rng() * ids.length)] as string
        const n = net.node(o).nextHop(k)
        const x = n === null ? null : net.node(n).nextHop(k)
        if (x === null || n === null || ![o, n, x].every((y) => farFrom(net, y, k))) continue
        const at = `${n}>${x}`
        paths.set(at, [...(paths.get(at) ?? []), [o, k]])
      }
      // The busiest pair: n, the flooder's neighbour, passes the routes of 24 honest lookups on to x.
      const [busiest, all] = [...paths].reduce((a, b) => (b[1].length > a[1].length ? b : a))
      const [n, x] = busiest.split('>') as [string, string]
      const nn = net.node(n)
      const pairs = all.slice(0, 24)
      expect(pairs.length).toBe(24)
      const via = (k: string) => nn.nextHop(k) === x && farFrom(net, n, k) && farFrom(net, x, k)
      const h = ids.find((y) => y !== n && y !== x && !pairs.some(([o]) => o === y)) as string
      const far = () => {
        for (;;) {
          const k = net.sim.randomId()
          if (via(k)) return k
        }
      }
      // 2,000 routes from h: n passes 256 of them (its budget for h) to x, which spends n's budget
      // there. Their hop counts make the node after x drop them.
      for (let i = 0; i < 2000; i++)
        void nn.handle(h, { t: 'route', r: 1 + i, k: far(), o: h, h: MAX_STEPS - 2 })
      await net.sim.runFor(100)
      const fallbacks = pairs.map(([o]) => net.node(o).counters['lookup.recursiveFallback'] ?? 0)
      const l = launchLookupsOf(net, pairs.length, (i) => pairs[i] as [string, string])
      const res = await settleAll(net.sim, l.jobs)
      expect(res.filter((r) => r.status === 'rejected')).toHaveLength(0)
      expect(l.stats.ok).toBe(pairs.length)
      // Every one of them was dropped at x and redone iteratively.
      const redone = pairs.reduce(
        (m, [o], i) => m + (net.node(o).counters['lookup.recursiveFallback'] ?? 0) - (fallbacks[i] as number),
        0,
      )
      expect(redone).toBeGreaterThanOrEqual(pairs.length)
      expect(net.node(x).counters['drop.routeBudget']).toBeGreaterThanOrEqual(pairs.length)
      // Before: each origin waited its 4 timeouts (1.6 s) first: 1.84 to 2.11 s (0.32 to 0.55 s after).
      expect(Math.max(...l.stats.ms)).toBeLessThan(2 * timeout)
      expect(nn.counters['route.errBack']).toBeGreaterThanOrEqual(pairs.length)
    })
  })
})
