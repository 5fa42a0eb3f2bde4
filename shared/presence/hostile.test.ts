/**
 * Attacks on presence, each performed and shown refused or bounded, with
 * the counter that shows it (PROTOCOL-presence.md, Counters).
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { arbValue } from '../../test/arbitraries.ts'
import { A, B, C, clock, craft, D, link, pstub, run, seen, T0 } from '../../test/presence-stub.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { encodeValue } from '../wire/value.ts'

/** A fresh identity's id for the i-th Sybil. */
const sybil = (i: number) => (0x1000_0000 + i).toString(16).padStart(40, '5')

describe('presence under attack', () => {
  it('an oversized state is refused where it is set (ValueTooLargeError) and where it arrives (drop.tooLarge, before decoding)', async () => {
    const c = clock()
    const a = pstub(A, c)
    await expect(a.presence.set(new Uint8Array(2_000))).rejects.toMatchObject({ name: 'ValueTooLargeError' })
    const b = pstub(B, c)
    const x = createFakeKeyring(C)
    // A state just over the limit, and one far over it (its body is refused by size alone).
    for (const size of [1_030, 60_000]) {
      const rec = await craft(x, {
        session: T0,
        seq: size,
        time: T0,
        interval: 10_000,
        state: new Uint8Array(size),
      })
      await b.presence.handleBroadcast(C, rec)
    }
    expect(b.presence.counters['drop.tooLarge']).toBe(2)
    expect(seen(b)).toEqual([B])
    // At the limit exactly, it is taken.
    const state = new Uint8Array(1_024 - 3) // bin16 header: 3 bytes
    expect(encodeValue(state).length).toBe(1_024)
    await b.presence.handleBroadcast(
      C,
      await craft(x, { session: T0, seq: 1, time: T0, interval: 10_000, state }),
    )
    expect(seen(b)).toEqual([B, C])
  })

  it('a Sybil flood of 5,000 identities fills the table to maxNodes and no further (drop.full); a linked node still gets in, in place of the stalest', async () => {
    const c = clock()
    const b = pstub(B, c, { maxNodes: 500 })
    for (let i = 0; i < 5_000; i++) {
      const id = sybil(i)
      await b.presence.handleBroadcast(
        id,
        await craft(createFakeKeyring(id), { session: T0, seq: 1, time: T0, interval: 10_000, state: i }),
      )
      if (i % 100 === 0) c.advance(1)
    }
    expect(b.presence.sizes().nodes).toBe(500)
    expect(b.presence.counters['drop.full']).toBe(4_501)
    const bytesAtCap = b.presence.sizes().recordBytes
    // A node we are linked to is real to us: it takes the place of the one heard from longest ago.
    const a = pstub(A, c)
    link(a, b)
    await a.presence.settled()
    await b.presence.handleBroadcast(A, a.broadcasts[0])
    expect(seen(b)).toContain(A)
    expect(seen(b)).not.toContain(sybil(0))
    expect(b.presence.sizes().nodes).toBe(500)
    expect(b.presence.counters.evicted).toBe(1)
    expect(b.events.at(-2)).toEqual({ id: sybil(0), kind: 'leave', reason: 'evicted' })
    // A second flood changes nothing.
    for (let i = 5_000; i < 5_500; i++) {
      const id = sybil(i)
      await b.presence.handleBroadcast(
        id,
        await craft(createFakeKeyring(id), { session: T0, seq: 1, time: T0, interval: 10_000, state: i }),
      )
    }
    expect(b.presence.sizes().nodes).toBe(500)
    expect(b.presence.sizes().recordBytes).toBeLessThanOrEqual(bytesAtCap + 200)
    // The flood inflates the interval the honest nodes announce with (cost stays bounded), up to the cap.
    expect(b.presence.interval()).toBe(50_000)
  })

  it('a record re-broadcast by another node is refused (drop.originMismatch); our own echo is ignored', async () => {
    const c = clock()
    const a = pstub(A, c)
    const b = pstub(B, c)
    link(a, b)
    await a.presence.settled()
    const rec = a.broadcasts[0]
    await b.presence.handleBroadcast(D, rec)
    expect(b.presence.counters['drop.originMismatch']).toBe(1)
    expect(seen(b)).toEqual([B])
    await a.presence.handleBroadcast(A, rec)
    expect(a.presence.counters.ownRecord).toBe(1)
  })

  it('records dated ahead of the skew (drop.future), older than their ttl plus the skew (drop.stale), or with a session after their time are refused', async () => {
    const c = clock()
    const b = pstub(B, c, { maxSkewMs: 60_000 })
    const x = createFakeKeyring(C)
    const send = async (session: number, time: number, seq: number) =>
      b.presence.handleBroadcast(C, await craft(x, { session, seq, time, interval: 10_000, state: 1 }))
    await send(T0, T0 + 61_000, 1)
    await send(T0 + 61_000, T0 + 61_000, 2)
    expect(b.presence.counters['drop.future']).toBe(2)
    await send(T0 - 100_000, T0 - 92_001, 3) // ttl 32 s + skew 60 s
    expect(b.presence.counters['drop.stale']).toBe(1)
    await send(T0 + 10, T0, 4)
    expect(b.presence.counters['drop.malformed']).toBe(1)
    expect(seen(b)).toEqual([B])
    await send(T0 - 100_000, T0 + 59_000, 5) // within the skew: taken, and its since is no later than now
    expect(b.presence.get().get(C)?.since).toBe(T0 - 100_000)
  })

  it('a node flooding updates is held to its budget: updateBurst, then one per updateGapMs (drop.rate)', async () => {
    const c = clock()
    const b = pstub(B, c, { updateBurst: 8, updateGapMs: 250 })
    const x = createFakeKeyring(C)
    for (let i = 1; i <= 1_000; i++) {
      await b.presence.handleBroadcast(
        C,
        await craft(x, { session: T0, seq: i, time: T0, interval: 10_000, state: i }),
      )
      if (i % 10 === 0) c.advance(100) // 100 updates a second for 10 s
    }
    const taken = b.events.filter((e) => e.id === C).length
    // 8 at once, then 4 a second for 10 s.
    expect(taken).toBeGreaterThanOrEqual(45)
    expect(taken).toBeLessThanOrEqual(50)
    expect(b.presence.counters['drop.rate']).toBe(1_000 - taken)
    // A leave is never held back.
    await b.presence.handleBroadcast(
      C,
      await craft(x, { session: T0, seq: 2_000, time: T0, interval: 10_000 }),
    )
    expect(seen(b)).toEqual([B])
  })

  it('hostile shapes never throw and never change the table (drop.malformed)', async () => {
    const c = clock()
    const b = pstub(B, c)
    const a = pstub(A, c)
    link(a, b)
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.anything(), arbValue), async (v) => {
        await b.presence.handle(A, v as never)
        await b.presence.handleBroadcast(A, v)
        await b.presence.handleBroadcast(A, [v, new Uint8Array(32), new Uint8Array(64)])
      }),
      { numRuns: 300 },
    )
    await b.presence.handle(undefined as never, { t: 'pull' })
    await b.presence.handle(B, { t: 'pull' })
    await b.presence.handleBroadcast(1 as never, a.broadcasts[0])
    expect(seen(b)).toEqual([B])
    expect(b.presence.counters['drop.malformed']).toBeGreaterThan(600)
    await run(c, 1_000, [b])
  })

  it('memory stays bounded under churn: tombstones are capped and expire', async () => {
    const c = clock()
    const b = pstub(B, c, { maxNodes: 100 })
    for (let i = 0; i < 1_000; i++) {
      const id = sybil(i)
      const keys = createFakeKeyring(id)
      await b.presence.handleBroadcast(
        id,
        await craft(keys, { session: T0, seq: 1, time: c.now(), interval: 10_000, state: 1 }),
      )
      await b.presence.handleBroadcast(
        id,
        await craft(keys, { session: T0, seq: 2, time: c.now(), interval: 10_000 }),
      )
    }
    expect(b.presence.sizes()).toMatchObject({ nodes: 1, tombstones: 100 })
    // A tombstone outlives every record it outranks: maxTtl (3 × 300 s + 2 s) + 2 × skew (60 s).
    await run(c, 1_022_000, [b], 1_000)
    expect(b.presence.sizes().tombstones).toBe(100)
    await run(c, 2_000, [b], 1_000)
    expect(b.presence.sizes().tombstones).toBe(0)
  })
})
