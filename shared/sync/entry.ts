/**
 * One entry of the sync table, its signed bytes and its total order.
 *
 * An entry travels as `[body, publicKey, signature]` (PROTOCOL-sync.md). The
 * body is the MessagePack array the author signs:
 *
 *   [key, wall, counter, lease]           a tombstone (a delete)
 *   [key, wall, counter, lease, value]    a value
 *   lease = leaseMs | [leaseMs, heldMs]
 *
 * `wall`/`counter` are the author's HLC timestamp; `leaseMs` is 0 (no lease)
 * or the lease length, so the lease expires at `wall + leaseMs` in the
 * author's HLC wall time. `heldMs` says how long before this write the
 * author took the lease it renews or keeps: the lease's acquisition time is
 * `since = wall − heldMs` (merge.ts, Contention). A fresh acquisition, or an
 * entry without a lease, has `since = wall` and writes the plain number; the
 * pair is written only when `heldMs > 0` (and then `leaseMs > 0`), so every
 * entry has one encoding, and bodies written before `heldMs` existed keep
 * their meaning (each was then a fresh acquisition). The author id is not
 * sent: it is `idOf(publicKey)`.
 * The signature covers `SIGN_DOMAIN || body`, the exact bytes, so no relay
 * can alter an entry and a sync signature is never valid as another
 * protocol's.
 *
 * A value's encoding is appended to the prefix `[key, wall, counter,
 * lease]` (0x94 becomes 0x95), so the value's size is exactly `body.length
 * - prefix.length`, and a receiver checks the prefix by encoding it again.
 */
import { bytesEqual, concatBytes, utf8 } from '../bytes.ts'
import { compareVersion, type Hlc, isHlc } from '../hlc.ts'
import type { Value } from '../types.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'

/** Prefix of every signed body: `weft/sync/1` and a newline. */
export const SIGN_DOMAIN = utf8('weft/sync/1\n')
/** Bytes of the fingerprint: the first 64 bits of the signature. */
export const FINGERPRINT_BYTES = 8
/** Bucket count of the anti-entropy digest (a protocol constant: both ends must agree). */
export const BUCKETS = 64
/** Bytes a stored entry costs beyond its body (public key and signature). */
export const ENTRY_OVERHEAD_BYTES = 96

const FIXARRAY_5 = 0x95

export interface Entry {
  readonly key: string
  /** The author's node id, derived from `publicKey`. */
  readonly author: string
  readonly hlc: Hlc
  /** 0, or the lease length from `hlc[0]`. */
  readonly leaseMs: number
  /** Lease expiry in the author's HLC wall time (`hlc[0] + leaseMs`); undefined without a lease. */
  readonly expires: number | undefined
  /** 0, or how long the author had held the lease when it wrote this (leased entries only). */
  readonly heldMs: number
  /** When the author took the lease this entry carries (`hlc[0] − heldMs`); `hlc[0]` without a lease. */
  readonly since: number
  /**
   * `since` as this replica credits it (merge.ts, Claims): never earlier than
   * its first sight here minus `claimSkewMs`. Local, never sent.
   */
  readonly claim: number
  readonly tombstone: boolean
  /** The signed bytes. */
  readonly body: Uint8Array
  /** Where the value's encoding starts in `body` (equals body.length for a tombstone). */
  readonly valueOffset: number
  readonly publicKey: Uint8Array
  readonly sig: Uint8Array
  /** The fingerprint as two 32-bit halves; XORed into the bucket hashes. */
  readonly fp0: number
  readonly fp1: number
  readonly bucket: number
  /** Bytes charged to the table and the author's quota. */
  readonly size: number
}

/** The fields of a body, checked, before its signature is. */
export interface ParsedBody {
  key: string
  hlc: Hlc
  leaseMs: number
  /** 0 unless leaseMs > 0. */
  heldMs: number
  tombstone: boolean
  valueOffset: number
}

export interface BodyLimits {
  maxKeyBytes: number
  maxValueBytes: number
  maxLeaseMs: number
}

/** The `lease` field: the plain length, or `[leaseMs, heldMs]` when the lease was taken before this write. */
function leaseField(leaseMs: number, heldMs: number): Value {
  return heldMs > 0 ? [leaseMs, heldMs] : leaseMs
}

/**
 * Build the signed body. `valueBytes` is `encodeValue(value)`, or undefined
 * for a tombstone; `heldMs` (leased entries only) is `wall − since`.
 */
export function encodeBody(
  key: string,
  hlc: Hlc,
  leaseMs: number,
  valueBytes?: Uint8Array,
  heldMs = 0,
): Uint8Array {
  const prefix = encodeValue([key, hlc[0], hlc[1], leaseField(leaseMs, heldMs)])
  if (valueBytes === undefined) return prefix
  const out = concatBytes(prefix, valueBytes)
  out[0] = FIXARRAY_5
  return out
}

