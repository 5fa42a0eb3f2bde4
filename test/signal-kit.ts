/**
 * One test client for the signal server tests (and the benchmark): a
 * socket.io-client socket over WebSocket that records every event the server
 * sends, and registers the way a real node does.
 */
import { io, type Socket } from 'socket.io-client'
import { generateIdentity, type Identity } from '../shared/identity/keys.ts'
import {
  type ClientToServerEvents,
  parseChallenge,
  type RegisterAck,
  registrationMessage,
  type ServerToClientEvents,
} from '../shared/signal-events.ts'

export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>

export interface TestClient {
  socket: ClientSocket
  /** The same socket, untyped: for sending what the contract does not allow. */
  raw: Socket
  identity: Identity
  /** The challenge nonce (resolves once the server sent it). */
  nonce: Promise<Uint8Array>
  /** Every event received, in order. */
  events: { event: string; payload: unknown }[]
  /** Payloads of `event` received so far. */
  received(event: string): unknown[]
  /** The next `event` (or one already received and not yet taken by next). */
  next(event: string, timeoutMs?: number): Promise<unknown>
  /** Wait until `pred()` holds. */
  until(pred: () => boolean, timeoutMs?: number): Promise<void>
  /** Sign the challenge and register; resolves with the ack. `extra` fields are sent along (older clients' `servers`). */
  register(network: string, extra?: Record<string, unknown>): Promise<RegisterAck>
  /** Emit with an ack and wait for it. */
  call(event: string, payload: unknown, timeoutMs?: number): Promise<unknown>
  close(): void
}

export interface ConnectOptions {
  identity?: Identity
  /** Puzzle difficulty of the identity made when none is given. @default DEFAULT_PUZZLE_BITS */
  puzzleBits?: number
  /** Signed host; defaults to the URL's host, as a real client does. */
  host?: string
  /** HTTP headers of the WebSocket handshake (a forged Host, X-Forwarded-For). */
  headers?: Record<string, string>
  /** Local address to connect from (any of 127.0.0.0/8 on loopback: another source). */
  localAddress?: string
  /** How long `nonce` waits for the challenge (hundreds of sockets at once on a loaded machine: longer). @default 5000 */
  challengeTimeoutMs?: number
}

export async function connect(address: string, opts: ConnectOptions = {}): Promise<TestClient> {
  const identity =
    opts.identity ??
    (await generateIdentity(opts.puzzleBits === undefined ? {} : { puzzleBits: opts.puzzleBits }))
  const socket: ClientSocket = io(address, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    ...(opts.headers ? { extraHeaders: opts.headers } : {}),
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
  })
  const events: { event: string; payload: unknown }[] = []
  const taken = new Map<string, number>()
  const waiters = new Set<() => void>()
  socket.onAny((event: string, payload: unknown) => {
    events.push({ event, payload })
    for (const w of [...waiters]) w()
  })
  socket.on('disconnect', () => {
    events.push({ event: 'disconnect', payload: null })
    for (const w of [...waiters]) w()
  })
  // A refused handshake (a per-source limit, a full server) is a connect_error.
  socket.on('connect_error', (err) => {
    events.push({ event: 'connect_error', payload: err.message })
    for (const w of [...waiters]) w()
  })
  const received = (event: string) => events.filter((e) => e.event === event).map((e) => e.payload)
  const until = (pred: () => boolean, timeoutMs = 5000) =>
    new Promise<void>((resolve, reject) => {
      if (pred()) return resolve()
      const check = () => {
        if (!pred()) return
        clearTimeout(timer)
        clearInterval(poll)
        waiters.delete(check)
        resolve()
      }
      // Re-checked on every event, and every 20 ms for conditions on the server's side.
      const poll = setInterval(check, 20)
      const timer = setTimeout(() => {
        waiters.delete(check)
        clearInterval(poll)
        reject(new Error(`timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      waiters.add(check)
    })
  const next = async (event: string, timeoutMs = 5000) => {
    const i = taken.get(event) ?? 0
    await until(() => received(event).length > i, timeoutMs).catch(() => {
      throw new Error(`no '${event}' within ${timeoutMs} ms (got: ${events.map((e) => e.event).join(', ')})`)
    })
    taken.set(event, i + 1)
    return received(event)[i]
  }
  const nonce = next('challenge', opts.challengeTimeoutMs).then((p) => {
    const c = parseChallenge(p)
    if (!c) throw new Error('bad challenge')
    return c.nonce
  })
  nonce.catch(() => {})
  const call = (event: string, payload: unknown, timeoutMs = 5000) =>
    (socket as unknown as Socket).timeout(timeoutMs).emitWithAck(event, payload)
  return {
    socket,
    raw: socket as unknown as Socket,
    identity,
    nonce,
    events,
    received,
    next,
    until,
    call,
    async register(network, extra = {}) {
      const n = await nonce
      const host = opts.host ?? new URL(address).host
      const signature = await identity.sign(registrationMessage(host, n))
      return (await call('register', {
        publicKey: identity.publicKey,
        network,
        signature,
        ...extra,
      })) as RegisterAck
    },
    close() {
      socket.disconnect()
    },
  }
}

/** Connect and register; throws unless the server accepted. */
export async function joined(
  address: string,
  network: string,
  opts: ConnectOptions = {},
): Promise<TestClient & { id: string; ack: RegisterAck & { ok: true } }> {
  const c = await connect(address, opts)
  const ack = await c.register(network)
  if (!ack.ok) throw new Error(`registration refused: ${ack.reason}`)
  return Object.assign(c, { id: ack.id, ack })
}

/** Stop a client from reading: its TCP window fills and the server's buffers for it grow. Returns the resume. */
export function pauseReading(c: TestClient): () => void {
  const raw = (
    c.socket.io.engine.transport as unknown as { ws: { _socket: { pause(): void; resume(): void } } }
  ).ws._socket
  raw.pause()
  return () => raw.resume()
}
