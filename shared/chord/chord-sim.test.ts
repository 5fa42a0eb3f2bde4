/**
 * Chord in the simulator at scale: exact lookups on a 1,024-node ring built
 * with the real join protocol, half the ring crashing at once (lookups meanwhile
 * with the ring's upkeep frozen: no wrong answer), Poisson churn,
 * keys moving on join, provider records expiring. Every test prints its
 * seed on failure (WEFT_SEED=... replays it).
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import {
  buildRing,
  type ChordNet,
  fingerAccuracy,
  recordPos,
  ringCorrect,
  ringStable,
  runUntil,
  SIM_CHORD_OPTIONS,
  settle,
  settleAll,
  successorListsCorrect,
  trueOwners,
} from './harness.ts'
import { mean, measureLookups, measureMassFailure, quantile, runChurn } from './measure.ts'
import { keyPositionSync } from './sha256-sync.ts'

const REPLICAS = 3

function pick(net: ChordNet): string {
  const ids = net.live()
  return ids[Math.floor(net.sim.rng() * ids.length)] as string
}

/** Key -> the node that wrote it (its author). */
type Authors = Map<string, string>

/** Members that should hold `key` by its author (its true owners) but do not. */
function missingCopies(net: ChordNet, authors: Authors, key: string): string[] {
  const a = authors.get(key) as string
  return trueOwners(net, recordPos(a, key), REPLICAS).filter((o) => !net.node(o).holds(key, a))
}

/** Each key put by a random member, in its own namespace. */
async function putAll(net: ChordNet, keys: string[]): Promise<Authors> {
  const authors: Authors = new Map(keys.map((k) => [k, pick(net)]))
  const res = await settleAll(
    net.sim,
    keys.map((k) => net.node(authors.get(k) as string).put(k, { k })),
  )
  const failed = res.filter((r) => r.status === 'rejected')
  expect(failed).toEqual([])
  return authors
}

/** Reads of every key, by its author, from random members. */
function readAll(net: ChordNet, authors: Authors, keys: string[]): Promise<PromiseSettledResult<unknown>[]> {
  return settleAll(
    net.sim,
    keys.map((k) => net.node(pick(net)).get(k, authors.get(k))),
  )
}

describe('Chord at N = 1,024', () => {
  it('after stabilization every lookup returns the true successor in few hops; after half the ring crashes, every key with a surviving copy is found and replicas are restored', async () => {
    const seed = testSeed(1024)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 1024)
      expect(ringCorrect(net)).toBe(true)
      expect(successorListsCorrect(net)).toBe(1024)
      expect(fingerAccuracy(net)).toBe(1)

      const stable = await measureLookups(net, 2000)
      expect(stable.failed).toBe(0)
      expect(stable.wrong).toBe(0)
      expect(stable.ok).toBe(2000)
      expect(mean(stable.hops)).toBeLessThanOrEqual(5)
      expect(quantile(stable.hops, 0.99)).toBeLessThanOrEqual(10)

      // 1,000 records, each on its successor and the next two nodes.
      const keys = Array.from({ length: 1000 }, (_, i) => `key/${i}`)
      const authors = await putAll(net, keys)
      await net.sim.runFor(2000)
      expect(keys.flatMap((k) => missingCopies(net, authors, k))).toEqual([])

      // Half the ring crashes at once.
      const holders = new Map(
        keys.map((k) => [k, net.live().filter((id) => net.node(id).holds(k, authors.get(k) as string))]),
      )
      // Lookups launched at that moment, the survivors' upkeep frozen (the ring as the crash left it):
      // no wrong answer, and a lookup fails only where the position's three owners all died.
      const mass = await measureMassFailure(net, 0.5, { count: 1000, frozen: true, replicas: REPLICAS })
      const killed = new Set(mass.killed)
      expect(killed.size).toBe(512)
      expect(mass.wrongAnswers).toEqual([])
      expect(mass.failed).toBe(mass.failedOwnersDead)
      expect(mass.ok).toBeGreaterThan(950)
      const surviving = keys.filter((k) => (holders.get(k) ?? []).some((id) => !killed.has(id)))
      expect(surviving.length).toBeGreaterThan(800) // about 7/8 keep a copy
      // Stabilized: predecessors and whole successor lists right again.
      expect(await runUntil(net, () => ringStable(net), 60_000)).toBe(true)
      // Replicas restored: every surviving key is on all three of its new owners.
      expect(
        await runUntil(
          net,
          () => surviving.every((k) => missingCopies(net, authors, k).length === 0),
          60_000,
        ),
      ).toBe(true)
      const reads = await readAll(net, authors, surviving)
      const notFound = reads.filter(
        (r, i) => r.status !== 'fulfilled' || (r.value as { k?: string })?.k !== surviving[i],
      )
      expect(notFound.length).toBe(0)
      const after = await measureLookups(net, 1000)
      expect(after.wrong + after.failed).toBe(0)
    })
    // About 21 s of CPU (before and after owned records); the full suite on two shared cores took
    // it past the 60 s default in wall time. A bound on the machine, not on the protocol.
  }, 180_000)
})

