/**
 * How the command line reads the signal server's options: every option has
 * an environment variable and a flag (`--port 9000` or `--port=9000`), and
 * flags win. Pure: env and argv are passed in.
 */
import type { SignalServerOptions } from './options.ts'

type Kind = 'int' | 'string' | 'list' | 'json'
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
  {
    key: 'host',
    env: 'HOST',
    flag: 'host',
    kind: 'string',
    help: 'address to listen on (default all interfaces: ::, or 0.0.0.0 without IPv6)',
  },
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
    help: "folder to serve: an app's files, or the demo (default: weft's own dist/web); /weft.js and /weft.mjs come from weft's own when it has none",
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
    key: 'iceServers',
    env: 'ICE_SERVERS',
    flag: 'ice-servers',
    kind: 'json',
    help: 'STUN/TURN servers for clients, JSON: [{"urls":"stun:host:3478"},{"urls":"turn:host:3478"}] (none)',
  },
  {
    key: 'turnSecret',
    env: 'TURN_SECRET',
    flag: 'turn-secret',
    kind: 'string',
    help: 'coturn static-auth-secret: time-limited TURN credentials per client (>= 16 chars)',
  },
  {
    key: 'turnCredentialTtlS',
    env: 'TURN_CREDENTIAL_TTL_S',
    flag: 'turn-credential-ttl-s',
    kind: 'int',
    help: 'lifetime of those credentials, seconds (86400)',
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
    help: 'HTTP headers must arrive within; a connection idle that long is closed (10000)',
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
    key: 'signalBytesPerSec',
    env: 'SIGNAL_BYTES_PER_SEC',
    flag: 'signal-bytes-per-sec',
    kind: 'int',
    help: 'signal quota per socket, bytes of signals passed on a second (65536)',
  },
  {
    key: 'signalBurstBytes',
    env: 'SIGNAL_BURST_BYTES',
    flag: 'signal-burst-bytes',
    kind: 'int',
    help: 'signal burst per socket (262144)',
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
    help: 'largest client message (relay frame bound + 4 KiB: 69632)',
  },
  {
    key: 'congestionMaxBytes',
    env: 'CONGESTION_MAX_BYTES',
    flag: 'congestion-max-bytes',
    kind: 'int',
    help: 'unsent bytes a socket may have before it is sent no more (1048576)',
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
    } else if (s.kind === 'json') {
      try {
        options[s.key] = JSON.parse(raw)
      } catch (err) {
        errors.push(`${where}: not JSON (${(err as Error).message}): ${raw.slice(0, 200)}`)
      }
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
    'usage: weft-signal [--flag value ...]',
    '  installed:         npm install weft socket.io   (redis too for REDIS_URL), then npx weft-signal',
    '  from a checkout:   npm start -- [--flag value ...]   or   npx tsx signal-server/main.ts',
    '',
    `  ${'flag'.padEnd(fw)} ${'environment'.padEnd(ew)} meaning`,
    ...rows,
    `  ${'--help'.padEnd(fw)} ${''.padEnd(ew)} print this`,
    '',
    'Flags win over the environment. By default the server listens on every interface (:: or 0.0.0.0).',
    'GET /healthz and GET /metrics are served beside the demo page and the bundles /weft.js, /weft.mjs.',
    'A source is an IPv4 address or an IPv6 /64 (behind a reverse proxy: set TRUST_PROXY).',
  ].join('\n')
}
