/**
 * The mesh's wire messages (grammar in PROTOCOL-mesh.md) and their validators.
 *
 * Every message is a Value (a plain object), so the host's codec carries it
 * like any other. Two layers:
 *
 * - `MeshMsg`, what travels on a link: GOSSIP carries a signed broadcast
 *   (the origin's payload bytes, its signature, and the hop count, which
 *   relays rewrite and nobody signs); IHAVE, GRAFT and PRUNE are Plumtree's
 *   control messages.
 * - `BroadcastBody`, what the origin signs: MessagePack bytes of
 *   `{ v, o, k, t, d, n, w }`, decoded only after the duplicate check. `w`
 *   is the origin's clock when it signed: a receiver refuses a broadcast
 *   outside its replay window (seen-cache.ts). Relays forward the exact bytes
 *   they received, never a re-encoding.
 *
 * A broadcast's id is the hex of the first 160 bits of its signature. So a
 * duplicate is recognised from the signature alone, before any decoding or
 * verification, and a forged copy (altered data, same signature) carries the
 * genuine id but fails verification and is never recorded as seen: it cannot
 * shadow the genuine message. Making a *valid* message with someone else's id
 * would need an Ed25519 signature whose first 160 bits match, which nobody
 * can do.
 *
 * Validators never throw: anything that is not exactly a known shape is null.
 */
import { toHex } from '../bytes.ts'
import { isPublicKey, SIGNATURE_BYTES } from '../identity/keys.ts'
import type { Value } from '../types.ts'
import { decodeValue } from '../wire/value.ts'

/** Version of the signed broadcast body (2: the signed time `w`; version 1 had none and is refused). */
export const BODY_VERSION = 2
/** Bytes of the per-broadcast nonce: two broadcasts of the same data are two messages. */
export const NONCE_BYTES = 8
/** Characters of a message id (160 bits of the signature, hex). */
export const MSG_ID_CHARS = 40
/** Hard ceiling on the hop field, whatever the options say. */
export const MAX_HOPS_FIELD = 255
/** Most ids one IHAVE or GRAFT may carry. */
export const MAX_IDS_PER_MSG = 512

/** A full broadcast, pushed eagerly or sent in answer to a GRAFT. */
export type GossipMsg = {
  type: 'gossip'
  payload: Uint8Array
  sig: Uint8Array
  hops: number
  /** Pushed by a per-origin route, not by the shared tree: a duplicate of it is answered per origin (routes.ts). */
  r?: true
}
/**
 * Lazy push: "I have these broadcasts" (Plumtree IHAVE), batched per tick; `hops[i]`, when
 * present, is the hop count at which the sender got `ids[i]` (0: it is the origin), which the
 * tree optimisation compares (optimise.ts).
 */
export type IHaveMsg = {
  type: 'ihave'
  ids: string[]
  hops?: number[]
  /** Indices (into `ids`) of the broadcasts the sender got over a per-origin route (routes.ts). */
  r?: number[]
}
/** "Send me these broadcasts, and push eagerly to me from now on" (Plumtree GRAFT). */
export type GraftMsg = { type: 'graft'; ids: string[] }
/** "Stop pushing eagerly to me; announce instead" (Plumtree PRUNE), for the duplicate of broadcast `id`. */
export type PruneMsg = { type: 'prune'; id?: string }

/** Per-origin route (routes.ts): what the sender wants done with origin `o`'s broadcasts on this link. */
export type RouteMode = 0 | 1 | 2
/** 0: as the shared tree says; 1: push them to me; 2: do not push them to me. */
export type RouteMsg = { type: 'route'; o: string; m: RouteMode }

export type MeshMsg = GossipMsg | IHaveMsg | GraftMsg | PruneMsg | RouteMsg

/** What the origin signs, decoded. */
export interface BroadcastBody {
  /** The origin's node id; must equal idOf(key). */
  origin: string
  /** The origin's raw public key. */
  key: Uint8Array
  topic: string
  data: Value
  nonce: Uint8Array
  /** The origin's clock (ms) when it signed: the replay window is judged by it. */
  time: number
}

/** The id of a broadcast: hex of the first 160 bits of its signature. */
export function msgIdOf(sig: Uint8Array): string {
  return toHex(sig.subarray(0, MSG_ID_CHARS / 2))
}

