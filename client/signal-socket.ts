/**
 * The signal server's socket as the signalling client (signal-client.ts)
 * opens it, and the first one opened early: `preconnect` lets joinOverlay
 * start the connection to the first server while the identity loads (the
 * socket and the server's challenge need no identity, only the answer
 * does); the client's first attempt at that server takes it over, with
 * whatever the server said meanwhile.
 */
import type { ManagerOptions, Socket, SocketOptions } from 'socket.io-client'
import type { ClientToServerEvents, ServerToClientEvents } from '../shared/signal-events.ts'
import { checkSignalUrl } from './join-options.ts'
import { markPhase } from './node/timeline.ts'

export type IoFactory = (url: string, opts: Partial<ManagerOptions & SocketOptions>) => Socket

export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>

/**
 * A connection to a signal server opened before the node exists. What the
 * server says before a client takes it over (its challenge, a refusal, or a
 * connection error) waits in `first`.
 */
export interface Preconnection {
  readonly url: string
  readonly socket: ClientSocket
  readonly first: Promise<PreconnectEvent>
  /** Close it (nobody will take it: the join failed before the node started). */
  close(): void
}

export type PreconnectEvent =
  | { t: 'challenge'; payload: unknown }
  | { t: 'rejected'; payload: unknown }
  | { t: 'connect_error'; message: string }

/** The socket of one attempt at `url`: websocket only, no socket.io reconnection (the client has its own). */
export function openSocket(io: IoFactory, url: string, timeoutMs: number): ClientSocket {
  return io(url, {
    transports: ['websocket'],
    reconnection: false,
    // Our own timer ends the attempt first, with a clearer error than socket.io's 'timeout'.
    timeout: timeoutMs + 1000,
    forceNew: true,
  })
}

/**
 * Open the connection to the first signal server now (its WebSocket and
 * socket.io handshakes, and the server's challenge), for a SignalClient
 * made later with `preconnection` (join time, issue 14). `url` as the
 * client's options give it (checked and normalised like them).
 */
export function preconnect(io: IoFactory, url: string, timeoutMs = 8000): Preconnection {
  const normal = checkSignalUrl(url)
  const socket = openSocket(io, normal, timeoutMs)
  const first = new Promise<PreconnectEvent>((resolve) => {
    socket.once('connect', () => markPhase('socket-open'))
    socket.once('challenge', (payload) => {
      markPhase('challenge-in')
      resolve({ t: 'challenge', payload })
    })
    socket.once('rejected', (payload) => resolve({ t: 'rejected', payload }))
    socket.once('connect_error', (err) => resolve({ t: 'connect_error', message: err.message }))
  })
  return {
    url: normal,
    socket,
    first,
    close() {
      socket.removeAllListeners()
      socket.disconnect()
    },
  }
}
