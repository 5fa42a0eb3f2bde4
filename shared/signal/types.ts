/** The signal events' types, reasons and limits (shared/signal-events.ts has the protocol). */
import { concatBytes, utf8 } from '../bytes.ts'

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
export const ICE_URL =
  /^(?:stuns?:(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?|turns?:(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?(?:\?transport=(?:udp|tcp))?)$/
/** Default size of a bootstrap sample. */
export const DEFAULT_SAMPLE_SIZE = 16
/** `peers` requests are clamped to this many. */
export const MAX_SAMPLE_SIZE = 64
/** A generous bound on byte fields the validators accept at all (the server checks exact sizes). */
export const MAX_KEY_FIELD_BYTES = 256
export const MAX_JSON_DEPTH = 32

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
  /**
   * `servers`: other signal servers of this operator (its configuration, its other instances).
   * `quietSignals`: this server answers a `signal` sent without an ack only if it fails, with
   * `signal-error` (older servers leave it out, and drop such a signal's failure unsaid).
   */
  | ({ ok: true; id: string; peers: PeerInfo[]; servers: string[]; quietSignals?: true } & IceConfig)
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
/** A `signal` sent without an ack (to a quietSignals server) that could not be passed on. */
export interface SignalErrorPayload {
  to: string
  reason: SignalErrorReason
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
  /** Without the ack (quietSignals servers only), a failure comes back as `signal-error`. */
  signal: (payload: SignalRequest, ack?: (answer: SignalAck) => void) => void
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
  'signal-error': (payload: SignalErrorPayload) => void
}

/** A guard for a closed set of reason codes: `x` is one of them. */
export function oneOf<T extends string>(reasons: readonly T[]): (x: unknown) => x is T {
  const set: ReadonlySet<unknown> = new Set(reasons)
  return (x: unknown): x is T => set.has(x)
}

export const isRejectReason = oneOf<RejectReason>([
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
export const isSignalErrorReason = oneOf<SignalErrorReason>([
  'unknown-peer',
  'too-large',
  'bad-payload',
  'rate-limited',
  'not-registered',
  'congested',
])
export const isRelayErrorReason = oneOf<RelayErrorReason>([
  'quota',
  'unknown-peer',
  'too-large',
  'bad-payload',
  'not-registered',
  'congested',
  'rate-limited',
])
export const isEventErrorReason = oneOf<EventErrorReason>([
  'bad-payload',
  'rate-limited',
  'not-registered',
  'unknown-event',
])

/** The bytes a client signs to register: utf8("weft-register/1\n" + host + "\n") || nonce. */
export function registrationMessage(host: string, nonce: Uint8Array): Uint8Array {
  return concatBytes(utf8(`${REGISTER_CONTEXT}${host}\n`), nonce)
}
