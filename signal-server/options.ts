/**
 * Options of the signal server and their defaults (how the command line
 * reads them from the environment and flags is cli.ts).
 */
import { checkPuzzleBits, DEFAULT_PUZZLE_BITS } from '../shared/identity/puzzle.ts'
import {
  DEFAULT_RELAY_FRAME_MAX_BYTES,
  DEFAULT_SAMPLE_SIZE,
  DEFAULT_SIGNAL_MAX_BYTES,
  type IceServer,
  normalizeServerUrl,
} from '../shared/signal-events.ts'
import { SETTINGS } from './cli.ts'
import { checkIceServers, DEFAULT_TURN_CREDENTIAL_TTL_S, type IceServerConfig } from './ice.ts'

/** What a relayed signal costs on top of its data: the packet around it, `2["signal",{"from":"<40 hex>","data":` and `}]`. */
export const SIGNAL_PACKET_BYTES = 64

export interface SignalServerOptions {
  /** TCP port; 0 picks a free one (tests). @default 8080 */
  port?: number
  /** Interface to listen on. @default all interfaces (Node's default: `::`, or `0.0.0.0` without IPv6) */
  host?: string
  /** Redis URL (`redis://host:6379`): share peers and route events across instances. @default none (in memory) */
  redisUrl?: string
  /**
   * The secret every instance sharing the Redis is given (at least 16 characters): messages between
   * instances are authenticated with it. Required with `redisUrl`. @default none
   */
  redisSecret?: string
  /** Prefix of every Redis key and pub/sub channel. @default 'weft' */
  redisPrefix?: string
  /** Folder of the built demo page and bundles (`index.html`, `weft.js`, `weft.mjs`), or of your own app. @default none */
  staticDir?: string
  /**
   * Folder of weft's bundles: `/weft.js` and `/weft.mjs` (and their source maps) come from here when
   * `staticDir` has none, so an app served from `staticDir` can load weft from this server.
   * @default none (`weft-signal`: weft's own `dist/web`)
   */
  bundleDir?: string
  /** Other signal servers to tell clients about (http(s) URLs). @default [] */
  servers?: string[]
  /**
   * This server's own public URL(s), as clients write them. A registration is accepted only when the
   * client signed for (and connected with the Host of) one of them; other instances sharing the Redis
   * list them to their clients; never handed out as "another server".
   * @default `http://localhost:PORT`, `http://127.0.0.1:PORT`, `http://[::1]:PORT` (and `http://HOST:PORT`
   * when listening on one specific address)
   */
  publicUrls?: string[]
  /**
   * STUN/TURN servers handed to clients at registration, for their RTCPeerConnections (ice.ts). Without
   * them, peers behind NATs that cannot link directly go through this server's relay (relayBytesPerSec).
   * A TURN entry carries `username` and `credential`, or none and `turnSecret` makes them.
   * @default [] (none)
   */
  iceServers?: IceServerConfig[]
  /**
   * coturn's `static-auth-secret` (`use-auth-secret`): each registration gets TURN credentials made with it,
   * valid for turnCredentialTtlS. At least 16 characters. @default none
   */
  turnSecret?: string
  /** How long made TURN credentials last, seconds (60 to 604800). @default 86400 (a day) */
  turnCredentialTtlS?: number
  /** Identity puzzle: a public key must meet this many bits (shared/identity/puzzle.ts), else 'weak-identity'. @default 10 */
  puzzleBits?: number
  /**
   * Reverse proxies whose X-Forwarded-For is believed (addresses, CIDR ranges, or `loopback`). Without them
   * the TCP peer is the client address. @default [] (the header is ignored)
   */
  trustProxy?: string[]
  /** An IPv6 source is this prefix of the address (one subscriber's allocation). @default 64 */
  ipv6PrefixBits?: number
  /** Concurrent TCP connections per source address (a trusted proxy's are not counted). @default 512 */
  maxConnectionsPerSource?: number
  /** Concurrent socket.io sessions per source. @default 256 */
  maxSocketsPerSource?: number
  /** Registration attempts per source per minute (and burst). @default 120 */
  registrationsPerSourcePerMin?: number
  /** Distinct identities per source, counting those that left within identityWindowMs. @default 128 */
  maxIdentitiesPerSource?: number
  /** How long an identity still counts for its source after it left. @default 600000 (10 min) */
  identityWindowMs?: number
  /** Relayed bytes per second per source, all its identities together. @default 4 × relayBytesPerSec */
  relayBytesPerSourcePerSec?: number
  /** Relay burst per source, bytes. @default relayBytesPerSourcePerSec */
  relayBurstBytesPerSource?: number
  /** Source addresses remembered at most (those with live connections always are). @default 100000 */
  maxSources?: number
  /** TCP connections at most, all sources (node:http maxConnections). @default maxPeers + maxPendingSockets + 1024 */
  maxConnections?: number
  /**
   * An HTTP request whose headers have not all arrived by then is dropped (slowloris), and so is a
   * connection that moves no byte for that long (sends nothing, or stops reading a response).
   * @default 10000
   */
  headersTimeoutMs?: number
  /** An HTTP request not received in full by then is dropped. @default 30000 */
  requestTimeoutMs?: number
  /** A binary socket.io packet's attachments must all arrive within this. @default 10000 */
  binaryDeadlineMs?: number
  /** Bytes of unfinished binary packets with headers over 1 KiB (older clients) all sockets may hold together. @default 16777216 (16 MiB) */
  maxPendingBinaryBytes?: number
  /** Peers in a bootstrap sample. @default 16 */
  sampleSize?: number
  /** Largest signal `data`, serialised as JSON. @default 16384 */
  signalMaxBytes?: number
  /**
   * Signal quota per socket, bytes per second: each signal the server passes on (or tries to: it is
   * charged before the target is looked up, here or on another instance) costs its `data` as JSON
   * plus 64, the packet around it. Past it, a signal is refused `rate-limited` (counted
   * `signal-quota`) and is a strike. An honest link setup sends a few KB (an offer or answer with the
   * link hello ~1.3 KB, a candidate ~160 B). @default 65536
   */
  signalBytesPerSec?: number
  /**
   * Signal burst per socket, bytes; at least signalMaxBytes + 64 (one largest signal).
   * @default 262144 (or signalMaxBytes + 64, when that is more)
   */
  signalBurstBytes?: number
  /** Relay quota per node, bytes per second (each frame costs its length plus 32). @default 262144 */
  relayBytesPerSec?: number
  /** Relay burst, bytes. @default relayBytesPerSec (one second's worth) */
  relayBurstBytes?: number
  /** Largest relayed frame. @default 65536 */
  relayFrameMaxBytes?: number
  /** A socket that has not registered by then is refused with 'timeout'. @default 10000 */
  registerTimeoutMs?: number
  /** Registered peers at most; more get 'server-full'. @default 20000 */
  maxPeers?: number
  /** Unregistered sockets allowed on top of maxPeers; beyond, new connections are refused. @default 1000 */
  maxPendingSockets?: number
  /** Events per second per socket (relay frames are counted in bytes instead). @default 200 */
  eventsPerSec?: number
  /** Event burst per socket. @default 400 */
  eventBurst?: number
  /** Invalid or rate-limited events tolerated in a burst before the socket is dropped as abusive. @default 100 */
  abuseBurst?: number
  /** ... refilling at this many per second. @default 10 */
  abusePerSec?: number
  /**
   * socket.io's maxHttpBufferSize: the largest message a client may send. A WebSocket frame announcing
   * more is refused from its header, before its payload is read or kept.
   * @default the larger of relayFrameMaxBytes and signalMaxBytes + 1 KiB, plus 4 KiB (69632)
   */
  maxHttpBufferSize?: number
  /** A target with more unsent packets than this gets no more relay frames ('congested'). @default 256 */
  congestionMaxPackets?: number
  /**
   * A socket with more unsent bytes than this gets no more relay frames or signals ('congested') and no
   * `peers` answers ('rate-limited'), as with congestionMaxPackets. Unsent: what the server put in its
   * write buffer (a frame counts the memory it keeps, plus 128; a signal or answer two bytes a
   * character) and its TCP stream's unwritten bytes. One socket holds at most this plus one delivery
   * (a frame of up to relayFrameMaxBytes) and a few small packets; a source, whose registered sockets
   * are at most maxIdentitiesPerSource, that many times it (~150 MiB with the defaults: see
   * connections.ts, ConnectionLimits). @default 1048576 (1 MiB)
   */
  congestionMaxBytes?: number
  /** A socket with more unsent packets than this is disconnected (checked every sweep). @default 4096 */
  slowConsumerMaxPackets?: number
  /** Host cache entries expire this long after their last keep-alive. @default 120000 */
  hostTtlMs?: number
  /** Period of the sweep (keep-alives, expiry, slow consumers). @default 10000 */
  sweepMs?: number
  /** Name of this instance in /healthz. @default a random 8-hex-digit name */
  instance?: string
  /** Where log lines go. @default nowhere */
  log?: (line: string) => void
}

