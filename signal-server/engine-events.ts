/**
 * CPU savings on the path every event from a client takes through
 * socket.io (engine.ts and engine-lean.ts save memory per socket; these save
 * work per event). Applied by leanSession (engine-lean.ts), so only with the
 * library versions it was tested against.
 *
 * - socket.io's Socket dispatches every event a second time, a tick later
 *   (a closure and a tick callback), to the socket's listeners of the
 *   event's name: the server listens to none a client can send (its one way
 *   in is a catch-all listener), so for a relayed signal that ran nothing.
 *   QuietDispatchSocket skips it when it would run nothing.
 * - socket.io's Client hands every decoded packet to its socket a tick later
 *   (a closure and a tick callback per packet). QuickClient hands an event
 *   (EVENT, BINARY_EVENT) over at once, unless a packet of that client still
 *   waits for its tick (then it waits too: the order stays the client's).
 *   CONNECT, DISCONNECT and ACK packets go as before.
 */
import { createRequire } from 'node:module'

type SocketClass = new (...args: never[]) => object
let quietDispatch: { base: SocketClass; quiet: SocketClass } | null = null

/**
 * socket.io's Socket, skipping `dispatch` for an event nothing would receive. socket.io hands every
 * event to the catch-all listeners (this server's one way in), then dispatches it: its middlewares, and
 * a tick later (a closure and a tick callback per event) the socket's listeners of the event's name.
 * The server has no middleware (slimSession) and listens to no event by name a client can send, so
 * for a relayed signal that step ran nothing. It still runs when there is a middleware, a listener of
 * the name, or the name is 'error' (which EventEmitter treats apart).
 */
function quietDispatchClass(): { base: SocketClass; quiet: SocketClass } {
  if (quietDispatch) return quietDispatch
  const base = (createRequire(import.meta.url)('socket.io') as { Socket: SocketClass }).Socket
  const dispatch = Reflect.get(base.prototype, 'dispatch') as (event: unknown[]) => void
  class QuietDispatchSocket extends base {
    dispatch(event: unknown[]): void {
      const name = event[0]
      const fns: unknown = (this as { fns?: unknown }).fns
      if (
        name !== 'error' &&
        (typeof name === 'string' || typeof name === 'number') &&
        Array.isArray(fns) &&
        fns.length === 0 &&
        (this as unknown as { listenerCount(e: string | number): number }).listenerCount(name) === 0
      )
        return
      dispatch.call(this, event)
    }
  }
  quietDispatch = { base, quiet: QuietDispatchSocket }
  return quietDispatch
}

/** Give a socket.io socket QuietDispatchSocket's dispatch; false if it is not socket.io's Socket. */
export function quietenDispatch(socket: object): boolean {
  const { base, quiet } = quietDispatchClass()
  if (Object.getPrototypeOf(socket) !== base.prototype) return false
  Object.setPrototypeOf(socket, quiet.prototype)
  return true
}

/** socket.io-parser's packet types (PacketType). */
const CONNECT = 0
const EVENT = 2
const CONNECT_ERROR = 4
const BINARY_EVENT = 5

interface DecodedPacket {
  type: number
  nsp: string
}
interface ClientLike {
  conn: { protocol?: unknown }
  nsps: { get(nsp: string): { _onpacket(packet: DecodedPacket): void } | undefined }
  ondecoded(packet: DecodedPacket): void
}

/** Clients with packets waiting for their tick, and how many. */
const waiting = new Map<object, number>()
const release = (client: object) => {
  const n = (waiting.get(client) ?? 1) - 1
  if (n > 0) waiting.set(client, n)
  else waiting.delete(client)
}
const rethrow = (err: unknown) => {
  throw err
}

let quickClient: { base: object; ondecoded: (this: ClientLike, packet: DecodedPacket) => void } | null = null

/** QuickClient's ondecoded for clients of `base` (socket.io's Client.prototype): see the header. */
function quickOndecoded(base: object): ((this: ClientLike, packet: DecodedPacket) => void) | null {
  if (quickClient?.base === base) return quickClient.ondecoded
  const ondecoded = Reflect.get(base, 'ondecoded')
  if (typeof ondecoded !== 'function' || quickClient) return null
  function quick(this: ClientLike, packet: DecodedPacket): void {
    const type = packet?.type
    // Protocol 3 (allowEIO3) names namespaces differently: left to socket.io.
    const socket = this.conn.protocol === 3 ? undefined : this.nsps.get(packet?.nsp)
    if (socket && (type === EVENT || type === BINARY_EVENT) && !waiting.has(this)) {
      try {
        socket._onpacket(packet)
      } catch (err) {
        // Where socket.io's tick would have thrown it (not into the decoder).
        process.nextTick(rethrow, err)
      }
      return
    }
    // socket.io schedules a tick for this packet exactly when: count it until that tick has run.
    const ticks = socket !== undefined && type !== CONNECT && type !== CONNECT_ERROR
    if (!ticks) return ondecoded.call(this, packet)
    waiting.set(this, (waiting.get(this) ?? 0) + 1)
    try {
      ondecoded.call(this, packet)
    } finally {
      // (Let go of the client even if that threw: the map never keeps one.)
      process.nextTick(release, this)
    }
  }
  quickClient = { base, ondecoded: quick }
  return quick
}

/** The decoder's 'decoded' listener for every quickened client: the client is the decoder's `owner`. */
function onDecoded(this: { owner?: unknown }, packet: DecodedPacket): void {
  // (Called as the client's own method, `this` is the client.)
  const client = (this.owner ?? this) as ClientLike
  const quick = quickClient?.ondecoded
  if (quick) quick.call(client, packet)
}

/**
 * Give socket.io's Client under `socket` QuickClient's ondecoded. socket.io binds ondecoded per client,
 * listens to its decoder with that and removes it by the same reference: both become onDecoded, one
 * function for all, which finds the client as the decoder's `owner` (packet-guard.ts's decoder has that
 * slot). A function bound per client instead cost ~300 B a client under tsx (whose kept function names
 * turn each bound function's name and length into properties of its own). False, with nothing changed, if the client or its decoder is not as tested.
 */
export function quickenClient(socket: object): boolean {
  const client: unknown = Reflect.get(socket, 'client')
  if (typeof client !== 'object' || client === null || !Object.hasOwn(client, 'ondecoded')) return false
  const base: unknown = Object.getPrototypeOf(client)
  if (typeof base !== 'object' || base === null || base.constructor?.name !== 'Client') return false
  const decoder: unknown = Reflect.get(client, 'decoder')
  // (Another parser's decoder, in tests, is given the slot.)
  if (typeof decoder !== 'object' || decoder === null || (Reflect.get(decoder, 'owner') ?? null) !== null)
    return false
  const callbacks: unknown = Reflect.get(decoder, '_callbacks')
  const listeners: unknown =
    typeof callbacks === 'object' && callbacks !== null ? Reflect.get(callbacks, '$decoded') : null
  if (
    !Array.isArray(listeners) ||
    listeners.length !== 1 ||
    listeners[0] !== Reflect.get(client, 'ondecoded')
  )
    return false
  if (!quickOndecoded(base)) return false
  Reflect.set(decoder, 'owner', client)
  Reflect.set(client, 'ondecoded', onDecoded)
  listeners[0] = onDecoded
  return true
}
