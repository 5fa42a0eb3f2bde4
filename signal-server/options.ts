/**
 * Options of the signal server, their defaults, and how the CLI reads them
 * from the environment and from flags (pure: env and argv are passed in).
 */
import { checkPuzzleBits, DEFAULT_PUZZLE_BITS } from '../shared/identity/puzzle.ts'
import {
  DEFAULT_RELAY_FRAME_MAX_BYTES,
  DEFAULT_SAMPLE_SIZE,
  DEFAULT_SIGNAL_MAX_BYTES,
  normalizeServerUrl,
} from '../shared/signal-events.ts'

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
  /** Folder of the built demo page and bundles (`index.html`, `weft.js`, `weft.mjs`). @default none */
  staticDir?: string
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
  /** An HTTP request whose headers have not all arrived by then is dropped (slowloris). @default 10000 */
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
  /** socket.io's maxHttpBufferSize: the largest message a client may send. @default 131072 */
  maxHttpBufferSize?: number
  /** A target with more unsent packets than this gets no more relay frames ('congested'). @default 256 */
  congestionMaxPackets?: number
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

type Optional = 'host' | 'redisUrl' | 'redisSecret' | 'staticDir'
export type ResolvedOptions = Required<Omit<SignalServerOptions, Optional>> &
  Pick<SignalServerOptions, Optional>

/** Instance names: what /healthz shows and, with a boot id appended, what instances call each other. */
const INSTANCE_NAME = /^[A-Za-z0-9_-]{1,64}$/

