/**
 * `peers { max? }` + ack: a fresh bootstrap sample of `c`'s network (never
 * `c`; at most `max`, clamped to 64, default sampleSize), the list of
 * other signal servers, and the STUN/TURN servers with fresh credentials
 * (how a long-lived node renews them: `peers { max: 0 }`). Refused
 * `rate-limited` while the asking socket has more than congestionMaxPackets
 * unsent packets or congestionMaxBytes unsent bytes: it is not reading its
 * answers.
 */
import type { PeersAck, PeersRequest } from '../../shared/signal-events.ts'
import { type Ack, type Conn, enqueued, State, stringBytes } from '../connections.ts'
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
  if (c.state !== State.Registered) return
  // An answer is up to ~4.5 KB, and nothing else bounds what a socket that does not read its answers
  // piles up (slowConsumerMaxPackets counts packets: ~6,000 answers, ~25 MB, before the sweep's kick):
  // past congestionMaxPackets or congestionMaxBytes unsent, refused (a strike: a flood of them ends
  // with the socket).
  if (ctx.conns.congested(c)) return ctx.conns.refuse(c, ack, 'rate-limited', now)
  if (!ack) return
  const answer = {
    ok: true,
    peers,
    servers: ctx.book.list(undefined, c.host),
    ...ctx.ice(c.id, now),
  } satisfies PeersAck
  ack(answer)
  // Counted as the packet socket.io made of it: its JSON and the ack's header (not a hot path).
  enqueued(c, stringBytes(JSON.stringify(answer).length + 16))
}
