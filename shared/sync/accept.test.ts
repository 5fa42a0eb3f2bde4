/** Accepting versions (accept.ts): local writes, hostile input, the tombstone horizon, persistence. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { arbValue } from '../../test/arbitraries.ts'
import { A, B, C, clock, craft, deliver, flip, pump, stub, T0 } from '../../test/sync-stub.ts'
import { generateIdentity } from '../identity/keys.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import type { Value } from '../types.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import type { PutMsg, SyncMsg, WireEntry } from './messages.ts'

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
    // Not a number at all is a TypeError, as for any argument of the wrong kind.
    await expect(a.sync.set('l', 1, { leaseMs: '100' as never })).rejects.toThrow(TypeError)
    await expect(a.sync.set('l', 1, { leaseMs: Number.NaN })).rejects.toThrow(TypeError)
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
