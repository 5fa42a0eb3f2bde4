/**
 * A hostile successor poisons its predecessor's successor list: in its
 * stabilization answers (`pred`) or in a `leave`, it names ids nobody holds
 * (they never answer) and leaves out the live nodes that follow it. The
 * predecessor must not take that list on one node's word: what it names is
 * kept unvouched until heard from (not answered from, not passed on), the
 * live nodes it already knew stay (a list naming none it knew cuts nothing),
 * and a source whose names stay silent is not asked to vouch again for a
 * while.
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { buildRing, type ChordNet, SIM_CHORD_OPTIONS, settleAll } from './harness.ts'
import { launchLookupsOf } from './measure.ts'
import type { ChordMsg } from './messages.ts'
import { between, bigIntToId, distance, idToBigInt } from './ring.ts'

const TIMEOUT = SIM_CHORD_OPTIONS.requestTimeoutMs as number

/** `n` ids spread evenly over (a, b): no node holds them, so requests to them are never answered. */
function madeUp(a: string, b: string, n: number): string[] {
  const d = distance(a, b)
  return Array.from({ length: n }, (_, i) => bigIntToId(idToBigInt(a) + (d * BigInt(i + 1)) / BigInt(n + 1)))
}

/** The member `k` places after `x` (negative: before). */
function around(net: ChordNet, x: string, k: number): string {
  const ids = net.live()
  return ids[(ids.indexOf(x) + k + ids.length * 4) % ids.length] as string
}

/** Lookups ([asker, position]); unsettled after 60 s counts as failed. */
async function lookups(net: ChordNet, pairs: [string, string][]) {
  const { jobs, stats } = launchLookupsOf(net, pairs.length, (i) => pairs[i] as [string, string])
  const res = await settleAll(net.sim, jobs, 60_000)
  stats.failed += res.filter((r) => r.status === 'rejected').length
  return stats
}

/** `n` random positions in (a, b]. */
function positionsIn(net: ChordNet, a: string, b: string, n: number): string[] {
  const out: string[] = []
  while (out.length < n) {
    const x = net.sim.randomId()
    if (between(x, a, b)) out.push(x)
  }
  return out
}

const sum = (net: ChordNet, name: string) =>
  net.live().reduce((n, x) => n + (net.node(x).counters[name] ?? 0), 0)

/**
 * The ring, its hostile node `h`, its victim `v` (h's predecessor), and the
 * made-up ids h names: 24 of them spread over (h, h's third successor),
 * in place of its true list (which leaves out every live node after it).
 */
async function setUp(seed: number) {
  const net = await buildRing(seed, 64)
  const ids = net.live()
  const h = ids[17] as string
  const v = around(net, h, -1)
  const fake = madeUp(h, around(net, h, 3), 24)
  return { net, ids, h, v, fake }
}

/** Who lists a made-up id as a successor (the full list, or only what it answers and passes on). */
function holders(net: ChordNet, fake: string[]) {
  const bad = new Set(fake)
  return net.live().filter((x) =>
    net
      .node(x)
      .successors()
      .some((s) => bad.has(s)),
  )
}

/** The lookups from v and the 8 nodes before it, of positions owned by the 3 nodes after h. */
function victimsLookups(net: ChordNet, h: string, v: string): [string, string][] {
  const pairs: [string, string][] = []
  for (let k = 0; k <= 8; k++) {
    const q = around(net, v, -k)
    for (const t of positionsIn(net, h, around(net, h, 3), 10)) pairs.push([q, t])
  }
  return pairs
}

/** What the attack did, printed (before/after figures for PROTOCOL-chord.md) and checked. */
async function figures(
  net: ChordNet,
  h: string,
  v: string,
  fake: string[],
  next: string[],
  during?: Awaited<ReturnType<typeof lookups>>,
) {
  const listV = net.node(v).successors()
  const stats = during ?? (await lookups(net, victimsLookups(net, h, v)))
  const f = {
    keptNext: next.every((x) => listV.includes(x)),
    fakeAtV: listV.filter((x) => fake.includes(x)).length,
    othersListing: holders(net, fake).filter((x) => x !== v),
    lookups: stats.ok + stats.wrong + stats.failed,
    wrong: stats.wrong,
    failed: stats.failed,
    maxMs: Math.max(0, ...stats.ms),
    meanMs: Math.round(stats.ms.reduce((a, b) => a + b, 0) / Math.max(1, stats.ms.length)),
    silentAtV: net.node(v).counters['stabilize.silent'] ?? 0,
    timeouts: sum(net, 'rpc.timeout'),
  }
  console.log(JSON.stringify({ ...f, othersListing: f.othersListing.length }))
  return f
}

describe('a hostile successor that feeds its predecessor a list of made-up ids', () => {
  it('by stabilization: the predecessor keeps the live nodes it knew, vouches for none of the made-up ids, nor do its predecessors; lookups through it neither fail nor wait', async () => {
    const seed = testSeed(91)
    await withSeed(seed, async () => {
      const { net, h, v, fake } = await setUp(seed)
      const next = [1, 2, 3].map((k) => around(net, h, k))
      net.tamper(h, (to, m): ChordMsg | null => (to === v && m.t === 'pred' ? { ...m, s: fake } : m))
      await net.sim.runFor(10_000)
      const f = await figures(net, h, v, fake, next)
      // Before: v listed 16 of the made-up ids and none of h's next 3, and 4 nodes before v copied
      // them; of 90 lookups of (h, h+3] from v and the 8 before it, 7 failed, the rest took 2.3 s
      // on average, 3.6 s at most (1,592 requests timed out in the ring).
      expect(f.keptNext).toBe(true)
      expect(f.othersListing).toEqual([])
      expect(f.wrong).toBe(0)
      expect(f.failed).toBe(0)
      expect(f.maxMs).toBeLessThanOrEqual(2 * TIMEOUT)
      expect(sum(net, 'stabilize.distrusted')).toBeGreaterThan(0)
      // Each made-up id costs a ping or two, not one every stabilization: at most a few per distrust period
      // (h, honest until now, first spends the credit its live new entries earned: 8 more).
      expect(f.silentAtV).toBeLessThanOrEqual(16)
    })
  })

  it('in a leave: the predecessor keeps the live nodes it knew and vouches for none of the made-up ids; lookups neither fail nor wait', async () => {
    const seed = testSeed(92)
    await withSeed(seed, async () => {
      const { net, h, v, fake } = await setUp(seed)
      const next = [1, 2, 3].map((k) => around(net, h, k))
      // h says it leaves, naming v its predecessor (as an honest leave does) and the made-up ids its
      // successors; and says so again every 2 s (it stays on the ring, answering honestly otherwise).
      const leave = () => net.node(v).handle(h, { t: 'leave', p: v, s: fake })
      await leave()
      const pairs = victimsLookups(net, h, v)
      const during = lookups(net, pairs)
      for (let i = 0; i < 5; i++) {
        await net.sim.runFor(2000)
        await leave()
      }
      await net.sim.runFor(100)
      const f = await figures(net, h, v, fake, next, await during)
      // Before: 6 nodes before v copied made-up ids; the 90 lookups took up to 2.4 s (498 timeouts).
      expect(f.keptNext).toBe(true)
      expect(f.othersListing).toEqual([])
      expect(f.wrong).toBe(0)
      expect(f.failed).toBe(0)
      expect(f.maxMs).toBeLessThanOrEqual(2 * TIMEOUT)
    })
  })
})
