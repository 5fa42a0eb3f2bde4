/**
 * The socket.io event contract between a weft node and a signal server, for
 * both ends, plus runtime validators (types are not validation).
 *
 * Protocol, in order:
 *
 *   server → client  challenge   { nonce: 32 bytes }                      on connection
 *   client → server  register    { publicKey, network, signature } + ack RegisterAck
 *                    signature = Ed25519 over registrationMessage(host, nonce), where host is
 *                    the host (authority) of the URL the client connected to. The server
 *                    accepts only the hosts of its own configured public URLs ('wrong-server'
 *                    otherwise), so a signature made for one server is worthless on another,
 *                    and a server cannot pass a client's registration on to a different one.
 *                    The key must meet the server's identity puzzle ('weak-identity').
 *                    Node id = first 160 bits of SHA-256(publicKey). (Older clients also sent
 *                    `servers`, the URLs they knew; it is ignored: servers are listed only
 *                    from the operator's own configuration.)
 *   server → client  rejected    { reason }     no valid register in time, abuse, or server full;
 *                                               the server disconnects right after
 *   server → client  replaced    { reason: 'replaced' }  the same id registered again elsewhere
 *                    The ack may carry `iceServers` (STUN/TURN servers for RTCPeerConnection,
 *                    TURN credentials made for this registration) and `iceTtlMs` (how long those
 *                    credentials last): what the operator configured. A client validates them
 *                    like anything else from the server and may override them.
 *   client → server  peers       { max? } + ack PeersAck                  a fresh bootstrap sample
 *                                               (and fresh ICE credentials, as in the register ack)
 *   client → server  signal      { to, data } + ack SignalAck             data: a JSON value
 *   server → client  signal      { from, data }
 *   client → server  relay       { to, frame }   no ack                   opaque bytes, quota'd
 *   server → client  relay       { from, frame }
 *   server → client  relay-error { to, reason }  the frame to `to` was dropped
 *
 * Only nodes of the same network ever see each other. Binary fields arrive as
 * Buffer (Node), ArrayBuffer or Uint8Array (browser); every validator below
 * normalises them to a plain Uint8Array and returns null for anything else.
 *
 * Pure: no socket.io import (not even types), no DOM, no node:*.
 */
import { concatBytes, isNodeId, utf8 } from './bytes.ts'

export const REGISTER_CONTEXT = 'weft-register/1\n'
export const NONCE_BYTES = 32
export const PUBLIC_KEY_BYTES = 32
export const SIGNATURE_BYTES = 64
/** A network name: 1..64 characters of [A-Za-z0-9._-]. */
export const NETWORK_PATTERN = /^[A-Za-z0-9._-]{1,64}$/
/** At most this many server URLs in a `servers` list (what a register or peers ack carries). */
export const MAX_SERVERS = 16
export const MAX_SERVER_URL_CHARS = 256
/** Default bound on a signal's `data`, serialised as JSON (UTF-8 bytes). */
export const DEFAULT_SIGNAL_MAX_BYTES = 16 * 1024
/** Default bound on a relayed frame. */
export const DEFAULT_RELAY_FRAME_MAX_BYTES = 64 * 1024
/** At most this many ICE servers in an answer, each with at most this many URLs. */
export const MAX_ICE_SERVERS = 8
export const MAX_ICE_URLS = 8
/** Bound on an ICE URL, a TURN username and a credential (characters). */
export const MAX_ICE_FIELD_CHARS = 256
/** A made TURN credential's lifetime as a client believes it: at least a minute (bounds how often it asks again), at most a week. */
export const MIN_ICE_TTL_MS = 60_000
export const MAX_ICE_TTL_MS = 7 * 24 * 3600_000
/**
 * A STUN or TURN URL (RFC 7064, RFC 7065): scheme, host (a name, an IPv4
 * address or a bracketed IPv6 one), optional port; TURN may name its
 * transport.
 */
