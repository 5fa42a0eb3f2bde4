import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { generateIdentity } from '../identity/keys.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import type { Value } from '../types.ts'
import { arbValue } from '../wire/arbitraries.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import type { PutMsg, SyncMsg, WireEntry } from './messages.ts'
import { MAX_PEER_BUDGETS } from './sync.ts'
import { A, B, C, clock, craft, deliver, flip, pump, type Stub, stub, T0 } from './test-stub.ts'

describe('sync: local table', () => {
  it('sets, gets, lists and deletes; values come back equal and as copies', async () => {
    const c = clock()
    const a = stub(A, c)
    const v = { name: 'x', n: [1, 2.5, -0], b: new Uint8Array([1, 2]) }
    await a.sync.set('k', v)
    await a.sync.set('j', 'y')
    expect(a.sync.get('k')).toEqual(v)
    const got = a.sync.get('k') as { b: Uint8Array }
    got.b[0] = 99
    expect((a.sync.get('k') as { b: Uint8Array }).b[0]).toBe(1)
    expect(a.sync.entries()).toEqual([
      ['j', 'y'],
      ['k', v],
    ])
    await a.sync.delete('k')
    expect(a.sync.get('k')).toBeUndefined()
    expect(a.sync.entries()).toEqual([['j', 'y']])
    await a.sync.delete('nothing')
    expect(a.changes.map((e) => [e.key, e.value, e.from])).toEqual([
      ['k', v, A],
      ['j', 'y', A],
      ['k', undefined, A],
    ])
    expect(a.broadcasts).toHaveLength(3)
  })

  it('rejects keys and values beyond the limits with ValueTooLargeError, and non-Values with TypeError', async () => {
    const a = stub(A, clock())
    await expect(a.sync.set('k'.repeat(257), 1)).rejects.toMatchObject({
      name: 'ValueTooLargeError',
      limit: 256,
    })
    await expect(a.sync.set('é'.repeat(129), 1)).rejects.toMatchObject({ name: 'ValueTooLargeError' })
    await a.sync.set('k'.repeat(256), 1)
    const big = new Uint8Array(65_536)
    await expect(a.sync.set('big', big)).rejects.toMatchObject({
      name: 'ValueTooLargeError',
      size: encodeValue(big).length,
      limit: 65_536,
    })
    await a.sync.set('fits', new Uint8Array(65_536 - 3))
    await expect(a.sync.set('f', (() => 1) as unknown as Value)).rejects.toThrow(TypeError)
    await expect(a.sync.set('l', 1, { leaseMs: 600_001 })).rejects.toThrow(RangeError)
    await expect(a.sync.set('l', 1, { leaseMs: -1 })).rejects.toThrow(RangeError)
  })
})

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