describe('Chord under churn', () => {
  it('Poisson joins and crashes (mean lifetime 2 minutes): at least 99% of lookups return the true successor', async () => {
    const seed = testSeed(256)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 256)
      const s = await runChurn(net, { lifetimeMs: 120_000, durationMs: 60_000, lookupsPerSec: 20 })
      const total = s.ok + s.wrong + s.failed
      expect(s.joins).toBeGreaterThan(80)
      expect(s.failures).toBeGreaterThan(80)
      expect(total).toBeGreaterThan(1000)
      expect(s.ok / total).toBeGreaterThanOrEqual(0.99)
      // Once churn stops, the ring settles to exactly right.
      expect(await runUntil(net, () => ringStable(net), 30_000)).toBe(true)
      const after = await measureLookups(net, 500)
      expect(after.ok).toBe(500)
    })
    // 16 s of CPU; on a machine shared with other test runs (load 12-15) it once passed 60 s of wall time.
  }, 120_000)
})

describe('Chord under message loss', () => {
  it('with 2% of messages lost, lookups, puts and gets still succeed (one timeout is not a death)', async () => {
    const seed = testSeed(257)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 256)
      net.sim.setLoss(0.02)
      await net.sim.runFor(20_000)
      const s = await measureLookups(net, 1000)
      expect(s.ok / 1000).toBeGreaterThanOrEqual(0.99)
      const keys = Array.from({ length: 200 }, (_, i) => `lossy/${i}`)
      const authors = await putAll(net, keys)
      const reads = await readAll(net, authors, keys)
      const good = reads.filter(
        (r, i) => r.status === 'fulfilled' && (r.value as { k?: string } | undefined)?.k === keys[i],
      )
      expect(good.length / keys.length).toBeGreaterThanOrEqual(0.99)
      // Lost messages cost retries, not ring members: once delivery is reliable again, all is exact.
      net.sim.setLoss(0)
      expect(await runUntil(net, () => ringStable(net), 30_000)).toBe(true)
    })
  })
})

describe('keys move on join', () => {
  it('joining nodes receive exactly the records they now own; every record stays on its three owners', async () => {
    const seed = testSeed(128)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 128)
      const keys = Array.from({ length: 600 }, (_, i) => `move/${i}`)
      const authors = await putAll(net, keys)
      await net.sim.runFor(2000)
      expect(keys.flatMap((k) => missingCopies(net, authors, k))).toEqual([])
      // 48 nodes join at once, through random members.
      const fresh = Array.from({ length: 48 }, () => net.add())
      const joins = await settleAll(
        net.sim,
        fresh.map((id) => net.node(id).join(pick(net))),
      )
      expect(joins.every((r) => r.status === 'fulfilled')).toBe(true)
      for (const id of fresh) net.member(id)
      expect(await runUntil(net, () => ringCorrect(net), 30_000)).toBe(true)
      expect(
        await runUntil(net, () => keys.every((k) => missingCopies(net, authors, k).length === 0), 30_000),
      ).toBe(true)
      // A new node holds what it owns (it may also hold copies on their way elsewhere, for a while).
      let moved = 0
      for (const id of fresh) {
        const owned = keys.filter((k) =>
          trueOwners(net, recordPos(authors.get(k) as string, k), REPLICAS).includes(id),
        )
        for (const k of owned) expect(net.node(id).holds(k, authors.get(k) as string)).toBe(true)
        moved += owned.length
      }
      expect(moved).toBeGreaterThan(50)
      // Stray copies (nodes that are no longer owners) are handed off and dropped within a few republish periods.
      await net.sim.runFor(5 * (SIM_CHORD_OPTIONS.republishMs ?? 0))
      const total = net.live().reduce((n, id) => n + net.node(id).storedKeys(), 0)
      expect(total).toBe(keys.length * REPLICAS)
      const reads = await readAll(net, authors, keys)
      reads.forEach((r, i) => {
        expect(r.status === 'fulfilled' && (r.value as { k?: string } | undefined)?.k).toBe(keys[i])
      })
    })
  })
})

