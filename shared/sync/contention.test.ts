/** Lease contention and claims (merge.ts): concurrent acquisitions settle on one owner; back-dated ones take nothing. */
import { describe, expect, it } from 'vitest'
import { A, B, C, clock, craft, deliver, pump, type Stub, stub, T0 } from '../../test/sync-stub.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import type { PutMsg, SyncMsg } from './messages.ts'

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
