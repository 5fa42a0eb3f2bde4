/**
 * The sync protocol's messages (grammar in PROTOCOL-sync.md) and their
 * wire-boundary validator.
 *
 * One broadcast message, `p` (a new version of one key, carried network-wide
 * inside a signed mesh broadcast), and five link messages for anti-entropy
 * between neighbours: `s` (root hash), `b` (bucket hashes), `v` (versions
 * in the buckets that differ), `q` (keys wanted), `e` (entries).
 *
 * Tags are one letter and entries are arrays because every update pays for
 * them (the overhead budget is 150 bytes per update beyond key and value).
 * `parseSyncMsg` checks shape and absolute size ceilings only; limits that
 * depend on options (key and value bytes, lease length) and signatures are
 * checked when an entry is accepted.
 */
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES } from '../identity/keys.ts'
import { BUCKETS, FINGERPRINT_BYTES } from './entry.ts'

/** `[body, publicKey, signature]`: an entry as it travels and as it is persisted. */
export type WireEntry = [body: Uint8Array, publicKey: Uint8Array, signature: Uint8Array]
/**
 * `[key, wall, counter, fingerprint]`, or with a trailing 1 when that
 * version's lease binds by the sender's clock: what a replica holds for a
 * key, in a version list.
 */
export type VersionItem =
  | [key: string, wall: number, counter: number, fingerprint: Uint8Array]
  | [key: string, wall: number, counter: number, fingerprint: Uint8Array, leased: 1]

/** Put: one new version (set or delete), broadcast network-wide. */
export type PutMsg = { t: 'p'; e: WireEntry }
/** Summary: the XOR of all bucket hashes (8 bytes). Sent on link-up, every antiEntropyMs, and after news. */
export type SummaryMsg = { t: 's'; r: Uint8Array }
/** Buckets: the 64 bucket hashes, 8 bytes each (the root differed). */
export type BucketsMsg = { t: 'b'; b: Uint8Array }
/**
 * Versions: the sender's versions in the buckets listed in `i` (complete for
 * each listed bucket). `m: true` when more of the answer to one `b` follows.
 */
export type VersionsMsg = { t: 'v'; i: number[]; v: VersionItem[]; m?: true }
/** Query: keys the sender wants the receiver's entries for. */
export type QueryMsg = { t: 'q'; k: string[] }
/** Entries: answers to `b`, `v` and `q`. `m: true` when more of the same answer follows. */
export type EntriesMsg = { t: 'e'; e: WireEntry[]; m?: true }

/** The messages of anti-entropy, between two neighbours over their link. */
export type LinkMsg = SummaryMsg | BucketsMsg | VersionsMsg | QueryMsg | EntriesMsg
export type SyncMsg = PutMsg | LinkMsg

/** Ceiling on a body whatever the options say (the mesh's largest payload). */
export const MAX_BODY_BYTES = 1_048_576
/** Ceiling on a key in UTF-16 code units (the byte limit is an option, checked later). */
export const MAX_KEY_CHARS = 4_096
/** Most items in one `v` or `q`. */
export const MAX_LIST_ITEMS = 65_536
/** Most entries in one `e` (or one snapshot chunk). */
export const MAX_ENTRIES_PER_MSG = 8_192

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

