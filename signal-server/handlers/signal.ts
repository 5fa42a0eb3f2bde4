/**
 * `signal { to, data }`: pass a WebRTC (or link-setup) signal, a JSON value
 * of at most signalMaxBytes, to node `to` of the sender's network: here, or
 * through the cluster on the instance that holds it (which answers once it
 * delivered it). With an ack, the ack says `ok`, or why not: `too-large`,
 * `rate-limited` (the sender's signal quota, signalBytesPerSec: counted
 * `signal-quota`, and a strike), `congested` (the target's socket has more
 * unsent than congestionMaxPackets packets or congestionMaxBytes bytes),
 * `unknown-peer`. Without one (a client told `quietSignals` at registration),
 * nothing is sent back on success, and a failure is told as
 * `signal-error { to, reason }`: one packet, and one write, fewer per relayed
 * signal.
 */
import type { SignalAck, SignalErrorReason, SignalRequest } from '../../shared/signal-events.ts'
import { TokenBucket } from '../../shared/token-bucket.ts'
import { type Ack, type Conn, enqueued, State, sendSignal } from '../connections.ts'
import { type ServerContext, touch } from '../context.ts'
import { inc } from '../metrics.ts'
import { SIGNAL_PACKET_BYTES } from '../options.ts'

/** A failed signal: counted (as `countAs`), and told to the sender (in its ack, or as `signal-error`). */
function refuse(
  ctx: ServerContext,
  c: Conn,
  to: string,
  ack: Ack | undefined,
  reason: SignalErrorReason,
  countAs: string = reason,
): undefined {
  inc(ctx.counters.rejected, countAs)
  if (ack) ack({ ok: false, reason } satisfies SignalAck)
  else c.socket.emit('signal-error', { to, reason })
}

/**
 * `p` is already parsed (`size`: its data's jsonByteLength, measured then) and `c` registered
 * (dispatch.ts). A target on this instance is served at once (no promise: this is the path every
 * relayed signal takes); one elsewhere through the cluster, and then the returned promise settles
 * once it answered (it never rejects).
 */
export function onSignal(
  ctx: ServerContext,
  c: Conn,
  p: SignalRequest,
  size: number,
  ack: Ack | undefined,
  now: number,
): Promise<void> | undefined {
  const { o, counters, conns } = ctx
  if (size > o.signalMaxBytes) return refuse(ctx, c, p.to, ack, 'too-large')
  // Paid for in bytes, the size just measured, before the target is looked up (one on another
  // instance costs a Redis message): the event bucket alone let a socket pass on ~3 MB/s.
  const cost = size + SIGNAL_PACKET_BYTES
  c.signalBytes ??= new TokenBucket(o.signalBytesPerSec, o.signalBurstBytes, now)
  if (!c.signalBytes.take(cost, now)) {
    refuse(ctx, c, p.to, ack, 'rate-limited', 'signal-quota')
    conns.strike(c, now)
    return
  }
  touch(ctx, c, now)
  const target = conns.get(c.network, p.to)
  if (!target) return viaCluster(ctx, c, p, cost, ack, now)
  if (conns.congested(target)) return refuse(ctx, c, p.to, ack, 'congested')
  enqueued(target, sendSignal(target.socket, c.id, p.data))
  counters.signals++
  counters.signalBytes += cost
  ack?.({ ok: true } satisfies SignalAck)
}

/** The target's instance answers once it delivered the signal (or why it could not). */
async function viaCluster(
  ctx: ServerContext,
  c: Conn,
  p: SignalRequest,
  cost: number,
  ack: Ack | undefined,
  now: number,
): Promise<void> {
  const { counters, cluster } = ctx
  const result = await cluster.signal(c.network, p.to, c.id, p.data, now).catch(() => 'unknown-peer' as const)
  if (c.state !== State.Registered) return
  if (result !== 'ok') return refuse(ctx, c, p.to, ack, result)
  counters.signals++
  counters.signalBytes += cost
  ack?.({ ok: true } satisfies SignalAck)
}
