/**
 * `peers { max? }` + ack: a fresh bootstrap sample of `c`'s network (never
 * `c`; at most `max`, clamped to 64, default sampleSize), the list of
 * other signal servers, and the STUN/TURN servers with fresh credentials
 * (how a long-lived node renews them: `peers { max: 0 }`).
 */
import type { PeersAck, PeersRequest } from '../../shared/signal-events.ts'
import type { Ack, Conn } from '../connections.ts'
import { type ServerContext, sample, touch } from '../context.ts'

/** `p` is already parsed and `c` registered (dispatch.ts). */
export async function onPeers(
  ctx: ServerContext,
  c: Conn,
  p: PeersRequest,
  ack: Ack | undefined,
  now: number,
): Promise<void> {
  touch(ctx, c, now)
  const peers = await sample(ctx, c, p.max ?? ctx.o.sampleSize)
  ack?.({
    ok: true,
    peers,
    servers: ctx.book.list(undefined, c.host),
    ...ctx.ice(c.id, now),
  } satisfies PeersAck)
}