export function isMsgId(s: unknown): s is string {
  return typeof s === 'string' && s.length === MSG_ID_CHARS && /^[0-9a-f]{40}$/.test(s)
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

function parseIds(v: unknown, minLength: number): string[] | null {
  if (!Array.isArray(v) || v.length < minLength || v.length > MAX_IDS_PER_MSG) return null
  for (const id of v) if (!isMsgId(id)) return null
  return [...(v as string[])]
}

/** One hop count per id: integers in [0, MAX_HOPS_FIELD], exactly `length` of them. */
function parseHops(v: unknown, length: number): number[] | null {
  if (!Array.isArray(v) || v.length !== length) return null
  for (const h of v)
    if (typeof h !== 'number' || !Number.isInteger(h) || h < 0 || h > MAX_HOPS_FIELD) return null
  return [...(v as number[])]
}

/** Distinct indices into a list of `length` items, in increasing order. */
function parseIndices(v: unknown, length: number): number[] | null {
  if (!Array.isArray(v) || v.length > length) return null
  let last = -1
  for (const i of v) {
    if (typeof i !== 'number' || !Number.isInteger(i) || i <= last || i >= length) return null
    last = i
  }
  return [...(v as number[])]
}

/**
 * Validate a message from a peer. Returns a fresh object holding only the
 * known fields, or null for anything malformed. Never throws. Size limits
 * that depend on options (payload bytes, hop limit) are checked by the mesh.
 */
export function parseMeshMsg(v: Value): MeshMsg | null {
  try {
    if (!isPlainObject(v)) return null
    switch (v.type) {
      case 'gossip': {
        const { payload, sig, hops } = v
        if (!(payload instanceof Uint8Array) || payload.length === 0) return null
        if (!(sig instanceof Uint8Array) || sig.length !== SIGNATURE_BYTES) return null
        if (typeof hops !== 'number' || !Number.isInteger(hops) || hops < 0 || hops > MAX_HOPS_FIELD)
          return null
        if (v.r !== undefined && v.r !== true) return null
        return v.r ? { type: 'gossip', payload, sig, hops, r: true } : { type: 'gossip', payload, sig, hops }
      }
      case 'ihave': {
        const ids = parseIds(v.ids, 1)
        if (!ids) return null
        const out: IHaveMsg = { type: 'ihave', ids }
        if (v.hops !== undefined) {
          const hops = parseHops(v.hops, ids.length)
          if (!hops) return null
          out.hops = hops
        }
        if (v.r !== undefined) {
          const r = parseIndices(v.r, ids.length)
          if (!r) return null
          out.r = r
        }
        return out
      }
      case 'graft': {
        // An empty GRAFT only asks to be pushed to again (the answer to an unwanted PRUNE).
        const ids = parseIds(v.ids, 0)
        return ids ? { type: 'graft', ids } : null
      }
      case 'prune':
        if (v.id === undefined) return { type: 'prune' }
        return isMsgId(v.id) ? { type: 'prune', id: v.id } : null
      case 'route': {
        const { o, m } = v
        if (!isMsgId(o) || (m !== 0 && m !== 1 && m !== 2)) return null
        return { type: 'route', o, m }
      }
      default:
        return null
    }
  } catch {
    // A getter or proxy from a confused host: still never a throw.
    return null
  }
}

/**
 * Decode and check a signed body. Null when the bytes are not MessagePack of
 * exactly `{ v: 2, o, k, t, d, n, w }` with the right types, or the topic is
 * longer than `maxTopicLength`. The signature is not checked here.
 */
export function parseBody(payload: Uint8Array, maxTopicLength: number): BroadcastBody | null {
  const v = decodeValue(payload)
  if (!isPlainObject(v)) return null
  const { v: version, o, k, t, d, n, w } = v
  if (version !== BODY_VERSION) return null
  if (typeof o !== 'string' || o.length !== 40 || !/^[0-9a-f]{40}$/.test(o)) return null
  if (!isPublicKey(k)) return null
  if (typeof t !== 'string' || t.length > maxTopicLength) return null
  if (!(n instanceof Uint8Array) || n.length !== NONCE_BYTES) return null
  if (d === undefined) return null
  if (typeof w !== 'number' || !Number.isSafeInteger(w)) return null
  return { origin: o, key: k, topic: t, data: d as Value, nonce: n, time: w }
}

/** The Value an origin encodes and signs. */
export function bodyValue(b: BroadcastBody): Value {
  return { v: BODY_VERSION, o: b.origin, k: b.key, t: b.topic, d: b.data, n: b.nonce, w: b.time }
}
