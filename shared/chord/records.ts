/**
 * Signed DHT records and provider records: what is signed, how it is
 * checked, and which of two versions wins.
 *
 * A record's signature covers a domain tag, the key, the tombstone flag, the
 * HLC, the author id and the encoded value, so no relay or storing node can
 * alter any of them or move a signature to another key. The value travels as
 * its MessagePack bytes (`vb`), so size limits and signatures apply to
 * exactly the bytes stored, and nobody re-encodes a value to check it.
 * Provider records sign (key, provider, issue time, lifetime).
 */
import { compareVersion, type Hlc } from '../hlc.ts'
import type { Keyring } from '../identity/keys.ts'
import type { Value } from '../types.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import type { ProviderWire, RecordWire } from './messages.ts'

const RECORD_DOMAIN = 'weft/chord/record/1'
const PROVIDER_DOMAIN = 'weft/chord/provider/1'

/** MessagePack's encoding of null: the only value bytes decodeValue may turn into null. */
const MSGPACK_NIL = 0xc0

export function recordSigningBytes(r: Pick<RecordWire, 'k' | 'vb' | 'd' | 'a' | 'h'>): Uint8Array {
  return encodeValue([RECORD_DOMAIN, r.k, r.d, r.h[0], r.h[1], r.a, r.vb])
}

export function providerSigningBytes(p: Pick<ProviderWire, 'k' | 'p' | 't' | 'ttl'>): Uint8Array {
  return encodeValue([PROVIDER_DOMAIN, p.k, p.p, p.t, p.ttl])
}

/** Sign a record by `author` (whose keyring is `keys`); `vb` is encodeValue(value), or empty for a tombstone. */
export async function signRecord(
  keys: Keyring,
  author: string,
  k: string,
  vb: Uint8Array,
  deleted: boolean,
  h: Hlc,
): Promise<RecordWire> {
  const body = {
    k,
    vb: deleted ? new Uint8Array(0) : vb,
    d: deleted,
    a: author,
    h: [h[0], h[1]] as [number, number],
  }
  return { ...body, pk: keys.publicKey, s: await keys.sign(recordSigningBytes(body)) }
}

export async function signProvider(
  keys: Keyring,
  provider: string,
  k: string,
  t: number,
  ttl: number,
): Promise<ProviderWire> {
  const body = { k, p: provider, t, ttl }
  return { ...body, pk: keys.publicKey, s: await keys.sign(providerSigningBytes(body)) }
}

export interface RecordLimits {
  maxValueBytes: number
  maxKeyBytes: number
}

/** Why a record was refused; each is a counter `drop.record.<reason>`. */
export type RecordFault = 'valueTooLarge' | 'keyTooLarge' | 'badValue' | 'author' | 'signature'

const encoder = new TextEncoder()

export function keyBytes(k: string): number {
  return encoder.encode(k).length
}

/** Check a parsed record: sizes, value bytes, author = idOf(pk), signature. Never throws. */
export async function checkRecord(
  keys: Keyring,
  rec: RecordWire,
  limits: RecordLimits,
): Promise<RecordFault | null> {
  try {
    if (rec.vb.length > limits.maxValueBytes) return 'valueTooLarge'
    if (keyBytes(rec.k) > limits.maxKeyBytes) return 'keyTooLarge'
    if (!rec.d && decodeRecordValue(rec) === undefined) return 'badValue'
    if ((await keys.idOf(rec.pk)) !== rec.a) return 'author'
    if (!(await keys.verify(rec.pk, recordSigningBytes(rec), rec.s))) return 'signature'
    return null
  } catch {
    return 'signature'
  }
}

/** Why a provider record was refused; each is a counter `drop.provider.<reason>`. */
export type ProviderFault = 'keyTooLarge' | 'ttl' | 'expired' | 'future' | 'author' | 'signature'

export async function checkProvider(
  keys: Keyring,
  p: ProviderWire,
  limits: { maxKeyBytes: number; maxTtlMs: number; maxSkewMs: number },
  now: number,
): Promise<ProviderFault | null> {
  try {
    if (keyBytes(p.k) > limits.maxKeyBytes) return 'keyTooLarge'
    if (p.ttl <= 0 || p.ttl > limits.maxTtlMs) return 'ttl'
    if (p.t > now + limits.maxSkewMs) return 'future'
    if (p.t + p.ttl <= now) return 'expired'
    if ((await keys.idOf(p.pk)) !== p.p) return 'author'
    if (!(await keys.verify(p.pk, providerSigningBytes(p), p.s))) return 'signature'
    return null
  } catch {
    return 'signature'
  }
}

/** The record's value, or undefined when its bytes do not decode (or it is a tombstone). */
export function decodeRecordValue(rec: RecordWire): Value | undefined {
  if (rec.d) return undefined
  const v = decodeValue(rec.vb)
  if (v === null && !(rec.vb.length === 1 && rec.vb[0] === MSGPACK_NIL)) return undefined
  return v
}

/** Last writer wins: HLC, then author id. Positive when a is newer than b. */
export function compareRecords(a: Pick<RecordWire, 'h' | 'a'>, b: Pick<RecordWire, 'h' | 'a'>): number {
  return compareVersion({ hlc: a.h, author: a.a }, { hlc: b.h, author: b.a })
}

/** Is the digest (wall, counter, author) newer than the record held? */
export function digestNewer(
  held: RecordWire | undefined,
  wall: number,
  counter: number,
  author: string,
): boolean {
  return !held || compareRecords({ h: [wall, counter], a: author }, held) > 0
}
