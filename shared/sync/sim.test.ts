import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { mulberry32, shuffle } from '../sim/prng.ts'
import type { Value } from '../types.ts'
import { createSyncNet, type SyncNet } from './sim-net.ts'
import type { SyncOptions } from './sync.ts'

const AE_MS = 1_000
const GRACE_MS = 2_000
const WINDOW_MS = 2 * AE_MS
/** The options every simulated network here shares; claimSkewMs keeps its default (500 ms). */
const SYNC_BASE: SyncOptions = { antiEntropyMs: AE_MS, leaseGraceMs: GRACE_MS, contentionWindowMs: WINDOW_MS }
/**
 * For the networks below whose clocks differ by up to 600 ms (±300) or 1.8 s
 * (±900, the property), and whose partitions heal after 500 ms: contending
 * acquisitions reach some replicas up to 1.2 s after their `since` there
 * (measured), beyond the default claimSkewMs, which assumes clocks within
 * a few hundred ms. Resolution by `since` is what these tests check, so they
 * credit claims up to 1.5 s late.
 */
const SYNC: SyncOptions = { ...SYNC_BASE, claimSkewMs: 1_500 }

/**
 * The lease property, checked at every acceptance on every replica: the
 * version a replica replaces never carries another author's lease that the
 * owner's own clock still counts as live, unless the new version is an
 * earlier acquisition of the key (by `since`, then author id) and the
 * replica's clock is still within the contention window of the replaced
 * lease's acquisition. So past the window no replica ever lets a non-owner
 * write over a live lease. Each replica's previous version of a key is
 * tracked here from the acceptances themselves (a shadow), not read from the
 * code under test.
 */
function watchLeases(net: SyncNet) {
  type Seen = { author: string; expires: number | undefined; since: number }
  const shadow = new Map<string, Map<string, Seen>>()
  const violations: string[] = []
  let accepted = 0
  let preempted = 0
  net.onAccept((node, e) => {
    accepted++
    let sh = shadow.get(node)
    if (!sh) {
      sh = new Map()
      shadow.set(node, sh)
    }
    const prev = sh.get(e.key)
    if (prev && prev.expires !== undefined && prev.author !== e.author) {
      const ownerClock = net.sim.now + net.offset(prev.author)
      const earlier =
        e.lease !== undefined && (e.since < prev.since || (e.since === prev.since && e.author < prev.author))
      if (earlier && e.at < prev.since + WINDOW_MS) preempted++
      else if (ownerClock < prev.expires)
        violations.push(
          `${node.slice(0, 8)} accepted ${e.author.slice(0, 8)}'s ${e.key} via ${e.via} ${prev.expires - ownerClock} ms before ${prev.author.slice(0, 8)}'s lease expired`,
        )
    }
    sh.set(e.key, { author: e.author, expires: e.lease?.expires, since: e.since })
  })
  return {
    violations,
    accepted: () => accepted,
    preempted: () => preempted,
    /** A node restarts: its replica starts over (the snapshot import refills the shadow). */
    forget: (node: string) => void shadow.delete(node),
  }
}

function describeDigests(net: SyncNet): string {
  return [...net.digests().entries()].map(([d, ids]) => `${d} x${ids.length}`).join(', ')
}

type Op =
  | { k: 'set'; node: number; key: number; val: number; lease: number }
  | { k: 'del'; node: number; key: number }
  | { k: 'contend'; nodes: number[]; key: number; lease: number }
  | { k: 'partition'; cut: number }
  | { k: 'heal' }
  | { k: 'crash'; node: number }
  | { k: 'restart'; node: number; snapshot: boolean }
  | { k: 'loss'; p: number }
  | { k: 'wait'; ms: number }

const N = 120
const KEYS = 8
const MAX_LEASE = 4_000

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      k: fc.constant('set' as const),
      node: fc.nat(N - 1),
      key: fc.nat(KEYS - 1),
      val: fc.nat(1_000),
      lease: fc.oneof(fc.constant(0), fc.integer({ min: 300, max: MAX_LEASE })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant('del' as const), node: fc.nat(N - 1), key: fc.nat(KEYS - 1) }),
  },
  {
    // Several nodes take a lease on one key at the same instant.
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('contend' as const),
      nodes: fc.uniqueArray(fc.nat(N - 1), { minLength: 2, maxLength: 5 }),
      key: fc.nat(KEYS - 1),
      lease: fc.integer({ min: 300, max: MAX_LEASE }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('partition' as const), cut: fc.double({ min: 0.2, max: 0.8 }) }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('heal' as const) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('crash' as const), node: fc.nat(N - 1) }) },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant('restart' as const), node: fc.nat(N - 1), snapshot: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('loss' as const), p: fc.double({ min: 0, max: 0.2 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant('wait' as const), ms: fc.integer({ min: 100, max: 2_500 }) }),
  },
)

