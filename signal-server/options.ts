/**
 * Options of the signal server, their defaults, and how the CLI reads them
 * from the environment and from flags (pure: env and argv are passed in).
 */
import {
  DEFAULT_RELAY_FRAME_MAX_BYTES,
  DEFAULT_SAMPLE_SIZE,
  DEFAULT_SIGNAL_MAX_BYTES,
} from '../shared/signal-events.ts'

export interface SignalServerOptions {
  /** TCP port; 0 picks a free one (tests). @default 8080 */
  port?: number
  /** Interface to listen on. @default all interfaces (Node's default: `::`, or `0.0.0.0` without IPv6) */
  host?: string
  /** Redis URL (`redis://host:6379`): share peers and route events across instances. @default none (in memory) */
  redisUrl?: string
  /** Prefix of every Redis key and pub/sub channel. @default 'weft' */
  redisPrefix?: string
  /** Folder of the built demo page and bundles (`index.html`, `weft.js`, `weft.mjs`). @default none */
  staticDir?: string
  /** Other signal servers to tell clients about (http(s) URLs). @default [] */
  servers?: string[]
  /** This server's own public URL(s), never handed out as "another server". @default [] */
  publicUrls?: string[]
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

export type ResolvedOptions = Required<Omit<SignalServerOptions, 'host' | 'redisUrl' | 'staticDir'>> &
  Pick<SignalServerOptions, 'host' | 'redisUrl' | 'staticDir'>

export function resolveOptions(o: SignalServerOptions, instance: string): ResolvedOptions {
  const relayBytesPerSec = o.relayBytesPerSec ?? 256 * 1024
  const out: ResolvedOptions = {
    port: o.port ?? 8080,
    redisPrefix: o.redisPrefix ?? 'weft',
    servers: o.servers ?? [],
    publicUrls: o.publicUrls ?? [],
    sampleSize: o.sampleSize ?? DEFAULT_SAMPLE_SIZE,
    signalMaxBytes: o.signalMaxBytes ?? DEFAULT_SIGNAL_MAX_BYTES,
    relayBytesPerSec,
    relayBurstBytes: o.relayBurstBytes ?? relayBytesPerSec,
    relayFrameMaxBytes: o.relayFrameMaxBytes ?? DEFAULT_RELAY_FRAME_MAX_BYTES,
    registerTimeoutMs: o.registerTimeoutMs ?? 10_000,
    maxPeers: o.maxPeers ?? 20_000,
    maxPendingSockets: o.maxPendingSockets ?? 1000,
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
    help: "this server's public URL(s)",
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
  const rows = SETTINGS.map((s) => `  --${s.flag.padEnd(24)} ${s.env.padEnd(22)} ${s.help}`)
  return [
    'weft signal server: bootstrap (GWebCache style), signalling and relay for weft nodes.',
    '',
    'usage: node dist/signal-server/main.js [--flag value ...]   (or: npx tsx signal-server/main.ts)',
    '',
    '  flag                       environment            meaning',
    ...rows,
    '  --help                                            print this',
    '',
    'Flags win over the environment. GET /healthz and GET /metrics are served beside the demo.',
  ].join('\n')
}
