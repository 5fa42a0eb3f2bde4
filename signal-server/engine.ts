/**
 * How socket.io's transport is set up, and the savings made under it.
 *
 * Transport: WebSocket only, no per-message deflate, no HTTP compression, no
 * upgrade. weft's client connects with WebSocket only
 * (client/signal-client.ts), so polling would only serve other clients.
 * The cost of allowing it: a polling session is the heaviest thing
 * engine.io keeps per client (pending requests, packets buffered between
 * polls), every relayed frame would be an HTTP request, and behind a load
 * balancer it needs sticky sessions. The users it would help sit behind
 * proxies that refuse WebSocket upgrades; those proxies also leave a
 * browser peer little but this server's relay, which over polling would
 * cost the server the most exactly where it is used the most. A deployment
 * behind such proxies can terminate TLS in front of the server (WebSocket
 * over 443 passes most of them).
 *
 * WebSocket engine: `ws`, as socket.io ships it, without UTF-8 validation
 * of text frames (a packet's text is checked by the packet guard and the
 * event parsers anyway; invalid UTF-8 only becomes U+FFFD characters). eiows
 * (the uWebSockets-based engine socket.io documents) does not install here:
 * its build clones Node's sources from GitHub.
 *
 * Per socket, socket.io keeps a handshake record (headers, query, auth,
 * URL, date), a list of catch-all listeners and a table of acks it waits
 * for. This server reads the Host header once, has one catch-all listener
 * for every socket, and never emits with an ack: `slimSocket` gives every
 * socket the same empty handshake, listener list and ack table (one that
 * throws if anything ever adds to it, since it is shared).
 *
 * Write coalescing: each WebSocket frame went out in its own `writev`
 * system call, the largest single cost of relaying a signal (a delivery and
 * an ack: two frames to two sockets). While a socket's previous write is in
 * flight, engine.io gathers what the socket is sent and hands it to ws as a
 * batch, frame after frame; the WebSocket class given to ws here corks the
 * TCP stream at the first frame of a synchronous run and uncorks it on the
 * next tick, so a batch (the acks of a burst of signals, the frames of a
 * relayed stream) leaves in one system call. Nothing waits past the current
 * callback: no added latency, and engine.io's write buffer (the congestion
 * measure) drains as before. One tick callback uncorks every stream corked
 * in the run (a relayed signal corks a socket of its own: one callback per
 * signal before). A signal is handed to engine.io as its finished WebSocket
 * frame when the transport is free (connections.ts, sendSignal).
 *
 * ws's frame receiver keeps the mask of the last frame it read, a 4-byte view
 * into the TCP chunk that frame came in: each idle socket held on to its
 * last chunk, ~420 bytes after a signal and as much as a whole relay frame
 * after one. Each socket's receiver is given a subclass (LeanReceiver) that
 * lets go of the mask once the frame's payload is read (the next frame
 * brings its own). Two lists each socket pushes to and shifts from, ws's
 * receiver's chunks and engine.io's sent-callback batches, kept their grown
 * room (~150 B each) once empty: they are trimmed in place when emptied. With
 * no extension negotiated, ws's WebSocket, receiver and sender share one
 * frozen empty extension table. (engine-lean.ts has the cuts made once a
 * socket is connected.)
 *
 * Where a registered peer's heap went (heap snapshots with 0 and 2,000
 * peers, `BENCH_HEAPSNAP=weft BENCH_PEERS=2000 npx tsx bench/server.ts`,
 * self sizes by constructor, arrays and tables charged to their holder;
 * before these cuts, bytes per peer): net.Socket, engine.io's and
 * socket.io's sockets and what they hold ~2.5 KB, engine.io's WebSocket
 * transport ~1.4 KB (of it 450 B a hash-table listener list, 4 closures),
 * ws's WebSocket ~0.8 KB, ws's receiver ~0.6 KB plus the pinned chunk
 * ~0.4 KB, stream states ~0.5 KB, the verify-key cache ~1 KB (CryptoKey and
 * native handle; bounded at 4,096 keys), Map/Set tables ~0.8 KB (sources,
 * nodes, host cache, engine.io's and socket.io's socket tables, the
 * adapter's room sets), socket.io's Client and decoder ~0.55 KB, the ping
 * Timeout ~0.25 KB, weft's Conn and token buckets ~0.2 KB. What was cut,
 * each measured the same way: the listener lists (compactListeners, ~0.6
 * KB), the pinned chunk (~0.45 KB), the key cache (signal-server/verify.ts),
 * the room sets (~0.2 KB), tight lists (~0.3 KB), the heartbeats (~0.2 KB).
 */