describe('sync: lease contention', () => {
  const LEASE = 20_000
  /** Every replica's view of a key: value, owner, and the lease's acquisition time. */
  const view = (s: Stub, key = 'door') => ({ value: s.sync.get(key), owner: s.sync.owner(key) })

  it('two acquisitions at the same instant: every replica picks the same one, in either arrival order', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    const x = stub(C, c)
    const y = stub('dd'.repeat(20), c)
    await b.sync.set('door', 'b', { leaseMs: LEASE })
    await a.sync.set('door', 'a', { leaseMs: LEASE })
    const fromA = a.broadcasts.splice(0)
    const fromB = b.broadcasts.splice(0)
    // Same `since` (T0): the lower author id wins.
    for (const m of fromA) await x.sync.handleBroadcast(A, m)
    for (const m of fromB) await x.sync.handleBroadcast(B, m)
    for (const m of fromB) await y.sync.handleBroadcast(B, m)
    c.advance(300)
    for (const m of fromA) await y.sync.handleBroadcast(A, m)
    for (const s of [x, y]) expect(view(s)).toEqual({ value: 'a', owner: A })
    expect(x.sync.counters['drop.leaseHeld']).toBe(1)
    expect(y.sync.counters['contention.preempted']).toBe(1)
    expect(y.accepts.map((e) => [e.author, e.preempted])).toEqual([
      [B, false],
      [A, true],
    ])
    expect(y.changes.map((e) => e.value)).toEqual(['b', 'a'])
    expect(x.sync.digest()).toBe(y.sync.digest())
  })

  it('the earlier acquisition wins whatever the author ids', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    b.offset = -40 // b's clock is behind: its `since` is earlier
    const x = stub(C, c)
    const y = stub('dd'.repeat(20), c)
    await a.sync.set('door', 'a', { leaseMs: LEASE })
    await b.sync.set('door', 'b', { leaseMs: LEASE })
    await deliver(a, x)
    await deliver(b, x, y, a)
    for (const s of [a, x, y]) expect(view(s)).toEqual({ value: 'b', owner: B })
    await expect(a.sync.set('door', 'a again')).rejects.toMatchObject({ name: 'LeaseHeldError', owner: B })
  })

  it("the loser's own view flips to the winner; its next write throws LeaseHeldError naming the winner", async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    await a.sync.set('door', 'a', { leaseMs: LEASE })
    c.advance(50)
    await b.sync.set('door', 'b', { leaseMs: LEASE }) // b has not heard of a's lease yet: it succeeds locally
    expect(view(b)).toEqual({ value: 'b', owner: B })
    await deliver(b, a)
    await deliver(a, b)
    expect(view(a)).toEqual({ value: 'a', owner: A })
    expect(a.sync.counters['drop.leaseHeld']).toBe(1)
    expect(view(b)).toEqual({ value: 'a', owner: A })
    expect(b.sync.lease('door')).toEqual({ owner: A, expires: T0 + LEASE })
    expect(b.changes.at(-1)).toEqual({ key: 'door', value: 'a', from: A })
    const err = await b.sync.set('door', 'b again', { leaseMs: LEASE }).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'LeaseHeldError', key: 'door', owner: A, expires: T0 + LEASE })
    await expect(b.sync.delete('door')).rejects.toMatchObject({ name: 'LeaseHeldError', owner: A })
    await expect(b.sync.set('door', 'plain')).rejects.toMatchObject({ name: 'LeaseHeldError', owner: A })
    expect(a.sync.digest()).toBe(b.sync.digest())
  })

  it("the winner's renewal keeps its acquisition time, and wins where only the loser's lease was known", async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    const z = stub(C, c) // hears b's acquisition, misses a's, then hears a's renewal
    await a.sync.set('door', 'a', { leaseMs: LEASE })
    a.broadcasts.length = 0
    c.advance(100)
    await b.sync.set('door', 'b', { leaseMs: LEASE })
    await deliver(b, z)
    // Within claimSkewMs (500 ms) of the acquisition it carries: credited in full.
    c.advance(300)
    await a.sync.set('door', 'a renewed', { leaseMs: LEASE })
    await deliver(a, z, b)
    expect(a.accepts.map((e) => e.since)).toEqual([T0, T0])
    for (const s of [z, b]) {
      expect(view(s)).toEqual({ value: 'a renewed', owner: A })
      expect(s.sync.lease('door')).toEqual({ owner: A, expires: T0 + 400 + LEASE })
      expect(s.accepts.at(-1)).toMatchObject({ author: A, since: T0, claim: T0, preempted: true })
    }
    // b, now knowing, cannot renew; and its late copy is refused by a.
    await expect(b.sync.set('door', 'b', { leaseMs: LEASE })).rejects.toMatchObject({ owner: A })
    // The owner's plain write keeps the expiry, the acquisition time and the credit it was given.
    c.advance(3_000)
    await a.sync.set('door', 'a plain')
    await deliver(a, z)
    expect(z.accepts.at(-1)).toMatchObject({
      since: T0,
      claim: T0,
      lease: { owner: A, expires: T0 + 400 + LEASE },
    })
    // Once the lease has ended and the key been free, a new lease by a starts a new tenure.
    c.advance(LEASE + 2_001)
    await a.sync.set('door', 'again', { leaseMs: 1_000 })
    expect(a.accepts.at(-1)?.since).toBe(c.now())
  })

  it('a renewal first heard more than claimSkewMs after the acquisition it carries cannot pre-empt (the price of Claims)', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    const z = stub(C, c) // hears b's acquisition; a's reaches it only 3 s later, with a renewal
    await a.sync.set('door', 'a', { leaseMs: LEASE })
    a.broadcasts.length = 0
    c.advance(100)
    await b.sync.set('door', 'b', { leaseMs: LEASE })
    const fromB = b.broadcasts.slice()
    await deliver(b, z)
    c.advance(3_000)
    await a.sync.set('door', 'a renewed', { leaseMs: LEASE })
    await deliver(a, z, b)
    for (const m of fromB) await a.sync.handleBroadcast(B, m)
    // Neither b nor z can tell a's claim, 3.1 s old when first seen, from a back-dated lie: they keep b,
    // and a (which saw b's later acquisition) keeps its own, until one of the leases ends.
    for (const s of [b, z]) {
      expect(view(s)).toEqual({ value: 'b', owner: B })
      expect(s.sync.counters['drop.lateClaim']).toBe(1)
      expect(s.sync.counters['contention.preempted'] ?? 0).toBe(0)
    }
    expect(view(a)).toEqual({ value: 'a renewed', owner: A })
    expect(a.sync.counters['drop.stale']).toBe(1)
  })

  it('a lease beats a concurrent write without lease, in either arrival order', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    const x = stub(C, c)
    const y = stub('dd'.repeat(20), c)
    await a.sync.set('door', 'leased', { leaseMs: LEASE })
    c.advance(20)
    await b.sync.set('door', 'blind') // newer by HLC, but made during a's lease
    const fromA = a.broadcasts.splice(0)
    const fromB = b.broadcasts.splice(0)
    for (const m of fromA) await x.sync.handleBroadcast(A, m)
    for (const m of fromB) await x.sync.handleBroadcast(B, m)
    for (const m of fromB) await y.sync.handleBroadcast(B, m)
    for (const m of fromA) await y.sync.handleBroadcast(A, m)
    for (const s of [x, y]) expect(view(s)).toEqual({ value: 'leased', owner: A })
    expect(x.sync.digest()).toBe(y.sync.digest())
  })

  it('a lease that had run out by its owner clock does not take the key from a later acquisition', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    const y = stub(C, c)
    y.offset = -1_500 // y's clock is slow: a's lease still binds there for a while (the grace)
    await a.sync.set('door', 'a', { leaseMs: 5_000 })
    const fromA = a.broadcasts.splice(0)
    c.advance(7_000) // b's clock: a's lease has ended, grace included
    await b.sync.set('door', 'b', { leaseMs: LEASE })
    await deliver(b, y)
    for (const m of fromA) await y.sync.handleBroadcast(A, m)
    expect(view(y)).toEqual({ value: 'b', owner: B })
    expect(y.sync.counters['contention.preempted'] ?? 0).toBe(0)
  })

  it('lease theft (issue 9): a claim back-dated before an acquisition and sent 0.8 s after it is refused everywhere, by broadcast or anti-entropy', async () => {
    const c = clock()
    const a = stub(A, c)
    const r = stub(B, c)
    const x = stub('dd'.repeat(20), c)
    const mallory = createFakeKeyring(C)
    await a.sync.set('door', 'a', { leaseMs: 30_000 })
    await deliver(a, r, x)
    c.advance(800)
    const now = c.now()
    const TEN_MIN = 600_000
    const put = (m: PutMsg) => m.e
    const attacks = [
      // Written now, claiming to have held the key since 1 ms before a took it, for ten minutes.
      await craft(mallory, 'door', [now, 0], 'mine', TEN_MIN, now - (T0 - 1)),
      // The same, claiming a tenure that began ten minutes ago.
      await craft(mallory, 'door', [now, 1], 'mine', TEN_MIN, TEN_MIN),
      // Back-dated outright: an acquisition stamped 1 ms before a's.
      await craft(mallory, 'door', [T0 - 1, 0], 'mine', TEN_MIN),
    ]
    for (const s of [a, r]) for (const m of attacks) await s.sync.handleBroadcast(C, m)
    // A neighbour hands them over by anti-entropy instead: the same check.
    await x.sync.handle(C, { t: 'e', e: attacks.map(put) })
    for (const s of [a, r, x]) {
      expect(view(s)).toEqual({ value: 'a', owner: A })
      expect(s.sync.lease('door')).toEqual({ owner: A, expires: T0 + 30_000 })
      expect(s.sync.counters['drop.lateClaim']).toBe(3)
      expect(s.sync.counters['contention.preempted'] ?? 0).toBe(0)
      expect(s.accepts.map((e) => e.author)).toEqual([A])
    }
    // Still refused when offered again later, and the owner writes on.
    c.advance(5_000)
    for (const m of attacks) await r.sync.handleBroadcast(C, m)
    expect(r.sync.counters['drop.lateClaim']).toBe(6)
    await a.sync.set('door', 'a again')
    await deliver(a, r, x)
    for (const s of [r, x]) expect(view(s)).toEqual({ value: 'a again', owner: A })
  })

  it('the bound of Claims: a claim first seen within claimSkewMs of the acquisition it contests is credited like a concurrent one', async () => {
    const c = clock()
    const a = stub(A, c)
    const r = stub(B, c)
    const mallory = createFakeKeyring(C)
    await a.sync.set('door', 'a', { leaseMs: 30_000 })
    const acquisition = a.broadcasts.slice()
    await deliver(a, r)
    // 400 ms later, dated 1 ms before a's: within the 500 ms a replica allows for delay and clocks.
    c.advance(400)
    const early = await craft(mallory, 'door', [T0 - 1, 0], 'mine', 30_000)
    await r.sync.handleBroadcast(C, early)
    expect(view(r)).toEqual({ value: 'mine', owner: C })
    expect(r.accepts.at(-1)).toMatchObject({ author: C, since: T0 - 1, claim: T0 - 1, preempted: true })
    // The same claim a little later is credited with no more than first sight − claimSkewMs.
    const r2 = stub('dd'.repeat(20), c)
    for (const m of acquisition) await r2.sync.handleBroadcast(A, m)
    c.advance(200)
    await r2.sync.handleBroadcast(C, early)
    expect(view(r2)).toEqual({ value: 'a', owner: A })
    expect(r2.sync.counters['drop.lateClaim']).toBe(1)
  })

  it('anti-entropy carries the winner to a replica holding the newer loser, whichever end starts', async () => {
    const D = 'dd'.repeat(20)
    for (const [winnerId, loserId] of [
      [C, D],
      [D, C],
    ] as const) {
      const c = clock()
      const a = stub(A, c)
      const b = stub(B, c)
      const w = stub(winnerId, c) // heard a's acquisition only
      const l = stub(loserId, c) // heard b's only: a's broadcast was lost on the way
      for (let i = 0; i < 30; i++) await a.sync.set(`other${i}`, i)
      await a.sync.set('door', 'a', { leaseMs: LEASE })
      c.advance(500)
      await b.sync.set('door', 'b', { leaseMs: LEASE })
      const door = a.broadcasts.pop() as SyncMsg
      await deliver(a, w, l)
      await w.sync.handleBroadcast(A, door)
      await deliver(b, l)
      expect(view(l)).toEqual({ value: 'b', owner: B })
      // The lower id starts the exchange at once.
      w.neighbours = [loserId]
      l.neighbours = [winnerId]
      await w.sync.linkUp?.(loserId)
      await l.sync.linkUp?.(winnerId)
      await pump([w, l])
      expect(view(l)).toEqual({ value: 'a', owner: A })
      expect(view(w)).toEqual({ value: 'a', owner: A })
      expect(l.sync.digest()).toBe(w.sync.digest())
      expect(l.sync.counters['contention.preempted']).toBe(1)
      expect(c.now() - T0).toBeLessThan(1_000)
    }
  })
})

