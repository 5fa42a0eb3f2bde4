/**
 * The signalling client: one socket.io connection to a signal server at a
 * time. It answers the server's challenge with a signature (registration),
 * asks for bootstrap samples, passes WebRTC signals and relays frames.
 *
 * Joining (`start`) tries the known servers in turn, and after each round
 * waits (exponential backoff with full jitter) before the next, until
 * `joinTimeoutMs` runs out; then it fails with a SignalError that names the
 * servers tried and the last reason. A refusal of the identity itself (which
 * every server would repeat) ends it at once. When the connection drops
 * later it reconnects the same way, with no deadline, and re-registers; that
 * backoff starts over only after a session that lasted (ReconnectBackoff).
 * Open links do not depend on it: the mesh keeps working while it is down.
 * Every step is a `status` event (state, server, attempt, next retry, the
 * last error), for an app to show.
 *
 * The server's answer may carry STUN/TURN servers (`iceServers`) with TURN
 * credentials that expire (`iceTtlMs`): they are kept for the node's
 * RTCPeerConnections and renewed (`peers { max: 0 }`) halfway through.
 *
 * The servers it knows are its own configuration plus the list the server
 * it last registered with handed out (that server's operator's other
 * servers), and that server itself. Nothing else: it does not tell servers
 * what it knows, and a list from an earlier server is replaced, so a server
 * that once listed an attacker's URL stops mattering once the client moves on.
 * The first connection may be opened early (signal-socket.ts, `preconnect`).
 */
import { ClosedError, NoRouteError, SignalError } from '../shared/errors.ts'
import type { Identity } from '../shared/identity/keys.ts'
import {
  type IceConfig,
  type IceServer,
  MAX_SERVERS,
  type PeerInfo,
  parseChallenge,
  parsePeersAck,
  parseRegisterAck,
  parseRejected,
  parseRelayDelivery,
  parseRelayError,
  parseSignalAck,
  parseSignalDelivery,
  parseSignalError,
  type RelayErrorPayload,
  registrationMessage,
  type SignalErrorPayload,
} from '../shared/signal-events.ts'
import { Emitter } from './emitter.ts'
import { checkNetworkName, checkSignalUrl } from './join-options.ts'
import { markPhase } from './node/timeline.ts'
import { type ClientSocket, type IoFactory, openSocket, type Preconnection } from './signal-socket.ts'
import {
  asSignalError,
  backoffMs,
  dedupe,
  IDENTITY_REFUSALS,
  joinFailure,
  listedServers,
  MIN_ATTEMPT_MS,
  nearIceServers,
  ReconnectBackoff,
  refusal,
  SERVER_REFUSALS,
  type SignalState,
  type SignalStatus,
} from './signal-status.ts'

export { type IoFactory, type Preconnection, preconnect } from './signal-socket.ts'

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
  /** How long `start` keeps trying (rounds over the servers, with backoff) before it gives up. @default 30000 */
  joinTimeoutMs?: number
  /** A connection opened beforehand (`preconnect`): the first attempt at its server takes it. */
  preconnection?: Preconnection
  /** Called as each registration goes out (the node makes its first offer while the server answers). */
  onRegisterSent?: () => void
}

export interface SignalClientEvents extends Record<string, unknown> {
  registered: { server: string; peers: PeerInfo[] }
  state: SignalState
  status: SignalStatus
  signal: { from: string; data: unknown }
  relay: { from: string; frame: Uint8Array }
  'relay-error': RelayErrorPayload
  'signal-error': SignalErrorPayload // a signal without an ack (see signal()) could not be passed on
  dropped: string
}