import { createRequire } from 'node:module'
import type { ServerOptions } from 'socket.io'

type WsServerClass = NonNullable<ServerOptions['wsEngine']>

interface TcpStream {
  cork(): void
  uncork(): void
  writableCorked: number
}
interface WsSocket {
  send(data: unknown, options?: unknown, cb?: unknown): void
}
interface WsModule {
  WebSocketServer: new (options: object) => object
  WebSocket: new (...args: never[]) => WsSocket
  Receiver: new (...args: never[]) => WsReceiver
}
interface WsReceiver {
  getData(cb: unknown): void
}
/** What LeanReceiver reads of ws's receiver (plain property reads: Reflect.get is a slow generic lookup). */
interface ReceiverFields {
  _state: unknown
  _mask: unknown
  _buffers: unknown
}

/** ws's receiver states (ws/lib/receiver.js): reading a frame's payload. */
const GET_DATA = 4

/**
 * TCP streams corked in this synchronous run, uncorked together on the next tick: one tick callback
 * for every socket written to, not one per socket (a relayed signal goes to a socket of its own).
 */
let corked: TcpStream[] = []
const uncorkAll = () => {
  const streams = corked
  corked = []
  let i = 0
  try {
    for (; i < streams.length; i++) (streams[i] as TcpStream).uncork()
  } finally {
    // (Should an uncork ever throw, the streams after it are still uncorked, on the next tick.)
    for (i++; i < streams.length; i++)
      if (corked.push(streams[i] as TcpStream) === 1) process.nextTick(uncorkAll)
  }
}
/**
 * Cork the TCP stream under `ws` (ws's WebSocket) until the next tick, unless it is corked already:
 * what is written to it until then leaves in one system call.
 */
export function coalesceWrites(ws: unknown): void {
  const tcp: unknown = (ws as { _socket?: unknown } | null)?._socket
  if (!isTcpStream(tcp) || tcp.writableCorked !== 0) return
  tcp.cork()
  if (corked.push(tcp) === 1) process.nextTick(uncorkAll)
}
/** ws's table of negotiated extensions, when there are none (it is only read then). */
const NO_EXTENSIONS = Object.freeze({})

/** `ws`'s server class as engine.io resolves it: UTF-8 validation off, writes coalesced (see the header). */
export function tunedWsEngine(): WsServerClass {
  // engine.io's own ws (whatever npm placed where engine.io finds it), not whichever ws is nearest to us.
  const fromEngine = createRequire(createRequire(import.meta.url).resolve('engine.io'))
  const ws = fromEngine('ws') as WsModule
  /** ws's receiver, letting go of the last frame's mask once the frame is read (see the header). */
  class LeanReceiver extends ws.Receiver {
    override getData(cb: unknown): void {
      super.getData(cb)
      const r = this as unknown as ReceiverFields
      if (r._state !== GET_DATA) r._mask = undefined
    }
    startLoop(cb: unknown): void {
      startLoop.call(this, cb)
      // Every chunk read is consumed: let the emptied list give back its room (trimmed in place).
      const buffers = (this as unknown as ReceiverFields)._buffers
      if (Array.isArray(buffers) && buffers.length === 0) buffers.length = 0
    }
  }
  const startLoop = Reflect.get(ws.Receiver.prototype, 'startLoop') as (...a: unknown[]) => void
  class CoalescingWebSocket extends ws.WebSocket {
    setSocket(...args: unknown[]): void {
      Reflect.apply(Reflect.get(ws.WebSocket.prototype, 'setSocket') as (...a: unknown[]) => void, this, args)
      const receiver: unknown = Reflect.get(this, '_receiver')
      if (receiver instanceof ws.Receiver) Object.setPrototypeOf(receiver, LeanReceiver.prototype)
      // No extension was negotiated (no deflate): one frozen empty table for all, not one each.
      const extensions: unknown = Reflect.get(this, '_extensions')
      if (typeof extensions === 'object' && extensions !== null && Reflect.ownKeys(extensions).length === 0)
        for (const o of [this, receiver, Reflect.get(this, '_sender')])
          if (typeof o === 'object' && o !== null && Reflect.get(o, '_extensions') === extensions)
            Reflect.set(o, '_extensions', NO_EXTENSIONS)
    }
    override send(data: unknown, options?: unknown, cb?: unknown): void {
      coalesceWrites(this)
      super.send(data, options, cb)
    }
  }
  return class TunedWebSocketServer extends ws.WebSocketServer {
    constructor(options: object) {
      super({ ...options, skipUTF8Validation: true, WebSocket: CoalescingWebSocket })
    }
  }
}