describe('sync: hostile and malformed input', () => {
  it('drops forged signatures, altered bodies and a key that is not the signer, and counts them', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    await a.sync.set('k', 'genuine')
    const [m] = a.broadcasts as [PutMsg]
    const [body, pk, sig] = m.e
    const altered = body.slice()
    flip(altered, altered.length - 1)
    const badSig = sig.slice()
    flip(badSig, 10)
    const mallory = createFakeKeyring(C)
    // Signed by mallory, claiming a's key: the author is whoever the key says, so the check fails.
    const claim = await craft(mallory, 'k', [T0 + 1, 0], 'forged')
    const impostor: WireEntry = [claim.e[0], pk, claim.e[2]]
    for (const e of [[altered, pk, sig] as WireEntry, [body, pk, badSig] as WireEntry, impostor])
      await b.sync.handleBroadcast(A, { t: 'p', e })
    expect(b.sync.get('k')).toBeUndefined()
    expect(b.sync.counters['drop.badSignature']).toBe(3)
    await b.sync.handleBroadcast(A, m)
    expect(b.sync.get('k')).toBe('genuine')
  })

  it('drops entries dated beyond maxSkewMs, and accepts them within it', async () => {
    const c = clock()
    const b = stub(B, c, { maxSkewMs: 60_000 })
    const k = createFakeKeyring(A)
    await b.sync.handleBroadcast(A, await craft(k, 'far', [T0 + 60_001, 0], 1))
    await b.sync.handleBroadcast(A, await craft(k, 'near', [T0 + 60_000, 0], 1))
    expect(b.sync.counters['drop.future']).toBe(1)
    expect(b.sync.get('far')).toBeUndefined()
    expect(b.sync.get('near')).toBe(1)
  })

  it('drops remote entries beyond the key, value and lease limits', async () => {
    const b = stub(B, clock(), { maxKeyBytes: 8, maxValueBytes: 16, maxLeaseMs: 1_000 })
    const k = createFakeKeyring(A)
    await b.sync.handleBroadcast(A, await craft(k, 'k'.repeat(9), [T0, 0], 1))
    await b.sync.handleBroadcast(A, await craft(k, 'v', [T0, 0], 'x'.repeat(16)))
    await b.sync.handleBroadcast(A, await craft(k, 'l', [T0, 0], 1, 1_001))
    expect(b.sync.counters['drop.tooLarge']).toBe(2)
    expect(b.sync.counters['drop.malformed']).toBe(1)
    await b.sync.handleBroadcast(A, await craft(k, 'v', [T0, 0], 'x'.repeat(14)))
    expect(b.sync.get('v')).toBe('x'.repeat(14))
  })

  it('parses and survives any Value on every entry point without throwing', async () => {
    const c = clock()
    const b = stub(B, c)
    b.neighbours = [A]
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          arbValue,
          fc.record({ t: fc.constantFrom('p', 's', 'b', 'v', 'q', 'e'), e: arbValue }),
          fc.record({ t: fc.constantFrom('v'), i: fc.array(fc.integer()), v: fc.array(arbValue) }),
          fc.record({
            t: fc.constantFrom('p'),
            e: fc.tuple(fc.uint8Array(), fc.uint8Array(), fc.uint8Array()),
          }),
          fc.record({
            t: fc.constant('p'),
            e: fc.tuple(
              fc.uint8Array({ minLength: 1, maxLength: 64 }),
              fc.uint8Array({ minLength: 32, maxLength: 32 }),
              fc.uint8Array({ minLength: 64, maxLength: 64 }),
            ),
          }),
        ),
        async (v) => {
          await b.sync.handle(A, v as SyncMsg)
          await b.sync.handleBroadcast(A, v as SyncMsg)
          expect(await b.sync.importState(v)).toBe(0)
          await b.sync.tick(c.now())
        },
      ),
      { numRuns: 300 },
    )
    expect(b.sync.size().entries).toBe(0)
    expect(b.sync.counters['drop.malformed']).toBeGreaterThan(300)
  })

  it('drops a message from itself or from a non-string sender', async () => {
    const b = stub(B, clock())
    await b.sync.handle(B, { t: 's', r: new Uint8Array(8) })
    await b.sync.handle(undefined as unknown as string, { t: 's', r: new Uint8Array(8) })
    expect(b.sync.counters['drop.malformed']).toBe(2)
  })
})

