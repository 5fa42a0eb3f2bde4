/**
 * The weft signal server: a GWebCache for browsers plus an ultrapeer-style
 * relay for firewalled nodes.
 *
 * A socket gets a random challenge on connection and must `register` within
 * registerTimeoutMs: its Ed25519 public key, the network it joins and a
 * signature over registrationMessage(host, challenge), where host must be one
 * of this server's configured public URLs (so a registration cannot be passed
 * on from another server). The key must meet the identity puzzle. The server
 * derives the node id from the key, so nobody can receive signals addressed to
 * another node. A second registration of the same id replaces the first socket.
 *
 * Registered nodes can then ask for bootstrap samples (`peers`), pass WebRTC
 * signals (`signal`, small JSON, acked) and relay opaque binary frames
 * (`relay`, quota'd per node and per source address in bytes/s, never queued
 * without bound) to other nodes of the same network. The server never looks
 * inside relayed frames.
 *
 * Every packet is bounded before socket.io decodes it (packet-guard.ts);
 * every event is validated at the boundary (shared/signal-events.ts); invalid
 * ones are refused with a reason code and counted, each socket has an event
 * rate limit, and a socket that keeps sending bad or excess events is
 * dropped. Each source address has its limits (sources.ts): TCP connections,
 * sessions, registrations per minute, identities, relay bytes. Who is
 * registered, and the way to nodes on other instances, is the cluster
 * (cluster.ts): one instance alone, or several sharing a Redis
 * (cluster-redis.ts) with authenticated messages between them.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type Server as HttpServer, type IncomingMessage } from 'node:http'
import type { AddressInfo, Socket as TcpSocket } from 'node:net'
import { Server, type Socket } from 'socket.io'
import { isPublicKey, nodeIdOf, verify } from '../shared/identity/keys.ts'
import { meetsPuzzle } from '../shared/identity/puzzle.ts'
import {
  type ClientToServerEvents,
  type EventErrorReason,
  jsonByteLength,
  MAX_SAMPLE_SIZE,
  NONCE_BYTES,
  type PeerInfo,
  parsePeersRequest,
  parseRegister,
  parseRelayRequest,
  parseSignalRequest,
  type RegisterAck,
  type RejectReason,
  type RelayErrorReason,
  registrationMessage,
  type ServerToClientEvents,
  SIGNATURE_BYTES,
  type SignalAck,
} from '../shared/signal-events.ts'
import { type Cluster, type ClusterEvents, createLocalCluster } from './cluster.ts'
import { createHttpHandler } from './http.ts'
import { createCounters, flatMetrics, type Gauges, inc, renderPrometheus } from './metrics.ts'
import { resolveOptions, type SignalServerOptions } from './options.ts'
import { createPacketGuard } from './packet-guard.ts'
import { createServerBook } from './server-book.ts'
import { createAddressResolver, createSourceTable, sourceKey } from './sources.ts'
import { TokenBucket } from './token-bucket.ts'

export type { SignalServerOptions } from './options.ts'

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
type IoSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>
type Ack = (answer: unknown) => void
/** The engine.io connection under a socket.io socket, as far as this file uses it. */
interface EngineConn {
  request: IncomingMessage
  once(event: 'close', listener: () => void): unknown
}

/** Bytes charged per relayed frame on top of its length (framing), so floods of tiny frames are bounded too. */
const RELAY_FRAME_OVERHEAD = 32

enum State {
  New = 0,
  Registering = 1,
  Registered = 2,
  Closed = 3,
}

/** Per-socket state. Kept small: the server holds one per connected node. */
interface Conn {
  socket: IoSocket
  state: State
  nonce: Uint8Array | null
  host: string
  /** The source address key (sources.ts). */
  source: string
  /** The host cache session of this socket (cluster.session). */
  session: string
  network: string
  id: string
  /** Whether `id` holds one of the source's identity slots (released when the socket goes). */
  claimed: boolean
  events: TokenBucket
  /** Made on the first strike: most sockets never get one. */
  strikes: TokenBucket | null
  /** Made on the first relayed frame: most nodes link directly. */
  bytes: TokenBucket | null
  timer: NodeJS.Timeout | null
  lastTouch: number
}

