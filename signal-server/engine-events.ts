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