describe('sync: tombstones and the horizon', () => {
  const H = 60_000
  it('keeps a tombstone for the horizon, then collects it', async () => {
    const c = clock()
    const a = stub(A, c, { tombstoneHorizonMs: H })
    await a.sync.set('k', 1)
    await a.sync.delete('k')
    expect(a.sync.size()).toMatchObject({ entries: 1, live: 0 })
    c.advance(H - 1)
    await a.sync.tick(c.now())
    expect(a.sync.size().entries).toBe(1)
    c.advance(1_001)
    await a.sync.tick(c.now())
    expect(a.sync.size().entries).toBe(0)
    expect(a.sync.counters.collected).toBe(1)
  })

  it('a tombstone older than the horizon still deletes the older value it beats, and is not stored', async () => {
    const c = clock()
    const a = stub(A, c, { tombstoneHorizonMs: H })
    const old = stub(B, c, { tombstoneHorizonMs: H }) // a replica that missed the delete
    const fresh = stub(C, c, { tombstoneHorizonMs: H })
    await a.sync.set('k', 'doomed')
    await deliver(a, old)
    c.advance(1)
    await a.sync.delete('k')
    const del = a.broadcasts.splice(0)
    c.advance(H + 5)
    for (const m of del) {
      await old.sync.handleBroadcast(A, m)
      await fresh.sync.handleBroadcast(A, m)
    }
    expect(old.sync.get('k')).toBeUndefined()
    expect(old.sync.size().entries).toBe(0)
    expect(old.sync.counters.expiredTombstoneApplied).toBe(1)
    expect(old.changes.at(-1)).toEqual({ key: 'k', value: undefined, from: A })
    expect(fresh.sync.counters['drop.expiredTombstone']).toBe(1)
    expect(old.sync.digest()).toBe(fresh.sync.digest())
  })

  it('replicas that collected a tombstone and one that has not yet agree, and anti-entropy brings nothing back', async () => {
    const c = clock()
    const a = stub(A, c, { tombstoneHorizonMs: H })
    const b = stub(B, c, { tombstoneHorizonMs: H })
    await a.sync.set('k', 'v')
    await a.sync.set('kept', 1)
    await a.sync.delete('k')
    await deliver(a, b)
    c.advance(H + 1)
    await a.sync.tick(c.now()) // a collects; b has not ticked yet
    expect(a.sync.size().entries).toBe(1)
    expect(b.sync.size().entries).toBe(2)
    expect(a.sync.digest()).toBe(b.sync.digest())
    a.neighbours = [B]
    b.neighbours = [A]
    await a.sync.linkUp?.(B)
    await b.sync.linkUp?.(A)
    await pump([a, b])
    expect(a.sync.get('k')).toBeUndefined()
    expect(a.sync.size().entries).toBe(1)
    await b.sync.tick(c.now())
    expect(b.sync.size().entries).toBe(1)
  })

  it('refuses a snapshot older than the horizon (minus the skew), so a long-gone tab cannot resurrect deletes', async () => {
    const c = clock()
    const a = stub(A, c, { tombstoneHorizonMs: H, maxSkewMs: 10_000 })
    await a.sync.set('k', 'v')
    const snap = a.sync.exportState()
    c.advance(H - 10_000 + 1)
    const b = stub(B, c, { tombstoneHorizonMs: H, maxSkewMs: 10_000 })
    expect(await b.sync.importState(snap)).toBe(0)
    expect(b.sync.counters['drop.snapshotTooOld']).toBe(1)
    const b2 = stub(C, c, { tombstoneHorizonMs: H, maxSkewMs: 10_000 })
    c.advance(-1)
    expect(await b2.sync.importState(snap)).toBe(1)
  })
})

