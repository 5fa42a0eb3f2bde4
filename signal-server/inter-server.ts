/**
 * Messages between signal-server instances that share one Redis (sent with
 * socket.io's `serverSideEmit`, which reaches every other instance as JSON).
 *
 *   weft:replace     { network, id, session }      a node registered again on the
 *                    sending instance (socket `session`): whoever holds an older
 *                    socket of `id` replaces it
 *   weft:relay       { network, to, from, frame }  a relay frame for `to`, a node not
 *                    registered on the sending instance; `frame` is base64. The
 *                    instance where `to` is registered delivers it unless `to` is
 *                    congested, in which case it drops the frame and answers:
 *   weft:relay-error { network, to, from, reason } the frame from `from` to `to` was
 *                    dropped (reason `congested`); `from`'s instance tells it
 *
 * Redis is shared infrastructure, so every message is parsed here like any
 * other untrusted input: the parsers return null for anything malformed
 * (wrong types, unknown network or id formats, oversized or non-base64
 * frames) and never throw.
 */
import { isNodeId } from '../shared/bytes.ts'
import { isNetworkName } from '../shared/signal-events.ts'

export interface RemoteReplace {
  network: string
  id: string
  /** The socket.io id of the new socket (which must not be replaced). */
  session: string
}

/** `weft:relay` on the wire: the frame in base64 (serverSideEmit serialises to JSON). */
export interface RemoteRelayWire {
  network: string
  to: string
  from: string
  frame: string
}

export interface RemoteRelay {
  network: string
  to: string
  from: string
  frame: Uint8Array
}

export interface RemoteRelayError {
  network: string
  /** The target that was congested. */
  to: string
  /** The sender, to be told. */
  from: string
  reason: 'congested'
}

/** Longest socket.io session id accepted (socket.io's own are 20 characters). */
export const MAX_SESSION_CHARS = 64

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

function record(x: unknown): Record<string, unknown> | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return null
  const proto = Object.getPrototypeOf(x)
  return proto === Object.prototype || proto === null ? (x as Record<string, unknown>) : null
}

function field(o: Record<string, unknown>, k: string): unknown {
  return Object.hasOwn(o, k) ? o[k] : undefined
}

/** Characters of the base64 form of `bytes` bytes. */
export const base64Length = (bytes: number) => 4 * Math.ceil(bytes / 3)

export function encodeRemoteRelay(
  network: string,
  to: string,
  from: string,
  frame: Uint8Array,
): RemoteRelayWire {
  const b64 = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('base64')
  return { network, to, from, frame: b64 }
}

/** The addressing both relay messages share: a plain object with a network name and two node ids. */
function addressed(
  payload: unknown,
): { p: Record<string, unknown>; network: string; to: string; from: string } | null {
  const p = record(payload)
  if (!p) return null
  const network = field(p, 'network')
  const to = field(p, 'to')
  const from = field(p, 'from')
  if (!isNetworkName(network) || !isNodeId(to) || !isNodeId(from)) return null
  return { p, network, to, from }
}

/** A `weft:relay` whose frame decodes to at most `maxBytes`, or null. */
export function parseRemoteRelay(payload: unknown, maxBytes: number): RemoteRelay | null {
  const a = addressed(payload)
  if (!a) return null
  const { network, to, from } = a
  const b64 = field(a.p, 'frame')
  // Length first, so the pattern never runs over a huge string.
  if (typeof b64 !== 'string' || b64.length % 4 !== 0 || b64.length > base64Length(maxBytes)) return null
  if (!BASE64.test(b64)) return null
  const buf = Buffer.from(b64, 'base64')
  if (buf.length > maxBytes) return null
  return { network, to, from, frame: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) }
}

export function parseRemoteRelayError(payload: unknown): RemoteRelayError | null {
  const a = addressed(payload)
  if (!a || field(a.p, 'reason') !== 'congested') return null
  return { network: a.network, to: a.to, from: a.from, reason: 'congested' }
}

export function parseRemoteReplace(payload: unknown): RemoteReplace | null {
  const p = record(payload)
  if (!p) return null
  const network = field(p, 'network')
  const id = field(p, 'id')
  const session = field(p, 'session')
  if (!isNetworkName(network) || !isNodeId(id)) return null
  if (typeof session !== 'string' || session.length === 0 || session.length > MAX_SESSION_CHARS) return null
  return { network, id, session }
}
