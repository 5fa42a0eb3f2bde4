/**
 * Routed unicast and request/response (Kind.Route frames). In this version a
 * route is a direct link to the target: an existing one, or one opened on
 * demand (WebRTC, else through the server's relay). The link is
 * authenticated, so `from` is the link's peer and needs no signature.
 *
 *   msg { t:'msg', topic, data }              delivered to the target's subscribers of topic
 *   req { t:'req', id, method, data }         answered by res or err with the same id
 *   res { t:'res', id, data }
 *   err { t:'err', id, code, message }        code: 'remote' (the handler threw) | 'no-handler'
 */
import type { Value } from '../shared/types.ts'

export type RouteMsg =
  | { t: 'msg'; topic: string; data: Value }
  | { t: 'req'; id: number; method: string; data: Value }
  | { t: 'res'; id: number; data: Value }
  | { t: 'err'; id: number; code: 'remote' | 'no-handler'; message: string }

const MAX_NAME = 256

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
