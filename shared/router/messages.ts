/**
 * The messages of routed unicast (frame Kind 3, Route), as a tagged union on
 * `t`, and their wire form. The grammar is in PROTOCOL-route.md.
 *
 * `parseRouteMsg` is the one check at the trust boundary: it takes a decoded
 * frame body and returns a typed message, or null for anything malformed.
 * Typed messages name their fields for a reader (`nonce`, `signedAt`,
 * `publicKey`); `routeMsgValue` writes them back with the wire's short keys
 * (`n`, `w`, `pk`), which stay what they were.
 */
import { toHex } from '../bytes.ts'
import { DEFAULT_MAX_SKEW_MS } from '../hlc.ts'
import type { Value } from '../types.ts'

/** An envelope signed longer ago than this, by the destination's clock, is refused (`drop.route.too-old`). */
export const ROUTE_MAX_AGE_MS = 120_000
/** Clock skew allowed between honest nodes: an envelope signed further ahead is refused (`drop.route.future`). */
export const ROUTE_MAX_SKEW_MS = DEFAULT_MAX_SKEW_MS
/** Most hops a forwarded message may take (Chord needs about log2 N). */
export const MAX_TTL = 32
/** Bytes of an envelope's nonce. */
export const NONCE_BYTES = 8
/** Longest topic or method name. */
export const MAX_NAME = 256
/** Longest error message an `err` carries. */
export const MAX_ERROR_MESSAGE = 4096

/**
 * A message on its way to `dst` over other nodes, signed end to end by its
 * source (`fwd` on the wire). Intermediaries read only `dst` and `ttl`.
 */
export interface Envelope {
  t: 'fwd'
  src: string
  dst: string
  /** Hops left; each hop takes one, and 0 is dropped. */
  ttl: number
  /** 8 random bytes (`n`): two sends of the same message are two envelopes. */
  nonce: Uint8Array
  /** The source's clock (ms) when it signed (`w`): the destination's replay window judges it. */
  signedAt: number
  /** The source's public key (`pk`); it hashes to `src`. */
  publicKey: Uint8Array
  sig: Uint8Array
  /**
   * MessagePack of one inner message; or, sealed to `dst` (PROTOCOL-route.md,
   * "Sealed envelopes"), 0x01 ‖ … (a message) or 0x02 ‖ … (a reply). A
   * MessagePack map never starts with those bytes.
   */
  body: Uint8Array
  /** A sealed reply: the nonce of the request envelope it answers (which session key opens it). */
  re?: Uint8Array
}

/** Send to the target's subscribers of `topic` (`node.send`). */
export interface UnicastMsg {
  t: 'msg'
  topic: string
  data: Value
}
/** Call `method` on the target (`node.request`); answered by `res` or `err` with the same id. */
export interface RequestMsg {
  t: 'req'
  id: number
  method: string
  data: Value
}
export interface ResponseMsg {
  t: 'res'
  id: number
  data: Value
}
/** `code`: 'remote' (the handler threw; `message` is its message) or 'no-handler'. */
export interface ErrorMsg {
  t: 'err'
  id: number
  code: 'remote' | 'no-handler'
  message: string
}
/** A link-setup signal (WebRTC offer/answer/candidate, dial, relay) sent over the overlay instead of the signal server. */
export interface SignalMsg {
  t: 'sig'
  data: Value
}
/**
 * The ring found no way to `dst` for the envelope whose nonce is `nonce`. The nonce is required: only
 * a node that saw the envelope can name it, so a node off its path cannot make the source give up on
 * (or redial for) what it sent to `dst`.
 */
export interface NoRouteMsg {
  t: 'noroute'
  dst: string
  nonce: Uint8Array
}

/** What an envelope carries, and what a direct link carries as it is. */
export type InnerMsg = UnicastMsg | RequestMsg | ResponseMsg | ErrorMsg | SignalMsg | NoRouteMsg
/** An answer to a request. */
export type AnswerMsg = ResponseMsg | ErrorMsg
export type RouteMsg = Envelope | InnerMsg

const ID = /^[0-9a-f]{40}$/

const isNodeId = (x: unknown): x is string => typeof x === 'string' && ID.test(x)
const isName = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= MAX_NAME
const isReqId = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
const isBytes = (x: unknown, n?: number): x is Uint8Array =>
  x instanceof Uint8Array && (n === undefined || x.length === n)

