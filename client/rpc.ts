/**
 * Routed unicast and request/response (Kind.Route frames).
 *
 * Over a direct link the message goes as it is: the link is authenticated,
 * so `from` is the link's peer. With no direct link, the message travels
 * hop by hop along Chord's fingers inside a `fwd` envelope signed by its
 * source, so intermediaries can neither forge nor alter it:
 *
 *   fwd { t:'fwd', src, dst, ttl, n, w, pk, sig, body }
 *       body = MessagePack of the inner message; n = 8 random bytes; w = the
 *       source's clock (ms) when it signed; sig = Ed25519 by src over
 *       utf8("weft-route/3\n" src "\n" dst "\n" hex(n) "\n" w "\n") || body;
 *       pk hashes to src.
 *       Each hop decrements ttl (dropped at 0) and passes it to
 *       chord.nextHop(dst). The node responsible for dst's position that is
 *       not dst answers src with `noroute`; src then sends the same envelope
 *       over a link through the server, and dst drops a second copy by its
 *       signature (shared/wire/PROTOCOL.md).
 *
 * Replay window: dst delivers an envelope only if `w` lies within
 * ROUTE_MAX_AGE_MS before and ROUTE_MAX_SKEW_MS after its own clock, and it
 * has not delivered that signature before. It remembers delivered signatures
 * in a seen-cache (shared/mesh/seen-cache.ts) that keeps each until `w` has
 * left the window, at most SEEN_FWD_MAX of them; past that the oldest-dated
 * go first and nothing of their source dated at or before them is accepted
 * again. So a replay, however late and after however many others, runs no
 * handler twice.
 *
 * Inner messages: msg, req, res, err as below, and
 *   sig     { t:'sig', data }     a link-setup signal (WebRTC offer/answer/candidate,
 *                                 dial, relay) sent through the overlay instead of the server
 *   noroute { t:'noroute', dst, n? } dst is not on the ring (n: the nonce of the envelope that found no way)
 *
 *   msg { t:'msg', topic, data }              delivered to the target's subscribers of topic
 *   req { t:'req', id, method, data }         answered by res or err with the same id
 *   res { t:'res', id, data }
 *   err { t:'err', id, code, message }        code: 'remote' (the handler threw) | 'no-handler'
 */
import { toHex } from '../shared/bytes.ts'
import { DEFAULT_MAX_SKEW_MS } from '../shared/hlc.ts'
import type { Value } from '../shared/types.ts'

/** An envelope signed longer ago than this, by the destination's clock, is refused (`drop.route.too-old`). */
export const ROUTE_MAX_AGE_MS = 120_000
/** Clock skew allowed between honest nodes: an envelope signed further ahead is refused (`drop.route.future`). */
export const ROUTE_MAX_SKEW_MS = DEFAULT_MAX_SKEW_MS

export type RouteMsg =
  | {
      t: 'fwd'
      src: string
      dst: string
      ttl: number
      /** 8 random bytes: two sends of the same message are two envelopes (the receiver drops repeats). */
      n: Uint8Array
      /** The source's clock (ms) when it signed: the replay window is judged by it. */
      w: number
      pk: Uint8Array
      sig: Uint8Array
      body: Uint8Array
    }
  | InnerMsg

/** What a `fwd` envelope carries (and what a direct link carries as it is). */
export type InnerMsg =
  | { t: 'sig'; data: Value }
  | { t: 'noroute'; dst: string; n?: Uint8Array }
  | { t: 'msg'; topic: string; data: Value }
  | { t: 'req'; id: number; method: string; data: Value }
  | { t: 'res'; id: number; data: Value }
  | { t: 'err'; id: number; code: 'remote' | 'no-handler'; message: string }

const MAX_NAME = 256
/** Most hops a forwarded message may take (Chord needs about log2 N). */
export const MAX_TTL = 32
const ID = /^[0-9a-f]{40}$/

function isName(x: unknown): x is string {
  return typeof x === 'string' && x.length > 0 && x.length <= MAX_NAME
}

function isId(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
}

/** Validate a Kind.Route body; null for anything malformed. */
export function parseRouteMsg(v: Value): RouteMsg | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return null
  const o = v as Record<string, Value>
  if (!Object.hasOwn(o, 'data') && (o.t === 'msg' || o.t === 'req' || o.t === 'res')) return null
  switch (o.t) {
    case 'fwd':
      return typeof o.src === 'string' &&
        ID.test(o.src) &&
        typeof o.dst === 'string' &&
        ID.test(o.dst) &&
        typeof o.ttl === 'number' &&
        Number.isInteger(o.ttl) &&
        o.ttl >= 0 &&
        o.ttl <= MAX_TTL &&
        o.n instanceof Uint8Array &&
        o.n.length === 8 &&
        typeof o.w === 'number' &&
        Number.isSafeInteger(o.w) &&
        o.pk instanceof Uint8Array &&
        o.pk.length === 32 &&
        o.sig instanceof Uint8Array &&
        o.sig.length === 64 &&
        o.body instanceof Uint8Array
        ? { t: 'fwd', src: o.src, dst: o.dst, ttl: o.ttl, n: o.n, w: o.w, pk: o.pk, sig: o.sig, body: o.body }
        : null
    case 'sig':
      return Object.hasOwn(o, 'data') ? { t: 'sig', data: o.data as Value } : null
    case 'noroute':
      if (typeof o.dst !== 'string' || !ID.test(o.dst)) return null
      if (o.n === undefined) return { t: 'noroute', dst: o.dst }
      return o.n instanceof Uint8Array && o.n.length === 8 ? { t: 'noroute', dst: o.dst, n: o.n } : null
    case 'msg':
      return isName(o.topic) ? { t: 'msg', topic: o.topic, data: o.data as Value } : null
    case 'req':
      return isId(o.id) && isName(o.method)
        ? { t: 'req', id: o.id, method: o.method, data: o.data as Value }
        : null
    case 'res':
      return isId(o.id) ? { t: 'res', id: o.id, data: o.data as Value } : null
    case 'err':
      return isId(o.id) &&
        (o.code === 'remote' || o.code === 'no-handler') &&
        typeof o.message === 'string' &&
        o.message.length <= 4096
        ? { t: 'err', id: o.id, code: o.code, message: o.message }
        : null
    default:
      return null
  }
}

/** An inner message: any route message but a nested `fwd`. */
export function parseInnerMsg(v: Value): InnerMsg | null {
  const m = parseRouteMsg(v)
  return m && m.t !== 'fwd' ? m : null
}

/** The bytes a `fwd` source signs (`w`: its clock when it signs). */
export function fwdSigned(src: string, dst: string, n: Uint8Array, w: number, body: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`weft-route/3\n${src}\n${dst}\n${toHex(n)}\n${w}\n`)
  const out = new Uint8Array(head.length + body.length)
  out.set(head)
  out.set(body, head.length)
  return out
}
