import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { id160, sha256, toHex, utf8 } from '../bytes.ts'
import { generateIdentity } from '../identity/keys.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { encodeValue } from '../wire/value.ts'
import type { ProviderWire, RecordWire } from './messages.ts'
import {
  checkProvider,
  checkRecord,
  compareRecords,
  decodeRecordValue,
  digestNewer,
  recordSlot,
  signProvider,
  signRecord,
} from './records.ts'
import { keyPositionSync, sha256Sync } from './sha256-sync.ts'
import { createRecordStore, type StoreLimits } from './store.ts'

const limits = { maxValueBytes: 262_144, maxKeyBytes: 1024, maxSkewMs: 60_000 }
const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const NOW = 1_000_000
const v = (seq: number, time = NOW) => ({ seq, time })

describe('records', () => {
  it('a record signed with a real Ed25519 identity verifies; every altered field is refused', async () => {
    const me = await generateIdentity({ puzzleBits: 0 })
    const rec = await signRecord(me, me.id, 'greeting', encodeValue({ hi: 'there' }), false, v(7))
    expect(await checkRecord(me, rec, limits, NOW)).toBeNull()
    expect(decodeRecordValue(rec)).toEqual({ hi: 'there' })
    const forged: [string, RecordWire][] = [
      ['value', { ...rec, vb: encodeValue({ hi: 'thief' }) }],
      ['key', { ...rec, k: 'other' }],
      ['sequence', { ...rec, q: 8 }],
      ['time', { ...rec, t: NOW + 1 }],
      ['tombstone', { ...rec, d: true, vb: new Uint8Array(0) }],
      ['signature', { ...rec, s: rec.s.map((b, i) => (i === 0 ? b ^ 1 : b)) }],
    ]
    for (const [what, f] of forged) expect(await checkRecord(me, f, limits, NOW), what).toBe('signature')
    // Someone else's key with our id as author, or our key claimed by another author.
    const other = await generateIdentity({ puzzleBits: 0 })
    expect(await checkRecord(me, { ...rec, pk: other.publicKey }, limits, NOW)).toBe('author')
    expect(await checkRecord(me, { ...rec, a: other.id }, limits, NOW)).toBe('author')
    // Re-signed by the other identity into our namespace: author check fails.
    const stolen = await signRecord(other, me.id, 'greeting', rec.vb, false, v(8))
    expect(await checkRecord(me, stolen, limits, NOW)).toBe('author')
  })

  it('refuses oversized values and keys, value bytes that do not decode, and times beyond the skew', async () => {
    const k = createFakeKeyring(A)
    const big = await signRecord(k, A, 'k', encodeValue(new Uint8Array(300_000)), false, v(1))
    expect(await checkRecord(k, big, limits, NOW)).toBe('valueTooLarge')
    const longKey = await signRecord(k, A, 'k'.repeat(1025), encodeValue(1), false, v(1))
    expect(await checkRecord(k, longKey, limits, NOW)).toBe('keyTooLarge')
    const junk = await signRecord(k, A, 'k', new Uint8Array([0xc1]), false, v(1))
    expect(await checkRecord(k, junk, limits, NOW)).toBe('badValue')
    // null is a value: MessagePack's nil decodes to it.
    const nul = await signRecord(k, A, 'k', encodeValue(null), false, v(1))
    expect(await checkRecord(k, nul, limits, NOW)).toBeNull()
    expect(decodeRecordValue(nul)).toBeNull()
    const tomb = await signRecord(k, A, 'k', encodeValue(5), true, v(2))
    expect(tomb.vb.length).toBe(0)
    expect(await checkRecord(k, tomb, limits, NOW)).toBeNull()
    expect(decodeRecordValue(tomb)).toBeUndefined()
    // Signed up to the skew ahead of our clock: accepted; one millisecond more: refused.
    const edge = await signRecord(k, A, 'k', encodeValue(1), false, v(1, NOW + 60_000))
    expect(await checkRecord(k, edge, limits, NOW)).toBeNull()
    const ahead = await signRecord(k, A, 'k', encodeValue(1), false, v(1, NOW + 60_001))
    expect(await checkRecord(k, ahead, limits, NOW)).toBe('future')
  })

  it('the highest sequence wins, then the later time, then the greater signature', () => {
    const r = (q: number, t: number, s0 = 0) => ({ q, t, s: new Uint8Array(64).fill(s0) })
    expect(compareRecords(r(2, 0), r(1, 9))).toBeGreaterThan(0)
    expect(compareRecords(r(1, 9), r(2, 0))).toBeLessThan(0)
    expect(compareRecords(r(1, 2), r(1, 1))).toBeGreaterThan(0)
    expect(compareRecords(r(1, 1, 5), r(1, 1, 4))).toBeGreaterThan(0)
    expect(compareRecords(r(1, 1, 4), r(1, 1, 4))).toBe(0)
    expect(digestNewer(undefined, 0, 0)).toBe(true)
  })

  it('an author’s records live at id160(author ":" key): one key, two authors, two places', () => {
    expect(recordSlot(A, 'k')).toBe(`${A}:k`)
    expect(keyPositionSync(recordSlot(A, 'k'))).not.toBe(keyPositionSync(recordSlot(B, 'k')))
  })

  it('provider records: signature, author, lifetime and clock checks', async () => {
    const k = createFakeKeyring(B)
    const lim = { maxKeyBytes: 1024, maxTtlMs: 60_000, maxSkewMs: 1000 }
    const p = await signProvider(k, B, 'svc', 10_000, 5000)
    expect(await checkProvider(k, p, lim, 12_000)).toBeNull()
    expect(await checkProvider(k, p, lim, 15_000)).toBe('expired')
    expect(await checkProvider(k, { ...p, t: 20_000 }, lim, 12_000)).toBe('future')
    expect(await checkProvider(k, { ...p, ttl: 120_000 }, lim, 12_000)).toBe('ttl')
    expect(await checkProvider(k, { ...p, ttl: 6000 }, lim, 12_000)).toBe('signature')
    expect(await checkProvider(k, { ...p, p: A }, lim, 12_000)).toBe('author')
    expect(await checkProvider(k, { ...p, k: 'other' }, lim, 12_000)).toBe('signature')
  })
})