describe('sync: persistence', () => {
  it('export/import round-trips through the codec: same digest, leases and tombstones kept, re-verified', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    await a.sync.set('plain', { n: 1 })
    await a.sync.set('leased', 'x', { leaseMs: 30_000 })
    await a.sync.set('gone', 1)
    await a.sync.delete('gone')
    await b.sync.set('theirs', new Uint8Array([7]))
    await deliver(b, a)
    const bytes = encodeValue(a.sync.exportState()) // as IndexedDB or a file would keep it
    const restored = stub(A, c)
    expect(await restored.sync.importState(decodeValue(bytes) as Value)).toBe(4)
    expect(restored.sync.digest()).toBe(a.sync.digest())
    expect(restored.sync.entries()).toEqual(a.sync.entries())
    expect(restored.sync.size()).toEqual(a.sync.size())
    expect(restored.sync.lease('leased')).toEqual({ owner: A, expires: T0 + 30_000 })
    expect(restored.accepts.every((e) => e.via === 'import')).toBe(true)
    // The restored owner still owns its lease; others are still refused.
    c.advance(1)
    await restored.sync.set('leased', 'y')
    const other = stub(C, c)
    await other.sync.importState(decodeValue(bytes) as Value)
    await expect(other.sync.set('leased', 'z')).rejects.toMatchObject({ name: 'LeaseHeldError' })
    // Importing again changes nothing; a tampered entry is dropped, the rest still load.
    expect(await restored.sync.importState(decodeValue(bytes) as Value)).toBe(0)
    const snap = decodeValue(bytes) as { e: WireEntry[] }
    flip((snap.e[0] as WireEntry)[0], 3)
    const fresh = stub(C, c)
    expect(await fresh.sync.importState(snap as unknown as Value)).toBe(3)
    expect(fresh.sync.counters['drop.badSignature'] ?? 0).toBe(1)
  })

  it('works with real Ed25519 keys', async () => {
    const c = clock(Date.now())
    const ia = await generateIdentity()
    const ib = await generateIdentity()
    const a = stub(ia.id, c, {}, ia)
    const b = stub(ib.id, c, {}, ib)
    await a.sync.set('k', { real: true }, { leaseMs: 5_000 })
    await deliver(a, b)
    expect(b.sync.get('k')).toEqual({ real: true })
    await expect(b.sync.set('k', 1)).rejects.toMatchObject({ name: 'LeaseHeldError', owner: ia.id })
    const restored = stub(ia.id, c, {}, ia)
    expect(await restored.sync.importState(b.sync.exportState())).toBe(1)
  })
})

