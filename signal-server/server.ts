/**
 * The weft signal server: a GWebCache for browsers plus an ultrapeer-style
 * relay for firewalled nodes. This file composes it and runs its lifecycle;
 * the rooms it is built from:
 *
 *   packet-guard.ts   what a socket.io packet may be before it is decoded
 *   sources.ts        per-source limits (TCP connections, sessions, registrations,
 *                     identities, relay bytes), source addresses, trusted proxies
 *   connections.ts    one Conn per socket; the nodes registered here
 *   dispatch.ts       every event: charged, state-checked, parsed, handed on
 *   handlers/         register, peers, signal, relay; remote (from other instances)
 *   cluster.ts        the host cache and the way to other instances: one instance
 *                     alone, or several sharing a Redis (cluster-redis.ts)
 *   http.ts           /healthz, /metrics, the demo and bundles
 *
 * A socket gets a random challenge on connection and must `register` within
 * registerTimeoutMs; then it may ask for samples (`peers`), pass signals and
 * relay frames to nodes of its network. The protocol is in
 * shared/signal-events.ts; what is bounded, how, and why, in README.md.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type Server as HttpServer, type IncomingMessage } from 'node:http'
import type { AddressInfo, Socket as TcpSocket } from 'node:net'
import { Server } from 'socket.io'
import { type ClientToServerEvents, NONCE_BYTES, type ServerToClientEvents } from '../shared/signal-events.ts'
import { type Cluster, createLocalCluster } from './cluster.ts'
import {
  type Conn,
  createConnections,
  enqueued,
  heldBytes,
  type IoSocket,
  newConn,
  type SocketData,
  State,
  unsent,
} from './connections.ts'
import type { ServerContext } from './context.ts'
import { dispatch } from './dispatch.ts'
import { compactSession, createHeartbeats, slimSession, transportOptions } from './engine.ts'
import { leanSession, leanVersionMismatch } from './engine-lean.ts'
import { remoteEvents } from './handlers/remote.ts'
import { createHttpHandler } from './http.ts'
import { createIce } from './ice.ts'
import { createCounters, flatMetrics, type Gauges, inc, renderPrometheus } from './metrics.ts'
import { missingPackage } from './optional-deps.ts'
import { resolveOptions, type SignalServerOptions } from './options.ts'
import { createPacketGuard } from './packet-guard.ts'
import { createServerBook } from './server-book.ts'
import { createAddressResolver, createSourceTable, sourceKey } from './sources.ts'

export interface SignalServer {
  /** `http://127.0.0.1:PORT` (or the host it listens on, when that is a specific address). */
  address: string
  port: number
  /** The URLs registrations are accepted for (configured, or the loopback defaults). */
  publicUrls: string[]
  close(): Promise<void>
  /** Counters and gauges, flat: peers, networks, signals, relayBytes, `rejected.<reason>`, … */
  metrics(): Record<string, number>
  httpServer: HttpServer
}

type IoServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>
/** The engine.io connection under a socket.io socket, as far as this file uses it. */
interface EngineConn {
  request: IncomingMessage
  on(event: 'close', listener: (this: EngineConn, reason: string, description?: unknown) => void): unknown
}

/** The default public URLs: loopback names at the port, and the listening address when it is a specific one. */
function defaultPublicUrls(host: string | undefined, port: number): string[] {
  const urls = [`http://localhost:${port}`, `http://127.0.0.1:${port}`, `http://[::1]:${port}`]
  if (host !== undefined && host !== '0.0.0.0' && host !== '::') {
    const u = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
    if (!urls.includes(u)) urls.push(u)
  }
  return urls
}

