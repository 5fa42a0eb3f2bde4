/** One validator per signal event, each returning the typed payload or null (never throws). */
import { isNodeId } from '../bytes.ts'
import {
  type ChallengePayload,
  DEFAULT_RELAY_FRAME_MAX_BYTES,
  DEFAULT_SIGNAL_MAX_BYTES,
  type EventErrorAck,
  isEventErrorReason,
  isRejectReason,
  isRelayErrorReason,
  isSignalErrorReason,
  type JsonValue,
  MAX_KEY_FIELD_BYTES,
  MAX_SAMPLE_SIZE,
  NONCE_BYTES,
  type PeersAck,
  type PeersRequest,
  type RegisterAck,
  type RegisterPayload,
  type RejectedPayload,
  type RelayDelivery,
  type RelayErrorPayload,
  type RelayRequest,
  type ReplacedPayload,
  type SignalAck,
  type SignalDelivery,
  type SignalErrorPayload,
  type SignalRequest,
} from './types.ts'
import {
  isNetworkName,
  isRecord,
  jsonByteLength,
  own,
  parseIceConfig,
  parsePeerList,
  parseServerList,
  toBytes,
} from './values.ts'

// ------------------------------------------------------- client → server

/**
 * A `register` payload. Checks shape only: `publicKey` and `signature` are
 * any byte strings up to 256 bytes here, because the server answers a key of
 * the wrong size with 'bad-key' and a bad signature with 'bad-signature'
 * rather than 'bad-payload'. Other fields (older clients' `servers`) are ignored.
 */
export function parseRegister(payload: unknown): RegisterPayload | null {
  if (!isRecord(payload)) return null
  const publicKey = toBytes(own(payload, 'publicKey'))
  const signature = toBytes(own(payload, 'signature'))
  const network = own(payload, 'network')
  if (!publicKey || publicKey.length > MAX_KEY_FIELD_BYTES) return null
  if (!signature || signature.length > MAX_KEY_FIELD_BYTES) return null
  if (!isNetworkName(network)) return null
  return { publicKey, network, signature }
}

/** A `peers` request; `max` (if given) must be an integer ≥ 0 and is clamped to 64. A missing payload means {}. */
export function parsePeersRequest(payload: unknown): PeersRequest | null {
  if (payload === undefined || payload === null) return {}
  if (!isRecord(payload)) return null
  const max = own(payload, 'max')
  if (max === undefined) return {}
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 0) return null
  return { max: Math.min(max, MAX_SAMPLE_SIZE) }
}

/** A `signal` request: `to` a node id, `data` a JSON value (size is checked separately: see jsonByteLength). */
export function parseSignalRequest(payload: unknown): SignalRequest | null {
  if (signalDataSize(payload) < 0) return null
  // Both own properties (checked by signalDataSize).
  const p = payload as { to: string; data: JsonValue }
  return { to: p.to, data: p.data }
}

/**
 * parseSignalRequest's checks, returning the size of a good request's `data` (jsonByteLength: the walk
 * that checks it is a JSON value measures it), or -1 for a request it refuses. For the signal server,
 * which bounds that size: one walk of `data` per signal instead of two.
 */
export function signalDataSize(payload: unknown): number {
  if (!isRecord(payload)) return -1
  if (!isNodeId(own(payload, 'to')) || !Object.hasOwn(payload, 'data')) return -1
  return jsonByteLength(own(payload, 'data'))
}

/** A `relay` request: `to` a node id, `frame` bytes (size is checked separately). */
export function parseRelayRequest(payload: unknown): RelayRequest | null {
  if (!isRecord(payload)) return null
  const to = own(payload, 'to')
  const frame = toBytes(own(payload, 'frame'))
  if (!isNodeId(to) || !frame) return null
  return { to, frame }
}

// ------------------------------------------------------- server → client

export function parseChallenge(payload: unknown): ChallengePayload | null {
  if (!isRecord(payload)) return null
  const nonce = toBytes(own(payload, 'nonce'))
  if (!nonce || nonce.length !== NONCE_BYTES) return null
  return { nonce }
}

