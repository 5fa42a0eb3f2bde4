/**
 * Topic multicast's wire messages (grammar in PROTOCOL-topics.md) and their
 * validators. Two channels:
 *
 * - over a link (frame Kind.Topic), between tree neighbours: ATTACH ("adopt
 *   me under `topic`"), ATTACHED (the answer), DETACH ("I leave your
 *   subtree", or from a parent: "you are orphaned: join again"), and PUB (a
 *   signed publication, forwarded along the tree), IHAVE / IWANT (the
 *   repair's digest of recent publication ids and its pull, repair.ts);
 * - as routed requests to the topic's root (the node that owns the topic's
 *   key on the ring): JOIN (also the periodic refresh) and INJECT (a
 *   publication from a node that is not in the tree yet).
 *
 * A publication is signed exactly like a mesh broadcast (the origin signs
 * `{ v, o, k, t, d, n, w }`, shared/mesh/messages.ts) with `t` set to
 * PUB_PREFIX + topic: the signed topic marks it as a publication, so a copy
 * injected into the mesh is an internal topic there (dropped, never handed to
 * the application as a broadcast), and the mesh's replay window applies.
 *
 * Validators never throw: anything that is not exactly a known shape is null.
 */

import { isNodeId } from '../bytes.ts'
import { SIGNATURE_BYTES } from '../identity/keys.ts'
import type { Value } from '../types.ts'

/** The signed topic of a publication on `topic` (NUL: internal to the node; never a broadcast topic). */
export const PUB_PREFIX = '\u0000pub/'
/** Longest application topic (characters), as for broadcasts. */
export const MAX_TOPIC_CHARS = 256
/** Hard ceiling on the hop field. */
export const MAX_HOPS_FIELD = 255
/** Most ids a JOIN may ask the root to avoid as a parent. */
export const MAX_AVOID = 16

/** A signed publication, as it travels along the tree. */
export type PubMsg = { type: 'pub'; topic: string; payload: Uint8Array; sig: Uint8Array; hops: number }
/** Repair (repair.ts), between tree neighbours: "I have these recent publications" (ids, 20 bytes each, concatenated). */
export type IHaveMsg = { type: 'ihave'; topic: string; ids: Uint8Array }
/** "Send me these" (ids the sender announced, 20 bytes each, concatenated): answered with PUBs. */
export type IWantMsg = { type: 'iwant'; topic: string; ids: Uint8Array }
/** "Adopt me as a child in `topic`'s tree." */
export type AttachMsg = { type: 'attach'; topic: string }
/** The answer to ATTACH: ok, or refused (not in the tree, full). */
export type AttachedMsg = { type: 'attached'; topic: string; ok: boolean }
/** From a child: it leaves the subtree. From a parent: the child is orphaned and joins again. */
export type DetachMsg = { type: 'detach'; topic: string }

export type TopicMsg = PubMsg | AttachMsg | AttachedMsg | DetachMsg | IHaveMsg | IWantMsg

/** JOIN (routed to the root): `p` is the parent we have now (a refresh), `avoid` parents that refused us. */
export interface JoinReq {
  topic: string
  parent: string | null
  avoid: string[]
}
/** The root's answer: attach under `parent` (the root itself, or a member); to a first JOIN, the topic's recent publications. */
export interface JoinRes {
  parent: string
  recent: { payload: Uint8Array; sig: Uint8Array }[]
}
/** Most recent publications a JOIN's answer carries. */
export const MAX_RECENT = 16
/** Bytes of one publication id on the wire (the first 160 bits of its signature). */
export const ID_BYTES = 20
/** Most ids one IHAVE or IWANT carries (a topic's history holds at most this many). */
export const MAX_DIGEST_IDS = 32

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

export function isTopic(t: unknown): t is string {
  return typeof t === 'string' && t.length > 0 && t.length <= MAX_TOPIC_CHARS && t.charCodeAt(0) !== 0
}

export function parseTopicMsg(v: Value): TopicMsg | null {
  try {
    if (!isPlainObject(v) || !isTopic(v.topic)) return null
    const topic = v.topic
    switch (v.type) {
      case 'pub': {
        const { payload, sig, hops } = v
        if (!(payload instanceof Uint8Array) || payload.length === 0) return null
        if (!(sig instanceof Uint8Array) || sig.length !== SIGNATURE_BYTES) return null
        if (typeof hops !== 'number' || !Number.isInteger(hops) || hops < 0 || hops > MAX_HOPS_FIELD)
          return null
        return { type: 'pub', topic, payload, sig, hops }
      }
      case 'attach':
        return { type: 'attach', topic }
      case 'attached':
        return typeof v.ok === 'boolean' ? { type: 'attached', topic, ok: v.ok } : null
      case 'detach':
        return { type: 'detach', topic }
      case 'ihave':
      case 'iwant': {
        const { ids } = v
        if (!(ids instanceof Uint8Array) || ids.length === 0 || ids.length % ID_BYTES !== 0) return null
        if (ids.length > MAX_DIGEST_IDS * ID_BYTES) return null
        return { type: v.type, topic, ids }
      }
      default:
        return null
    }
  } catch {
    return null
  }
}

export function joinReqValue(r: JoinReq): Value {
  return { t: r.topic, p: r.parent, a: r.avoid }
}

export function parseJoinReq(v: Value): JoinReq | null {
  if (!isPlainObject(v) || !isTopic(v.t)) return null
  const p = v.p
  if (p !== null && !isNodeId(p)) return null
  const a = v.a
  if (!Array.isArray(a) || a.length > MAX_AVOID || !a.every(isNodeId)) return null
  return { topic: v.t, parent: p, avoid: [...(a as string[])] }
}

export function parseJoinRes(v: Value): JoinRes | null {
  if (!isPlainObject(v) || !isNodeId(v.p)) return null
  const r = v.r ?? []
  if (!Array.isArray(r) || r.length > MAX_RECENT) return null
  const recent: JoinRes['recent'] = []
  for (const x of r) {
    if (!Array.isArray(x) || x.length !== 2) return null
    const [payload, sig] = x
    if (!(payload instanceof Uint8Array) || payload.length === 0) return null
    if (!(sig instanceof Uint8Array) || sig.length !== SIGNATURE_BYTES) return null
    recent.push({ payload, sig })
  }
  return { parent: v.p, recent }
}

/** INJECT (routed to the root): a publication from outside the tree. */
export function parseInject(v: Value): { topic: string; payload: Uint8Array; sig: Uint8Array } | null {
  if (!isPlainObject(v) || !isTopic(v.t)) return null
  const { p, s } = v
  if (!(p instanceof Uint8Array) || p.length === 0) return null
  if (!(s instanceof Uint8Array) || s.length !== SIGNATURE_BYTES) return null
  return { topic: v.t, payload: p, sig: s }
}
