/** The merge rules (merge.ts): last writer wins, and leases. */
import { describe, expect, it } from 'vitest'
import { A, B, C, clock, craft, deliver, stub, T0 } from '../../test/sync-stub.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'

describe('sync: last writer wins', () => {
  it('orders by HLC, then by author id on a tie, the same on every replica', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    // Same clock, fresh HLCs: both writes are stamped [T0, 0]; the higher author id wins.
    await a.sync.set('k', 'from a')
    await b.sync.set('k', 'from b')
    await deliver(a, b)
    await deliver(b, a)
    expect(a.sync.get('k')).toBe('from b')
    expect(b.sync.get('k')).toBe('from b')
    expect(a.sync.digest()).toBe(b.sync.digest())
    // A later write wins whoever wrote it.
    c.advance(1)
    await a.sync.set('k', 'later')
    await deliver(a, b)
    expect(b.sync.get('k')).toBe('later')
    expect(a.sync.digest()).toBe(b.sync.digest())
  })

  it('a write that has seen another is ordered after it even when the writer clock lags', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    b.offset = -30_000
    await a.sync.set('k', 1)
    await deliver(a, b)
    await b.sync.set('k', 2)
    await deliver(b, a)
    expect(a.sync.get('k')).toBe(2)
  })

  it('two different entries signed with one timestamp: every replica picks the same one', async () => {
    const c = clock()
    const k = createFakeKeyring(A)
    const one = await craft(k, 'k', [T0, 0], 'one')
    const two = await craft(k, 'k', [T0, 0], 'two')
    const b = stub(B, c)
    const d = stub(C, c)
    await b.sync.handleBroadcast(A, one)
    await b.sync.handleBroadcast(A, two)
    await d.sync.handleBroadcast(A, two)
    await d.sync.handleBroadcast(A, one)
    expect(b.sync.get('k')).toBe(d.sync.get('k'))
    expect(b.sync.digest()).toBe(d.sync.digest())
  })

  it('drops stale versions and counts duplicates', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    await a.sync.set('k', 1)
    const first = a.broadcasts.slice()
    c.advance(5)
    await a.sync.set('k', 2)
    await deliver(a, b)
    for (const m of first) await b.sync.handleBroadcast(A, m)
    expect(b.sync.get('k')).toBe(2)
    expect(b.sync.counters['drop.stale']).toBe(1)
    await a.sync.set('k', 3)
    const again = a.broadcasts.slice()
    await deliver(a, b)
    for (const m of again) await b.sync.handleBroadcast(A, m)
    expect(b.sync.counters.duplicates).toBe(1)
  })
})
describe('sync: leases', () => {
  it('a live lease makes others get LeaseHeldError with owner and expiry; the owner renews', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    await a.sync.set('k', 'mine', { leaseMs: 10_000 })
    await deliver(a, b)
    expect(b.sync.owner('k')).toBe(A)
    expect(b.sync.lease('k')).toEqual({ owner: A, expires: T0 + 10_000 })
    const err = await b.sync.set('k', 'theirs').catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'LeaseHeldError', key: 'k', owner: A, expires: T0 + 10_000 })
    await expect(b.sync.delete('k')).rejects.toMatchObject({ name: 'LeaseHeldError', owner: A })
    expect(b.sync.get('k')).toBe('mine')

    // The owner writes on: without leaseMs it keeps the lease, with leaseMs it renews.
    c.advance(3_000)
    await a.sync.set('k', 'still mine')
    await deliver(a, b)
    expect(b.sync.lease('k')).toEqual({ owner: A, expires: T0 + 10_000 })
    c.advance(3_000)
    await a.sync.set('k', 'renewed', { leaseMs: 10_000 })
    await deliver(a, b)
    expect(b.sync.lease('k')).toEqual({ owner: A, expires: T0 + 16_000 })
    c.advance(9_000)
    await expect(b.sync.set('k', 'theirs')).rejects.toMatchObject({
      name: 'LeaseHeldError',
      expires: T0 + 16_000,
    })
  })

  it('after expires + leaseGraceMs another may write; not before', async () => {
    const c = clock()
    const a = stub(A, c, { leaseGraceMs: 2_000 })
    const b = stub(B, c, { leaseGraceMs: 2_000 })
    await a.sync.set('k', 'mine', { leaseMs: 5_000 })
    await deliver(a, b)
    c.advance(5_000) // expires by the owner's clock; the grace still binds
    await expect(b.sync.set('k', 'theirs')).rejects.toMatchObject({ name: 'LeaseHeldError' })
    expect(b.sync.owner('k')).toBe(A)
    c.advance(1_999)
    await expect(b.sync.set('k', 'theirs')).rejects.toMatchObject({ name: 'LeaseHeldError' })
    c.advance(1)
    expect(b.sync.owner('k')).toBeUndefined()
    await b.sync.set('k', 'theirs', { leaseMs: 1_000 })
    await deliver(b, a)
    expect(a.sync.get('k')).toBe('theirs')
    expect(a.sync.owner('k')).toBe(B)
    await expect(a.sync.set('k', 'back')).rejects.toMatchObject({ name: 'LeaseHeldError', owner: B })
  })

  it("the owner's delete keeps the key reserved until the lease expires", async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    await a.sync.set('k', 1, { leaseMs: 10_000 })
    c.advance(1)
    await a.sync.delete('k')
    await deliver(a, b)
    expect(b.sync.get('k')).toBeUndefined()
    expect(b.sync.lease('k')).toEqual({ owner: A, expires: T0 + 10_000 })
    await expect(b.sync.set('k', 2)).rejects.toMatchObject({ name: 'LeaseHeldError', owner: A })
    c.advance(12_000)
    await b.sync.set('k', 2)
  })

  it('leaseMs: 0 releases the lease at once', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    await a.sync.set('k', 1, { leaseMs: 60_000 })
    c.advance(1)
    await a.sync.set('k', 2, { leaseMs: 0 })
    await deliver(a, b)
    expect(b.sync.owner('k')).toBeUndefined()
    await b.sync.set('k', 3)
  })

  it('a remote write by a non-owner during a live lease is dropped and counted, and wins after expiry if newest', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    const x = stub(C, c) // never heard of the lease
    await a.sync.set('k', 'leased', { leaseMs: 5_000 })
    await deliver(a, b)
    c.advance(10)
    await x.sync.set('k', 'blind write')
    const blind = x.broadcasts.slice()
    await deliver(x, b)
    expect(b.sync.get('k')).toBe('leased')
    expect(b.sync.counters['drop.leaseHeld']).toBe(1)
    // A blind delete is refused too.
    c.advance(10)
    await x.sync.delete('k')
    await deliver(x, b)
    expect(b.sync.counters['drop.leaseHeld']).toBe(2)
    expect(b.accepts.map((e) => e.author)).toEqual([A])
    // After expiry + grace, the same (still newest) version is accepted when offered again.
    c.advance(5_000 + 2_000)
    for (const m of blind) await b.sync.handleBroadcast(C, m)
    expect(b.sync.get('k')).toBe('blind write')
  })

  it('a replica whose clock runs ahead (within the grace) takes over only once the owner clock has passed expires', async () => {
    const c = clock()
    const a = stub(A, c, { leaseGraceMs: 2_000 })
    const b = stub(B, c, { leaseGraceMs: 2_000 })
    const x = stub(C, c)
    b.offset = 1_500
    x.offset = 10_000 // a writer whose clock runs further ahead dates its writes after expiry
    await a.sync.set('k', 'leased', { leaseMs: 5_000 })
    await deliver(a, b)
    c.advance(5_000 - 1) // the owner's clock: expires - 1; b's: expires + 1_499
    await x.sync.set('k', 'early')
    await deliver(x, b)
    expect(b.sync.get('k')).toBe('leased')
    expect(b.sync.counters['drop.leaseHeld']).toBe(1)
    await expect(b.sync.set('k', 'b early')).rejects.toMatchObject({ name: 'LeaseHeldError' })
    c.advance(501) // the owner's clock: expires + 500; b's: expires + grace
    await b.sync.set('k', 'b on time')
    expect(b.sync.get('k')).toBe('b on time')
  })
})