/** Defaults filled in and checked; a TypeError names the first bad option. */
export function resolveOptions(o: SignalServerOptions, instance: string): ResolvedOptions {
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
  if (o.instance !== undefined && !INSTANCE_NAME.test(o.instance))
    throw new TypeError('instance: 1 to 64 characters of [A-Za-z0-9_-]')
  const out: ResolvedOptions = {
    port: o.port ?? 8080,
    redisPrefix: o.redisPrefix ?? 'weft',
    servers: o.servers ?? [],
    publicUrls,
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
    signalMaxBytes: o.signalMaxBytes ?? DEFAULT_SIGNAL_MAX_BYTES,
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
    maxHttpBufferSize: o.maxHttpBufferSize ?? 128 * 1024,
    congestionMaxPackets: o.congestionMaxPackets ?? 256,
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
  return out
}

type Kind = 'int' | 'string' | 'list'
interface Setting {
  key: keyof SignalServerOptions
  env: string
  flag: string
  kind: Kind
  help: string
}

/** Every option the CLI reads, with its environment variable and flag. */
export const SETTINGS: readonly Setting[] = [
  { key: 'port', env: 'PORT', flag: 'port', kind: 'int', help: 'TCP port (default 8080; 0 = any free port)' },
  { key: 'host', env: 'HOST', flag: 'host', kind: 'string', help: 'interface to listen on (default all)' },
  {
    key: 'redisUrl',
    env: 'REDIS_URL',
    flag: 'redis-url',
    kind: 'string',
    help: 'Redis URL for several instances',
  },
  {
    key: 'redisSecret',
    env: 'REDIS_SECRET',
    flag: 'redis-secret',
    kind: 'string',
    help: 'shared secret of the instances (>= 16 chars; required with REDIS_URL)',
  },
  {
    key: 'redisPrefix',
    env: 'REDIS_PREFIX',
    flag: 'redis-prefix',
    kind: 'string',
    help: "key prefix (default 'weft')",
  },
  {
    key: 'staticDir',
    env: 'STATIC_DIR',
    flag: 'static-dir',
    kind: 'string',
    help: 'built demo folder (default dist/web)',
  },
  {
    key: 'servers',
    env: 'SERVERS',
    flag: 'servers',
    kind: 'list',
    help: 'other signal servers, comma-separated URLs',
  },
  {
    key: 'publicUrls',
    env: 'PUBLIC_URL',
    flag: 'public-url',
    kind: 'list',
    help: "this server's public URL(s): registrations must be signed for one (default http://localhost:PORT, 127.0.0.1, [::1])",
  },
  {
    key: 'puzzleBits',
    env: 'PUZZLE_BITS',
    flag: 'puzzle-bits',
    kind: 'int',
    help: 'identity puzzle: zero bits a public key must have (10)',
  },
  {
    key: 'trustProxy',
    env: 'TRUST_PROXY',
    flag: 'trust-proxy',
    kind: 'list',
    help: 'reverse proxies whose X-Forwarded-For is believed: addresses, CIDRs, loopback (none)',
  },
  {
    key: 'ipv6PrefixBits',
    env: 'IPV6_PREFIX_BITS',
    flag: 'ipv6-prefix-bits',
    kind: 'int',
    help: 'an IPv6 source is this prefix of the address (64)',
  },
  {
    key: 'maxConnectionsPerSource',
    env: 'MAX_CONNECTIONS_PER_SOURCE',
    flag: 'max-connections-per-source',
    kind: 'int',
    help: 'concurrent TCP connections per source address (512)',
  },
  {
    key: 'maxSocketsPerSource',
    env: 'MAX_SOCKETS_PER_SOURCE',
    flag: 'max-sockets-per-source',
    kind: 'int',
    help: 'concurrent socket.io sessions per source (256)',
  },
  {
    key: 'registrationsPerSourcePerMin',
    env: 'REGISTRATIONS_PER_SOURCE_PER_MIN',
    flag: 'registrations-per-source-per-min',
    kind: 'int',
    help: 'registration attempts per source per minute (120)',
  },
  {
    key: 'maxIdentitiesPerSource',
    env: 'MAX_IDENTITIES_PER_SOURCE',
    flag: 'max-identities-per-source',
    kind: 'int',
    help: 'distinct identities per source within the window (128)',
  },
  {
    key: 'identityWindowMs',
    env: 'IDENTITY_WINDOW_MS',
    flag: 'identity-window-ms',
    kind: 'int',
    help: 'an identity counts this long after it left (600000)',
  },
  {
    key: 'relayBytesPerSourcePerSec',
    env: 'RELAY_BYTES_PER_SOURCE_PER_SEC',
    flag: 'relay-bytes-per-source-per-sec',
    kind: 'int',
    help: 'relay quota per source, all identities (4 x per node)',
  },
  {
    key: 'relayBurstBytesPerSource',
    env: 'RELAY_BURST_BYTES_PER_SOURCE',
    flag: 'relay-burst-bytes-per-source',
    kind: 'int',
    help: 'relay burst per source (= its quota)',
  },
  {
    key: 'maxSources',
    env: 'MAX_SOURCES',
    flag: 'max-sources',
    kind: 'int',
    help: 'source addresses remembered (100000)',
  },
  {
    key: 'maxConnections',
    env: 'MAX_CONNECTIONS',
    flag: 'max-connections',
    kind: 'int',
    help: 'TCP connections at most (max peers + pending + 1024)',
  },
  {
    key: 'headersTimeoutMs',
    env: 'HEADERS_TIMEOUT_MS',
    flag: 'headers-timeout-ms',
    kind: 'int',
    help: 'HTTP headers must arrive within (10000)',
  },
  {
    key: 'requestTimeoutMs',
    env: 'REQUEST_TIMEOUT_MS',
    flag: 'request-timeout-ms',
    kind: 'int',
    help: 'an HTTP request must arrive within (30000)',
  },
  {
    key: 'binaryDeadlineMs',
    env: 'BINARY_DEADLINE_MS',
    flag: 'binary-deadline-ms',
    kind: 'int',
    help: "a binary packet's attachments must arrive within (10000)",
  },
  {
    key: 'maxPendingBinaryBytes',
    env: 'MAX_PENDING_BINARY_BYTES',
    flag: 'max-pending-binary-bytes',
    kind: 'int',
    help: 'unfinished binary packets, all sockets (16777216)',
  },
  {
    key: 'sampleSize',
    env: 'SAMPLE_SIZE',
    flag: 'sample-size',
    kind: 'int',
    help: 'peers per bootstrap sample (16)',
  },
  {
    key: 'signalMaxBytes',
    env: 'SIGNAL_MAX_BYTES',
    flag: 'signal-max-bytes',
    kind: 'int',
    help: 'largest signal (16384)',
  },
  {
    key: 'relayBytesPerSec',
    env: 'RELAY_BYTES_PER_SEC',
    flag: 'relay-bytes-per-sec',
    kind: 'int',
    help: 'relay quota per node (262144)',
  },
  {
    key: 'relayBurstBytes',
    env: 'RELAY_BURST_BYTES',
    flag: 'relay-burst-bytes',
    kind: 'int',
    help: 'relay burst (= quota)',
  },
  {
    key: 'relayFrameMaxBytes',
    env: 'RELAY_FRAME_MAX_BYTES',
    flag: 'relay-frame-max-bytes',
    kind: 'int',
    help: 'largest relay frame (65536)',
  },
  {
    key: 'registerTimeoutMs',
    env: 'REGISTER_TIMEOUT_MS',
    flag: 'register-timeout-ms',
    kind: 'int',
    help: 'time to register (10000)',
  },
  {
    key: 'maxPeers',
    env: 'MAX_PEERS',
    flag: 'max-peers',
    kind: 'int',
    help: 'registered peers at most (20000)',
  },
  {
    key: 'maxPendingSockets',
    env: 'MAX_PENDING_SOCKETS',
    flag: 'max-pending-sockets',
    kind: 'int',
    help: 'unregistered sockets on top (1000)',
  },
  {
    key: 'eventsPerSec',
    env: 'EVENTS_PER_SEC',
    flag: 'events-per-sec',
    kind: 'int',
    help: 'events per socket per second (200)',
  },
  {
    key: 'eventBurst',
    env: 'EVENT_BURST',
    flag: 'event-burst',
    kind: 'int',
    help: 'event burst per socket (400)',
  },
  {
    key: 'abuseBurst',
    env: 'ABUSE_BURST',
    flag: 'abuse-burst',
    kind: 'int',
    help: 'bad events tolerated in a burst (100)',
  },
  {
    key: 'abusePerSec',
    env: 'ABUSE_PER_SEC',
    flag: 'abuse-per-sec',
    kind: 'int',
    help: '... refilled per second (10)',
  },
  {
    key: 'maxHttpBufferSize',
    env: 'MAX_HTTP_BUFFER_SIZE',
    flag: 'max-http-buffer-size',
    kind: 'int',
    help: 'largest client message (131072)',
  },
  {
    key: 'hostTtlMs',
    env: 'HOST_TTL_MS',
    flag: 'host-ttl-ms',
    kind: 'int',
    help: 'host cache expiry (120000)',
  },
  { key: 'instance', env: 'INSTANCE', flag: 'instance', kind: 'string', help: 'instance name for /healthz' },
]

export interface CliResult {
  options: SignalServerOptions
  help: boolean
  errors: string[]
}

/** Read options from the environment, then flags (`--port 9000` or `--port=9000`), which win. */
export function parseCli(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): CliResult {
  const options: Record<string, unknown> = {}
  const errors: string[] = []
  const set = (s: Setting, raw: string, where: string) => {
    if (s.kind === 'int') {
      const n = Number(raw)
      if (raw.trim() === '' || !Number.isInteger(n) || n < 0)
        errors.push(`${where}: not a whole number: ${raw}`)
      else options[s.key] = n
    } else if (s.kind === 'list') {
      options[s.key] = raw
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)
    } else options[s.key] = raw
  }
  for (const s of SETTINGS) {
    const v = env[s.env]
    if (v !== undefined && v !== '') set(s, v, s.env)
  }
  let help = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--help' || arg === '-h') {
      help = true
      continue
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg)
    const s = m && SETTINGS.find((x) => x.flag === m[1])
    if (!m || !s) {
      errors.push(`unknown argument: ${arg}`)
      continue
    }
    let value = m[2]
    if (value === undefined) {
      value = argv[i + 1]
      i++
    }
    if (value === undefined) errors.push(`--${s.flag} needs a value`)
    else set(s, value, `--${s.flag}`)
  }
  return { options: options as SignalServerOptions, help, errors }
}

export function helpText(): string {
  const fw = Math.max(...SETTINGS.map((s) => s.flag.length)) + 2
  const ew = Math.max(...SETTINGS.map((s) => s.env.length))
  const rows = SETTINGS.map((s) => `  ${`--${s.flag}`.padEnd(fw)} ${s.env.padEnd(ew)} ${s.help}`)
  return [
    'weft signal server: bootstrap (GWebCache style), signalling and relay for weft nodes.',
    '',
    'usage: node dist/signal-server/main.js [--flag value ...]   (or: npx tsx signal-server/main.ts)',
    '',
    `  ${'flag'.padEnd(fw)} ${'environment'.padEnd(ew)} meaning`,
    ...rows,
    `  ${'--help'.padEnd(fw)} ${''.padEnd(ew)} print this`,
    '',
    'Flags win over the environment. GET /healthz and GET /metrics are served beside the demo.',
    'A source is an IPv4 address or an IPv6 /64 (behind a reverse proxy: set TRUST_PROXY).',
  ].join('\n')
}