export type { SignalState, SignalStatus } from './signal-status.ts'

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
  private quiet = false // the server we are registered with said quietSignals (see signal())
  /** From the options; always kept, tried first. */
  private readonly configured: string[]
  /** What the server we last registered with listed (and that server, when not configured). */
  private learned: string[] = []
  private serverIndex = 0
  private readonly retry: ReconnectBackoff
  /** Attempts since the last registration (what status events count). */
  private attempts = 0
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  /** Ends the wait between join rounds early (close). */
  private wake: (() => void) | undefined
  private closed = false
  /** STUN/TURN servers from the server we are registered with (undefined: it gave none). */
  iceServers: IceServer[] | undefined
  private iceTimer: ReturnType<typeof setTimeout> | undefined
  private readonly opts: Required<
    Omit<SignalClientOptions, 'identity' | 'io' | 'servers' | 'network' | 'preconnection' | 'onRegisterSent'>
  > &
    SignalClientOptions
  /** The connection opened beforehand, until the first attempt at its server takes it. */
  private preconnection: Preconnection | undefined

  constructor(opts: SignalClientOptions) {
    super()
    this.opts = {
      connectTimeoutMs: 8000,
      minBackoffMs: 500,
      maxBackoffMs: 15_000,
      requestTimeoutMs: 10_000,
      joinTimeoutMs: 30_000,
      ...opts,
    }
    // Mistakes in the options are the caller's: a TypeError saying what to write instead.
    if (opts.servers.length === 0) throw new TypeError('signal: give at least one signal server URL')
    this.configured = dedupe(opts.servers.map(checkSignalUrl))
    checkNetworkName(opts.network)
    this.preconnection = opts.preconnection
    this.retry = new ReconnectBackoff(this.opts.minBackoffMs, this.opts.maxBackoffMs)
  }

  /** Every signal server this client knows: configured ones first, then those the current server listed. */
  knownServers(): string[] {
    return dedupe([...this.configured, ...this.learned])
  }

  /**
   * Connect and register: the known servers in turn, round after round with
   * backoff and jitter between rounds, until `joinTimeoutMs` has passed.
   * Resolves with the first bootstrap sample. Rejects with a SignalError
   * naming the servers tried and the last reason when time runs out, or at
   * once when a server refuses the identity itself (every server would);
   * with ClosedError when closed meanwhile. Later drops reconnect by themselves.
   */
  async start(): Promise<PeerInfo[]> {
    const t0 = Date.now()
    const deadline = t0 + this.opts.joinTimeoutMs
    const tried = new Map<string, number>()
    /** Servers that refused us for good (they would again): not asked again. */
    const refused = new Set<string>()
    let last: SignalError | undefined
    for (let round = 0, final = false; ; round++) {
      for (const url of this.knownServers().filter((u) => !refused.has(u))) {
        if (this.closed) throw new ClosedError()
        const left = deadline - Date.now()
        if (left < MIN_ATTEMPT_MS) break
        this.serverIndex = this.knownServers().indexOf(url)
        tried.set(url, (tried.get(url) ?? 0) + 1)
        try {
          return await this.connectOnce(url, Math.min(this.opts.connectTimeoutMs, left))
        } catch (err) {
          if (this.closed) throw new ClosedError()
          last = asSignalError(url, err)
          // A refusal of our identity is the same everywhere: do not hammer other servers.
          if (IDENTITY_REFUSALS.has(last.reason)) throw last
          if (SERVER_REFUSALS.has(last.reason)) refused.add(url)
        }
      }
      const left = deadline - Date.now()
      if (final || left < MIN_ATTEMPT_MS || this.knownServers().every((u) => refused.has(u))) break
      // A round failed: wait, and if the wait would reach the deadline, make the next round the last.
      let delay = backoffMs(round, this.opts.minBackoffMs, this.opts.maxBackoffMs)
      if (delay > left - MIN_ATTEMPT_MS) {
        delay = left - MIN_ATTEMPT_MS
        final = true
      }
      this.down(last, delay)
      await new Promise<void>((resolve) => {
        this.wake = resolve
        this.retryTimer = setTimeout(resolve, delay)
      })
      this.wake = undefined
      this.retryTimer = undefined
    }
    this.down(last, undefined)
    throw joinFailure(tried, last, Date.now() - t0, deadline - Date.now(), this.opts.joinTimeoutMs)
  }

  /** The preconnection for `url`, once (a later attempt, or another server, opens its own socket). */
  private takePreconnection(url: string): Preconnection | undefined {
    const pre = this.preconnection
    if (!pre || pre.url !== url) return undefined
    this.preconnection = undefined
    // Dropped meanwhile (the server's registration deadline passed while a slow identity was made).
    if (!pre.socket.active) {
      pre.close()
      return undefined
    }
    return pre
  }

  private connectOnce(url: string, timeoutMs = this.opts.connectTimeoutMs): Promise<PeerInfo[]> {
    this.attempts++
    this.setState('connecting', { server: url })
    return new Promise<PeerInfo[]>((resolve, reject) => {
      const pre = this.takePreconnection(url)
      markPhase('signal-start')
      const socket: ClientSocket = pre?.socket ?? openSocket(this.opts.io, url, timeoutMs)
      let settled = false
      let answered = false // one challenge per connection is answered: a server's second one is not
      const fail = (err: SignalError) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        socket.removeAllListeners()
        socket.disconnect()
        reject(err)
      }
      const late = `${url} did not answer as a weft signal server within ${timeoutMs} ms`
      const timer = setTimeout(() => fail(new SignalError('timeout', late)), timeoutMs)
      const unreachable = (message: string) =>
        fail(
          new SignalError(
            'unreachable',
            `${url}: ${message}; is a weft signal server running there (npm start, or npx weft-signal)?`,
          ),
        )
      const rejected = (p: unknown) => {
        const reason = parseRejected(p)?.reason ?? 'rejected'
        fail(new SignalError(reason, refusal(url, reason)))
      }
      const challenge = async (payload: unknown) => {
        if (answered) return
        answered = true
        const ch = parseChallenge(payload)
        if (!ch) return fail(new SignalError('bad-challenge', 'signal server sent a malformed challenge'))
        markPhase('challenge')
        const host = new URL(url).host
        const signature = await this.opts.identity.sign(registrationMessage(host, ch.nonce))
        if (settled) return
        markPhase('register-sent')
        socket.emit(
          'register',
          {
            publicKey: this.opts.identity.publicKey,
            network: this.opts.network,
            signature,
          },
          (raw) => {
            const ack = parseRegisterAck(raw)
            if (!ack) return fail(new SignalError('bad-answer', `${url} sent a malformed register answer`))
            if (!ack.ok) return fail(new SignalError(ack.reason, refusal(url, ack.reason)))
            if (ack.id !== this.opts.identity.id)
              return fail(new SignalError('bad-answer', `${url} derived another id from our key`))
            settled = true
            clearTimeout(timer)
            this.learnFrom(url, ack.servers)
            this.learnIce(url, raw, ack)
            this.adopt(socket, url, ack.quietSignals === true)
            this.emit('registered', { server: url, peers: ack.peers })
            resolve(ack.peers)
          },
        )
        try {
          this.opts.onRegisterSent?.()
        } catch {} // a hook's fault must not cost the registration
      }
      socket.on('connect_error', (err) => unreachable(err.message))
      socket.on('rejected', rejected)
      if (!pre) {
        socket.on('challenge', challenge)
        return
      }
      // The server's first word (its challenge, usually), whether it came before we took the socket or comes now.
      socket.on('disconnect', () => unreachable('the connection closed before registration'))
      void pre.first.then((e) => {
        if (e.t === 'challenge') return challenge(e.payload)
        if (e.t === 'rejected') return rejected(e.payload)
        return unreachable(e.message)
      })
    })
  }

  private adopt(socket: ClientSocket, url: string, quiet: boolean): void {
    this.socket = socket
    this.quiet = quiet
    this.server = url
    this.retry.registered()
    this.setState('registered', { server: url })
    this.attempts = 0
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
    socket.on('signal-error', (p) => {
      const e = parseSignalError(p)
      if (!e) return this.drop('bad-signal-error')
      this.emit('signal-error', e)
    })
    socket.on('replaced', () => {
      // Another session with our id took over (a second tab with the same key): stand down.
      this.socket = undefined
      socket.removeAllListeners()
      socket.disconnect()
      this.scheduleReconnect(new SignalError('replaced', `${url}: another session registered with our id`))
    })
    socket.on('disconnect', (why) => {
      if (this.socket !== socket) return
      this.socket = undefined
      socket.removeAllListeners()
      if (this.closed) return
      this.scheduleReconnect(new SignalError('disconnected', `${url}: connection lost (${why})`))
    })
  }

  private scheduleReconnect(last?: SignalError): void {
    if (this.closed || this.retryTimer) return
    const delay = this.retry.next() // (starts over only after a session that lasted)
    this.down(last, delay)
    this.retryTimer = setTimeout(async () => {
      this.retryTimer = undefined
      if (this.closed) return
      // After a failure on this server, move on to the next known one.
      const servers = this.knownServers()
      const url = servers[this.serverIndex % servers.length] as string
      try {
        await this.connectOnce(url)
        this.stats.reconnects++
      } catch (err) {
        this.serverIndex = (this.serverIndex + 1) % this.knownServers().length
        this.scheduleReconnect(asSignalError(url, err))
      }
    }, delay)
  }

  /** `down`, with the failure and when the next attempt comes. */
  private down(last: SignalError | undefined, retryInMs: number | undefined): void {
    this.setState('down', {
      ...(last ? { error: { reason: last.reason, message: last.message } } : {}),
      ...(retryInMs === undefined ? {} : { retryInMs }),
    })
  }

  /**
   * The ICE part of `server`'s answer (`raw` as it came, `ack` parsed): keep what is valid and it may hand
   * out (nearIceServers), count the rest, and renew made TURN credentials halfway through their life.
   */
  private learnIce(server: string, raw: unknown, ack: IceConfig): void {
    const sent = (raw as { iceServers?: unknown } | null)?.iceServers
    if (sent !== undefined && (!Array.isArray(sent) || sent.length !== (ack.iceServers?.length ?? -1)))
      this.drop('bad-ice-servers')
    const near = ack.iceServers && nearIceServers(server, ack.iceServers)
    for (let i = 0; i < (near?.left ?? 0); i++) this.drop('local-ice-url')
    this.iceServers = near?.kept
    clearTimeout(this.iceTimer)
    this.iceTimer = undefined
    if (ack.iceTtlMs === undefined || this.closed) return
    this.iceTimer = setTimeout(() => {
      this.iceTimer = undefined
      // Fresh credentials come with any peers answer (peers() calls learnIce).
      this.peers(0).catch(() => {
        // Not connected now: the next registration brings fresh ones anyway.
      })
    }, ack.iceTtlMs / 2)
  }

  /**
   * `server` registered us and lists `servers`: they replace whatever an earlier server listed
   * (MAX_SERVERS; no local or http ones from a public https server); `server` itself stays known.
   */
  private learnFrom(server: string, servers: readonly string[]): void {
    const listed = listedServers(server, servers)
    this.learned = dedupe([server, ...listed])
      .filter((u) => !this.configured.includes(u))
      .slice(0, MAX_SERVERS + 1)
    this.serverIndex = Math.max(0, this.knownServers().indexOf(server))
  }

  /**
   * Pass a WebRTC (or link-setup) signal to `to`; rejects NoRouteError for an unknown peer. To a quietSignals
   * server it goes without an ack (resolved once sent), and a failure comes later as `signal-error`.
   */
  async signal(to: string, data: unknown): Promise<void> {
    const socket = this.requireSocket()
    this.stats.signalsOut++
    if (this.quiet) return void socket.emit('signal', { to, data })
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
    if (this.socket === socket && this.server !== undefined) {
      this.learnFrom(this.server, ack.servers)
      this.learnIce(this.server, raw, ack)
    }
    return ack.peers
  }

  get connected(): boolean {
    return !!this.socket?.connected
  }

  close(): void {
    this.closed = true
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    clearTimeout(this.iceTimer)
    this.iceTimer = undefined
    this.wake?.()
    // A connection opened beforehand that no attempt took (the first server was not tried).
    this.preconnection?.close()
    this.preconnection = undefined
    this.socket?.removeAllListeners()
    this.socket?.disconnect()
    this.socket = undefined
    this.setState('closed')
    this.removeAll()
  }

  private requireSocket(): ClientSocket {
    if (!this.socket?.connected) throw new SignalError('disconnected', 'not connected to a signal server')
    return this.socket
  }

  private setState(s: SignalState, detail: Omit<SignalStatus, 'state' | 'attempt'> = {}): void {
    if (this.state === 'closed') return
    // A status goes out for every step (each attempt, each retry); `state` only when it changes.
    this.emit('status', { state: s, attempt: Math.max(1, this.attempts), ...detail })
    if (this.state === s) return
    this.state = s
    this.emit('state', s)
  }

  private drop(reason: string): void {
    this.stats.dropped++
    this.emit('dropped', reason)
  }
}
