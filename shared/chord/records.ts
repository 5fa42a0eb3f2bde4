/**
 * Owned DHT records (BEP 44 mutable items) and provider records: what is
 * signed, how it is checked, and which of two versions wins.
 *
 * A record lives in its author's namespace: it is placed on the ring at
 * id160(utf8(author ":" key)) (`recordSlot`), and only the author's key can
 * sign it. Its signature covers a domain tag, the author id, the key, the
 * sequence number, the signing time, the tombstone flag and the encoded
 * value, so no relay or storing node can alter any of them, move a signature
 * to another key, or write under another author. Replicas keep the highest
 * sequence (then the later time, then the greater signature bytes, so that
 * every replica agrees even on an author's two different records of one
 * sequence). The value travels as its MessagePack bytes (`vb`), so size
 * limits and signatures apply to exactly the bytes stored.
 *
 * Provider records are a multi-writer set: one per (key, provider), each
 * signed by its provider over (key, provider, issue time, lifetime).
 */
import type { Keyring } from '../identity/keys.ts'
import type { Value } from '../types.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import type { ProviderWire, RecordWire } from './messages.ts'

const RECORD_DOMAIN = 'weft/chord/record/2'
const PROVIDER_DOMAIN = 'weft/chord/provider/1'

/** MessagePack's encoding of null: the only value bytes decodeValue may turn into null. */
const MSGPACK_NIL = 0xc0

/**
 * Where an author's record for `key` lives: the string whose id160 is its
 * ring position, and the name it is stored under. The author id has a fixed
 * length (40 hex characters), so no two (author, key) pairs share a slot.
 */
export function recordSlot(author: string, key: string): string {
  return `${author}:${key}`
}

export function recordSigningBytes(r: Pick<RecordWire, 'a' | 'k' | 'q' | 't' | 'd' | 'vb'>): Uint8Array {
  return encodeValue([RECORD_DOMAIN, r.a, r.k, r.q, r.t, r.d, r.vb])
}

export function providerSigningBytes(p: Pick<ProviderWire, 'k' | 'p' | 't' | 'ttl'>): Uint8Array {
  return encodeValue([PROVIDER_DOMAIN, p.k, p.p, p.t, p.ttl])
}

export interface RecordVersion {
  /** Sequence number: the author's, increasing with every write of the key. */
  seq: number
  /** When the author signed it (ms since the epoch, the author's clock). */
  time: number
}

/** Sign a record by `author` (whose keyring is `keys`); `vb` is encodeValue(value), or ignored for a tombstone. */
export async function signRecord(
  keys: Keyring,
  author: string,
  k: string,
  vb: Uint8Array,
  deleted: boolean,
  version: RecordVersion,
): Promise<RecordWire> {
  const body = {
    k,
    vb: deleted ? new Uint8Array(0) : vb,
    d: deleted,
    a: author,
    q: version.seq,
    t: version.time,
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
  /** A record signed more than this far ahead of our clock is refused (`future`). */
  maxSkewMs: number
}

/** Why a record was refused; each is a counter `drop.record.<reason>`. */
export type RecordFault = 'valueTooLarge' | 'keyTooLarge' | 'badValue' | 'future' | 'author' | 'signature'

const encoder = new TextEncoder()

export function keyBytes(k: string): number {
  return encoder.encode(k).length
}

/**
 * Check a parsed record: sizes, value bytes, signing time at most
 * `maxSkewMs` ahead of `now`, author = idOf(pk), signature. Never throws.
 */
export async function checkRecord(
  keys: Keyring,
  rec: RecordWire,
  limits: RecordLimits,
  now: number,
): Promise<RecordFault | null> {
  try {
    if (rec.vb.length > limits.maxValueBytes) return 'valueTooLarge'
    if (keyBytes(rec.k) > limits.maxKeyBytes) return 'keyTooLarge'
    if (!rec.d && decodeRecordValue(rec) === undefined) return 'badValue'
    if (rec.t > now + limits.maxSkewMs) return 'future'
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

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number)
  return a.length - b.length
}

/**
 * Two versions of one author's record: the higher sequence wins, then the
 * later signing time, then the greater signature (an author who signed two
 * records with one sequence and time still gets one winner everywhere).
 * Positive when a is newer than b, 0 when they are the same record.
 */
export function compareRecords(
  a: Pick<RecordWire, 'q' | 't' | 's'>,
  b: Pick<RecordWire, 'q' | 't' | 's'>,
): number {
  if (a.q !== b.q) return a.q < b.q ? -1 : 1
  if (a.t !== b.t) return a.t < b.t ? -1 : 1
  return Math.sign(compareBytes(a.s, b.s))
}

/** Is the digest (sequence, time) newer than the record held? (Equal digests: we hold it.) */
export function digestNewer(held: RecordWire | undefined, seq: number, time: number): boolean {
  return !held || seq > held.q || (seq === held.q && time > held.t)
}