const isTcpStream = (x: unknown): x is TcpStream =>
  typeof x === 'object' &&
  x !== null &&
  typeof (x as TcpStream).cork === 'function' &&
  typeof (x as TcpStream).writableCorked === 'number'

const EMPTY_HANDSHAKE = Object.freeze({
  headers: Object.freeze({}),
  time: '',
  address: '',
  xdomain: false,
  secure: false,
  issued: 0,
  url: '',
  query: Object.freeze({}),
  auth: Object.freeze({}),
})

/** The ack table every socket shares: this server never waits for a client's ack. */
class NoAcks extends Map<number, unknown> {
  override set(): this {
    throw new Error('the signal server never emits with an ack (the ack table is shared by all sockets)')
  }
}
const NO_ACKS = new NoAcks()
/** The per-socket middleware list every socket shares: this server has none (socket.use() would throw). */
const NO_MIDDLEWARE: readonly unknown[] = Object.freeze([])

/**
 * Give `socket` the shared empty handshake, ack table and catch-all listener list (`listeners`, one
 * array for every socket: never offAny() on one). Read what you need from the handshake first.
 */
export function slimSocket(socket: object, listeners: unknown[]): void {
  Reflect.set(socket, 'handshake', EMPTY_HANDSHAKE)
  Reflect.set(socket, 'acks', NO_ACKS)
  Reflect.set(socket, '_anyListeners', listeners)
}

/** What slimSession touches of a socket.io socket. */
export interface SessionLike {
  id: string
  conn: object
  leave(room: string): unknown
  nsp: { adapter: { sids: Map<string, unknown> } }
}

/**
 * Everything a new socket can do without, once the Host header is read: engine.io's copy of the first
 * HTTP request (dropping it is socket.io's documented saving); the handshake, listener list and ack
 * table (slimSocket); the room named after the socket's own id, and the adapter's set of the socket's
 * rooms, empty once it left that room: this server never joins rooms nor broadcasts (the only users
 * of that table), and the adapter makes the set again if a room is ever joined.
 */
export function slimSession(socket: SessionLike, listeners: unknown[]): void {
  Reflect.set(socket.conn, 'request', null)
  slimSocket(socket, listeners)
  Reflect.set(socket, 'fns', NO_MIDDLEWARE)
  socket.leave(socket.id)
  socket.nsp.adapter.sids.delete(socket.id)
}

/**
 * The chain of event emitters under one socket.io socket, top down: the socket.io socket, engine.io's
 * socket, its WebSocket transport, ws's WebSocket, ws's frame receiver, the TCP socket. Each one found
 * is passed to `visit`; returns how many were found (6 with the libraries this was written against:
 * engine.test.ts fails if an upgrade changes the chain).
 */