/** Validate a Kind.Route body: the typed message, or null for anything malformed. */
export function parseRouteMsg(v: Value): RouteMsg | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return null
  const { t, data } = v
  const hasData = Object.hasOwn(v, 'data') && data !== undefined
  switch (t) {
    case 'fwd': {
      const { src, dst, ttl, n, w, pk, sig, body, re } = v
      if (re !== undefined && !isBytes(re, NONCE_BYTES)) return null
      return isNodeId(src) &&
        isNodeId(dst) &&
        typeof ttl === 'number' &&
        Number.isInteger(ttl) &&
        ttl >= 0 &&
        ttl <= MAX_TTL &&
        isBytes(n, NONCE_BYTES) &&
        typeof w === 'number' &&
        Number.isSafeInteger(w) &&
        isBytes(pk, 32) &&
        isBytes(sig, 64) &&
        isBytes(body)
        ? { t, src, dst, ttl, nonce: n, signedAt: w, publicKey: pk, sig, body, ...(re ? { re } : {}) }
        : null
    }
    case 'sig':
      return hasData ? { t, data } : null
    case 'noroute': {
      const { dst, n } = v
      return isNodeId(dst) && isBytes(n, NONCE_BYTES) ? { t, dst, nonce: n } : null
    }
    case 'msg':
      return hasData && isName(v.topic) ? { t, topic: v.topic, data } : null
    case 'req':
      return hasData && isReqId(v.id) && isName(v.method) ? { t, id: v.id, method: v.method, data } : null
    case 'res':
      return hasData && isReqId(v.id) ? { t, id: v.id, data } : null
    case 'err': {
      const { id, code, message } = v
      return isReqId(id) &&
        (code === 'remote' || code === 'no-handler') &&
        typeof message === 'string' &&
        message.length <= MAX_ERROR_MESSAGE
        ? { t, id, code, message }
        : null
    }
    default:
      return null
  }
}

/** An inner message: any route message but an envelope (an envelope never carries another). */
export function parseInnerMsg(v: Value): InnerMsg | null {
  const m = parseRouteMsg(v)
  return m && m.t !== 'fwd' ? m : null
}

/** The wire form of a route message (the frame body). */
export function routeMsgValue(m: RouteMsg): Value {
  switch (m.t) {
    case 'fwd': {
      const v: Record<string, Value> = {
        t: m.t,
        src: m.src,
        dst: m.dst,
        ttl: m.ttl,
        n: m.nonce,
        w: m.signedAt,
        pk: m.publicKey,
        sig: m.sig,
        body: m.body,
      }
      if (m.re) v.re = m.re
      return v
    }
    case 'noroute':
      return { t: m.t, dst: m.dst, n: m.nonce }
    case 'msg':
      return { t: m.t, topic: m.topic, data: m.data }
    case 'req':
      return { t: m.t, id: m.id, method: m.method, data: m.data }
    case 'res':
      return { t: m.t, id: m.id, data: m.data }
    case 'err':
      return { t: m.t, id: m.id, code: m.code, message: m.message }
    case 'sig':
      return { t: m.t, data: m.data }
  }
}

/**
 * What a sealed body's AEAD binds (PROTOCOL-crypto.md section 3): the head
 * the signature covers, so a sealed body cannot be moved into another
 * envelope (another source, destination, nonce or time) and still open.
 */
export function envelopeAad(src: string, dst: string, nonce: Uint8Array, signedAt: number): Uint8Array {
  return new TextEncoder().encode(`weft-route/3\n${src}\n${dst}\n${toHex(nonce)}\n${signedAt}\n`)
}

/** The bytes an envelope's source signs: `weft-route/3`, the addresses, the nonce, the signing time, then the body. */
export function envelopeSigned(
  src: string,
  dst: string,
  nonce: Uint8Array,
  signedAt: number,
  body: Uint8Array,
): Uint8Array {
  const head = new TextEncoder().encode(`weft-route/3\n${src}\n${dst}\n${toHex(nonce)}\n${signedAt}\n`)
  const out = new Uint8Array(head.length + body.length)
  out.set(head)
  out.set(body, head.length)
  return out
}

/** A fresh envelope nonce (NONCE_BYTES) from `random`, uniform in [0, 1). */
export function randomNonce(random: () => number): Uint8Array {
  const n = new Uint8Array(NONCE_BYTES)
  for (let i = 0; i < NONCE_BYTES; i += 2) {
    const r = Math.floor(random() * 65_536)
    n[i] = r >>> 8
    n[i + 1] = r & 0xff
  }
  return n
}
