/**
 * `relay { to, frame }` (no ack): pass up to relayFrameMaxBytes of opaque
 * bytes to node `to` of the sender's network, here or through the cluster.
 *
 * A frame is paid for in bytes: frame length + 32 from the node's bucket
 * (relayBytesPerSec) and from its source's (shared by all the source's
 * identities). A frame that cannot go is dropped, and the sender told
 * `relay-error { to, reason }`: `too-large`, `quota` (counted `quota` or
 * `quota-source`), `congested` (the target's socket has more unsent than
 * congestionMaxPackets packets or congestionMaxBytes bytes), `unknown-peer`.
 * Every refusal also costs an event token; an invalid frame (`not-registered`,
 * `bad-payload`, `too-large`) a strike too.
 */
import type { RelayErrorReason, RelayRequest } from '../../shared/signal-events.ts'
import { TokenBucket } from '../../shared/token-bucket.ts'
import { type Conn, enqueued, holdable, RELAY_PACKET_BYTES, State } from '../connections.ts'
import { type ServerContext, touch } from '../context.ts'
import { inc } from '../metrics.ts'

/** Bytes charged per relayed frame on top of its length (framing), so floods of tiny frames are bounded too. */
const RELAY_FRAME_OVERHEAD = 32

/**
 * Refuse a frame (to `to`, when the frame was readable): an event token, a strike when `invalid`,
 * counted in relayErrors under `countAs`, and the sender told unless it is out of events.
 */
export function refuseRelay(
  ctx: ServerContext,
  c: Conn,
  to: string | null,
  reason: RelayErrorReason,
  invalid: boolean,
  now: number,
  countAs: string = reason,
): void {
  const { counters, conns } = ctx
  if (invalid) {
    inc(counters.rejected, reason)
    conns.strike(c, now)
  }
  if (!c.events.take(1, now)) {
    inc(counters.rejected, 'rate-limited')
    conns.strike(c, now)
    return
  }
  inc(counters.relayErrors, countAs)
  if (to !== null && c.state !== State.Closed) c.socket.emit('relay-error', { to, reason })
}

/** `p` is already parsed and `c` registered (dispatch.ts). */
export async function onRelay(ctx: ServerContext, c: Conn, p: RelayRequest, now: number): Promise<void> {
  const { o, counters, conns, sources, cluster } = ctx
  const refuse = (reason: RelayErrorReason, invalid: boolean, countAs?: string) =>
    refuseRelay(ctx, c, p.to, reason, invalid, now, countAs)
  if (p.frame.length > o.relayFrameMaxBytes) return refuse('too-large', true)
  const cost = p.frame.length + RELAY_FRAME_OVERHEAD
  c.bytes ??= new TokenBucket(o.relayBytesPerSec, o.relayBurstBytes, now)
  if (c.bytes.available(now) < cost) return refuse('quota', false)
  // The source's allowance is shared by all its identities: ten of them do not relay ten times as much.
  if (!sources.takeRelay(c.source, cost, now)) return refuse('quota', false, 'quota-source')
  c.bytes.take(cost, now)
  touch(ctx, c, now)
  const target = conns.get(c.network, p.to)
  if (target) {
    if (conns.congested(target)) return refuse('congested', false)
    // Counted as the memory it keeps (a view into a larger buffer is copied when it waits).
    const frame = holdable(target, p.frame)
    target.socket.emit('relay', { from: c.id, frame })
    enqueued(target, frame.buffer.byteLength + RELAY_PACKET_BYTES)
  } else {
    // Counted here as relayed; the target's instance may still drop it (congested-remote).
    const sent = await cluster.relay(c.network, p.to, c.id, p.frame, now).catch(() => false)
    if (!sent) return refuse('unknown-peer', false)
  }
  counters.relayFrames++
  counters.relayBytes += p.frame.length
}
