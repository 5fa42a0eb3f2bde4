/**
 * The signalling client: one socket.io connection to a signal server at a
 * time. It answers the server's challenge with a signature (registration),
 * asks for bootstrap samples, passes WebRTC signals and relays frames.
 *
 * When the connection drops it reconnects with exponential backoff and
 * jitter, trying the next known server each time, and re-registers. Open
 * links do not depend on it: the mesh keeps working while it is down.
 *
 * The servers it knows are its own configuration plus the list the server
 * it last registered with handed out (that server's operator's other
 * servers), and that server itself. Nothing else: it does not tell servers
 * what it knows, and a list from an earlier server is replaced, so a server
 * that once listed an attacker's URL stops mattering once the client moves on.
 */
import type { ManagerOptions, Socket, SocketOptions } from 'socket.io-client'
import { NoRouteError, SignalError } from '../shared/errors.ts'
import type { Identity } from '../shared/identity/keys.ts'
import {
  type ClientToServerEvents,
  MAX_SERVERS,
  normalizeServerUrl,
  type PeerInfo,
  parseChallenge,
  parsePeersAck,
  parseRegisterAck,
  parseRejected,
  parseRelayDelivery,
  parseRelayError,
  parseSignalAck,
  parseSignalDelivery,
  type RelayErrorPayload,
  registrationMessage,
  type ServerToClientEvents,
} from '../shared/signal-events.ts'
import { Emitter } from './emitter.ts'

export type IoFactory = (url: string, opts: Partial<ManagerOptions & SocketOptions>) => Socket

export interface SignalClientOptions {
  /** Signal server URLs, tried in order. */
  servers: string[]
  network: string
  identity: Identity
  io: IoFactory
  /** Give up on one server's connect + register after this long. @default 8000 */
  connectTimeoutMs?: number
  /** First reconnect delay; doubles up to `maxBackoffMs`, with full jitter. @default 500 */
  minBackoffMs?: number
  /** @default 15000 */
  maxBackoffMs?: number
  /** @default 10000 */
  requestTimeoutMs?: number
}

export type SignalState = 'connecting' | 'registered' | 'down' | 'closed'

export interface SignalClientEvents extends Record<string, unknown> {
  registered: { server: string; peers: PeerInfo[] }
  state: SignalState
  signal: { from: string; data: unknown }
  relay: { from: string; frame: Uint8Array }
  'relay-error': RelayErrorPayload
  dropped: string
}

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>

export class SignalClient extends Emitter<SignalClientEvents> {
  state: SignalState = 'down'
  server: string | undefined
  readonly stats = {
    signalsOut: 0,
    signalsIn: 0,
    relayBytesOut: 0,
    relayBytesIn: 0,
    reconnects: 0,
    dropped: 0,
  }
  private socket: ClientSocket | undefined
  /** From the options; always kept, tried first. */
  private readonly configured: string[]
  /** What the server we last registered with listed (and that server, when not configured). */
  private learned: string[] = []
  private serverIndex = 0
  private attempt = 0
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private closed = false
  private readonly opts: Required<Omit<SignalClientOptions, 'identity' | 'io' | 'servers' | 'network'>> &
    SignalClientOptions

  constructor(opts: SignalClientOptions) {
    super()
    this.opts = {
      connectTimeoutMs: 8000,
      minBackoffMs: 500,
      maxBackoffMs: 15_000,
      requestTimeoutMs: 10_000,
      ...opts,
    }
    this.configured = dedupe(opts.servers.map((s) => normalizeServerUrl(s) ?? s))
    if (this.configured.length === 0) throw new SignalError('no-server', 'no signal server given')
  }

  /** Every signal server this client knows: configured ones first, then those the current server listed. */
  knownServers(): string[] {
    return dedupe([...this.configured, ...this.learned])
  }