describe('leaving gracefully', () => {
  it('a node that leaves hands its records over and its neighbours close the gap at once', async () => {
    const seed = testSeed(65)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 64)
      const keys = Array.from({ length: 300 }, (_, i) => `leave/${i}`)
      const authors = await putAll(net, keys)
      await net.sim.runFor(2000)
      for (let round = 0; round < 4; round++) {
        const leaver = pick(net)
        const primaryOf = keys.filter(
          (k) => trueOwners(net, recordPos(authors.get(k) as string, k), 1)[0] === leaver,
        )
        await settle(net.sim, net.node(leaver).leave())
        await net.sim.runFor(100) // its last messages go out
        await net.kill(leaver) // the tab closes
        // Its neighbours splice it out at once: no timeout to wait for. Copies are back in place at the
        // successor's next tick; predecessors further back drop it from their lists as they stabilize.
        expect(await runUntil(net, () => ringCorrect(net), 300, 50)).toBe(true)
        expect(
          await runUntil(
            net,
            () => keys.every((k) => missingCopies(net, authors, k).length === 0),
            1000,
            100,
          ),
        ).toBe(true)
        expect(await runUntil(net, () => ringStable(net), 5000, 100)).toBe(true)
        for (const k of primaryOf)
          expect(await settle(net.sim, net.node(pick(net)).get(k, authors.get(k)))).toEqual({ k })
      }
    })
  })
})

describe('provider records', () => {
  it('are found from any node, live while refreshed, and expire when not', async () => {
    const seed = testSeed(64)
    await withSeed(seed, async () => {
      const ttl = SIM_CHORD_OPTIONS.providerTtlMs as number
      const net = await buildRing(seed, 64)
      const [p1, p2, p3] = [pick(net), pick(net), pick(net)]
      await settle(net.sim, net.node(p1).provide('service/chat'))
      await settle(net.sim, net.node(p2).provide('service/chat'))
      await settle(net.sim, net.node(p3).provide('user/alice'))
      for (let i = 0; i < 10; i++) {
        const from = pick(net)
        expect((await settle(net.sim, net.node(from).findProviders('service/chat'))).sort()).toEqual(
          [p1, p2].sort(),
        )
        expect(await settle(net.sim, net.node(from).findProviders('user/alice'))).toEqual([p3])
      }
      expect(await settle(net.sim, net.node(pick(net)).findProviders('nobody'))).toEqual([])
      // Refreshed by their providers, the records outlive their TTL several times over.
      await net.sim.runFor(3 * ttl)
      expect((await settle(net.sim, net.node(pick(net)).findProviders('service/chat'))).sort()).toEqual(
        [p1, p2].sort(),
      )
      // p1 stops providing, p3 crashes: their records expire within one TTL and are collected.
      net.node(p1).unprovide('service/chat')
      await net.kill(p3)
      await net.sim.runFor(ttl + 2 * (SIM_CHORD_OPTIONS.republishMs as number))
      const reader = pick(net)
      expect(await settle(net.sim, net.node(reader).findProviders('service/chat'))).toEqual([p2])
      expect(await settle(net.sim, net.node(reader).findProviders('user/alice'))).toEqual([])
      for (const id of net.live()) {
        expect(net.node(id).holdsProvider('service/chat', p1)).toBe(false)
        expect(net.node(id).holdsProvider('user/alice', p3)).toBe(false)
      }
      for (const o of trueOwners(net, keyPositionSync('service/chat'), REPLICAS))
        expect(net.node(o).holdsProvider('service/chat', p2)).toBe(true)
    })
  })
})