type Optional = 'host' | 'redisUrl' | 'redisSecret' | 'staticDir' | 'bundleDir' | 'turnSecret'
export type ResolvedOptions = Required<Omit<SignalServerOptions, Optional | 'iceServers'>> &
  Pick<SignalServerOptions, Optional> & {
    /** Checked, every `urls` a list. */
    iceServers: IceServer[]
  }

/** Instance names: what /healthz shows and, with a boot id appended, what instances call each other. */
const INSTANCE_NAME = /^[A-Za-z0-9_-]{1,64}$/

const ANY = Number.MAX_SAFE_INTEGER
/** setTimeout's longest delay: a longer one fires at once. */
const TIMER = 2 ** 31 - 1
/**
 * The numbers checked here (those with a check of their own below are not listed): [least, most], and
 * `false` for a rate, which may be fractional. What they guard against: node:http, net and ws read 0 as
 * "no limit" (timeouts, maxConnections, maxPayload, which also takes 2^31 and up as none), and NaN
 * passes every `count >= limit` test.
 */
const NUMBERS: { [K in keyof SignalServerOptions]?: [number, number] | [number, number, false] } = {
  port: [0, 65_535],
  ipv6PrefixBits: [0, 128],
  maxConnectionsPerSource: [1, ANY],
  maxSocketsPerSource: [1, ANY],
  registrationsPerSourcePerMin: [1, ANY],
  maxIdentitiesPerSource: [1, ANY],
  identityWindowMs: [0, ANY],
  relayBytesPerSourcePerSec: [1, ANY],
  relayBurstBytesPerSource: [1, ANY],
  maxSources: [1, ANY],
  maxConnections: [1, ANY],
  headersTimeoutMs: [1, TIMER],
  requestTimeoutMs: [1, TIMER],
  binaryDeadlineMs: [1, TIMER],
  maxPendingBinaryBytes: [0, ANY],
  sampleSize: [0, ANY],
  signalMaxBytes: [1, 2 ** 29],
  relayBytesPerSec: [1, ANY],
  relayBurstBytes: [1, ANY],
  relayFrameMaxBytes: [1, 2 ** 29],
  registerTimeoutMs: [1, TIMER],
  maxPeers: [1, ANY],
  maxPendingSockets: [0, ANY],
  eventsPerSec: [0.001, ANY, false],
  eventBurst: [1, ANY],
  abuseBurst: [0, ANY],
  abusePerSec: [0, ANY, false],
  maxHttpBufferSize: [1, 2 ** 30],
  congestionMaxPackets: [1, ANY],
  slowConsumerMaxPackets: [1, ANY],
  hostTtlMs: [1, ANY],
  sweepMs: [100, TIMER],
}