async function runScript(seed: number, ops: Op[]) {
  const net = await createSyncNet({ seed, n: N, degree: 6, clockSkewMs: GRACE_MS / 2 - 100, sync: SYNC })
  const { sim, ids } = net
  const leases = watchLeases(net)
  const snapshots = new Map<string, Value>()
  const rng = mulberry32(seed ^ 0x5eed)
  let leaseErrors = 0
  const up = (id: string) => sim.node(id).up

  const write = async (fn: () => Promise<void>) => {
    try {
      await fn()
    } catch (err) {
      if ((err as Error).name !== 'LeaseHeldError') throw err
      leaseErrors++
    }
  }

  for (const op of ops) {
    const id = ids[('node' in op ? op.node : 0) % N] as string
    switch (op.k) {
      case 'set':
        if (up(id))
          await write(() =>
            net.set(
              id,
              `k${op.key}`,
              { v: op.val, by: id.slice(0, 6) },
              op.lease ? { leaseMs: op.lease } : {},
            ),
          )
        break
      case 'del':
        if (up(id)) await write(() => net.del(id, `k${op.key}`))
        break
      case 'contend': {
        const who = op.nodes.map((i) => ids[i] as string).filter(up)
        await Promise.all(
          who.map((n) =>
            write(() => net.sync(n).set(`k${op.key}`, { v: -1, by: n.slice(0, 6) }, { leaseMs: op.lease })),
          ),
        )
        for (const n of who) await net.node(n).settle()
        break
      }
      case 'partition': {
        const order = shuffle(rng, [...ids])
        const cut = Math.floor(order.length * op.cut)
        await sim.partition([order.slice(0, cut), order.slice(cut)])
        break
      }
      case 'heal':
        await sim.heal()
        break
      case 'crash':
        if (up(id) && sim.upIds().length > N * 0.85) await net.crash(id)
        break
      case 'restart':
        if (!up(id)) {
          leases.forget(id)
          await net.restart(id, op.snapshot ? snapshots.get(id) : undefined)
        }
        break
      case 'loss':
        sim.setLoss(op.p)
        break
      case 'wait':
        await sim.runFor(op.ms)
        // Tabs persist now and then: a crash later restores this (possibly stale) snapshot.
        for (const n of sim.upIds()) snapshots.set(n, net.sync(n).exportState())
        break
    }
    await sim.runFor(50)
  }

  // The end: the network heals, loss stops, every crashed node comes back (from its snapshot or empty),
  // leases run out, and anti-entropy gets a few rounds.
  await sim.heal()
  sim.setLoss(0)
  for (const id of ids) {
    if (up(id)) continue
    leases.forget(id)
    await net.restart(id, rng() < 0.5 ? snapshots.get(id) : undefined)
  }
  await sim.runFor(MAX_LEASE + GRACE_MS * 2 + 5 * AE_MS)
  return { net, leases, leaseErrors }
}