export async function createSignalServer(options: SignalServerOptions = {}): Promise<SignalServer> {
  const o = resolveOptions(options, randomBytes(4).toString('hex'))
  const startedAt = Date.now()
  const counters = createCounters()
  const addresses = createAddressResolver(o.trustProxy)
  const sources = createSourceTable(o)
  const conns = createConnections(o, counters)
  const guard = createPacketGuard(o, (reason) => inc(counters.packetsRefused, reason))
  let closing = false

  // ------------------------------------------------------------------ tcp, http

  const httpServer = createServer({
    headersTimeout: o.headersTimeoutMs,
    requestTimeout: o.requestTimeoutMs,
    // How often node:http looks for requests past those timeouts (its default, 30 s, would let them live that long).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, o.headersTimeoutMs / 4)),
  })
  httpServer.maxConnections = o.maxConnections
  // A connection that moves no byte for headersTimeoutMs is dropped: one that never sends its first byte
  // (node:http's headers timeout starts at it) and one that stopped reading a response. ws clears the
  // timeout of an upgraded socket; socket.io's heartbeat watches those.
  httpServer.timeout = o.headersTimeoutMs
  // Every TCP connection, so close() can end upgraded WebSockets too (ws waits up to 30 s for a close frame).
  const tcp = new Set<TcpSocket>()
  /** The source a TCP connection counts for; null for a trusted proxy's, which carries many clients. */
  const tcpSource = (sock: TcpSocket): string | null =>
    addresses.trusted(sock.remoteAddress) ? null : sourceKey(sock.remoteAddress, o.ipv6PrefixBits)
  // One listener for every connection (no closure per connection); the peer address is cached by then.
  function onTcpClose(this: TcpSocket) {
    tcp.delete(this)
    const key = tcpSource(this)
    if (key !== null) sources.closeConnection(key)
  }
  httpServer.on('connection', (sock) => {
    const key = tcpSource(sock)
    if (key !== null && sources.openConnection(key) === null) {
      inc(counters.limited, 'connections')
      sock.destroy()
      return
    }
    tcp.add(sock)
    sock.on('close', onTcpClose)
  })
  httpServer.on('drop', () => inc(counters.limited, 'max-connections'))

  const sourceOf = (req: IncomingMessage) =>
    sourceKey(
      addresses.clientAddress(req.socket?.remoteAddress, req.headers['x-forwarded-for']),
      o.ipv6PrefixBits,
    )

  // ------------------------------------------------------------------ socket.io

  const untested = leanVersionMismatch()
  if (untested) o.log(`socket.io per-socket savings off: untested versions ${untested} (engine-lean.ts)`)
  const io: IoServer = new Server(httpServer, {
    maxHttpBufferSize: o.maxHttpBufferSize,
    cors: { origin: '*' },
    serveClient: false,
    parser: guard.parser,
    ...transportOptions(),
    allowRequest: (req, cb) => {
      if (closing || io.engine.clientsCount >= o.maxPeers + o.maxPendingSockets) {
        inc(counters.limited, 'server-sockets')
        return cb('server full', false)
      }
      if (!sources.canOpenSocket(sourceOf(req))) {
        inc(counters.limited, 'sockets')
        return cb('too many connections from this address', false)
      }
      cb(null, true)
    },
  })
  const sockets = () => io.of('/').sockets

  // Every engine.io session counts for its source from its handshake to its close (before any socket.io event).
  const sessionSource = new WeakMap<object, string>()
  function onSessionClose(this: EngineConn, reason: string, description?: unknown) {
    const key = sessionSource.get(this)
    sessionSource.delete(this)
    if (key !== undefined) sources.closeSocket(key)
    // The transport refused what the client sent (ws: a frame over maxHttpBufferSize, a bad frame).
    if (reason === 'transport error')
      inc(
        counters.packetsRefused,
        /max payload/i.test(String((description as { message?: unknown } | undefined)?.message))
          ? 'message-too-large'
          : 'transport-error',
      )
  }
  // One timer for every socket's heartbeat instead of a Timeout or two each (engine.ts).
  const heartbeats = createHeartbeats({
    pingInterval: io.engine.opts.pingInterval ?? 25_000,
    pingTimeout: io.engine.opts.pingTimeout ?? 20_000,
  })
  io.engine.on('connection', (raw: EngineConn) => {
    sessionSource.set(raw, sources.openSocket(sourceOf(raw.request)))
    raw.on('close', onSessionClose)
    heartbeats.adopt(raw)
  })

  // ------------------------------------------------------------------ cluster, context

  let cluster: Cluster
  if (o.redisUrl !== undefined && o.redisSecret !== undefined) {
    const { createRedisCluster } = await import('./cluster-redis.ts').catch((err: unknown) => {
      if (missingPackage(err) !== 'redis') throw err
      throw new Error(
        'REDIS_URL needs the redis package, an optional peer dependency of weft: npm install redis@^5.12.1',
      )
    })
    cluster = await createRedisCluster(
      {
        url: o.redisUrl,
        prefix: o.redisPrefix,
        secret: o.redisSecret,
        instance: o.instance,
        publicUrls: o.publicUrls,
        hostTtlMs: o.hostTtlMs,
        maxPeers: o.maxPeers,
        signalMaxBytes: o.signalMaxBytes,
        relayFrameMaxBytes: o.relayFrameMaxBytes,
        announceEveryMs: o.sweepMs,
        log: o.log,
        refused: (reason) => inc(counters.interServer, reason),
      },
      remoteEvents(conns, counters, (socketId) => cluster.session(socketId)),
    )
  } else {
    cluster = createLocalCluster({ hostTtlMs: o.hostTtlMs, maxPeers: o.maxPeers })
  }
  // publicHosts and book are set once the port (and so the default public URLs) is known; no socket
  // connects before.
  const ctx: ServerContext = {
    o,
    counters,
    conns,
    sources,
    cluster,
    publicHosts: new Set(),
    book: createServerBook({ configured: o.servers, self: o.publicUrls, cluster: () => cluster.servers() }),
    ice: createIce(o),
  }

  // ------------------------------------------------------------------ connections

  // One listener function for every socket (no closures per socket): the socket finds its Conn in data.
  function onAnyEvent(this: IoSocket, event: unknown, ...args: unknown[]) {
    const c = this.data.conn
    if (c) dispatch(ctx, c, event, args)
  }
  const anyListeners = [onAnyEvent]
  function onDisconnect(this: IoSocket, reason: string) {
    const c = this.data.conn
    // socket.io refuses reserved names from clients, but a forged 'disconnect' must never clean up a live socket.
    if (!c || this.connected || c.state === State.Closed) return
    // One namespace here: a client that left it ('41') does not keep its session (packet-guard.ts).
    if (reason === 'client namespace disconnect') this.conn.close()
    const wasRegistered = c.state === State.Registered
    c.state = State.Closed
    if (c.timer) clearTimeout(c.timer)
    c.timer = null
    if (c.id !== '') sources.releaseIdentity(c.source, c.id, Date.now())
    if (wasRegistered) {
      conns.unlink(c)
      Promise.resolve(cluster.hosts.remove(c.network, c.id, cluster.session(this.id))).catch(() => {})
    }
  }
  const onTimeout = (c: Conn) => {
    c.timer = null
    if (c.state === State.New || c.state === State.Registering) {
      inc(counters.rejected, 'timeout')
      conns.kick(c, 'timeout', 'timeout')
    }
  }
  /** The same (lower-cased) Host string for every socket that used it (bounded: past 64 distinct hosts, no sharing). */
  const hosts = new Map<string, string>()
  const internHost = (h: unknown): string => {
    if (typeof h !== 'string' || h.length > 256) return ''
    const known = hosts.get(h)
    if (known !== undefined) return known
    const lower = h.toLowerCase()
    if (hosts.size < 64) hosts.set(h, lower)
    return lower
  }

  io.on('connection', (socket) => {
    const now = Date.now()
    counters.connections++
    const c = newConn(
      socket,
      {
        nonce: new Uint8Array(randomBytes(NONCE_BYTES)),
        host: internHost(socket.handshake.headers.host),
        source: sessionSource.get(socket.conn) ?? 'unknown',
      },
      o,
      now,
    )
    // Memory: what the socket needs no more once the Host header is read (engine.ts).
    slimSession(socket, anyListeners)
    socket.data.conn = c
    c.timer = setTimeout(onTimeout, o.registerTimeoutMs, c)
    c.timer.unref?.()
    socket.on('disconnect', onDisconnect)
    // Every listener of this socket's emitters is attached by now: drop what is not needed
    // (engine-lean.ts), and hold the rest compactly (engine.ts).
    leanSession(socket)
    compactSession(socket)
    socket.emit('challenge', { nonce: c.nonce as Uint8Array })
  })

  // ------------------------------------------------------------------ sweep

  const sweep = async () => {
    const now = Date.now()
    const alive: { network: string; id: string }[] = []
    for (const socket of sockets().values()) {
      const c = socket.data.conn
      if (!c) continue
      if (unsent(socket) > o.slowConsumerMaxPackets) conns.kick(c, 'slow-consumer')
      else {
        // Let go of a write buffer engine.io has handed to the transport since (connections.ts).
        enqueued(c, 0)
        if (c.state === State.Registered) alive.push({ network: c.network, id: c.id })
      }
    }
    sources.prune(now)
    cluster.tick(now)
    try {
      await cluster.hosts.keepAlive(alive, now)
      await cluster.hosts.prune(now)
    } catch (err) {
      o.log(`host cache sweep failed: ${(err as Error).message}`)
    }
  }
  const sweepTimer = setInterval(() => void sweep(), o.sweepMs)
  sweepTimer.unref()

  // ------------------------------------------------------------------ health, metrics

  const gauges = (): Gauges => {
    let unsentMax = 0
    let bytesMax = 0
    for (const socket of sockets().values()) {
      unsentMax = Math.max(unsentMax, unsent(socket))
      bytesMax = Math.max(bytesMax, heldBytes(socket))
    }
    return {
      peersByNetwork: conns.byNetwork(),
      sockets: sockets().size,
      unsentPacketsMax: unsentMax,
      unsentBytesMax: bytesMax,
      uptimeS: (Date.now() - startedAt) / 1000,
      memory: process.memoryUsage(),
      sources: sources.size(),
      pendingBinaryBytes: guard.pendingBytes(),
    }
  }
  httpServer.on(
    'request',
    createHttpHandler({
      staticDir: o.staticDir,
      bundleDir: o.bundleDir,
      health: () => {
        const ready = cluster.ready()
        return {
          status: ready ? 200 : 503,
          body: {
            ok: ready,
            peers: conns.count(),
            networks: conns.networks(),
            sockets: sockets().size,
            uptimeS: Math.round((Date.now() - startedAt) / 1000),
            instance: o.instance,
            ...cluster.health(),
          },
        }
      },
      prometheus: () => renderPrometheus(counters, gauges()),
    }),
  )

  // ------------------------------------------------------------------ lifecycle

  try {
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject)
      const done = () => {
        httpServer.off('error', reject)
        resolve()
      }
      if (o.host === undefined) httpServer.listen(o.port, done)
      else httpServer.listen(o.port, o.host, done)
    })
  } catch (err) {
    await cluster.close()
    throw err
  }
  const port = (httpServer.address() as AddressInfo).port
  const host = o.host === undefined || o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host
  const address = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  const publicUrls = o.publicUrls.length > 0 ? o.publicUrls : defaultPublicUrls(o.host, port)
  ctx.publicHosts = new Set(publicUrls.map((u) => new URL(u).host))
  ctx.book = createServerBook({ configured: o.servers, self: publicUrls, cluster: () => cluster.servers() })

  let closed: Promise<void> | null = null
  return {
    address,
    port,
    publicUrls,
    httpServer,
    metrics: () => {
      const m = flatMetrics(counters, gauges())
      if (cluster.localEntries) m.hostCacheEntries = cluster.localEntries()
      return m
    },
    close() {
      closed ??= (async () => {
        closing = true
        clearInterval(sweepTimer)
        heartbeats.close()
        for (const socket of sockets().values()) {
          const c = socket.data.conn
          if (c?.timer) clearTimeout(c.timer)
          socket.emit('rejected', { reason: 'shutdown' })
        }
        await new Promise<void>((resolve) => {
          io.close(() => resolve())
          httpServer.closeAllConnections()
          for (const sock of tcp) sock.destroy()
        })
        await cluster.hosts.close?.()
        await cluster.close()
      })()
      return closed
    },
  }
}
