/**
 * `signal { to, data }` + ack: pass a WebRTC (or link-setup) signal, a JSON
 * value of at most signalMaxBytes, to node `to` of the sender's network:
 * here, or through the cluster on the instance that holds it (which answers
 * once it delivered it). The ack says `ok`, or why not: `too-large`,
 * `congested` (the target's socket has too much unsent), `unknown-peer`.
 */
import { jsonByteLength, type SignalAck, type SignalRequest } from '../../shared/signal-events.ts'
import { type Ack, type Conn, State } from '../connections.ts'
import { type ServerContext, touch } from '../context.ts'
import { inc } from '../metrics.ts'

/** `p` is already parsed and `c` registered (dispatch.ts). */
export async function onSignal(
  ctx: ServerContext,
  c: Conn,
  p: SignalRequest,
  ack: Ack | undefined,
  now: number,
): Promise<void> {
  const { o, counters, conns, cluster } = ctx
  const answer = (a: SignalAck) => ack?.(a)
  if (jsonByteLength(p.data, o.signalMaxBytes) > o.signalMaxBytes) {
    inc(counters.rejected, 'too-large')
    return answer({ ok: false, reason: 'too-large' })
  }
  touch(ctx, c, now)
  const target = conns.get(c.network, p.to)
  if (target) {
    if (conns.congested(target)) {
      inc(counters.rejected, 'congested')
      return answer({ ok: false, reason: 'congested' })
    }
    target.socket.emit('signal', { from: c.id, data: p.data })
    counters.signals++
    return answer({ ok: true })
  }
  // The target's instance answers once it delivered the signal (or why it could not).
  const result = await cluster.signal(c.network, p.to, c.id, p.data, now).catch(() => 'unknown-peer' as const)
  if (c.state !== State.Registered) return
  if (result !== 'ok') {
    inc(counters.rejected, result)
    return answer({ ok: false, reason: result })
  }
  counters.signals++
  answer({ ok: true })
}
