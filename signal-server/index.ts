/**
 * The weft signal server: a GWebCache for browsers plus an ultrapeer-style
 * relay for firewalled nodes.
 *
 * A socket gets a random challenge on connection and must `register` within
 * registerTimeoutMs: its Ed25519 public key, the network it joins and a
 * signature over registrationMessage(Host header, challenge). The server
 * derives the node id from the key, so nobody can receive signals addressed to
 * another node. A second registration of the same id replaces the first socket.
 *
 * Registered nodes can then ask for bootstrap samples (`peers`), pass WebRTC
 * signals (`signal`, small JSON, acked) and relay opaque binary frames
 * (`relay`, quota'd per node in bytes/s, never queued without bound) to other
 * nodes of the same network. The server never looks inside relayed frames.
 *
 * Every event is validated here, at the boundary (shared/signal-events.ts);
 * invalid ones are refused with a reason code and counted, each socket has an
 * event rate limit, and a socket that keeps sending bad or excess events is
 * dropped. Who is registered lives in a HostCache (registry.ts): in memory by
 * default, or in Redis (registry-redis.ts) when several instances share the
 * load, in which case the socket.io Redis adapter carries signals to nodes on
 * other instances through a room per node (`n:<network>:<id>`), and relay
 * frames and replacements travel between instances as serverSideEmit messages
 * (inter-server.ts): the target's instance applies the same congestion check
 * as for a local sender, drops what it cannot deliver and tells the sender.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo, Socket as TcpSocket } from 'node:net'
import { Server, type Socket } from 'socket.io'
import { isPublicKey, nodeIdOf, verify } from '../shared/identity/keys.ts'
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
import { createHttpHandler } from './http.ts'
import {
  encodeRemoteRelay,
  parseRemoteRelay,
  parseRemoteRelayError,
  parseRemoteReplace,
  type RemoteRelayError,
  type RemoteRelayWire,
  type RemoteReplace,
} from './inter-server.ts'
import { createCounters, flatMetrics, type Gauges, inc, renderPrometheus } from './metrics.ts'
import { resolveOptions, type SignalServerOptions } from './options.ts'
import { createMemoryHostCache, type HostCache, type MemoryHostCache } from './registry.ts'
import { createServerBook } from './server-book.ts'
import { TokenBucket } from './token-bucket.ts'

export type { SignalServerOptions } from './options.ts'

export interface SignalServer {
  /** `http://127.0.0.1:PORT` (or the host it listens on, when that is a specific address). */
  address: string
  port: number
  close(): Promise<void>
  /** Counters and gauges, flat: peers, networks, signals, relayBytes, `rejected.<reason>`, … */
  metrics(): Record<string, number>
  httpServer: HttpServer
}

/** What instances tell each other (inter-server.ts); every payload is parsed on receipt. */
interface InterServerEvents {
  'weft:replace': (p: RemoteReplace) => void
  'weft:relay': (p: RemoteRelayWire) => void
  'weft:relay-error': (p: RemoteRelayError) => void
}

type IoServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>
type IoSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>
type Ack = (answer: unknown) => void

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
  network: string
  id: string
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

const room = (network: string, id: string) => `n:${network}:${id}`

