/**
 * Box keys: the X25519 key a node publishes so that others can seal routed
 * envelopes to it (seal.ts), in a small record signed by its identity key.
 * Grammar in PROTOCOL-crypto.md ("Box records").
 *
 *   record = { x: bin(32), pk: bin(32), at: uint, sig: bin(64) }
 *   sig    = Ed25519-sign(identity, "weft-box/1\n" ‖ x ‖ pk ‖ u64be(at))
 *
 * A node makes a box key pair when it starts (kept in memory only, so a
 * closed tab's key is gone: what was sealed to it stays sealed) and signs a
 * record for it; `at` is its clock then. Others learn records from its hello,
 * its Chord node entry or a lookup, verify them once (`verifyBoxRecord`) and
 * keep them in a BoxDirectory, newest per node.
 */
import { bytesEqual, concatBytes } from '../bytes.ts'
import { DEFAULT_MAX_SKEW_MS } from '../hlc.ts'
import { isPublicKey, type Keyring, SIGNATURE_BYTES } from '../identity/keys.ts'
import { bump, type Counters } from '../protocol.ts'
import type { Value } from '../types.ts'
import { generateX25519, isX25519PublicKey, label, u64, type X25519KeyPair } from './primitives.ts'

/** A node's box key pair: `publicKey` goes in its signed record, the private key never leaves. */
export type BoxKeyPair = X25519KeyPair

/** A new box key pair (non-extractable). */
export const createBoxKeyPair: () => Promise<BoxKeyPair> = generateX25519

/** A record older than this (by the reader's clock) is refused: nodes sign a new one every 12 h. */
export const BOX_RECORD_MAX_AGE_MS = 24 * 60 * 60 * 1000

export interface BoxRecord {
  /** The X25519 box public key (`x`). */
  readonly boxKey: Uint8Array
  /** The node's Ed25519 identity public key (`pk`); it hashes to the node id. */
  readonly publicKey: Uint8Array
  /** The node's clock when it signed (`at`, ms since the epoch). */
  readonly issuedAt: number
  readonly sig: Uint8Array
}

/** The bytes a box record's signature covers. */
export function boxRecordSigned(boxKey: Uint8Array, publicKey: Uint8Array, issuedAt: number): Uint8Array {
  return concatBytes(label('weft-box/1\n'), boxKey, publicKey, u64(issuedAt))
}

/** Sign a record for our box key, dated `issuedAt` (our clock). */
export async function signBoxRecord(
  identity: Pick<Keyring, 'publicKey' | 'sign'>,
  boxKey: Uint8Array,
  issuedAt: number,
): Promise<BoxRecord> {
  const sig = await identity.sign(boxRecordSigned(boxKey, identity.publicKey, issuedAt))
  return { boxKey, publicKey: identity.publicKey, issuedAt, sig }
}

/** The wire form (a Value, for any message body). */
export function boxRecordValue(r: BoxRecord): Value {
  return { x: r.boxKey, pk: r.publicKey, at: r.issuedAt, sig: r.sig }
}

/** Parse the wire form; null for anything malformed (nothing is verified yet). */
export function parseBoxRecord(v: Value | undefined): BoxRecord | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return null
  const { x, pk, at, sig } = v
  return isX25519PublicKey(x) &&
    isPublicKey(pk) &&
    typeof at === 'number' &&
    Number.isSafeInteger(at) &&
    at >= 0 &&
    sig instanceof Uint8Array &&
    sig.length === SIGNATURE_BYTES
    ? { boxKey: x, publicKey: pk, issuedAt: at, sig }
    : null
}

/** Why a record was refused, or 'ok'. */
export type BoxRecordVerdict = 'ok' | 'malformed' | 'wrong-id' | 'future' | 'expired' | 'forged'

export interface VerifyBoxRecordOptions {
  /** Our clock (ms). */
  readonly now: number
  /** The node the record must belong to; unchecked when absent. */
  readonly id?: string
  /** @default DEFAULT_MAX_SKEW_MS (60 s): how far ahead of our clock `at` may be. */
  readonly maxSkewMs?: number
  /** @default BOX_RECORD_MAX_AGE_MS (24 h) */
  readonly maxAgeMs?: number
}