  /**
   * Connect and register, trying each known server once in order. Resolves
   * with the first bootstrap sample; rejects with SignalError (the last
   * server's reason) when none accepts. Later drops reconnect by themselves.
   */
  async start(): Promise<PeerInfo[]> {
    let last: unknown
    const servers = this.knownServers()
    for (let i = 0; i < servers.length && !this.closed; i++) {
      this.serverIndex = i
      try {
        return await this.connectOnce(servers[i] as string)
      } catch (err) {
        last = err
        // A refusal of our identity is the same everywhere: do not hammer other servers.
        if (err instanceof SignalError && IDENTITY_REFUSALS.has(err.reason)) throw err
      }
    }
    throw last instanceof SignalError
      ? last
      : new SignalError('unreachable', `no signal server reachable: ${last}`)
  }

  private connectOnce(url: string): Promise<PeerInfo[]> {
    this.setState('connecting')
    return new Promise<PeerInfo[]>((resolve, reject) => {
      const socket: ClientSocket = this.opts.io(url, {
        transports: ['websocket'],
        reconnection: false,
        timeout: this.opts.connectTimeoutMs,
        forceNew: true,
      })
      let settled = false
      const fail = (err: SignalError) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        socket.removeAllListeners()
        socket.disconnect()
        reject(err)
      }
      const timer = setTimeout(
        () => fail(new SignalError('timeout', `signal server ${url} did not answer`)),
        this.opts.connectTimeoutMs,
      )
      socket.on('connect_error', (err) =>
        fail(new SignalError('unreachable', `signal server ${url}: ${err.message}`)),
      )
      socket.on('rejected', (p) => fail(new SignalError(parseRejected(p)?.reason ?? 'rejected')))
      socket.on('challenge', async (payload) => {
        const ch = parseChallenge(payload)
        if (!ch) return fail(new SignalError('bad-challenge', 'signal server sent a malformed challenge'))
        const host = new URL(url).host
        const signature = await this.opts.identity.sign(registrationMessage(host, ch.nonce))
        socket.emit(
          'register',
          {
            publicKey: this.opts.identity.publicKey,
            network: this.opts.network,
            signature,
          },
          (raw) => {
            const ack = parseRegisterAck(raw)
            if (!ack) return fail(new SignalError('bad-answer', 'malformed register answer'))
            if (!ack.ok) return fail(new SignalError(ack.reason))
            if (ack.id !== this.opts.identity.id)
              return fail(new SignalError('bad-answer', 'server derived another id'))
            settled = true
            clearTimeout(timer)
            this.learnFrom(url, ack.servers)
            this.adopt(socket, url)
            this.emit('registered', { server: url, peers: ack.peers })
            resolve(ack.peers)
          },
        )
      })
    })
  }

  private adopt(socket: ClientSocket, url: string): void {
    this.socket = socket
    this.server = url
    this.attempt = 0
    this.setState('registered')
    socket.removeAllListeners('connect_error')
    socket.on('signal', (p) => {
      const d = parseSignalDelivery(p)
      if (!d) return this.drop('bad-signal')
      this.stats.signalsIn++
      this.emit('signal', d)
    })
    socket.on('relay', (p) => {
      const d = parseRelayDelivery(p)
      if (!d) return this.drop('bad-relay')
      this.stats.relayBytesIn += d.frame.length
      this.emit('relay', d)
    })
    socket.on('relay-error', (p) => {
      const e = parseRelayError(p)
      if (!e) return this.drop('bad-relay-error')
      this.emit('relay-error', e)
    })
    socket.on('replaced', () => {
      // Another session with our id took over (a second tab with the same key): stand down.
      this.socket = undefined
      socket.removeAllListeners()
      socket.disconnect()
      this.setState('down')
      this.scheduleReconnect()
    })
    socket.on('disconnect', () => {
      if (this.socket !== socket) return
      this.socket = undefined
      socket.removeAllListeners()
      if (this.closed) return
      this.setState('down')
      this.scheduleReconnect()
    })
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return
    const cap = Math.min(this.opts.maxBackoffMs, this.opts.minBackoffMs * 2 ** this.attempt)
    const delay = this.opts.minBackoffMs / 2 + Math.random() * cap // full jitter, never zero
    this.attempt++
    this.retryTimer = setTimeout(async () => {
      this.retryTimer = undefined
      if (this.closed) return
      // After a failure on this server, move on to the next known one.
      const servers = this.knownServers()
      const url = servers[this.serverIndex % servers.length] as string
      try {
        await this.connectOnce(url)
        this.stats.reconnects++
      } catch {
        this.serverIndex = (this.serverIndex + 1) % this.knownServers().length
        this.setState('down')
        this.scheduleReconnect()
      }
    }, delay)
  }

  /**
   * `server` registered us and lists `servers`: they replace whatever an earlier server listed
   * (bounded by MAX_SERVERS); `server` itself stays known so a reconnect can come back to it.
   */
  private learnFrom(server: string, servers: readonly string[]): void {
    const listed = servers.map(normalizeServerUrl).filter((u): u is string => u !== null)
    this.learned = dedupe([server, ...listed])
      .filter((u) => !this.configured.includes(u))
      .slice(0, MAX_SERVERS + 1)
    this.serverIndex = Math.max(0, this.knownServers().indexOf(server))
  }

  /** Pass a WebRTC (or link-setup) signal to `to`; rejects NoRouteError for an unknown peer. */
  async signal(to: string, data: unknown): Promise<void> {
    const socket = this.requireSocket()
    this.stats.signalsOut++
    const raw = await socket.timeout(this.opts.requestTimeoutMs).emitWithAck('signal', { to, data })
    const ack = parseSignalAck(raw)
    if (!ack) throw new SignalError('bad-answer', 'malformed signal answer')
    if (!ack.ok) {
      if (ack.reason === 'unknown-peer')
        throw new NoRouteError(to, `${to} is not registered with the signal server`)
      throw new SignalError(ack.reason)
    }
  }

  /** Send a frame through the server's relay. False when not connected (the frame is not queued). */
  relay(to: string, frame: Uint8Array): boolean {
    const socket = this.socket
    if (!socket?.connected) return false
    this.stats.relayBytesOut += frame.length
    socket.emit('relay', { to, frame })
    return true
  }

  /** A fresh bootstrap sample of live peers of our network. */
  async peers(max?: number): Promise<PeerInfo[]> {
    const socket = this.requireSocket()
    const raw = await socket
      .timeout(this.opts.requestTimeoutMs)
      .emitWithAck('peers', max === undefined ? {} : { max })
    const ack = parsePeersAck(raw)
    if (!ack?.ok) throw new SignalError(ack ? ack.reason : 'bad-answer')
    if (this.socket === socket && this.server !== undefined) this.learnFrom(this.server, ack.servers)
    return ack.peers
  }

  get connected(): boolean {
    return !!this.socket?.connected
  }

  close(): void {
    this.closed = true
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    const s = this.socket
    this.socket = undefined
    if (s) {
      s.removeAllListeners()
      s.disconnect()
    }
    this.setState('closed')
    this.removeAll()
  }

  private requireSocket(): ClientSocket {
    if (!this.socket?.connected) throw new SignalError('disconnected', 'not connected to a signal server')
    return this.socket
  }

  private setState(s: SignalState): void {
    if (this.state === s || this.state === 'closed') return
    this.state = s
    this.emit('state', s)
  }

  private drop(reason: string): void {
    this.stats.dropped++
    this.emit('dropped', reason)
  }
}

/** Refusals of our identity itself: every server of the network would say the same. */
const IDENTITY_REFUSALS: ReadonlySet<string> = new Set(['bad-signature', 'bad-key', 'weak-identity'])

function dedupe(xs: string[]): string[] {
  return [...new Set(xs)]
}
