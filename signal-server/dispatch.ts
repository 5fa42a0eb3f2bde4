/**
 * The boundary between a socket and the handlers: every event a client
 * sends comes through `dispatch`, which takes the ack callback off the
 * arguments, charges the event, checks the connection's state, parses the
 * payload with shared/signal-events.ts, and hands the handler a typed
 * payload, or refuses (counted by reason; answered when an ack was asked for;
 * a strike).
 *
 *   register   New connections only ('already-registered'), one argument + ack
 *   peers      registered ('not-registered'), one argument + ack
 *   signal     registered, one argument + ack
 *   relay      registered, one argument, no ack; paid for in bytes, not events
 *   anything else: 'unknown-event'
 */
import {
  parsePeersRequest,
  parseRegister,
  parseRelayRequest,
  type RegisterAck,
  type SignalRequest,
  signalDataSize,
} from '../shared/signal-events.ts'
import { type Ack, type Conn, State } from './connections.ts'
import type { ServerContext } from './context.ts'
import { onPeers } from './handlers/peers.ts'
import { failRegister, onRegister } from './handlers/register.ts'
import { onRelay, refuseRelay } from './handlers/relay.ts'
import { onSignal } from './handlers/signal.ts'
import { inc } from './metrics.ts'

export function dispatch(ctx: ServerContext, c: Conn, event: unknown, args: unknown[]): void {
  if (c.state === State.Closed) return
  const { conns } = ctx
  const now = Date.now()
  const last = args[args.length - 1]
  const ack = typeof last === 'function' ? (args.pop() as Ack) : undefined
  const payload = args[0]

  if (event === 'relay') {
    // Relay frames are paid for in bytes (and refused frames in events) by the relay handler.
    if (ack || args.length > 1) return conns.refuse(c, ack, 'bad-payload', now)
    const p = parseRelayRequest(payload)
    if (c.state !== State.Registered) return refuseRelay(ctx, c, p?.to ?? null, 'not-registered', true, now)
    if (!p) return refuseRelay(ctx, c, null, 'bad-payload', true, now)
    void onRelay(ctx, c, p, now).catch(() => {})
    return
  }
  if (!c.events.take(1, now)) return conns.refuse(c, ack, 'rate-limited', now)
  if (args.length > 1) return conns.refuse(c, ack, 'bad-payload', now)
  switch (event) {
    case 'register': {
      if (c.state !== State.New) {
        inc(ctx.counters.rejected, 'already-registered')
        ack?.({ ok: false, reason: 'already-registered' } satisfies RegisterAck)
        return conns.strike(c, now)
      }
      const p = parseRegister(payload)
      if (!p) return failRegister(ctx, c, ack, 'bad-payload')
      void onRegister(ctx, c, p, ack, now).catch(() => failRegister(ctx, c, ack, 'unavailable'))
      return
    }
    case 'peers': {
      if (c.state !== State.Registered) return conns.refuse(c, ack, 'not-registered', now)
      const p = parsePeersRequest(payload)
      if (!p) return conns.refuse(c, ack, 'bad-payload', now)
      void onPeers(ctx, c, p, ack, now).catch(() => {})
      return
    }
    case 'signal': {
      if (c.state !== State.Registered) return conns.refuse(c, ack, 'not-registered', now)
      // parseSignalRequest's checks, and the size of `data` (one walk of it for both).
      const size = signalDataSize(payload)
      if (size < 0) return conns.refuse(c, ack, 'bad-payload', now)
      // (`to` and `data` are its own properties, all onSignal reads of it.)
      const p = payload as SignalRequest
      // Served at once when the target is here, a promise only for one on another instance; a
      // failure (the host cache's touch, say) is dropped either way, as it never reaches socket.io.
      try {
        onSignal(ctx, c, p, size, ack, now)?.catch(() => {})
      } catch {}
      return
    }
    default:
      return conns.refuse(c, ack, 'unknown-event', now)
  }
}