/**
 * Check a body: MessagePack of exactly the grammar above, key and value
 * within limits, the prefix encoded as `encodeBody` would. Returns the
 * fields, or the reason to drop it. Never throws.
 */
export function parseBody(body: Uint8Array, limits: BodyLimits): ParsedBody | 'malformed' | 'tooLarge' {
  if (!(body instanceof Uint8Array) || body.length < 5) return 'malformed'
  const v = decodeValue(body)
  if (!Array.isArray(v) || (v.length !== 4 && v.length !== 5)) return 'malformed'
  const [key, wall, counter, lease] = v
  if (typeof key !== 'string') return 'malformed'
  const hlc = [wall, counter]
  if (!isHlc(hlc)) return 'malformed'
  let leaseMs: unknown = lease
  let heldMs: unknown = 0
  if (Array.isArray(lease)) {
    if (lease.length !== 2) return 'malformed'
    ;[leaseMs, heldMs] = lease
    // The pair only for a lease taken before this write.
    if (!isUint(heldMs) || heldMs === 0 || heldMs > hlc[0] || leaseMs === 0) return 'malformed'
  }
  if (!isUint(leaseMs) || leaseMs > limits.maxLeaseMs) return 'malformed'
  if (utf8(key).length > limits.maxKeyBytes) return 'tooLarge'
  let prefix: Uint8Array
  try {
    prefix = encodeValue([key, hlc[0], hlc[1], leaseField(leaseMs, heldMs as number)])
  } catch {
    return 'malformed'
  }
  const tombstone = v.length === 4
  if (tombstone) {
    if (!bytesEqual(prefix, body)) return 'malformed'
  } else {
    if (body[0] !== FIXARRAY_5 || body.length <= prefix.length) return 'malformed'
    if (!bytesEqual(prefix.subarray(1), body.subarray(1, prefix.length))) return 'malformed'
    if (body.length - prefix.length > limits.maxValueBytes) return 'tooLarge'
  }
  return {
    key,
    hlc: [hlc[0], hlc[1]],
    leaseMs,
    heldMs: heldMs as number,
    tombstone,
    valueOffset: prefix.length,
  }
}

function isUint(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
}

/** The bytes an author signs for `body`. */
export function signedBytes(body: Uint8Array): Uint8Array {
  return concatBytes(SIGN_DOMAIN, body)
}

/**
 * Assemble an entry from a checked body and its (already verified) key and
 * signature. `claim` is the acquisition time this replica credits it with
 * (default: its `since`, full credit).
 */
export function makeEntry(
  p: ParsedBody,
  author: string,
  body: Uint8Array,
  publicKey: Uint8Array,
  sig: Uint8Array,
  claim = p.hlc[0] - p.heldMs,
): Entry {
  return {
    key: p.key,
    author,
    hlc: p.hlc,
    leaseMs: p.leaseMs,
    expires: p.leaseMs > 0 ? p.hlc[0] + p.leaseMs : undefined,
    heldMs: p.heldMs,
    since: p.hlc[0] - p.heldMs,
    claim,
    tombstone: p.tombstone,
    body,
    valueOffset: p.valueOffset,
    publicKey,
    sig,
    fp0: readU32(sig, 0),
    fp1: readU32(sig, 4),
    bucket: bucketOf(p.key),
    size: body.length + ENTRY_OVERHEAD_BYTES,
  }
}

/** The entry's value (a fresh copy each call), or undefined for a tombstone. */
export function entryValue(e: Entry): Value | undefined {
  if (e.tombstone) return undefined
  const v = decodeValue(e.body.subarray(e.valueOffset))
  // The body was decoded once already when it was accepted, so this cannot fail.
  return v ?? undefined
}

/**
 * The total order every replica applies: HLC, then author id (last writer
 * wins), then the body bytes and the signature, so two different entries an
 * author signed with one timestamp still have one winner everywhere.
 */
export function compareEntries(a: Entry, b: Entry): number {
  return compareVersion(a, b) || compareBytes(a.body, b.body) || compareBytes(a.sig, b.sig)
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number)
    if (d !== 0) return d < 0 ? -1 : 1
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1
}

/** The digest bucket of a key: FNV-1a over its UTF-16 code units. */
export function bucketOf(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 15
  return (h >>> 0) % BUCKETS
}

export function readU32(b: Uint8Array, at: number): number {
  return (
    (((b[at] as number) << 24) |
      ((b[at + 1] as number) << 16) |
      ((b[at + 2] as number) << 8) |
      (b[at + 3] as number)) >>>
    0
  )
}

export function writeU32(b: Uint8Array, at: number, x: number): void {
  b[at] = x >>> 24
  b[at + 1] = (x >>> 16) & 0xff
  b[at + 2] = (x >>> 8) & 0xff
  b[at + 3] = x & 0xff
}

/** The fingerprint bytes of an entry (the first 8 bytes of its signature). */
export function fingerprintOf(e: Entry): Uint8Array {
  return e.sig.slice(0, FINGERPRINT_BYTES)
}