/**
 * Check a record: well formed, its identity key hashes to `id`, dated within
 * [now - maxAgeMs, now + maxSkewMs], signed by that key. The cheap checks
 * come first; the signature (keys.verify, which also applies the network's
 * identity puzzle) last.
 */
export async function verifyBoxRecord(
  r: BoxRecord,
  keys: Pick<Keyring, 'verify' | 'idOf'>,
  opts: VerifyBoxRecordOptions,
): Promise<BoxRecordVerdict> {
  if (!isX25519PublicKey(r.boxKey) || !isPublicKey(r.publicKey) || !Number.isSafeInteger(r.issuedAt))
    return 'malformed'
  if (r.issuedAt > opts.now + (opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS)) return 'future'
  if (r.issuedAt < opts.now - (opts.maxAgeMs ?? BOX_RECORD_MAX_AGE_MS)) return 'expired'
  if (opts.id !== undefined && (await keys.idOf(r.publicKey)) !== opts.id) return 'wrong-id'
  const ok = await keys.verify(r.publicKey, boxRecordSigned(r.boxKey, r.publicKey, r.issuedAt), r.sig)
  return ok ? 'ok' : 'forged'
}

export interface BoxDirectoryOptions {
  /** Nodes whose records are kept (least recently used go first). @default 4096 */
  readonly maxEntries?: number
  /** @default DEFAULT_MAX_SKEW_MS */
  readonly maxSkewMs?: number
  /** @default BOX_RECORD_MAX_AGE_MS */
  readonly maxAgeMs?: number
}

/**
 * The verified box records of other nodes, newest per node, bounded. A
 * record identical to the one held is not verified again, and an older one
 * than held is ignored ('stale'), so replaying a node's earlier record cannot
 * bring back a key it has since replaced. Counters: `box.learned`,
 * `box.stale`, `drop.box.<verdict>`.
 */
export interface BoxDirectory {
  /** Verify and keep `r` as node `id`'s box key. */
  learn(id: string, r: BoxRecord, now: number): Promise<BoxRecordVerdict | 'stale'>
  /** The record held for `id`, if any (and not expired as of the last tick). */
  get(id: string): BoxRecord | undefined
  /** Forget records that have expired. */
  tick(now: number): void
  readonly size: number
  readonly counters: Counters
}

export function createBoxDirectory(
  deps: { readonly keys: Pick<Keyring, 'verify' | 'idOf'> },
  opts: BoxDirectoryOptions = {},
): BoxDirectory {
  const max = opts.maxEntries ?? 4096
  const maxAgeMs = opts.maxAgeMs ?? BOX_RECORD_MAX_AGE_MS
  const records = new Map<string, BoxRecord>()
  const counters: Counters = {}

  const touch = (id: string, r: BoxRecord) => {
    records.delete(id)
    records.set(id, r)
    if (records.size > max) {
      const oldest = records.keys().next().value
      if (oldest !== undefined) records.delete(oldest)
    }
  }

  return {
    counters,
    get size() {
      return records.size
    },
    async learn(id, r, now) {
      const held = records.get(id)
      if (held && held.issuedAt > r.issuedAt) {
        bump(counters, 'box.stale')
        return 'stale'
      }
      if (held && held.issuedAt === r.issuedAt && bytesEqual(held.sig, r.sig)) {
        touch(id, held)
        return 'ok'
      }
      const verdict = await verifyBoxRecord(r, deps.keys, {
        now,
        id,
        maxAgeMs,
        ...(opts.maxSkewMs !== undefined ? { maxSkewMs: opts.maxSkewMs } : {}),
      })
      if (verdict !== 'ok') {
        bump(counters, `drop.box.${verdict}`)
        return verdict
      }
      // Another learn may have stored a newer record while this one was verified.
      const current = records.get(id)
      if (current && current.issuedAt > r.issuedAt) {
        bump(counters, 'box.stale')
        return 'stale'
      }
      touch(id, r)
      bump(counters, 'box.learned')
      return 'ok'
    },
    get(id) {
      return records.get(id)
    },
    tick(now) {
      for (const [id, r] of records) if (r.issuedAt < now - maxAgeMs) records.delete(id)
    },
  }
}