/** A TypeError naming `key` (and its variable) unless `o[key]` is absent or within NUMBERS[key]. */
function checkNumbers(o: SignalServerOptions): void {
  for (const [key, [min, max, whole = true]] of Object.entries(NUMBERS) as [
    keyof SignalServerOptions,
    [number, number, false?],
  ][]) {
    const v: unknown = o[key]
    if (v === undefined) continue
    const ok = typeof v === 'number' && (whole ? Number.isSafeInteger(v) : Number.isFinite(v))
    if (ok && v >= min && v <= max) continue
    const env = SETTINGS.find((x) => x.key === key)?.env
    const range = max === ANY ? `at least ${min}` : `from ${min} to ${max}`
    throw new TypeError(
      `${key}${env ? ` (${env})` : ''}: ${whole ? 'a whole number' : 'a number'} ${range}, not ${String(v)}`,
    )
  }
  const headers = o.headersTimeoutMs ?? 10_000
  const request = o.requestTimeoutMs ?? 30_000
  if (headers > request)
    throw new TypeError(
      `headersTimeoutMs (HEADERS_TIMEOUT_MS): at most requestTimeoutMs (REQUEST_TIMEOUT_MS), ${request}, not ${headers}`,
    )
}

/** Defaults filled in and checked; a TypeError names the first bad option. */
export function resolveOptions(o: SignalServerOptions, instance: string): ResolvedOptions {
  checkNumbers(o)
  const relayBytesPerSec = o.relayBytesPerSec ?? 256 * 1024
  const relayBytesPerSourcePerSec = o.relayBytesPerSourcePerSec ?? 4 * relayBytesPerSec
  const maxPeers = o.maxPeers ?? 20_000
  const maxPendingSockets = o.maxPendingSockets ?? 1000
  const publicUrls = (o.publicUrls ?? []).map((u) => {
    const n = normalizeServerUrl(u)
    if (n === null || new URL(n).pathname !== '/' || new URL(n).search !== '')
      throw new TypeError(`publicUrls: not an http(s) URL of a host (no path): ${u}`)
    return n
  })
  if (o.redisUrl !== undefined && (o.redisSecret === undefined || o.redisSecret.length < 16))
    throw new TypeError(
      'redisSecret (REDIS_SECRET) of at least 16 characters is required with redisUrl: instances authenticate their messages with it',
    )
  const turnCredentialTtlS = o.turnCredentialTtlS ?? DEFAULT_TURN_CREDENTIAL_TTL_S
  if (!Number.isInteger(turnCredentialTtlS) || turnCredentialTtlS < 60 || turnCredentialTtlS > 604_800)
    throw new TypeError(
      'turnCredentialTtlS (TURN_CREDENTIAL_TTL_S): whole seconds from 60 to 604800 (a week)',
    )
  const congestionMaxBytes = o.congestionMaxBytes ?? 1024 * 1024
  if (!Number.isSafeInteger(congestionMaxBytes) || congestionMaxBytes < 1)
    throw new TypeError('congestionMaxBytes (CONGESTION_MAX_BYTES): a whole number of bytes, at least 1')
  const signalMaxBytes = o.signalMaxBytes ?? DEFAULT_SIGNAL_MAX_BYTES
  const signalBytesPerSec = o.signalBytesPerSec ?? 64 * 1024
  if (!Number.isSafeInteger(signalBytesPerSec) || signalBytesPerSec < 1)
    throw new TypeError('signalBytesPerSec (SIGNAL_BYTES_PER_SEC): a whole number of bytes, at least 1')
  const signalBurstBytes = o.signalBurstBytes ?? Math.max(256 * 1024, signalMaxBytes + SIGNAL_PACKET_BYTES)
  if (!Number.isSafeInteger(signalBurstBytes) || signalBurstBytes < signalMaxBytes + SIGNAL_PACKET_BYTES)
    throw new TypeError(
      `signalBurstBytes (SIGNAL_BURST_BYTES): a whole number of bytes, at least signalMaxBytes + ${SIGNAL_PACKET_BYTES} (${signalMaxBytes + SIGNAL_PACKET_BYTES}), or the largest signal could never go`,
    )
  const iceServers = checkIceServers(o.iceServers ?? [], o.turnSecret)
  if (o.instance !== undefined && !INSTANCE_NAME.test(o.instance))
    throw new TypeError('instance: 1 to 64 characters of [A-Za-z0-9_-]')
  const out: ResolvedOptions = {
    port: o.port ?? 8080,
    redisPrefix: o.redisPrefix ?? 'weft',
    servers: o.servers ?? [],
    publicUrls,
    iceServers,
    turnCredentialTtlS,
    puzzleBits: checkPuzzleBits(o.puzzleBits ?? DEFAULT_PUZZLE_BITS),
    trustProxy: o.trustProxy ?? [],
    ipv6PrefixBits: o.ipv6PrefixBits ?? 64,
    maxConnectionsPerSource: o.maxConnectionsPerSource ?? 512,
    maxSocketsPerSource: o.maxSocketsPerSource ?? 256,
    registrationsPerSourcePerMin: o.registrationsPerSourcePerMin ?? 120,
    maxIdentitiesPerSource: o.maxIdentitiesPerSource ?? 128,
    identityWindowMs: o.identityWindowMs ?? 600_000,
    relayBytesPerSourcePerSec,
    relayBurstBytesPerSource: o.relayBurstBytesPerSource ?? relayBytesPerSourcePerSec,
    maxSources: o.maxSources ?? 100_000,
    maxConnections: o.maxConnections ?? maxPeers + maxPendingSockets + 1024,
    headersTimeoutMs: o.headersTimeoutMs ?? 10_000,
    requestTimeoutMs: o.requestTimeoutMs ?? 30_000,
    binaryDeadlineMs: o.binaryDeadlineMs ?? 10_000,
    maxPendingBinaryBytes: o.maxPendingBinaryBytes ?? 16 * 1024 * 1024,
    sampleSize: o.sampleSize ?? DEFAULT_SAMPLE_SIZE,
    signalMaxBytes,
    signalBytesPerSec,
    signalBurstBytes,
    relayBytesPerSec,
    relayBurstBytes: o.relayBurstBytes ?? relayBytesPerSec,
    relayFrameMaxBytes: o.relayFrameMaxBytes ?? DEFAULT_RELAY_FRAME_MAX_BYTES,
    registerTimeoutMs: o.registerTimeoutMs ?? 10_000,
    maxPeers,
    maxPendingSockets,
    eventsPerSec: o.eventsPerSec ?? 200,
    eventBurst: o.eventBurst ?? 400,
    abuseBurst: o.abuseBurst ?? 100,
    abusePerSec: o.abusePerSec ?? 10,
    maxHttpBufferSize:
      o.maxHttpBufferSize ??
      Math.max(o.relayFrameMaxBytes ?? DEFAULT_RELAY_FRAME_MAX_BYTES, signalMaxBytes + 1024) + 4096,
    congestionMaxPackets: o.congestionMaxPackets ?? 256,
    congestionMaxBytes,
    slowConsumerMaxPackets: o.slowConsumerMaxPackets ?? 4096,
    hostTtlMs: o.hostTtlMs ?? 120_000,
    sweepMs: o.sweepMs ?? 10_000,
    instance: o.instance ?? instance,
    log: o.log ?? (() => {}),
  }
  if (o.host !== undefined) out.host = o.host
  if (o.redisUrl !== undefined) out.redisUrl = o.redisUrl
  if (o.redisSecret !== undefined) out.redisSecret = o.redisSecret
  if (o.staticDir !== undefined) out.staticDir = o.staticDir
  if (o.bundleDir !== undefined) out.bundleDir = o.bundleDir
  if (o.turnSecret !== undefined) out.turnSecret = o.turnSecret
  return out
}