export async function createSignalServer(options: SignalServerOptions = {}): Promise<SignalServer> {
  const o = resolveOptions(options, randomBytes(4).toString('hex'))
  const startedAt = Date.now()
  const counters = createCounters()
  const book = createServerBook({ configured: o.servers, self: o.publicUrls })
  // Local registered nodes, by network then id.
  const local = new Map<string, Net>()
  const hosts = new Map<string, string>()
  let registeredCount = 0
  let closing = false

  let memCache: MemoryHostCache | null = null
  let cache: HostCache
  let redisClients: { close(): Promise<unknown> }[] = []
  let redisReady: () => boolean = () => true

  const httpServer = createServer()
  // Every TCP connection, so close() can end upgraded WebSockets too (ws waits up to 30 s for a close frame).
  const tcp = new Set<TcpSocket>()
  httpServer.on('connection', (sock) => {
    tcp.add(sock)
    sock.once('close', () => tcp.delete(sock))
  })
  const io: IoServer = new Server(httpServer, {
    maxHttpBufferSize: o.maxHttpBufferSize,
    cors: { origin: '*' },
    serveClient: false,
    allowRequest: (_req, cb) =>
      cb(null, !closing && io.engine.clientsCount < o.maxPeers + o.maxPendingSockets),
  })
  const sockets = () => io.of('/').sockets

  if (o.redisUrl !== undefined) {
    const { createClient } = await import('redis')
    const { createAdapter } = await import('@socket.io/redis-adapter')
    const { createRedisHostCache } = await import('./registry-redis.ts')
    const pub = createClient({ url: o.redisUrl })
    const sub = pub.duplicate()
    for (const c of [pub, sub]) c.on('error', (err: Error) => o.log(`redis: ${err.message}`))
    await Promise.all([pub.connect(), sub.connect()])
    redisClients = [sub, pub]
    redisReady = () => pub.isReady && sub.isReady
    io.adapter(createAdapter(pub, sub, { key: `${o.redisPrefix}-io` }))
    cache = createRedisHostCache(pub, {
      prefix: o.redisPrefix,
      ttlMs: o.hostTtlMs,
      maxPerNetwork: o.maxPeers * 16,
    })
  } else {
    memCache = createMemoryHostCache({
      ttlMs: o.hostTtlMs,
      maxPerNetwork: o.maxPeers,
      maxEntries: o.maxPeers,
    })
    cache = memCache
  }
  const multi = o.redisUrl !== undefined
  // Activity reaches the cache at most this often per node (a Redis round trip each).
  const touchEveryMs = multi ? 5000 : 1000

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
    if (now - c.lastTouch < touchEveryMs) return
    c.lastTouch = now
    Promise.resolve(cache.touch(c.network, c.id, now)).catch(() => {})
  }

  const congested = (target: Conn) => unsent(target.socket) > o.congestionMaxPackets

  const lookupRemote = async (network: string, id: string, now: number): Promise<PeerInfo | null> => {
    try {
      return await cache.lookup(network, id, now)
    } catch {
      return null
    }
  }

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
      return await cache.sample(c.network, Math.min(n, MAX_SAMPLE_SIZE), c.id, Date.now())
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
    if (!isPublicKey(p.publicKey)) return failRegister(c, ack, 'bad-key')
    if (p.signature.length !== SIGNATURE_BYTES || !c.nonce) return failRegister(c, ack, 'bad-signature')
    c.state = State.Registering
    const good = await verify(p.publicKey, registrationMessage(c.host, c.nonce), p.signature)
    if (c.state !== State.Registering) return
    if (!good) return failRegister(c, ack, 'bad-signature')
    const id = await nodeIdOf(p.publicKey)
    if (c.state !== State.Registering) return
    const existing = local.get(p.network)?.peers.get(id)
    if (!existing && registeredCount >= o.maxPeers) return failRegister(c, ack, 'server-full')
    if (existing) replaceLocal(existing)
    if (multi) io.serverSideEmit('weft:replace', { network: p.network, id, session: c.socket.id })

    let net = local.get(p.network)
    if (!net) {
      net = { name: p.network, peers: new Map() }
      local.set(p.network, net)
    }
    c.network = net.name
    c.id = id
    c.nonce = null
    c.state = State.Registered
    if (c.timer) clearTimeout(c.timer)
    c.timer = null
    c.lastTouch = now
    net.peers.set(id, c)
    registeredCount++
    if (multi) c.socket.join(room(c.network, id))
    try {
      const added = await cache.add(c.network, id, c.socket.id, now)
      if (!added) throw new Error('host cache full')
    } catch {
      unlinkLocal(c)
      c.state = State.New // so failRegister's kick runs cleanup once
      return failRegister(c, ack, 'unavailable')
    }
    if (p.servers) book.learn(p.servers)
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
    const remote = multi ? await lookupRemote(c.network, p.to, now) : null
    if (!remote || c.state !== State.Registered) {
      inc(counters.rejected, 'unknown-peer')
      return answer({ ok: false, reason: 'unknown-peer' })
    }
    io.to(room(c.network, p.to)).emit('signal', { from: c.id, data: p.data })
    counters.signals++
    answer({ ok: true })
  }

  const relayError = (c: Conn, to: string, reason: RelayErrorReason) => {
    inc(counters.relayErrors, reason)
    c.socket.emit('relay-error', { to, reason })
  }

  const onRelay = async (c: Conn, payload: unknown, now: number) => {
    const p = parseRelayRequest(payload)
    // Only successful frames are charged in bytes alone; every failure costs an event token too.
    const failed = (reason: RelayErrorReason, invalid: boolean) => {
      if (invalid) {
        inc(counters.rejected, reason)
        strike(c, now)
      }
      if (!c.events.take(1, now)) {
        inc(counters.rejected, 'rate-limited')
        strike(c, now)
        return
      }
      if (p && c.state !== State.Closed) relayError(c, p.to, reason)
      else inc(counters.relayErrors, reason)
    }
    if (c.state !== State.Registered) return failed('not-registered', true)
    if (!p) return failed('bad-payload', true)
    if (p.frame.length > o.relayFrameMaxBytes) return failed('too-large', true)
    c.bytes ??= new TokenBucket(o.relayBytesPerSec, o.relayBurstBytes, now)
    if (!c.bytes.take(p.frame.length + RELAY_FRAME_OVERHEAD, now)) return failed('quota', false)
    touch(c, now)
    const target = local.get(c.network)?.peers.get(p.to)
    if (target) {
      if (congested(target)) return failed('congested', false)
      target.socket.emit('relay', { from: c.id, frame: p.frame })
    } else {
      const remote = multi ? await lookupRemote(c.network, p.to, now) : null
      if (!remote) return failed('unknown-peer', false)
      if (c.state !== State.Registered) return
      // Counted here as relayed; the target's instance may still drop it (congested-remote).
      io.serverSideEmit('weft:relay', encodeRemoteRelay(c.network, p.to, c.id, p.frame))
    }
    counters.relayFrames++
    counters.relayBytes += p.frame.length
  }

  // ------------------------------------------------- from other instances

  const onRemoteReplace = (payload: unknown) => {
    const p = parseRemoteReplace(payload)
    if (!p) return inc(counters.rejected, 'inter-server-bad-payload')
    const c = local.get(p.network)?.peers.get(p.id)
    if (c && c.socket.id !== p.session) replaceLocal(c)
  }

  /** A frame another instance forwarded: delivered only to a node registered here that is not congested. */
  const onRemoteRelay = (payload: unknown) => {
    const p = parseRemoteRelay(payload, o.relayFrameMaxBytes)
    if (!p) return inc(counters.relayErrors, 'remote-bad-payload')
    // Every instance hears every forwarded frame; only the target's delivers it.
    const target = local.get(p.network)?.peers.get(p.to)
    if (!target) return
    if (congested(target)) {
      inc(counters.relayErrors, 'congested-remote')
      io.serverSideEmit('weft:relay-error', {
        network: p.network,
        to: p.to,
        from: p.from,
        reason: 'congested',
      })
      return
    }
    target.socket.emit('relay', { from: p.from, frame: p.frame })
    counters.relayFramesRemote++
  }

  /** Another instance dropped a frame of a sender registered here: tell it as a local drop would. */
  const onRemoteRelayError = (payload: unknown) => {
    const p = parseRemoteRelayError(payload)
    if (!p) return inc(counters.rejected, 'inter-server-bad-payload')
    const c = local.get(p.network)?.peers.get(p.from)
    if (!c) return
    const now = Date.now()
    // Same price as a local refusal: an event token, and a strike when there is none (no double count
    // in relayErrors: the target's instance counted the drop).
    if (!c.events.take(1, now)) {
      inc(counters.rejected, 'rate-limited')
      strike(c, now)
      return
    }
    c.socket.emit('relay-error', { to: p.to, reason: p.reason })
  }

  if (multi) {
    io.on('weft:replace', onRemoteReplace)
    io.on('weft:relay', onRemoteRelay)
    io.on('weft:relay-error', onRemoteRelayError)
  }

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
    if (wasRegistered) {
      unlinkLocal(c)
      Promise.resolve(cache.remove(c.network, c.id, this.id)).catch(() => {})
    }
  }
  const onTimeout = (c: Conn) => {
    c.timer = null
    if (c.state === State.New || c.state === State.Registering) {
      inc(counters.rejected, 'timeout')
      kick(c, 'timeout', 'timeout')
    }
  }
  /** The same Host string for every socket that used it (bounded: past 64 distinct hosts, no sharing). */
  const internHost = (h: unknown): string => {
    if (typeof h !== 'string') return ''
    const known = hosts.get(h)
    if (known !== undefined) return known
    if (hosts.size < 64 && h.length <= 256) hosts.set(h, h)
    return h
  }

  io.on('connection', (socket) => {
    const now = Date.now()
    counters.connections++
    const c: Conn = {
      socket,
      state: State.New,
      nonce: new Uint8Array(randomBytes(NONCE_BYTES)),
      host: internHost(socket.handshake.headers.host),
      network: '',
      id: '',
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
    try {
      await cache.keepAlive(alive, now)
      await cache.prune(now)
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
        const ready = redisReady()
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
            ...(multi ? { redis: ready } : {}),
          },
        }
      },
      prometheus: () => renderPrometheus(counters, gauges()),
    }),
  )

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject)
    const done = () => {
      httpServer.off('error', reject)
      resolve()
    }
    if (o.host === undefined) httpServer.listen(o.port, done)
    else httpServer.listen(o.port, o.host, done)
  })
  const port = (httpServer.address() as AddressInfo).port
  const host = o.host === undefined || o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host
  const address = `http://${host.includes(':') ? `[${host}]` : host}:${port}`

  let closed: Promise<void> | null = null
  return {
    address,
    port,
    httpServer,
    metrics: () => {
      const m = flatMetrics(counters, gauges())
      if (memCache) m.hostCacheEntries = memCache.size()
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
        await cache.close?.()
        for (const client of redisClients) await client.close().catch(() => {})
      })()
      return closed
    },
  }
}