interface SocketData {
  conn?: Conn
}

interface Net {
  /** The network name (one string shared by all its nodes). */
  name: string
  peers: Map<string, Conn>
}

/** Packets engine.io holds for this socket that the transport has not taken yet. */
const unsent = (s: IoSocket) => (s.conn as unknown as { writeBuffer: unknown[] }).writeBuffer.length

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
  const guard = createPacketGuard(
    {
      signalMaxBytes: o.signalMaxBytes,
      binaryDeadlineMs: o.binaryDeadlineMs,
      maxPendingBinaryBytes: o.maxPendingBinaryBytes,
    },
    (reason) => inc(counters.packetsRefused, reason),
  )
  // Local registered nodes, by network then id.
  const local = new Map<string, Net>()
  const hosts = new Map<string, string>()
  let registeredCount = 0
  let closing = false
  // Filled in once the port is known (listen(0) in tests); no socket connects before.
  let publicUrls: string[] = []
  let allowedHosts = new Set<string>()

  const httpServer = createServer({
    headersTimeout: o.headersTimeoutMs,
    requestTimeout: o.requestTimeoutMs,
    // How often node:http looks for requests past those timeouts (its default, 30 s, would let them live that long).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, o.headersTimeoutMs / 4)),
  })
  httpServer.maxConnections = o.maxConnections
  // Every TCP connection, so close() can end upgraded WebSockets too (ws waits up to 30 s for a close frame).
  const tcp = new Set<TcpSocket>()
  httpServer.on('connection', (sock) => {
    tcp.add(sock)
    sock.once('close', () => tcp.delete(sock))
    // A trusted proxy carries many clients: its connections are not one source's.
    if (addresses.trusted(sock.remoteAddress)) return
    const key = sourceKey(sock.remoteAddress, o.ipv6PrefixBits)
    if (!sources.openConnection(key)) {
      inc(counters.limited, 'connections')
      sock.destroy()
      return
    }
    sock.once('close', () => sources.closeConnection(key))
  })
  httpServer.on('drop', () => inc(counters.limited, 'max-connections'))

  const sourceOf = (req: IncomingMessage) =>
    sourceKey(
      addresses.clientAddress(req.socket?.remoteAddress, req.headers['x-forwarded-for']),
      o.ipv6PrefixBits,
    )

  const io: IoServer = new Server(httpServer, {
    maxHttpBufferSize: o.maxHttpBufferSize,
    cors: { origin: '*' },
    serveClient: false,
    parser: guard.parser,
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
  io.engine.on('connection', (raw: EngineConn) => {
    const key = sourceOf(raw.request)
    sources.openSocket(key)
    sessionSource.set(raw, key)
    raw.once('close', () => sources.closeSocket(key))
  })

  // ------------------------------------------------------------------ helpers

  const peersByNetwork = (): Map<string, number> => new Map([...local].map(([k, v]) => [k, v.peers.size]))
  const unsentMax = (): number => {
    let max = 0
    for (const socket of sockets().values()) max = Math.max(max, unsent(socket))
    return max
  }
  const gauges = (): Gauges => ({
    peersByNetwork: peersByNetwork(),
    sockets: sockets().size,
    unsentPacketsMax: unsentMax(),
    uptimeS: (Date.now() - startedAt) / 1000,
    memory: process.memoryUsage(),
    sources: sources.size(),
    pendingBinaryBytes: guard.pendingBytes(),
  })

  const kick = (c: Conn, reason: string, tell?: RejectReason) => {
    if (c.state === State.Closed) return
    inc(counters.kicked, reason)
    if (tell) c.socket.emit('rejected', { reason: tell })
    c.socket.disconnect(true)
  }

  /** A bad or excess event: costs a strike; too many strikes and the socket is dropped. */
  const strike = (c: Conn, now: number) => {
    c.strikes ??= new TokenBucket(o.abusePerSec, o.abuseBurst, now)
    if (!c.strikes.take(1, now)) kick(c, 'abuse', 'abuse')
  }

  const refuse = (c: Conn, ack: Ack | undefined, reason: EventErrorReason, now: number) => {
    inc(counters.rejected, reason)
    ack?.({ ok: false, reason })
    strike(c, now)
  }

  const touch = (c: Conn, now: number) => {
    if (now - c.lastTouch < cluster.touchEveryMs) return
    c.lastTouch = now
    Promise.resolve(cluster.hosts.touch(c.network, c.id, now)).catch(() => {})
  }

  const congested = (target: Conn) => unsent(target.socket) > o.congestionMaxPackets

  const replaceLocal = (old: Conn) => {
    counters.replaced++
    unlinkLocal(old)
    old.socket.emit('replaced', { reason: 'replaced' })
    kick(old, 'replaced')
  }

  const unlinkLocal = (c: Conn) => {
    const net = local.get(c.network)
    if (net?.peers.get(c.id) === c) {
      net.peers.delete(c.id)
      if (net.peers.size === 0) local.delete(c.network)
      registeredCount--
    }
  }

  const sample = async (c: Conn, n: number): Promise<PeerInfo[]> => {
    try {
      return await cluster.hosts.sample(c.network, Math.min(n, MAX_SAMPLE_SIZE), c.id, Date.now())
    } catch {
      return []
    }
  }

  // ---------------------------------------------------------------- handlers

  const failRegister = (c: Conn, ack: Ack | undefined, reason: RejectReason) => {
    inc(counters.rejected, reason)
    if (c.state === State.Closed) return
    const answer: RegisterAck = { ok: false, reason }
    if (ack) ack(answer)
    else c.socket.emit('rejected', { reason })
    kick(c, `register-${reason}`)
  }

  const onRegister = async (c: Conn, payload: unknown, ack: Ack | undefined, now: number) => {
    if (c.state !== State.New) {
      inc(counters.rejected, 'already-registered')
      ack?.({ ok: false, reason: 'already-registered' } satisfies RegisterAck)
      strike(c, now)
      return
    }
    const p = parseRegister(payload)
    if (!p) return failRegister(c, ack, 'bad-payload')
    // Every attempt costs the source one: signature checks are what a flood of attempts would buy.
    if (!sources.takeRegistration(c.source, now)) return failRegister(c, ack, 'too-many-registrations')
    if (!isPublicKey(p.publicKey)) return failRegister(c, ack, 'bad-key')
    if (p.signature.length !== SIGNATURE_BYTES || !c.nonce) return failRegister(c, ack, 'bad-signature')
    // The client signs the host it connected to; only ours count (a signature for another server is no
    // use here, and a server that passes clients' registrations on to us is refused).
    if (!allowedHosts.has(c.host)) return failRegister(c, ack, 'wrong-server')
    if (!meetsPuzzle(p.publicKey, o.puzzleBits)) return failRegister(c, ack, 'weak-identity')
    c.state = State.Registering
    const good = await verify(p.publicKey, registrationMessage(c.host, c.nonce), p.signature)
    if (c.state !== State.Registering) return
    if (!good) return failRegister(c, ack, 'bad-signature')
    const id = await nodeIdOf(p.publicKey)
    if (c.state !== State.Registering) return
    if (!sources.claimIdentity(c.source, id, now)) return failRegister(c, ack, 'too-many-identities')
    c.id = id
    c.claimed = true
    const existing = local.get(p.network)?.peers.get(id)
    if (!existing && registeredCount >= o.maxPeers) return failRegister(c, ack, 'server-full')
    if (existing) replaceLocal(existing)
    cluster.registered(p.network, id, c.session)

    let net = local.get(p.network)
    if (!net) {
      net = { name: p.network, peers: new Map() }
      local.set(p.network, net)
    }
    c.network = net.name
    c.nonce = null
    c.state = State.Registered
    if (c.timer) clearTimeout(c.timer)
    c.timer = null
    c.lastTouch = now
    net.peers.set(id, c)
    registeredCount++
    try {
      const added = await cluster.hosts.add(c.network, id, c.session, now)
      if (!added) throw new Error('host cache full')
    } catch {
      unlinkLocal(c)
      c.state = State.New // so failRegister's kick runs cleanup once
      return failRegister(c, ack, 'unavailable')
    }
    counters.registered++
    const peers = await sample(c, o.sampleSize)
    if (c.state !== State.Registered) return
    ack?.({ ok: true, id, peers, servers: book.list(undefined, c.host) } satisfies RegisterAck)
  }

  const onPeers = async (c: Conn, payload: unknown, ack: Ack | undefined, now: number) => {
    if (c.state !== State.Registered) return refuse(c, ack, 'not-registered', now)
    const p = parsePeersRequest(payload)
    if (!p) return refuse(c, ack, 'bad-payload', now)
    touch(c, now)
    const peers = await sample(c, p.max ?? o.sampleSize)
    ack?.({ ok: true, peers, servers: book.list(undefined, c.host) })
  }

  const onSignal = async (c: Conn, payload: unknown, ack: Ack | undefined, now: number) => {
    if (c.state !== State.Registered) return refuse(c, ack, 'not-registered', now)
    const p = parseSignalRequest(payload)
    if (!p) return refuse(c, ack, 'bad-payload', now)
    const answer = (a: SignalAck) => ack?.(a)
    if (jsonByteLength(p.data, o.signalMaxBytes) > o.signalMaxBytes) {
      inc(counters.rejected, 'too-large')
      return answer({ ok: false, reason: 'too-large' })
    }
    touch(c, now)
    const target = local.get(c.network)?.peers.get(p.to)
    if (target) {
      if (congested(target)) {
        inc(counters.rejected, 'congested')
        return answer({ ok: false, reason: 'congested' })
      }
      target.socket.emit('signal', { from: c.id, data: p.data })
      counters.signals++
      return answer({ ok: true })
    }
    const sent = await cluster.signal(c.network, p.to, c.id, p.data, now).catch(() => false)
    if (!sent || c.state !== State.Registered) {
      inc(counters.rejected, 'unknown-peer')
      return answer({ ok: false, reason: 'unknown-peer' })
    }
    counters.signals++
    answer({ ok: true })
  }

  /** Tell `c` a frame to `to` was dropped; counted under `countAs` (default: the reason). */
  const relayError = (c: Conn, to: string, reason: RelayErrorReason, countAs: string = reason) => {
    inc(counters.relayErrors, countAs)
    c.socket.emit('relay-error', { to, reason })
  }

  const onRelay = async (c: Conn, payload: unknown, now: number) => {
    const p = parseRelayRequest(payload)
    // Only successful frames are charged in bytes alone; every failure costs an event token too.
    const failed = (reason: RelayErrorReason, invalid: boolean, countAs: string = reason) => {
      if (invalid) {
        inc(counters.rejected, reason)
        strike(c, now)
      }
      if (!c.events.take(1, now)) {
        inc(counters.rejected, 'rate-limited')
        strike(c, now)
        return
      }
      if (p && c.state !== State.Closed) relayError(c, p.to, reason, countAs)
      else inc(counters.relayErrors, countAs)
    }
    if (c.state !== State.Registered) return failed('not-registered', true)
    if (!p) return failed('bad-payload', true)
    if (p.frame.length > o.relayFrameMaxBytes) return failed('too-large', true)
    const cost = p.frame.length + RELAY_FRAME_OVERHEAD
    c.bytes ??= new TokenBucket(o.relayBytesPerSec, o.relayBurstBytes, now)
    if (c.bytes.available(now) < cost) return failed('quota', false)
    // The source's allowance is shared by all its identities: ten of them do not relay ten times as much.
    if (!sources.takeRelay(c.source, cost, now)) return failed('quota', false, 'quota-source')
    c.bytes.take(cost, now)
    touch(c, now)
    const target = local.get(c.network)?.peers.get(p.to)
    if (target) {
      if (congested(target)) return failed('congested', false)
      target.socket.emit('relay', { from: c.id, frame: p.frame })
    } else {
      // Counted here as relayed; the target's instance may still drop it (congested-remote).
      const sent = await cluster.relay(c.network, p.to, c.id, p.frame, now).catch(() => false)
      if (!sent) return failed('unknown-peer', false)
    }
    counters.relayFrames++
    counters.relayBytes += p.frame.length
  }

  // ------------------------------------------------- from other instances

  const fromCluster: ClusterEvents = {
    replace(network, id, session) {
      const c = local.get(network)?.peers.get(id)
      if (c && c.session !== session) replaceLocal(c)
    },
    signal(network, to, from, data) {
      const target = local.get(network)?.peers.get(to)
      if (!target) return inc(counters.rejected, 'remote-unknown-peer')
      target.socket.emit('signal', { from, data })
      counters.signalsRemote++
    },
    /** A frame another instance forwarded: delivered only to a node registered here that is not congested. */
    relay(network, to, from, frame) {
      const target = local.get(network)?.peers.get(to)
      if (!target) {
        inc(counters.relayErrors, 'remote-unknown-peer')
        return 'gone'
      }
      if (congested(target)) {
        inc(counters.relayErrors, 'congested-remote')
        return 'congested'
      }
      target.socket.emit('relay', { from, frame })
      counters.relayFramesRemote++
      return null
    },
    /** Another instance dropped a frame of a sender registered here: tell it as a local drop would. */
    relayError(network, to, from, reason) {
      const c = local.get(network)?.peers.get(from)
      if (!c) return
      const now = Date.now()
      // Same price as a local refusal: an event token, and a strike when there is none (no double count
      // in relayErrors: the target's instance counted the drop).
      if (!c.events.take(1, now)) {
        inc(counters.rejected, 'rate-limited')
        strike(c, now)
        return
      }
      c.socket.emit('relay-error', { to, reason })
    },
  }

  let cluster: Cluster
  if (o.redisUrl !== undefined && o.redisSecret !== undefined) {
    const { createRedisCluster } = await import('./cluster-redis.ts')
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
      fromCluster,
    )
  } else {
    cluster = createLocalCluster({ hostTtlMs: o.hostTtlMs, maxPeers: o.maxPeers })
  }
  // Rebuilt once the port (and so the default public URLs) is known.
  let book = createServerBook({ configured: o.servers, self: o.publicUrls, cluster: () => cluster.servers() })

  const onEvent = (c: Conn, event: unknown, args: unknown[]) => {
    if (c.state === State.Closed) return
    const now = Date.now()
    const last = args[args.length - 1]
    const ack = typeof last === 'function' ? (args.pop() as Ack) : undefined
    const payload = args[0]
    if (event === 'relay') {
      // Relay frames are paid for in bytes (and refused frames in events) inside onRelay.
      if (ack || args.length > 1) return refuse(c, ack, 'bad-payload', now)
      void onRelay(c, payload, now).catch(() => {})
      return
    }
    if (!c.events.take(1, now)) return refuse(c, ack, 'rate-limited', now)
    if (args.length > 1) return refuse(c, ack, 'bad-payload', now)
    switch (event) {
      case 'register':
        void onRegister(c, payload, ack, now).catch(() => failRegister(c, ack, 'unavailable'))
        return
      case 'peers':
        void onPeers(c, payload, ack, now).catch(() => {})
        return
      case 'signal':
        void onSignal(c, payload, ack, now).catch(() => {})
        return
      default:
        return refuse(c, ack, 'unknown-event', now)
    }
  }

  // -------------------------------------------------------------- connection

  // One listener function for every socket (no closures per socket): the socket finds its Conn in data.
  function onAnyEvent(this: IoSocket, event: unknown, ...args: unknown[]) {
    const c = this.data.conn
    if (c) onEvent(c, event, args)
  }
  function onDisconnect(this: IoSocket) {
    const c = this.data.conn
    // socket.io refuses reserved names from clients, but a forged 'disconnect' must never clean up a live socket.
    if (!c || this.connected || c.state === State.Closed) return
    const wasRegistered = c.state === State.Registered
    c.state = State.Closed
    if (c.timer) clearTimeout(c.timer)
    c.timer = null
    if (c.claimed) sources.releaseIdentity(c.source, c.id, Date.now())
    if (wasRegistered) {
      unlinkLocal(c)
      Promise.resolve(cluster.hosts.remove(c.network, c.id, c.session)).catch(() => {})
    }
  }
  const onTimeout = (c: Conn) => {
    c.timer = null
    if (c.state === State.New || c.state === State.Registering) {
      inc(counters.rejected, 'timeout')
      kick(c, 'timeout', 'timeout')
    }
  }
  /** The same (lower-cased) Host string for every socket that used it (bounded: past 64 distinct hosts, no sharing). */
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
    const c: Conn = {
      socket,
      state: State.New,
      nonce: new Uint8Array(randomBytes(NONCE_BYTES)),
      host: internHost(socket.handshake.headers.host),
      source: sessionSource.get(socket.conn) ?? 'unknown',
      session: cluster.session(socket.id),
      network: '',
      id: '',
      claimed: false,
      events: new TokenBucket(o.eventsPerSec, o.eventBurst, now),
      strikes: null,
      bytes: null,
      timer: null,
      lastTouch: 0,
    }
    // Memory: engine.io keeps each session's first HTTP request (dropping it is socket.io's documented
    // saving), the handshake keeps its headers, URL and a date string, and every socket joins a room
    // named after its own id. We need none of them once the Host header is read.
    ;(socket.conn as unknown as { request: unknown }).request = null
    socket.handshake.headers = {}
    socket.handshake.url = ''
    socket.handshake.time = ''
    socket.leave(socket.id)
    socket.data.conn = c
    c.timer = setTimeout(onTimeout, o.registerTimeoutMs, c)
    c.timer.unref?.()
    socket.onAny(onAnyEvent)
    socket.on('disconnect', onDisconnect)
    socket.emit('challenge', { nonce: c.nonce as Uint8Array })
  })

  // ------------------------------------------------------------------ sweep

  const sweep = async () => {
    const now = Date.now()
    const alive: { network: string; id: string }[] = []
    for (const socket of sockets().values()) {
      const c = socket.data.conn
      if (!c) continue
      if (unsent(socket) > o.slowConsumerMaxPackets) kick(c, 'slow-consumer')
      else if (c.state === State.Registered) alive.push({ network: c.network, id: c.id })
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

  // ------------------------------------------------------------------- http

  httpServer.on(
    'request',
    createHttpHandler({
      staticDir: o.staticDir,
      health: () => {
        const ready = cluster.ready()
        let peers = 0
        for (const net of local.values()) peers += net.peers.size
        return {
          status: ready ? 200 : 503,
          body: {
            ok: ready,
            peers,
            networks: local.size,
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
  publicUrls = o.publicUrls.length > 0 ? o.publicUrls : defaultPublicUrls(o.host, port)
  allowedHosts = new Set(publicUrls.map((u) => new URL(u).host))
  book = createServerBook({ configured: o.servers, self: publicUrls, cluster: () => cluster.servers() })

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