export function emitterChain(socket: object, visit: (emitter: object) => void): number {
  const get = (o: unknown, key: string): object | null => {
    const v: unknown = typeof o === 'object' && o !== null ? Reflect.get(o, key) : null
    return typeof v === 'object' && v !== null ? v : null
  }
  const engine = get(socket, 'conn')
  const transport = get(engine, 'transport')
  const ws = get(transport, 'socket')
  const chain = [socket, engine, transport, ws, get(ws, '_receiver'), get(ws, '_socket')]
  let found = 0
  for (const emitter of chain)
    if (emitter) {
      visit(emitter)
      found++
    }
  return found
}

/**
 * Node's EventEmitter keeps its listeners in a null-prototype object, which V8 holds as a hash table
 * (dictionary mode): ~450 bytes with the five or six events each emitter under a socket listens to.
 * The same keys in a fresh object, added in the same order and then given the null prototype, are a
 * fast-mode object sharing one hidden class across sockets: ~90 bytes. Same keys, same lookups, still
 * no prototype (so `emit('toString')` still finds nothing); an event removed later turns the object
 * back into a hash table, which is all it costs. Returns whether `emitter` had listeners to compact.
 */
export function compactListeners(emitter: object): boolean {
  const events: unknown = Reflect.get(emitter, '_events')
  if (typeof events !== 'object' || events === null || Object.getPrototypeOf(events) !== null) return false
  const fast: Record<string | symbol, unknown> = {}
  for (const key of Reflect.ownKeys(events)) {
    const v: unknown = Reflect.get(events, key)
    // An event with several listeners has an array, grown with slack as they were pushed: copy it tight.
    fast[key] = Array.isArray(v) ? v.slice() : v
  }
  Object.setPrototypeOf(fast, null)
  Reflect.set(emitter, '_events', fast)
  return true
}

/** `o[key]`, an array grown by pushes (with room for more), replaced by a copy of its exact length. */
function tighten(o: unknown, key: string): void {
  const v: unknown = typeof o === 'object' && o !== null ? Reflect.get(o, key) : undefined
  if (Array.isArray(v)) Reflect.set(o as object, key, v.slice())
}

/**
 * Compact the listeners of every emitter under `socket` (call once they are all attached); returns how
 * many listener tables were rebuilt. Also tightens two lists each socket fills once at its start and
 * then keeps (each pushed to from empty, so with room for 16 more): engine.io's cleanup callbacks and
 * the socket.io decoder's one listener.
 */
export function compactSession(socket: object): number {
  let compacted = 0
  emitterChain(socket, (e) => {
    if (compactListeners(e)) compacted++
  })
  tighten(Reflect.get(socket, 'conn'), 'cleanupFn')
  const decoder: unknown = Reflect.get(Reflect.get(socket, 'client') as object, 'decoder')
  const callbacks: unknown =
    typeof decoder === 'object' && decoder !== null ? Reflect.get(decoder, '_callbacks') : null
  if (typeof callbacks === 'object' && callbacks !== null)
    for (const k of Object.keys(callbacks)) tighten(callbacks, k)
  return compacted
}

/** socket.io's options for the transport (see the header). */
export function transportOptions(): Partial<ServerOptions> {
  return {
    transports: ['websocket'],
    allowUpgrades: false,
    perMessageDeflate: false,
    httpCompression: false,
    wsEngine: tunedWsEngine(),
  }
}

// ------------------------------------------------------------------ heartbeats

/** What Heartbeats uses of engine.io's socket (protocol 4: the server pings, the client answers). */
interface EngineSocket {
  readyState: string
  pingIntervalTimer: unknown
  pingTimeoutTimer: unknown
  hasRefreshedPingTimeout: boolean
  sendPacket(type: string): void
  onPacket(packet: { type: string }): void
  onClose(reason: string, description?: unknown): void
}
interface EngineModule {
  Socket: new (...args: never[]) => EngineSocket
}

/**
 * Stands in for both of a socket's heartbeat timers: engine.io refreshes and clears them, which for
 * this one is nothing (Heartbeats keeps the times). Not a Timeout, so clearTimeout leaves it be.
 */
const BEAT = Object.freeze({ refresh: () => BEAT })

