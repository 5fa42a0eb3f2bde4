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
 * measure) drains as before.
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
}

const uncork = (tcp: TcpStream) => tcp.uncork()

/** `ws`'s server class as engine.io resolves it: UTF-8 validation off, writes coalesced (see the header). */
export function tunedWsEngine(): WsServerClass {
  // engine.io's own ws (whatever npm placed where engine.io finds it), not whichever ws is nearest to us.
  const fromEngine = createRequire(createRequire(import.meta.url).resolve('engine.io'))
  const ws = fromEngine('ws') as WsModule
  class CoalescingWebSocket extends ws.WebSocket {
    override send(data: unknown, options?: unknown, cb?: unknown): void {
      const tcp: unknown = Reflect.get(this, '_socket')
      if (isTcpStream(tcp) && tcp.writableCorked === 0) {
        tcp.cork()
        process.nextTick(uncork, tcp)
      }
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

/**
 * Give `socket` the shared empty handshake, ack table and catch-all listener list (`listeners`, one
 * array for every socket: never offAny() on one). Read what you need from the handshake first.
 */
export function slimSocket(socket: object, listeners: unknown[]): void {
  Reflect.set(socket, 'handshake', EMPTY_HANDSHAKE)
  Reflect.set(socket, 'acks', NO_ACKS)
  Reflect.set(socket, '_anyListeners', listeners)
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
