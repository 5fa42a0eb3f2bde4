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
  signProvider,
  signRecord,
} from './records.ts'
import { keyPositionSync, sha256Sync } from './sha256-sync.ts'
import { createRecordStore, type StoreLimits } from './store.ts'

const limits = { maxValueBytes: 262_144, maxKeyBytes: 1024 }
const A = 'a'.repeat(40)
const B = 'b'.repeat(40)

describe('records', () => {
  it('a record signed with a real Ed25519 identity verifies; every altered field is refused', async () => {
    const me = await generateIdentity()
    const rec = await signRecord(me, me.id, 'greeting', encodeValue({ hi: 'there' }), false, [1000, 0])
    expect(await checkRecord(me, rec, limits)).toBeNull()
    expect(decodeRecordValue(rec)).toEqual({ hi: 'there' })
    const forged: [string, RecordWire][] = [
      ['value', { ...rec, vb: encodeValue({ hi: 'thief' }) }],
      ['key', { ...rec, k: 'other' }],
      ['hlc', { ...rec, h: [1001, 0] }],
      ['tombstone', { ...rec, d: true, vb: new Uint8Array(0) }],
      ['signature', { ...rec, s: rec.s.map((b, i) => (i === 0 ? b ^ 1 : b)) }],
    ]
    for (const [what, f] of forged) expect(await checkRecord(me, f, limits), what).toBe('signature')
    // Someone else's key with our id as author, or our key claimed by another author.
    const other = await generateIdentity()
    expect(await checkRecord(me, { ...rec, pk: other.publicKey }, limits)).toBe('author')
    expect(await checkRecord(me, { ...rec, a: other.id }, limits)).toBe('author')
    // Re-signed by the other identity under our name: author check fails.
    const stolen = await signRecord(other, me.id, 'greeting', rec.vb, false, [1000, 0])
    expect(await checkRecord(me, stolen, limits)).toBe('author')
  })

  it('refuses oversized values and keys, and value bytes that do not decode', async () => {
    const k = createFakeKeyring(A)
    const big = await signRecord(k, A, 'k', encodeValue(new Uint8Array(300_000)), false, [1, 0])
    expect(await checkRecord(k, big, limits)).toBe('valueTooLarge')
    const longKey = await signRecord(k, A, 'k'.repeat(1025), encodeValue(1), false, [1, 0])
    expect(await checkRecord(k, longKey, limits)).toBe('keyTooLarge')
    const junk = await signRecord(k, A, 'k', new Uint8Array([0xc1]), false, [1, 0])
    expect(await checkRecord(k, junk, limits)).toBe('badValue')
    // null is a value: MessagePack's nil decodes to it.
    const nul = await signRecord(k, A, 'k', encodeValue(null), false, [1, 0])
    expect(await checkRecord(k, nul, limits)).toBeNull()
    expect(decodeRecordValue(nul)).toBeNull()
    const tomb = await signRecord(k, A, 'k', encodeValue(5), true, [2, 0])
    expect(tomb.vb.length).toBe(0)
    expect(await checkRecord(k, tomb, limits)).toBeNull()
    expect(decodeRecordValue(tomb)).toBeUndefined()
  })

  it('last writer wins by HLC, then author id', () => {
    expect(compareRecords({ h: [2, 0], a: A }, { h: [1, 9], a: B })).toBeGreaterThan(0)
    expect(compareRecords({ h: [1, 1], a: A }, { h: [1, 0], a: B })).toBeGreaterThan(0)
    expect(compareRecords({ h: [1, 0], a: B }, { h: [1, 0], a: A })).toBeGreaterThan(0)
    expect(compareRecords({ h: [1, 0], a: A }, { h: [1, 0], a: A })).toBe(0)
    expect(digestNewer(undefined, 0, 0, A)).toBe(true)
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
    maxProviderRecords: 4,
    perProviderQuota: 2,
    maxProvidersPerKey: 2,
  }
  const k = createFakeKeyring(A)
  const kb = createFakeKeyring(B)
  const mk = (keys = k, author = A, key = 'x', h: [number, number] = [1, 0], v = 1) =>
    signRecord(keys, author, key, encodeValue(v), false, h)

  it('keeps the newest version and counts per author', async () => {
    const s = createRecordStore(L)
    expect(s.putRecord(await mk(k, A, 'x', [1, 0]), 'p', 0)).toBe('new')
    expect(s.putRecord(await mk(k, A, 'x', [1, 0]), 'p', 0)).toBe('same')
    expect(s.putRecord(await mk(k, A, 'x', [2, 0], 2), 'p', 0)).toBe('updated')
    expect(s.putRecord(await mk(k, A, 'x', [1, 5], 3), 'p', 0)).toBe('stale')
    expect(decodeRecordValue(s.getRecord('x')?.rec as RecordWire)).toBe(2)
    // Another author overwrites with a newer version; the count moves to it.
    expect(s.putRecord(await mk(kb, B, 'x', [3, 0], 4), 'p', 0)).toBe('updated')
    expect(s.recordCount).toBe(1)
  })

  it('enforces per-author quotas and the total bound', async () => {
    const s = createRecordStore(L)
    for (const key of ['a', 'b', 'c']) expect(s.putRecord(await mk(k, A, key), 'p', 0)).toBe('new')
    expect(s.putRecord(await mk(k, A, 'd'), 'p', 0)).toBe('quota')
    // An update of a key the author already has is not a new record.
    expect(s.putRecord(await mk(k, A, 'a', [5, 0]), 'p', 0)).toBe('updated')
    for (const key of ['e', 'f']) expect(s.putRecord(await mk(kb, B, key), 'p', 0)).toBe('new')
    expect(s.putRecord(await mk(kb, B, 'g'), 'p', 0)).toBe('full')
    s.deleteRecord('a')
    expect(s.putRecord(await mk(kb, B, 'g'), 'p', 0)).toBe('new')
    const tiny = createRecordStore({ ...L, maxStoreBytes: 300 })
    expect(tiny.putRecord(await mk(k, A, 'a', [1, 0], 1), 'p', 0)).toBe('new')
    expect(tiny.putRecord(await mk(k, A, 'b', [1, 0], 1), 'p', 0)).toBe('full')
    expect(tiny.bytes).toBeLessThanOrEqual(300)
  })

  it('provider records: newest wins, quotas, per-key bound keeps the longest-lived, expiry', async () => {
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
    // svc holds A (expires 1020) and B (expires 100): C, expiring at 500, evicts B.
    expect(s.putProvider(p(C, 'svc', 0, 500), 'p', 0)).toBe('new')
    expect(s.providersOf('svc', 0).map((x) => x.p)).toEqual([A, C])
    expect(s.providersOf('svc', 600).map((x) => x.p)).toEqual([A])
    // At 600 only C's record (0 + 500) has expired; B was evicted already.
    expect(s.gc(600, 1000)).toBe(1)
    expect(s.providerCount).toBe(2)
    expect(s.gc(5000, 1000)).toBe(2)
    expect(s.providerCount).toBe(0)
  })

  it('drops tombstones after their time to live', async () => {
    const s = createRecordStore(L)
    s.putRecord(await signRecord(k, A, 'gone', new Uint8Array(0), true, [100, 0]), 'p', 0)
    s.putRecord(await mk(k, A, 'kept', [100, 0]), 'p', 0)
    expect(s.gc(150, 100)).toBe(0)
    expect(s.gc(200, 100)).toBe(1)
    expect(s.getRecord('gone')).toBeUndefined()
    expect(s.getRecord('kept')).toBeDefined()
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