export interface Heartbeats {
  /** Take over `engineSocket`'s heartbeat (from its engine.io 'connection' event on). */
  adopt(engineSocket: object): void
  /** Sockets whose heartbeat is kept here. */
  size(): number
  close(): void
}

/**
 * Every socket's heartbeat on one timer. engine.io gives each socket a Timeout (and a closure) for
 * its next ping, and another for the pong it then waits for: ~250 bytes a socket. Here one table
 * holds, per socket, the tick its next step is due: send the ping, or, when a pong is awaited, close
 * it (`ping timeout`); one timer walks the table each tick (1/20 of the shorter of pingInterval and
 * pingTimeout, 1 s with engine.io's defaults: a ping or a timeout is at most that late). The rest is
 * engine.io's: an adopted socket's class becomes a subclass that moves its due tick when a pong, or
 * any packet while a pong is awaited (once per ping, as engine.io does), arrives, and leaves the
 * table when it closes; both timer fields hold BEAT. A socket being closed ('closing': engine.io
 * waits for its write buffer to drain first) keeps its place, and is closed at its ping timeout as
 * engine.io's timers would (a client that never reads again would otherwise hold it for ever).
 */
export function createHeartbeats(opts: { pingInterval: number; pingTimeout: number }): Heartbeats {
  // The engine.io socket.io runs on (whatever npm placed where socket.io finds it).
  const engine = createRequire(createRequire(import.meta.url).resolve('socket.io'))(
    'engine.io',
  ) as EngineModule
  const tickMs = Math.max(10, Math.min(opts.pingInterval, opts.pingTimeout) / 20)
  const intervalTicks = Math.ceil(opts.pingInterval / tickMs)
  const timeoutTicks = Math.ceil(opts.pingTimeout / tickMs)
  const due = new Map<EngineSocket, number>()
  let tick = 0

  const onDrain = Reflect.get(engine.Socket.prototype, 'onDrain') as () => void
  class HeartbeatSocket extends engine.Socket {
    override onPacket(packet: { type: string }): void {
      if (this.readyState === 'open' && this.pingTimeoutTimer === BEAT) {
        if (packet.type === 'pong') due.set(this, tick + intervalTicks)
        else if (!this.hasRefreshedPingTimeout) due.set(this, tick + timeoutTicks)
      }
      super.onPacket(packet)
    }
    onDrain(): void {
      onDrain.call(this)
      // The list is pushed to and shifted once per flush: emptied, it gives back its room (trimmed in place).
      const list: unknown = (this as { sentCallbackFn?: unknown }).sentCallbackFn
      if (Array.isArray(list) && list.length === 0) list.length = 0
    }
    override onClose(reason: string, description?: unknown): void {
      due.delete(this)
      super.onClose(reason, description)
    }
  }

  const step = () => {
    tick++
    for (const [s, at] of due) {
      if (at > tick) continue
      // A 'closing' socket stays: engine.io's close waits for its write buffer to drain, which for a
      // client that stopped reading never happens; its timers ended it (as the ping timeout), so do these.
      if (s.readyState === 'closed') due.delete(s)
      else if (s.pingTimeoutTimer === BEAT) s.onClose('ping timeout')
      else {
        s.hasRefreshedPingTimeout = false
        s.sendPacket('ping')
        s.pingTimeoutTimer = BEAT
        due.set(s, tick + timeoutTicks)
      }
    }
  }
  const timer = setInterval(step, tickMs)
  timer.unref()

  return {
    adopt(raw) {
      if (!(raw instanceof engine.Socket) || raw.readyState !== 'open') return
      clearTimeout(raw.pingIntervalTimer as NodeJS.Timeout)
      clearTimeout(raw.pingTimeoutTimer as NodeJS.Timeout)
      raw.pingIntervalTimer = BEAT
      raw.pingTimeoutTimer = null
      Object.setPrototypeOf(raw, HeartbeatSocket.prototype)
      due.set(raw, tick + intervalTicks)
    },
    size: () => due.size,
    close() {
      clearInterval(timer)
      due.clear()
    },
  }
}
