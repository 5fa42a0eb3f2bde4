import { describe, expect, it } from 'vitest'
import { A, B, C, clock, craft, deliver, type Stub, stub, T0 } from '../../test/sync-stub.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import type { Value } from '../types.ts'
import type { PutMsg } from './messages.ts'
import { MAX_EVICTIONS } from './quota.ts'
import type { SyncOptions } from './sync.ts'

const D = 'dd'.repeat(20)
const X = '11'.repeat(20)
const Y = '22'.repeat(20)

/** `n` puts by `author`: keys `${prefix}${i}`, each newer than the last (HLC [wall, i]). */
async function puts(
  author: string,
  prefix: string,
  n: number,
  wall = T0,
  value: Value = 1,
): Promise<PutMsg[]> {
  const keys = createFakeKeyring(author)
  const out: PutMsg[] = []
  for (let i = 0; i < n; i++) out.push(await craft(keys, `${prefix}${i}`, [wall, i], value))
  return out
}

async function hand(to: Stub, msgs: PutMsg[]): Promise<void> {
  for (const m of msgs) await to.sync.handleBroadcast(A, m)
}

const held = (s: Stub, prefix: string) =>
  s.sync
    .entries()
    .map(([k]) => k)
    .filter((k) => k.startsWith(prefix))