const ICE_URL =
  /^(?:stuns?:(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?|turns?:(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?(?:\?transport=(?:udp|tcp))?)$/
/** Default size of a bootstrap sample. */
export const DEFAULT_SAMPLE_SIZE = 16
/** `peers` requests are clamped to this many. */
export const MAX_SAMPLE_SIZE = 64
/** A generous bound on byte fields the validators accept at all (the server checks exact sizes). */
const MAX_KEY_FIELD_BYTES = 256
const MAX_JSON_DEPTH = 32

/** Why a registration (or the connection) was refused. */
export type RejectReason =
  | 'bad-signature'
  | 'bad-key'
  | 'bad-payload'
  | 'timeout'
  | 'rate-limited'
  | 'server-full'
  /** `register` sent twice on one socket, or while the first is being checked. */
  | 'already-registered'
  /** Too many invalid or rate-limited events: the server hangs up. */
  | 'abuse'
  /** The server is shutting down. */
  | 'shutdown'
  /** The server could not complete the registration (its shared store failed); try another server. */
  | 'unavailable'
  /** The client signed for (connected through) a host that is not one of this server's public URLs. */
  | 'wrong-server'
  /** The public key does not meet the server's identity puzzle (shared/identity/puzzle.ts). */
  | 'weak-identity'
  /** The client's address (an IPv4 address or an IPv6 /64) registered too many identities lately. */
  | 'too-many-identities'
  /** The client's address registered too often in the last minute. */
  | 'too-many-registrations'

export type SignalErrorReason =
  | 'unknown-peer'
  | 'too-large'
  | 'bad-payload'
  | 'rate-limited'
  | 'not-registered'
  /** The target's socket has too much unsent data. */
  | 'congested'

export type RelayErrorReason =
  | 'quota'
  | 'unknown-peer'
  | 'too-large'
  | 'bad-payload'
  | 'not-registered'
  /** The target's socket has too much unsent data. */
  | 'congested'
  | 'rate-limited'

/** Reasons an invalid event is refused (in an ack when one was asked for, and in `rejected_total`). */
export type EventErrorReason = 'bad-payload' | 'rate-limited' | 'not-registered' | 'unknown-event'

export interface PeerInfo {
  /** Node id, 40 lowercase hex characters. */
  id: string
  /** Last activity seen by the server, ms since the epoch. */
  lastSeen: number
}

/** A JSON value (what `signal` carries). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

export interface ChallengePayload {
  nonce: Uint8Array
}
export interface RegisterPayload {
  publicKey: Uint8Array
  network: string
  signature: Uint8Array
}
/**
 * A STUN or TURN server for RTCPeerConnection (an RTCIceServer with `urls`
 * always a list). TURN entries carry credentials: the operator's own, or
 * made for this registration and valid for the ack's `iceTtlMs`.
 */
export interface IceServer {
  urls: string[]
  username?: string
  credential?: string
}
/** What the operator configured for WebRTC: STUN/TURN servers, and how long made TURN credentials last. */
export interface IceConfig {
  /** Absent: the server has no ICE configuration (the node uses its own `iceServers`, or none). */
  iceServers?: IceServer[]
  /** The TURN credentials in iceServers expire this long after the answer (ms); ask again before. */
  iceTtlMs?: number
}
export type RegisterAck =
  /** `servers`: other signal servers of this operator (its configuration, its other instances). */
  | ({ ok: true; id: string; peers: PeerInfo[]; servers: string[] } & IceConfig)
  | { ok: false; reason: RejectReason }
export interface PeersRequest {
  max?: number
}
export type PeersAck =
  | ({ ok: true; peers: PeerInfo[]; servers: string[] } & IceConfig)
  | { ok: false; reason: EventErrorReason }
export interface SignalRequest {
  to: string
  /** A JSON value (checked at runtime), at most 16 KiB serialised by default. */
  data: unknown
}
export type SignalAck = { ok: true } | { ok: false; reason: SignalErrorReason }
export interface SignalDelivery {
  from: string
  /** A JSON value. */
  data: unknown
}
export interface RelayRequest {
  to: string
  frame: Uint8Array
}
export interface RelayDelivery {
  from: string
  frame: Uint8Array
}
export interface RelayErrorPayload {
  to: string
  reason: RelayErrorReason
}
export interface RejectedPayload {
  reason: RejectReason
}
export interface ReplacedPayload {
  reason: 'replaced'
}
/** What an invalid event with an ack callback gets back. */
export interface EventErrorAck {
  ok: false
  reason: EventErrorReason
}

/** Events a client emits (socket.io typed-events shape: `Socket<ServerToClientEvents, ClientToServerEvents>`). */
export interface ClientToServerEvents {
  register: (payload: RegisterPayload, ack: (answer: RegisterAck) => void) => void
  peers: (payload: PeersRequest, ack: (answer: PeersAck) => void) => void
  signal: (payload: SignalRequest, ack: (answer: SignalAck) => void) => void
  relay: (payload: RelayRequest) => void
}

/** Events a server emits (`Server<ClientToServerEvents, ServerToClientEvents>`). */
export interface ServerToClientEvents {
  challenge: (payload: ChallengePayload) => void
  rejected: (payload: RejectedPayload) => void
  replaced: (payload: ReplacedPayload) => void
  signal: (payload: SignalDelivery) => void
  relay: (payload: RelayDelivery) => void
  'relay-error': (payload: RelayErrorPayload) => void
}

/** A guard for a closed set of reason codes: `x` is one of them. */
function oneOf<T extends string>(reasons: readonly T[]): (x: unknown) => x is T {
  const set: ReadonlySet<unknown> = new Set(reasons)
  return (x: unknown): x is T => set.has(x)
}

const isRejectReason = oneOf<RejectReason>([
  'bad-signature',
  'bad-key',
  'bad-payload',
  'timeout',
  'rate-limited',
  'server-full',
  'already-registered',
  'abuse',
  'shutdown',
  'unavailable',
  'wrong-server',
  'weak-identity',
  'too-many-identities',
  'too-many-registrations',
])
const isSignalErrorReason = oneOf<SignalErrorReason>([
  'unknown-peer',
  'too-large',
  'bad-payload',
  'rate-limited',
  'not-registered',
  'congested',
])
const isRelayErrorReason = oneOf<RelayErrorReason>([
  'quota',
  'unknown-peer',
  'too-large',
  'bad-payload',
  'not-registered',
  'congested',
  'rate-limited',
])
const isEventErrorReason = oneOf<EventErrorReason>([
  'bad-payload',
  'rate-limited',
  'not-registered',
  'unknown-event',
])

/** The bytes a client signs to register: utf8("weft-register/1\n" + host + "\n") || nonce. */
export function registrationMessage(host: string, nonce: Uint8Array): Uint8Array {
  return concatBytes(utf8(`${REGISTER_CONTEXT}${host}\n`), nonce)
}

// ---------------------------------------------------------------- helpers

/** Buffer, Uint8Array or ArrayBuffer → a plain Uint8Array over the same memory; anything else → null. */
export function toBytes(x: unknown): Uint8Array | null {
  if (x instanceof Uint8Array) {
    return Object.getPrototypeOf(x) === Uint8Array.prototype
      ? x
      : new Uint8Array(x.buffer, x.byteOffset, x.byteLength)
  }
  if (x instanceof ArrayBuffer) return new Uint8Array(x)
  return null
}

function isRecord(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false
  const proto = Object.getPrototypeOf(x)
  return proto === Object.prototype || proto === null
}

function own(o: Record<string, unknown>, k: string): unknown {
  return Object.hasOwn(o, k) ? o[k] : undefined
}

export function isNetworkName(x: unknown): x is string {
  return typeof x === 'string' && NETWORK_PATTERN.test(x)
}

/** An http(s) URL of at most 256 characters with no credentials; returned normalised, or null. */
export function normalizeServerUrl(x: unknown): string | null {
  if (typeof x !== 'string' || x.length === 0 || x.length > MAX_SERVER_URL_CHARS) return null
  let u: URL
  try {
    u = new URL(x)
  } catch {
    return null
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null
  if (u.username || u.password || u.hostname === '') return null
  u.hash = ''
  const s = u.href.endsWith('/') && u.search === '' ? u.href.slice(0, -1) : u.href
  return s.length <= MAX_SERVER_URL_CHARS ? s : null
}

const utf8Encoder = new TextEncoder()

/**
 * Size in UTF-8 bytes of `x` serialised as JSON, or -1 when `x` is not a
 * plain JSON value (binary, class instances, non-finite numbers, nesting
 * deeper than 32). Stops early (returning limit + 1) once `limit` is passed.
 */
export function jsonByteLength(x: unknown, limit = Number.POSITIVE_INFINITY): number {
  let total = 0
  const walk = (v: unknown, depth: number): boolean => {
    if (depth > MAX_JSON_DEPTH) return false
    if (total > limit) return true
    if (v === null) {
      total += 4
      return true
    }
    switch (typeof v) {
      case 'boolean':
        total += v ? 4 : 5
        return true
      case 'number':
        if (!Number.isFinite(v)) return false
        total += String(v).length
        return true
      case 'string':
        total += stringJsonBytes(v)
        return true
      case 'object': {
        if (Array.isArray(v)) {
          total += 2 + Math.max(0, v.length - 1)
          for (let i = 0; i < v.length; i++) {
            if (!walk(v[i], depth + 1)) return false
            if (total > limit) return true
          }
          return true
        }
        if (!isRecord(v)) return false
        const keys = Object.keys(v)
        total += 2 + Math.max(0, keys.length - 1)
        for (const k of keys) {
          total += stringJsonBytes(k) + 1
          if (!walk(v[k], depth + 1)) return false
          if (total > limit) return true
        }
        return true
      }
      default:
        return false
    }
  }
  if (!walk(x, 0)) return -1
  return total > limit ? limit + 1 : total
}

function stringJsonBytes(s: string): number {
  // Fast path for plain printable ASCII (SDP, candidates, hex): length + 2 quotes.
  if (/^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/.test(s)) return s.length + 2
  return utf8Encoder.encode(JSON.stringify(s)).length
}

function isJsonValue(x: unknown): x is JsonValue {
  return jsonByteLength(x) >= 0
}

function parsePeerList(x: unknown): PeerInfo[] | null {
  if (!Array.isArray(x) || x.length > 1024) return null
  const out: PeerInfo[] = []
  for (const p of x) {
    if (!isRecord(p)) return null
    const id = own(p, 'id')
    const lastSeen = own(p, 'lastSeen')
    if (!isNodeId(id) || typeof lastSeen !== 'number' || !Number.isFinite(lastSeen)) return null
    out.push({ id, lastSeen })
  }
  return out
}

/** A STUN/TURN URL weft hands to RTCPeerConnection (stun:, stuns:, turn:, turns:). */
export function isIceUrl(x: unknown): x is string {
  return typeof x === 'string' && x.length <= MAX_ICE_FIELD_CHARS && ICE_URL.test(x)
}

function iceField(x: unknown): x is string {
  return typeof x === 'string' && x.length > 0 && x.length <= MAX_ICE_FIELD_CHARS
}

/** One ICE server entry (`urls` a URL or a list of them), normalised; null when anything in it is wrong. */
export function parseIceServer(x: unknown): IceServer | null {
  if (!isRecord(x)) return null
  const raw = own(x, 'urls')
  const urls = typeof raw === 'string' ? [raw] : raw
  if (!Array.isArray(urls) || urls.length === 0 || urls.length > MAX_ICE_URLS || !urls.every(isIceUrl))
    return null
  const username = own(x, 'username')
  const credential = own(x, 'credential')
  if ((username !== undefined && !iceField(username)) || (credential !== undefined && !iceField(credential)))
    return null
  const out: IceServer = { urls: [...urls] }
  if (username !== undefined) out.username = username
  if (credential !== undefined) out.credential = credential
  return out
}

/**
 * An answer's ICE servers: a list of at most 8; a wrong entry is left out
 * (the rest still help). Null when the field is not such a list at all.
 */
export function parseIceServers(x: unknown): IceServer[] | null {
  if (!Array.isArray(x) || x.length > MAX_ICE_SERVERS) return null
  const out: IceServer[] = []
  for (const e of x) {
    const s = parseIceServer(e)
    if (s) out.push(s)
  }
  return out
}

/** The ICE fields of a register or peers answer; a wrong or missing field is as good as none. */
function parseIceConfig(p: Record<string, unknown>): IceConfig {
  const out: IceConfig = {}
  const servers = parseIceServers(own(p, 'iceServers'))
  if (servers) out.iceServers = servers
  const ttl = own(p, 'iceTtlMs')
  if (servers && typeof ttl === 'number' && Number.isFinite(ttl))
    out.iceTtlMs = Math.min(MAX_ICE_TTL_MS, Math.max(MIN_ICE_TTL_MS, Math.floor(ttl)))
  return out
}

function parseServerList(x: unknown): string[] | null {
  if (!Array.isArray(x) || x.length > MAX_SERVERS) return null
  const out: string[] = []
  for (const s of x) {
    if (typeof s !== 'string') return null
    const u = normalizeServerUrl(s)
    if (u !== null) out.push(u)
  }
  return out
}

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
  if (!isRecord(payload)) return null
  const to = own(payload, 'to')
  const data = own(payload, 'data')
  if (!isNodeId(to) || !Object.hasOwn(payload, 'data') || !isJsonValue(data)) return null
  return { to, data }
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
  return { ok: true, id, peers, servers, ...parseIceConfig(payload) }
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
