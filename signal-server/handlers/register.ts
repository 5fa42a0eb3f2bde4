/**
 * `register { publicKey, network, signature }` + ack: a socket becomes node
 * `id` of `network`.
 *
 * Checks, in order (each refusal is an ack `{ ok: false, reason }`, a count
 * in `rejected.<reason>`, and the end of the connection): the source's
 * registration attempts (`too-many-registrations`: every attempt costs one,
 * since signature checks are what a flood of attempts would buy); the key's
 * size and form (`bad-key`); the signature's size (`bad-signature`); the Host
 * the client connected with, which must be one of this server's public URLs
 * (`wrong-server`: a signature for another server is no use here, and a
 * server in the middle cannot pass a client's registration on); the identity
 * puzzle (`weak-identity`); the signature over registrationMessage(host,
 * nonce) (`bad-signature`); the source's identities (`too-many-identities`);
 * room (`server-full`); the host cache (`unavailable`). An older socket of
 * the same id, here or on another instance, is replaced. The ack carries a
 * bootstrap sample, the other servers, and the operator's STUN/TURN servers
 * (with TURN credentials made for this id, ice.ts).
 */
import { isPublicKey } from '../../shared/identity/keys.ts'
import { meetsPuzzle } from '../../shared/identity/puzzle.ts'
import {
  type RegisterAck,
  type RegisterPayload,
  type RejectReason,
  registrationMessage,
  SIGNATURE_BYTES,
} from '../../shared/signal-events.ts'
import { type Ack, type Conn, State } from '../connections.ts'
import { type ServerContext, sample } from '../context.ts'
import { inc } from '../metrics.ts'
import { nodeIdNow, verifyOnce } from '../verify.ts'

/** Refuse a registration (or a connection that never registered): answer, count, hang up. */
export function failRegister(ctx: ServerContext, c: Conn, ack: Ack | undefined, reason: RejectReason): void {
  inc(ctx.counters.rejected, reason)
  if (c.state === State.Closed) return
  const answer: RegisterAck = { ok: false, reason }
  if (ack) ack(answer)
  else c.socket.emit('rejected', { reason })
  ctx.conns.kick(c, `register-${reason}`)
}

/** `p` is already parsed (dispatch.ts); `c` is New. */
export async function onRegister(
  ctx: ServerContext,
  c: Conn,
  p: RegisterPayload,
  ack: Ack | undefined,
  now: number,
): Promise<void> {
  const { o, conns, sources, cluster } = ctx
  const fail = (reason: RejectReason) => failRegister(ctx, c, ack, reason)
  if (!sources.takeRegistration(c.source, now)) return fail('too-many-registrations')
  if (!isPublicKey(p.publicKey)) return fail('bad-key')
  if (p.signature.length !== SIGNATURE_BYTES || !c.nonce) return fail('bad-signature')
  if (!ctx.publicHosts.has(c.host)) return fail('wrong-server')
  if (!meetsPuzzle(p.publicKey, o.puzzleBits)) return fail('weak-identity')
  c.state = State.Registering
  if (!verifyOnce(p.publicKey, registrationMessage(c.host, c.nonce), p.signature))
    return fail('bad-signature')
  const id = nodeIdNow(p.publicKey)
  if (!sources.claimIdentity(c.source, id, now)) return fail('too-many-identities')
  c.id = id
  const session = cluster.session(c.socket.id)
  const existing = conns.get(p.network, id)
  if (!existing && conns.count() >= o.maxPeers) return fail('server-full')
  if (existing) conns.replace(existing)
  cluster.registered(p.network, id, session)

  c.network = p.network
  c.nonce = null
  c.state = State.Registered
  if (c.timer) clearTimeout(c.timer)
  c.timer = null
  c.lastTouch = now
  conns.link(c)
  try {
    const added = await cluster.hosts.add(c.network, id, session, now)
    if (!added) throw new Error('host cache full')
  } catch {
    conns.unlink(c)
    c.state = State.New // so the kick below runs the disconnect cleanup once
    return fail('unavailable')
  }
  ctx.counters.registered++
  const peers = await sample(ctx, c, o.sampleSize)
  if (c.state !== State.Registered) return
  ack?.({
    ok: true,
    id,
    peers,
    servers: ctx.book.list(undefined, c.host),
    quietSignals: true,
    ...ctx.ice(id, Date.now()),
  } satisfies RegisterAck)
}