export function parseRegisterAck(payload: unknown): RegisterAck | null {
  if (!isRecord(payload)) return null
  const ok = own(payload, 'ok')
  if (ok === false) {
    const reason = own(payload, 'reason')
    return isRejectReason(reason) ? { ok: false, reason } : null
  }
  if (ok !== true) return null
  const id = own(payload, 'id')
  const peers = parsePeerList(own(payload, 'peers'))
  const servers = parseServerList(own(payload, 'servers'))
  if (!isNodeId(id) || !peers || !servers) return null
  const quiet = own(payload, 'quietSignals') === true ? { quietSignals: true as const } : {}
  return { ok: true, id, peers, servers, ...quiet, ...parseIceConfig(payload) }
}

export function parsePeersAck(payload: unknown): PeersAck | null {
  if (!isRecord(payload)) return null
  const ok = own(payload, 'ok')
  if (ok === false) {
    const reason = own(payload, 'reason')
    return isEventErrorReason(reason) ? { ok: false, reason } : null
  }
  if (ok !== true) return null
  const peers = parsePeerList(own(payload, 'peers'))
  const servers = parseServerList(own(payload, 'servers'))
  if (!peers || !servers) return null
  return { ok: true, peers, servers, ...parseIceConfig(payload) }
}

export function parseSignalAck(payload: unknown): SignalAck | null {
  if (!isRecord(payload)) return null
  const ok = own(payload, 'ok')
  if (ok === true) return { ok: true }
  if (ok !== false) return null
  const reason = own(payload, 'reason')
  return isSignalErrorReason(reason) ? { ok: false, reason } : null
}

/** A delivered signal; `maxBytes` bounds `data` (default 16 KiB). */
export function parseSignalDelivery(
  payload: unknown,
  maxBytes: number = DEFAULT_SIGNAL_MAX_BYTES,
): SignalDelivery | null {
  if (!isRecord(payload)) return null
  const from = own(payload, 'from')
  const data = own(payload, 'data')
  if (!isNodeId(from) || !Object.hasOwn(payload, 'data')) return null
  const size = jsonByteLength(data, maxBytes)
  if (size < 0 || size > maxBytes) return null
  return { from, data }
}

/** A relayed frame; `maxBytes` bounds it (default 64 KiB). */
export function parseRelayDelivery(
  payload: unknown,
  maxBytes: number = DEFAULT_RELAY_FRAME_MAX_BYTES,
): RelayDelivery | null {
  if (!isRecord(payload)) return null
  const from = own(payload, 'from')
  const frame = toBytes(own(payload, 'frame'))
  if (!isNodeId(from) || !frame || frame.length > maxBytes) return null
  return { from, frame }
}

export function parseRelayError(payload: unknown): RelayErrorPayload | null {
  if (!isRecord(payload)) return null
  const to = own(payload, 'to')
  const reason = own(payload, 'reason')
  if (!isNodeId(to) || !isRelayErrorReason(reason)) return null
  return { to, reason }
}

export function parseSignalError(payload: unknown): SignalErrorPayload | null {
  if (!isRecord(payload)) return null
  const to = own(payload, 'to')
  const reason = own(payload, 'reason')
  if (!isNodeId(to) || !isSignalErrorReason(reason)) return null
  return { to, reason }
}

export function parseRejected(payload: unknown): RejectedPayload | null {
  if (!isRecord(payload)) return null
  const reason = own(payload, 'reason')
  return isRejectReason(reason) ? { reason } : null
}

export function parseReplaced(payload: unknown): ReplacedPayload | null {
  if (!isRecord(payload)) return null
  return own(payload, 'reason') === 'replaced' ? { reason: 'replaced' } : null
}

/** An error answer to an invalid event (what the server acks when it refuses an event). */
export function parseEventErrorAck(payload: unknown): EventErrorAck | null {
  if (!isRecord(payload) || own(payload, 'ok') !== false) return null
  const reason = own(payload, 'reason')
  return isEventErrorReason(reason) ? { ok: false, reason } : null
}