describe('record store', () => {
  const L: StoreLimits = {
    maxRecords: 5,
    maxStoreBytes: 1_000_000,
    perAuthorQuota: 3,
    perAuthorBytes: 1_000_000,
    maxProviderRecords: 4,
    perProviderQuota: 2,
    maxProvidersPerKey: 2,
  }
  const k = createFakeKeyring(A)
  const kb = createFakeKeyring(B)
  const mk = (keys = k, author = A, key = 'x', seq = 1, value: unknown = 1) =>
    signRecord(keys, author, key, encodeValue(value as number), false, v(seq))

  it('keeps the highest sequence per author and key; authors never share a record', async () => {
    const s = createRecordStore(L)
    expect(s.putRecord(await mk(k, A, 'x', 1), 'p', 0)).toBe('new')
    expect(s.putRecord(await mk(k, A, 'x', 1), 'p', 0)).toBe('same')
    expect(s.putRecord(await mk(k, A, 'x', 2, 2), 'p', 0)).toBe('updated')
    expect(s.putRecord(await mk(k, A, 'x', 1, 3), 'p', 0)).toBe('stale')
    expect(decodeRecordValue(s.getRecord(A, 'x')?.rec as RecordWire)).toBe(2)
    // Another author's record of the same key is another record: A's stays.
    expect(s.putRecord(await mk(kb, B, 'x', 9, 4), 'p', 0)).toBe('new')
    expect(s.recordCount).toBe(2)
    expect(decodeRecordValue(s.getRecord(A, 'x')?.rec as RecordWire)).toBe(2)
    expect(decodeRecordValue(s.getRecord(B, 'x')?.rec as RecordWire)).toBe(4)
    expect(s.authorUsage(A).records).toBe(1)
  })

  it('enforces per-author quotas in records and in bytes, and the totals', async () => {
    const s = createRecordStore(L)
    for (const key of ['a', 'b', 'c']) expect(s.putRecord(await mk(k, A, key), 'p', 0)).toBe('new')
    expect(s.putRecord(await mk(k, A, 'd'), 'p', 0)).toBe('quota')
    // An update of a key the author already has is not a new record.
    expect(s.putRecord(await mk(k, A, 'a', 5), 'p', 0)).toBe('updated')
    for (const key of ['e', 'f']) expect(s.putRecord(await mk(kb, B, key), 'p', 0)).toBe('new')
    expect(s.putRecord(await mk(kb, B, 'g'), 'p', 0)).toBe('full')
    s.deleteRecord(A, 'a')
    expect(s.putRecord(await mk(kb, B, 'g'), 'p', 0)).toBe('new')
    const tiny = createRecordStore({ ...L, maxStoreBytes: 300 })
    expect(tiny.putRecord(await mk(k, A, 'a'), 'p', 0)).toBe('new')
    expect(tiny.putRecord(await mk(kb, B, 'b'), 'p', 0)).toBe('full')
    expect(tiny.bytes).toBeLessThanOrEqual(300)
    // Bytes per author: 10 KB each, 25 KB allowed: two fit, the third is over quota, B still fits.
    const bytesCapped = createRecordStore({ ...L, perAuthorQuota: 100, perAuthorBytes: 25_000 })
    const big = (keys: typeof k, a: string, key: string, seq = 1) =>
      signRecord(keys, a, key, encodeValue(new Uint8Array(10_000)), false, v(seq))
    expect(bytesCapped.putRecord(await big(k, A, 'a'), 'p', 0)).toBe('new')
    expect(bytesCapped.putRecord(await big(k, A, 'b'), 'p', 0)).toBe('new')
    expect(bytesCapped.putRecord(await big(k, A, 'c'), 'p', 0)).toBe('quota')
    expect(bytesCapped.authorUsage(A).bytes).toBeLessThanOrEqual(25_000)
    // Replacing one of them with a value of the same size fits: the old one's bytes are freed.
    expect(bytesCapped.putRecord(await big(k, A, 'a', 2), 'p', 0)).toBe('updated')
    expect(bytesCapped.putRecord(await big(kb, B, 'a'), 'p', 0)).toBe('new')
  })

  it('a full store gives a lighter author room: the heaviest author loses its oldest records, down to a fair share', async () => {
    const C = '3'.repeat(40)
    const kc = createFakeKeyring(C)
    const s = createRecordStore(L)
    // A fills its quota (3), B two more: the store is full (5 records).
    for (const key of ['a', 'b', 'c']) expect(s.putRecord(await mk(k, A, key), 'p', 0)).toBe('new')
    for (const key of ['e', 'f']) expect(s.putRecord(await mk(kb, B, key), 'p', 0)).toBe('new')
    // C, holding nothing, gets a place: A's oldest record gives way.
    expect(s.putRecord(await mk(kc, C, 'x'), 'p', 0)).toBe('new')
    expect(s.evicted).toBe(1)
    expect(s.getRecord(A, 'a')).toBeUndefined()
    expect(s.getRecord(A, 'b')).toBeDefined()
    expect(s.recordCount).toBe(5)
    // Now A, B and C would hold two each: nobody holds more than C would, so C's next is refused.
    expect(s.putRecord(await mk(kc, C, 'y'), 'p', 0)).toBe('full')
    // And an author never evicts itself, nor one no heavier than it would be.
    expect(s.putRecord(await mk(kb, B, 'g'), 'p', 0)).toBe('full')
    expect(s.evicted).toBe(1)
    expect(s.authorUsage(A)).toEqual({ records: 2, bytes: s.getRecord(A, 'b')!.size * 2 })
  })

  it('provider records: newest wins, quotas, per-key bound keeps the live ones, expiry', async () => {
    const s = createRecordStore(L)
    const p = (provider: string, key: string, t: number, ttl = 1000): ProviderWire => ({
      k: key,
      p: provider,
      pk: new Uint8Array(32),
      t,
      ttl,
      s: new Uint8Array(64),
    })
    expect(s.putProvider(p(A, 'svc', 10), 'p', 0)).toBe('new')
    expect(s.putProvider(p(A, 'svc', 10), 'p', 0)).toBe('same')
    expect(s.putProvider(p(A, 'svc', 5), 'p', 0)).toBe('stale')
    expect(s.putProvider(p(A, 'svc', 20), 'p', 0)).toBe('updated')
    expect(s.putProvider(p(A, 'svc2', 0), 'p', 0)).toBe('new')
    expect(s.putProvider(p(A, 'svc3', 0), 'p', 0)).toBe('quota')
    const C = 'c'.repeat(40)
    expect(s.putProvider(p(B, 'svc', 0, 100), 'p', 0)).toBe('new')
    // svc holds A (expires 1020) and B (expires 100): C is refused while both live, and takes B's place once B expired.
    expect(s.putProvider(p(C, 'svc', 0, 500), 'p', 0)).toBe('full')
    expect(s.putProvider(p(C, 'svc', 0, 500), 'p', 100)).toBe('new')
    expect(s.providersOf('svc', 0).map((x) => x.p)).toEqual([A, C])
    expect(s.providersOf('svc', 600).map((x) => x.p)).toEqual([A])
    // At 600 only C's record (0 + 500) has expired; B was evicted already.
    expect(s.gc(600, 1000)).toBe(1)
    expect(s.providerCount).toBe(2)
    // Provider records count in the node's bytes too.
    expect(s.bytes).toBeGreaterThan(0)
    expect(s.gc(5000, 1000)).toBe(2)
    expect(s.providerCount).toBe(0)
    expect(s.bytes).toBe(0)
  })

  it('a full key keeps its live providers: records with longer lifetimes from new identities evict none (provider flood)', async () => {
    const s = createRecordStore({
      ...L,
      maxProviderRecords: 1000,
      perProviderQuota: 10,
      maxProvidersPerKey: 4,
    })
    const p = (provider: string, t: number, ttl: number): ProviderWire => ({
      k: 'svc',
      p: provider,
      pk: new Uint8Array(32),
      t,
      ttl,
      s: new Uint8Array(64),
    })
    const now = 1_000_000
    // Two honest providers, 10 minutes each, signed a moment ago.
    expect(s.putProvider(p(A, now - 1000, 600_000), 'p', now)).toBe('new')
    expect(s.putProvider(p(B, now - 2000, 600_000), 'p', now)).toBe('new')
    // Throw-away identities sign for a day, dated at the edge of the skew.
    const sybils = Array.from({ length: 10 }, (_, i) => i.toString(16).padStart(40, 'e'))
    for (const x of sybils) s.putProvider(p(x, now + 59_000, 86_400_000), 'p', now)
    const held = s.providersOf('svc', now).map((x) => x.p)
    expect(held).toContain(A)
    expect(held).toContain(B)
    expect(held).toHaveLength(4)
    // The honest ones refresh: updates of their own records, never refused.
    expect(s.putProvider(p(A, now + 200_000, 600_000), 'p', now + 200_000)).toBe('updated')
    // A record that has expired gives its place to a newcomer.
    expect(s.putProvider(p('f'.repeat(40), now + 700_000, 600_000), 'p', now + 700_000)).toBe('new')
    expect(s.providersOf('svc', now + 700_000).map((x) => x.p)).not.toContain(B)
  })

  it('drops tombstones after their time to live', async () => {
    const s = createRecordStore(L)
    s.putRecord(await signRecord(k, A, 'gone', new Uint8Array(0), true, v(1, 100)), 'p', 0)
    s.putRecord(await signRecord(k, A, 'kept', encodeValue(1), false, v(1, 100)), 'p', 0)
    expect(s.gc(150, 100)).toBe(0)
    expect(s.gc(200, 100)).toBe(1)
    expect(s.getRecord(A, 'gone')).toBeUndefined()
    expect(s.getRecord(A, 'kept')).toBeDefined()
  })
})

describe('synchronous SHA-256 (simulator key positions)', () => {
  it('matches WebCrypto, and positions match id160', async () => {
    expect(toHex(sha256Sync(new Uint8Array(0)))).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    )
    expect(toHex(sha256Sync(utf8('abc')))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    )
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (b) => {
        expect(toHex(sha256Sync(b))).toBe(toHex(await sha256(b)))
      }),
      { numRuns: 200 },
    )
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 80 }), async (key) => {
        expect(keyPositionSync(key)).toBe(await id160(utf8(key)))
      }),
      { numRuns: 100 },
    )
  })
})
