/**
 * Presence's messages (grammar in PROTOCOL-presence.md) and their
 * wire-boundary validators.
 *
 * One broadcast, the record itself (`[body, publicKey, signature]`, carried
 * network-wide inside a signed mesh broadcast on PRESENCE_TOPIC), and two
 * link messages between neighbours, with which a node that joins learns the
 * present nodes at once instead of over an interval:
 *
 * - `pull`: "send me your table";
 * - `dump`: part of the answer, records with their age at the sender
 *   (`m: true` when more parts follow).
 *
 * The parsers check shape and absolute ceilings only and return typed
 * messages or null; limits that depend on options, ages, order and
 * signatures are checked when a record is accepted (presence.ts).
 */
import { isNodeId } from '../bytes.ts'
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES } from '../identity/keys.ts'
import type { Value } from '../types.ts'
import type { WireRecord } from './record.ts'

/** The mesh topic a host carries presence records on (NUL-prefixed: reserved for the node's own topics). */
export const PRESENCE_TOPIC = '\u0000presence'

/** Ceiling on a body whatever the options say (a state of 64 KiB and its prefix). */
export const MAX_BODY_BYTES = 65_536 + 64
/** Most records in one `dump` message. */
export const MAX_DUMP_RECORDS = 8_192

/** A record with the time since its sender last heard it, in ms (the sender's word, bounded on receipt). */
export type DumpItem = [body: Uint8Array, publicKey: Uint8Array, signature: Uint8Array, ageMs: number]

/** Ask a neighbour for its table. */
export type PullMsg = { t: 'pull' }
/** Part of the answer to a pull. `m: true` when more parts follow. */
export type DumpMsg = { t: 'dump'; r: DumpItem[]; m?: true }

/** The messages presence sends over a link. */
export type PresenceMsg = PullMsg | DumpMsg

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

/** A record's shape (not its body or signature): a fresh tuple, or null. */
export function parseRecord(v: unknown): WireRecord | null {
  if (!Array.isArray(v) || v.length !== 3) return null
  const [body, pk, sig] = v
  if (!isBytes(body) || body.length === 0 || body.length > MAX_BODY_BYTES) return null
  if (!isBytes(pk, PUBLIC_KEY_BYTES) || !isBytes(sig, SIGNATURE_BYTES)) return null
  return [body, pk, sig]
}

function parseDumpItem(v: unknown): DumpItem | null {
  if (!Array.isArray(v) || v.length !== 4) return null
  const rec = parseRecord(v.slice(0, 3))
  const age = v[3]
  if (!rec || !isUint(age)) return null
  return [rec[0], rec[1], rec[2], age]
}

/** A link message from a peer: typed, or null when it breaks the grammar. Never throws. */
export function parsePresenceMsg(v: unknown): PresenceMsg | null {
  if (!isPlainObject(v)) return null
  if (v.t === 'pull') return { t: 'pull' }
  if (v.t !== 'dump') return null
  const { r, m } = v
  if (!Array.isArray(r) || r.length > MAX_DUMP_RECORDS || (m !== undefined && m !== true)) return null
  const items: DumpItem[] = []
  for (const x of r) {
    const item = parseDumpItem(x)
    if (!item) return null
    items.push(item)
  }
  return m ? { t: 'dump', r: items, m } : { t: 'dump', r: items }
}

/**
 * The other broadcast on PRESENCE_TOPIC: "my link to `id` died and did not
 * come back; the latest record of it I hold is (s, q)". Not signed on its
 * own: the mesh broadcast around it is, by its origin (the reporter).
 */
export type LostNotice = { t: 'lost'; id: string; s: number; q: number }

/** A `lost` notice, typed, or null. Never throws. */
export function parseLost(v: unknown): LostNotice | null {
  if (!isPlainObject(v) || v.t !== 'lost') return null
  const { id, s, q } = v
  if (!isNodeId(id) || !isUint(s) || !isUint(q)) return null
  return { t: 'lost', id, s, q }
}

/** A `lost` notice as a Value, for the mesh broadcast. */
export function lostValue(n: LostNotice): Value {
  return { t: 'lost', id: n.id, s: n.s, q: n.q }
}

/** A record as a Value, for the mesh broadcast. */
export function recordValue(r: WireRecord): Value {
  return [r[0], r[1], r[2]]
}