describe('sync: quotas and shares', () => {
  it('an author past its quota keeps its newest entries whatever order they come in (drop.quota)', async () => {
    const c = clock()
    const opts: SyncOptions = { perAuthorQuota: 3 }
    const r1 = stub(C, c, opts)
    const r2 = stub(D, c, opts)
    const five = await puts(B, 'k', 5)
    await hand(r1, five)
    await hand(r2, [...five].reverse())
    for (const r of [r1, r2]) {
      expect(held(r, 'k')).toEqual(['k2', 'k3', 'k4'])
      expect(r.sync.counters['drop.quota']).toBe(2)
    }
    expect(r1.sync.digest()).toBe(r2.sync.digest())
    // The replaced ones showed as gone; the refused ones never showed.
    expect(r1.changes.filter((e) => e.value === undefined).map((e) => e.key)).toEqual(['k0', 'k1'])
    expect(r2.changes.filter((e) => e.value === undefined)).toEqual([])
  })

  it('a local write past the quota throws QuotaExceededError (entries, then bytes) and evicts nothing', async () => {
    const c = clock()
    const a = stub(A, c, { perAuthorQuota: 3, perAuthorBytes: 3_000 })
    for (const k of ['1', '2', '3']) await a.sync.set(k, k)
    await expect(a.sync.set('4', 4)).rejects.toMatchObject({
      name: 'QuotaExceededError',
      limit: 'entries',
      max: 3,
    })
    await a.sync.set('1', 'overwrite is fine')
    await expect(a.sync.set('2', new Uint8Array(3_000))).rejects.toMatchObject({
      name: 'QuotaExceededError',
      limit: 'bytes',
      max: 3_000,
    })
    expect(a.sync.entries().map(([k]) => k)).toEqual(['1', '2', '3'])
    expect(a.sync.counters['drop.quota'] ?? 0).toBe(0)
  })

  it('a full table evicts the largest author’s oldest entries for a smaller one: max-min shares, the same in either arrival order', async () => {
    const c = clock()
    const opts: SyncOptions = { maxEntries: 10, perAuthorQuota: 10 }
    const r1 = stub(C, c, opts)
    const r2 = stub(D, c, opts)
    const xs = await puts(X, 'x', 10)
    const ys = await puts(Y, 'y', 6, T0 + 1)
    await hand(r1, [...xs, ...ys])
    await hand(r2, [...ys, ...xs])
    for (const r of [r1, r2]) {
      expect(r.sync.size().entries).toBe(10)
      expect(held(r, 'x')).toEqual(['x5', 'x6', 'x7', 'x8', 'x9'])
      expect(held(r, 'y')).toEqual(['y1', 'y2', 'y3', 'y4', 'y5'])
      expect(r.sync.counters['drop.tableFull'] ?? 0).toBe(0)
      expect(r.sync.counters.evicted).toBe(6)
    }
    expect(r1.sync.digest()).toBe(r2.sync.digest())
    // An entry of the largest author older than every one it keeps: refused, nothing evicted.
    const [old] = await puts(X, 'x-old', 1, T0 - 1)
    await hand(r1, [old as PutMsg])
    expect(r1.sync.counters['drop.tableFull']).toBe(1)
    expect(r1.sync.counters.evicted).toBe(6)
    expect(r1.sync.digest()).toBe(r2.sync.digest())
  })

  it('ties between authors of equal share go the same way everywhere (the greater id gives way)', async () => {
    const c = clock()
    const opts: SyncOptions = { maxEntries: 10, perAuthorQuota: 10 }
    const lists = [await puts(X, 'x', 10), await puts(Y, 'y', 10), await puts(B, 'b', 10)]
    const orders = [
      [0, 1, 2],
      [2, 1, 0],
      [1, 2, 0],
    ]
    const replicas = orders.map((order, i) => {
      const r = stub(`${i}`.repeat(40), c, opts)
      return { r, order }
    })
    for (const { r, order } of replicas) for (const i of order) await hand(r, lists[i] as PutMsg[])
    const digests = replicas.map(({ r }) => r.sync.digest())
    expect(new Set(digests).size).toBe(1)
    const first = (replicas[0] as { r: Stub }).r
    // 10 places for three authors: 4, 3, 3, the extra one to the lowest id (X), each its newest.
    expect(held(first, 'x')).toEqual(['x6', 'x7', 'x8', 'x9'])
    expect(held(first, 'y')).toEqual(['y7', 'y8', 'y9'])
    expect(held(first, 'b')).toEqual(['b7', 'b8', 'b9'])
  })

  it('a local write may evict the largest author, never this node’s own entries (QuotaExceededError tableEntries)', async () => {
    const c = clock()
    const a = stub(A, c, { maxEntries: 4 })
    await hand(a, await puts(X, 'x', 4))
    await a.sync.set('mine1', 1)
    await a.sync.set('mine2', 2)
    expect(held(a, 'x')).toEqual(['x2', 'x3'])
    expect(a.broadcasts).toHaveLength(2)
    // Now this node holds as much as X: its next key would cost one of its own.
    await expect(a.sync.set('mine3', 3)).rejects.toMatchObject({
      name: 'QuotaExceededError',
      limit: 'tableEntries',
      max: 4,
    })
    await a.sync.set('mine1', 'overwrite is fine')
    expect(a.sync.size().entries).toBe(4)
    // What a evicted, a replica in the same state evicts too when a's writes come.
    const b = stub(B, c, { maxEntries: 4 })
    await hand(b, await puts(X, 'x', 4))
    await deliver(a, b)
    expect(b.sync.digest()).toBe(a.sync.digest())
  })

  it('counts bytes: a table full of one author’s large values makes room for a newcomer’s', async () => {
    const c = clock()
    const opts: SyncOptions = { maxTableBytes: 10_000 }
    const r = stub(C, c, opts)
    const big = new Uint8Array(1_000)
    await hand(r, await puts(X, 'x', 12, T0, big))
    expect(r.sync.size().bytes).toBeLessThanOrEqual(10_000)
    const before = r.sync.size()
    expect(r.sync.counters['drop.quota'] ?? 0).toBe(0)
    expect(before.entries).toBeLessThan(12)
    const a = stub(A, c, opts)
    await hand(a, await puts(X, 'x', 12, T0, big))
    await a.sync.set('newcomer', new Uint8Array(2_500))
    await deliver(a, r)
    for (const s of [a, r]) {
      expect(s.sync.get('newcomer')).toEqual(new Uint8Array(2_500))
      expect(s.sync.size().bytes).toBeLessThanOrEqual(10_000)
      expect(s.sync.counters.evicted).toBeGreaterThanOrEqual(3)
    }
    expect(a.sync.digest()).toBe(r.sync.digest())
  })

  it(`makes room with at most ${MAX_EVICTIONS} evictions; past that the entry is refused`, async () => {
    const c = clock()
    const r = stub(C, c, { maxTableBytes: 20_000, maxEntries: 1_000, perAuthorQuota: 1_000 })
    await hand(r, await puts(X, 'x', 300))
    const full = r.sync.size()
    expect(full.bytes).toBeGreaterThan(20_000 - 100)
    // A 16 KB value would take over a hundred of X's small entries.
    const [huge] = await puts(Y, 'huge', 1, T0 + 1, new Uint8Array(16_000))
    await hand(r, [huge as PutMsg])
    expect(r.sync.get('huge0')).toBeUndefined()
    expect(r.sync.counters['drop.tableFull']).toBe(1)
    expect(r.sync.size()).toEqual(full)
  })

  it('evicts entries whose lease binds last', async () => {
    const c = clock()
    const r = stub(C, c, { maxEntries: 4 })
    const kx = createFakeKeyring(X)
    await r.sync.handleBroadcast(X, await craft(kx, 'leased', [T0, 0], 1, 60_000))
    await hand(r, await puts(X, 'plain', 3, T0 + 1))
    await hand(r, await puts(Y, 'y', 2, T0 + 2))
    expect(r.sync.owner('leased')).toBe(X)
    expect(held(r, 'plain')).toEqual(['plain2'])
    expect(r.sync.counters['evicted.leased'] ?? 0).toBe(0)
  })
})