describe('sync: anti-entropy between two replicas', () => {
  it('exchanges only what differs, both ways, and ends equal', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    const shared = stub(C, c)
    for (let i = 0; i < 200; i++) await shared.sync.set(`s${i}`, i)
    await deliver(shared, a, b)
    for (let i = 0; i < 10; i++) await a.sync.set(`a${i}`, i)
    for (let i = 0; i < 7; i++) await b.sync.set(`b${i}`, i)
    c.advance(1)
    await a.sync.set('s5', 'a newer')
    await b.sync.delete('s6')
    a.broadcasts.length = 0
    b.broadcasts.length = 0
    a.neighbours = [B]
    b.neighbours = [A]
    await a.sync.linkUp?.(B)
    await b.sync.linkUp?.(A)
    await pump([a, b])
    expect(a.sync.digest()).toBe(b.sync.digest())
    expect(a.sync.get('s5')).toBe('a newer')
    expect(a.sync.get('s6')).toBeUndefined()
    expect(a.sync.get('b6')).toBe(6)
    // Entries moved: 10 + 1 one way, 7 + 1 the other; nothing of the 200 shared ones.
    const moved = (a.sync.counters['ae.entriesSent'] ?? 0) + (b.sync.counters['ae.entriesSent'] ?? 0)
    expect(moved).toBe(19)
    // In sync: the next round is one 8-byte summary and nothing else.
    c.advance(5_000)
    await a.sync.tick(c.now())
    await b.sync.tick(c.now())
    const before = a.sent.length + b.sent.length
    expect(before).toBeGreaterThan(0)
    expect(await pump([a, b])).toBe(before)
    expect((a.sync.counters['ae.inSync'] ?? 0) + (b.sync.counters['ae.inSync'] ?? 0)).toBeGreaterThan(0)
  })

  it('sends a newcomer whole buckets without version lists', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    for (let i = 0; i < 300; i++) await a.sync.set(`k${i}`, i)
    a.neighbours = [B]
    b.neighbours = [A]
    await a.sync.linkUp?.(B)
    await b.sync.linkUp?.(A)
    const versions: number[] = []
    const tap = a.sent.push.bind(a.sent)
    a.sent.push = (...xs) => {
      for (const [, m] of xs) if (m.t === 'v') versions.push(m.v.length)
      return tap(...xs)
    }
    await pump([a, b])
    expect(b.sync.digest()).toBe(a.sync.digest())
    // One empty version list closes a's part of the exchange.
    expect(versions).toEqual([0])
    expect(b.sync.counters['out.q'] ?? 0).toBe(0)
    expect(a.sync.counters['ae.entriesSent']).toBe(300)
  })

  it('rate-limits a neighbour that floods anti-entropy messages', async () => {
    const c = clock()
    const b = stub(B, c, { peerMsgBudget: 10 })
    b.neighbours = [A]
    for (let i = 0; i < 30; i++) await b.sync.handle(A, { t: 's', r: new Uint8Array(8).fill(1) })
    expect(b.sync.counters['drop.rateLimited']).toBe(20)
    expect(b.sent).toHaveLength(10)
    c.advance(5_000)
    await b.sync.handle(A, { t: 's', r: new Uint8Array(8).fill(1) })
    expect(b.sent).toHaveLength(11)
  })

  /** Ask `b` for a key as `from`; returns whether `b` answered (a `q` is always answered unless dropped). */
  async function ask(b: Stub, from: string): Promise<boolean> {
    const before = b.sent.length
    await b.sync.handle(from, { t: 'q', k: ['x'] })
    return b.sent.length > before
  }

  it('keeps a peer budget when the peer leaves the neighbours: flapping does not refill it (regression)', async () => {
    const c = clock()
    const b = stub(B, c)
    b.neighbours = [A]
    await b.sync.linkUp?.(A)
    b.sent.length = 0
    let answered = 0
    // 50 rounds of 100 ms (one 5 s window), 6 queries each, while A drops in and out of the
    // neighbour set and its link goes down and up. The old tick forgot A's budget whenever A
    // was not a neighbour, and linkUp reset it: 300 of 300 were answered.
    for (let round = 0; round < 50; round++) {
      if (round % 3 === 0) b.neighbours = []
      else if (round % 3 === 1) await b.sync.linkDown?.(A)
      else {
        b.neighbours = [A]
        await b.sync.linkUp?.(A)
      }
      for (let i = 0; i < 6; i++) if (await ask(b, A)) answered++
      c.advance(99)
      await b.sync.tick(c.now())
    }
    expect(c.now() - T0).toBeLessThan(5_000)
    expect(answered).toBe(64)
    expect(b.sync.counters['drop.rateLimited']).toBe(300 - 64)
    // The window ends: a fresh budget.
    c.advance(5_000)
    await b.sync.tick(c.now())
    expect(await ask(b, A)).toBe(true)
  })

  it('keeps at most MAX_PEER_BUDGETS budgets however many made-up peers send, and frees them when their windows end', async () => {
    const c = clock()
    const b = stub(B, c)
    const n = 3 * MAX_PEER_BUDGETS
    for (let i = 0; i < n; i++) {
      await b.sync.handle(`made-up-${i}`, { t: 'q', k: ['x'] })
      expect(b.sync.size().budgets).toBeLessThanOrEqual(MAX_PEER_BUDGETS)
    }
    expect(b.sync.size().budgets).toBe(MAX_PEER_BUDGETS)
    expect(b.sync.counters['budget.evicted']).toBe(n - MAX_PEER_BUDGETS)
    await b.sync.tick(c.now())
    expect(b.sync.size().budgets).toBe(MAX_PEER_BUDGETS)
    c.advance(5_000)
    await b.sync.tick(c.now())
    expect(b.sync.size().budgets).toBe(0)
  })

  it('eviction does not reset a budget: an evicted peer comes back as spent, a neighbour keeps its own', async () => {
    const c = clock()
    const b = stub(B, c, { peerMsgBudget: 10 })
    b.neighbours = [C]
    // A (not a neighbour) spends its budget; the neighbour C spends 4 of its 10.
    for (let i = 0; i < 10; i++) expect(await ask(b, A)).toBe(true)
    expect(await ask(b, A)).toBe(false)
    for (let i = 0; i < 4; i++) expect(await ask(b, C)).toBe(true)
    // Made-up peers push A out of the map (each spends 1).
    for (let i = 0; i < MAX_PEER_BUDGETS; i++) await b.sync.handle(`made-up-${i}`, { t: 'q', k: ['x'] })
    expect(b.sync.counters['budget.evicted']).toBeGreaterThan(0)
    c.advance(1_000)
    await b.sync.tick(c.now())
    // A's budget was evicted, but A starts from the most spent evicted window: still limited.
    expect(await ask(b, A)).toBe(false)
    // C, a neighbour, was not evicted: exactly its 6 left.
    let cAnswered = 0
    for (let i = 0; i < 10; i++) if (await ask(b, C)) cAnswered++
    expect(cAnswered).toBe(6)
    // Once the window ends, A is served again.
    c.advance(4_000)
    await b.sync.tick(c.now())
    expect(await ask(b, A)).toBe(true)
  })
})