describe('sync in the simulator', () => {
  it('property: under loss, partitions, crashes, restarts and contention, every replica converges and no live lease is overridden past its contention window', async () => {
    const seed = testSeed(20_251_121)
    let totalLeaseErrors = 0
    let totalAccepted = 0
    let totalPreempted = 0
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.array(arbOp, { minLength: 20, maxLength: 40 }),
        async (simSeed, ops) => {
          await withSeed(simSeed, async () => {
            const { net, leases, leaseErrors } = await runScript(simSeed, ops)
            totalLeaseErrors += leaseErrors
            totalAccepted += leases.accepted()
            totalPreempted += leases.preempted()
            expect(leases.violations).toEqual([])
            expect(net.sim.upIds()).toHaveLength(N)
            expect(net.converged(), describeDigests(net)).toBe(true)
          })
        },
      ),
      { numRuns: 6, seed, endOnFailure: true },
    )
    // The scripts did exercise the table and its leases.
    expect(totalAccepted).toBeGreaterThan(1_000)
    expect(totalLeaseErrors).toBeGreaterThan(0)
    expect(totalPreempted).toBeGreaterThan(0)
  })

  for (const [contenders, loss] of [
    [2, 0],
    [5, 0],
    [5, 0.2],
  ] as const)
    it(`${contenders} nodes take a lease on one key at the same instant${loss ? `, ${loss * 100}% loss` : ''}: every replica agrees on one owner within two rounds`, async () => {
      const seed = testSeed(31 + contenders + loss * 100)
      await withSeed(seed, async () => {
        const LEASE = 20_000
        const net = await createSyncNet({
          seed,
          n: 64,
          degree: 6,
          clockSkewMs: 300,
          sync: SYNC,
          sim: { loss },
        })
        const { sim, ids } = net
        const leases = watchLeases(net)
        await sim.runFor(1_000)
        const who = shuffle(mulberry32(seed), [...ids]).slice(0, contenders)
        const since = new Map<string, number>()
        net.onAccept((node, e) => {
          if (e.via === 'local') since.set(node, e.since)
        })
        // All at the same virtual instant: no message moves until the simulator runs.
        await Promise.all(who.map((id) => net.sync(id).set('door', { by: id }, { leaseMs: LEASE })))
        for (const id of who) await net.node(id).settle()
        for (const id of who) expect(net.sync(id).owner('door')).toBe(id)
        // The earliest acquisition by its author's clock, then the lowest id.
        const winner = [...who].sort(
          (x, y) => (since.get(x) as number) - (since.get(y) as number) || (x < y ? -1 : 1),
        )[0] as string
        const t0 = sim.now
        const agreed = () => ids.every((id) => net.sync(id).owner('door') === winner) && net.converged()
        expect(await sim.runUntilTrue(agreed, LEASE / 2)).toBe(true)
        const took = sim.now - t0
        expect(took).toBeLessThanOrEqual(2 * AE_MS)
        for (const id of ids) expect(net.sync(id).get('door')).toEqual({ by: winner })
        // The losers' next writes are refused, naming the winner and its expiry.
        const expires = (since.get(winner) as number) + LEASE
        for (const id of who.filter((x) => x !== winner))
          await expect(net.sync(id).set('door', 'mine')).rejects.toMatchObject({
            name: 'LeaseHeldError',
            owner: winner,
            expires,
          })
        // And it stays that way: a few rounds later every replica still agrees, nobody overrode the lease.
        await sim.runFor(3 * AE_MS)
        expect(agreed()).toBe(true)
        expect(leases.violations).toEqual([])
        // Both halves of the rule were at work: some replicas heard the winner first, some a loser first.
        expect(net.sum('contention.preempted')).toBeGreaterThan(0)
        expect(net.sum('drop.leaseHeld')).toBeGreaterThan(0)
      })
    })

  it('contenders on the two sides of a short partition: after the heal anti-entropy brings every replica to one owner', async () => {
    const seed = testSeed(41)
    await withSeed(seed, async () => {
      const LEASE = 20_000
      const net = await createSyncNet({ seed, n: 64, degree: 6, clockSkewMs: 300, sync: SYNC })
      const { sim, ids } = net
      const leases = watchLeases(net)
      await sim.runFor(1_000)
      const order = shuffle(mulberry32(seed), [...ids])
      const left = order.slice(0, 32)
      const right = order.slice(32)
      await sim.partition([left, right])
      const who = [left[0], right[0], right[1]] as string[]
      await Promise.all(who.map((id) => net.sync(id).set('door', { by: id }, { leaseMs: LEASE })))
      for (const id of who) await net.node(id).settle()
      const leaseOf = (id: string) => net.sync(id).lease('door')
      const since = (id: string) => (leaseOf(id)?.expires as number) - LEASE
      const winner = [...who].sort((x, y) => since(x) - since(y) || (x < y ? -1 : 1))[0] as string
      await sim.runFor(AE_MS / 2)
      // Each side settled on its own contender meanwhile: the side without the winner names another owner.
      const loserSide = left.includes(winner) ? right : left
      expect(loserSide.every((id) => net.sync(id).owner('door') !== winner)).toBe(true)
      await sim.heal()
      const t0 = sim.now
      const agreed = () => ids.every((id) => net.sync(id).owner('door') === winner) && net.converged()
      expect(await sim.runUntilTrue(agreed, LEASE / 2)).toBe(true)
      const took = sim.now - t0
      expect(took).toBeLessThanOrEqual(2 * AE_MS)
      expect(net.sum('accepted.anti-entropy')).toBeGreaterThan(0)
      expect(leases.violations).toEqual([])
    })
  })

  it('a late joiner gets the table from one neighbour, not from all of them', async () => {
    const seed = testSeed(7)
    await withSeed(seed, async () => {
      const net = await createSyncNet({ seed, n: 60, degree: 6, sync: SYNC })
      const { sim, ids } = net
      for (let i = 0; i < 200; i++) await net.set(ids[i % ids.length] as string, `key${i}`, i)
      await sim.runFor(2_000)
      expect(net.converged()).toBe(true)
      // A newcomer: a node that crashed before anything was written and comes back empty, with 6 links.
      const joiner = ids[5] as string
      await net.crash(joiner)
      await net.restart(joiner)
      const t0 = sim.now
      const ok = await sim.runUntilTrue(() => net.converged(), 10 * AE_MS)
      expect(ok).toBe(true)
      expect(sim.now - t0).toBeLessThan(AE_MS)
      const s = net.sync(joiner)
      expect(s.counters['accepted.anti-entropy']).toBe(200)
      // Each entry came once: no neighbour flooded the table at it.
      expect(s.counters.duplicates ?? 0).toBe(0)
      expect(sim.liveNeighbours(joiner).length).toBeGreaterThan(1)
    })
  })

  it('a healed partition converges within two anti-entropy rounds', async () => {
    const seed = testSeed(11)
    await withSeed(seed, async () => {
      const net = await createSyncNet({ seed, n: 128, degree: 6, sync: SYNC })
      const { sim, ids } = net
      await sim.runFor(500)
      const left = ids.slice(0, 64)
      const right = ids.slice(64)
      await sim.partition([left, right])
      for (let i = 0; i < 20; i++) {
        await net.set(left[i] as string, `l${i}`, i)
        await net.set(right[i] as string, `r${i}`, i)
        await net.set(right[i + 20] as string, `both${i % 5}`, `right ${i}`)
        await net.set(left[i + 20] as string, `both${i % 5}`, `left ${i}`)
      }
      await sim.runFor(3_000)
      expect(net.converged()).toBe(false)
      await sim.heal()
      const t0 = sim.now
      expect(await sim.runUntilTrue(() => net.converged(), 10 * AE_MS)).toBe(true)
      expect(Math.ceil((sim.now - t0) / AE_MS)).toBeLessThanOrEqual(2)
    })
  })

  it('a restarted node restores its snapshot, keeps its lease, and catches up on what it missed', async () => {
    const seed = testSeed(23)
    await withSeed(seed, async () => {
      const net = await createSyncNet({ seed, n: 40, degree: 5, sync: SYNC })
      const { sim, ids } = net
      const [tab, other] = ids as [string, string]
      await net.set(tab, 'mine', 'leased', { leaseMs: 60_000 })
      await net.set(other, 'a', 1)
      await sim.runFor(1_000)
      const snap = net.sync(tab).exportState()
      await net.crash(tab)
      await net.set(other, 'b', 2)
      await net.del(other, 'a')
      // Longer than the mesh keeps broadcasts to repair with: only anti-entropy can bring these back.
      await sim.runFor(40_000)
      await net.restart(tab, snap)
      expect(net.sync(tab).get('mine')).toBe('leased')
      expect(await sim.runUntilTrue(() => net.converged(), 5 * AE_MS)).toBe(true)
      expect(net.sync(tab).get('b')).toBe(2)
      expect(net.sync(tab).counters['accepted.anti-entropy']).toBe(2)
      expect(net.sync(tab).get('a')).toBeUndefined()
      await net.set(tab, 'mine', 'still mine')
      await expect(net.sync(other).set('mine', 'no')).rejects.toMatchObject({
        name: 'LeaseHeldError',
        owner: tab,
      })
    })
  })
})