function isBytes(v: unknown, len?: number): v is Uint8Array {
  return v instanceof Uint8Array && (len === undefined || v.length === len)
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

function isMore(v: unknown): boolean {
  return v === undefined || v === true
}

function isKey(v: unknown): v is string {
  return typeof v === 'string' && v.length <= MAX_KEY_CHARS
}

/** Check one wire entry's shape (not its body or signature). Returns a fresh tuple or null. */
export function parseWireEntry(v: unknown): WireEntry | null {
  if (!Array.isArray(v) || v.length !== 3) return null
  const [body, pk, sig] = v
  if (!isBytes(body) || body.length === 0 || body.length > MAX_BODY_BYTES) return null
  if (!isBytes(pk, PUBLIC_KEY_BYTES) || !isBytes(sig, SIGNATURE_BYTES)) return null
  return [body, pk, sig]
}

function parseEntries(v: unknown): WireEntry[] | null {
  if (!Array.isArray(v) || v.length > MAX_ENTRIES_PER_MSG) return null
  const out: WireEntry[] = []
  for (const x of v) {
    const e = parseWireEntry(x)
    if (!e) return null
    out.push(e)
  }
  return out
}

function parseVersions(v: unknown): VersionItem[] | null {
  if (!Array.isArray(v) || v.length > MAX_LIST_ITEMS) return null
  const out: VersionItem[] = []
  for (const x of v) {
    if (!Array.isArray(x) || (x.length !== 4 && x.length !== 5)) return null
    const [key, wall, counter, fp, leased] = x
    if (!isKey(key) || !isUint(wall) || !isUint(counter) || !isBytes(fp, FINGERPRINT_BYTES)) return null
    if (x.length === 5 && leased !== 1) return null
    out.push(x.length === 5 ? [key, wall, counter, fp, 1] : [key, wall, counter, fp])
  }
  return out
}

function parseBucketList(v: unknown): number[] | null {
  if (!Array.isArray(v) || v.length > BUCKETS) return null
  const seen = new Set<number>()
  for (const i of v) {
    if (!isUint(i) || i >= BUCKETS || seen.has(i)) return null
    seen.add(i)
  }
  return [...seen]
}

/**
 * Validate a sync message from a peer or the mesh. Returns a fresh object
 * holding only the known fields, or null for anything malformed. Never throws.
 */
export function parseSyncMsg(v: unknown): SyncMsg | null {
  try {
    if (!isPlainObject(v)) return null
    switch (v.t) {
      case 'p': {
        const e = parseWireEntry(v.e)
        return e ? { t: 'p', e } : null
      }
      case 's':
        return isBytes(v.r, 8) ? { t: 's', r: v.r } : null
      case 'b':
        return isBytes(v.b, BUCKETS * 8) ? { t: 'b', b: v.b } : null
      case 'v': {
        const i = parseBucketList(v.i)
        const items = i && parseVersions(v.v)
        if (!i || !items || !isMore(v.m)) return null
        return v.m === true ? { t: 'v', i, v: items, m: true } : { t: 'v', i, v: items }
      }
      case 'q': {
        const k = v.k
        if (!Array.isArray(k) || k.length > MAX_LIST_ITEMS || !k.every(isKey)) return null
        return { t: 'q', k: [...(k as string[])] }
      }
      case 'e': {
        const e = parseEntries(v.e)
        if (!e || !isMore(v.m)) return null
        return v.m === true ? { t: 'e', e, m: true } : { t: 'e', e }
      }
      default:
        return null
    }
  } catch {
    // A getter or proxy from a confused host: still never a throw.
    return null
  }
}

/** A snapshot for persistence: `{ v: 1, at, e }`, `at` the exporter's clock. */
export interface Snapshot {
  at: number
  entries: WireEntry[]
  /** Items that were not wire entries (skipped). */
  bad: number
}

export const SNAPSHOT_VERSION = 1

/** Validate a snapshot written by `exportState`; malformed items are skipped and counted. Null when the envelope is malformed. Never throws. */
export function parseSnapshot(v: unknown): Snapshot | null {
  try {
    if (!isPlainObject(v) || v.v !== SNAPSHOT_VERSION) return null
    if (typeof v.at !== 'number' || !Number.isFinite(v.at) || !Array.isArray(v.e)) return null
    const entries: WireEntry[] = []
    let bad = 0
    for (const x of v.e) {
      const e = parseWireEntry(x)
      if (e) entries.push(e)
      else bad++
    }
    return { at: v.at, entries, bad }
  } catch {
    return null
  }
}
