/**
 * Joining and leaving a file's swarm, and peer exchange.
 *
 * A node joins by sending `hello` (with its have-map once it knows the
 * manifest) to a candidate; one that holds the manifest and has room
 * answers with its own `hello`, and both are peers of the file from then
 * on. One without the manifest answers `none`, one without room `bye full`.
 * Either end leaves with `bye` (or when the link closes). Peers with
 * nothing for each other (both complete) part with `bye done`.
 *
 * Peer exchange: right after joining and every `pexIntervalMs`, each peer
 * gets up to 32 of our other peers of the file; a download dials them when
 * it wants more peers. A pex that comes sooner than half that interval
 * after the last one from the same peer is dropped.
 */
import { bump } from '../protocol.ts'
import { addCandidates, candidateFailed, dialMore } from './candidates.ts'
import type { DropOptions, SwarmContext } from './context.ts'
import { askManifest, emitProgress, finish, refill, refillAll } from './download.ts'
import type { FileSwarm, Peer } from './file-swarm.ts'
import { MAX_PEX_PEERS } from './limits.ts'
import type { ByeMsg, HelloMsg, PexMsg } from './messages.ts'

/** A hello from `from` for a file whose state is loaded (or null: we do not hold it). */
export function onHello(ctx: SwarmContext, f: FileSwarm | null, from: string, msg: HelloMsg): void {
  if (!f) {
    bump(ctx.counters, 'swarm.none.sent')
    return ctx.send(from, { t: 'none', file: msg.file })
  }
  if (f.banned.has(from)) return void bump(ctx.counters, 'drop.swarm.banned')
  const known = f.peers.get(from)
  if (known) {
    // A second hello replaces its have-map.
    if (msg.bits && !f.setBits(known, msg.bits)) {
      bump(ctx.counters, 'drop.swarm.bits')
      ctx.dropPeer(f, from, 'bad-bits', { ban: true })
    } else refill(ctx, f, known)
    return
  }
  const answering = f.connecting.has(from) // the answer to our own hello
  if (!answering) {
    // Without the manifest we have nothing to give a newcomer, nor a way to check its have-map.
    if (!f.manifest) return ctx.send(from, { t: 'none', file: f.id })
    if (f.peers.size >= ctx.opts.maxPeers) {
      bump(ctx.counters, 'swarm.full')
      return ctx.send(from, { t: 'bye', file: f.id, reason: 'full' })
    }
    // One peer may not hold every file's live state here (a file with a peer is never idle, never let go).
    let held = 0
    for (const g of ctx.files.values()) if (g.peers.has(from)) held++
    if (held >= ctx.opts.maxFilesPerPeer) {
      bump(ctx.counters, 'swarm.peer.files-full')
      return ctx.send(from, { t: 'bye', file: f.id, reason: 'busy' })
    }
  }
  const p = f.addPeer(from, ctx.now(), ctx.opts.pipeline)
  if (msg.bits && !f.setBits(p, msg.bits)) {
    bump(ctx.counters, 'drop.swarm.bits')
    return ctx.dropPeer(f, from, 'bad-bits', { ban: true })
  }
  f.lastActive = ctx.now()
  bump(ctx.counters, 'swarm.peer.joined')
  // Our have-map: to a newcomer, in our answer; to the node that answered us, again, since pieces we
  // gained while our hello was on its way were announced only to peers (it was not one yet).
  if (!answering || f.have)
    ctx.send(from, { t: 'hello', file: f.id, ...(f.have ? { bits: f.have.bytes.slice() } : {}) })
  sendPex(ctx, f, p)
  const dl = f.download
  if (dl?.active) {
    if (!f.manifest) askManifest(ctx, f, dl)
    else refill(ctx, f, p)
    emitProgress(ctx, dl)
  } else if (f.complete && p.bits?.complete) ctx.dropPeer(f, from, 'done')
}

export function onBye(ctx: SwarmContext, f: FileSwarm, from: string, msg: ByeMsg): void {
  const wasPeer = f.peers.has(from)
  const wasDialled = f.connecting.delete(from)
  if (!wasPeer && !wasDialled) return void bump(ctx.counters, 'drop.swarm.not-member')
  // "full" and "busy" pass; other reasons (done, gone, bad-...) mean not soon, if ever.
  const passing = msg.reason === 'full' || msg.reason === 'busy'
  if (wasPeer) ctx.dropPeer(f, from, msg.reason, { silent: true, retry: passing })
  else candidateFailed(ctx, f, from, passing ? 1 : 3)
  dialMore(ctx, f)
}

/** `none` for the whole file: the peer does not hold it (or not its manifest). */
export function onNoFile(ctx: SwarmContext, f: FileSwarm, from: string): void {
  if (f.connecting.delete(from)) {
    candidateFailed(ctx, f, from, 2)
    return dialMore(ctx, f)
  }
  const dl = f.download
  if (f.peers.has(from)) {
    // It answered our hello yet has no manifest to give: of no use to a download without one.
    if (dl?.metaReq?.peer === from) dl.metaReq = undefined
    ctx.dropPeer(f, from, 'no-manifest', { silent: true })
    if (dl?.active) askManifest(ctx, f, dl)
    return
  }
  bump(ctx.counters, 'drop.swarm.not-member')
}

export function onPex(ctx: SwarmContext, f: FileSwarm, p: Peer, msg: PexMsg): void {
  const now = ctx.now()
  if (now - p.pexAt < ctx.opts.pexIntervalMs / 2) return void bump(ctx.counters, 'drop.swarm.pex-early')
  p.pexAt = now
  bump(ctx.counters, 'swarm.pex.got')
  if (!f.download?.active) return
  addCandidates(ctx, f, msg.peers)
  dialMore(ctx, f)
}

/** Send `to` up to 32 of our other peers of the file, chosen at random. */
export function sendPex(ctx: SwarmContext, f: FileSwarm, to: Peer): void {
  to.nextPexAt = ctx.now() + ctx.opts.pexIntervalMs
  const others = [...f.peers.keys()].filter((id) => id !== to.id)
  if (others.length === 0) return
  for (let i = others.length - 1; i > 0; i--) {
    const j = Math.floor(ctx.deps.random() * (i + 1))
    const t = others[i] as string
    others[i] = others[j] as string
    others[j] = t
  }
  bump(ctx.counters, 'swarm.pex.sent')
  ctx.send(to.id, { t: 'pex', file: f.id, peers: others.slice(0, MAX_PEX_PEERS) })
}

/** Take a peer out of a file's swarm. */
export function dropPeer(
  ctx: SwarmContext,
  f: FileSwarm,
  peer: string,
  reason: string,
  o: DropOptions = {},
): void {
  const p = f.removePeer(peer)
  f.connecting.delete(peer)
  if (!p) return
  bump(ctx.counters, `swarm.peer.left.${reason}`)
  if (!o.silent) ctx.send(peer, { t: 'bye', file: f.id, reason })
  if (o.ban) {
    bump(ctx.counters, 'swarm.peer.banned')
    f.candidates.delete(peer)
    if (f.banned.size >= ctx.opts.maxBanned) f.banned.delete(f.banned.values().next().value as string)
    f.banned.add(peer)
  } else if (o.retry) candidateFailed(ctx, f, peer)
  const dl = f.download
  if (dl?.active) {
    if (dl.metaReq?.peer === peer) {
      dl.metaReq = undefined
      askManifest(ctx, f, dl)
    }
    refillAll(ctx, f)
    dialMore(ctx, f)
    emitProgress(ctx, dl)
  }
}

/** Time passes for a file's peers: unanswered hellos, pex, a download completed by others' haves. */
export function tickPeers(ctx: SwarmContext, f: FileSwarm, now: number): void {
  for (const [id, deadline] of f.connecting)
    if (now >= deadline) {
      f.connecting.delete(id)
      bump(ctx.counters, 'swarm.hello.timeout')
      candidateFailed(ctx, f, id)
    }
  for (const p of f.peers.values()) if (now >= p.nextPexAt) sendPex(ctx, f, p)
  if (f.download?.active && f.complete) finish(ctx, f, f.download)
  dialMore(ctx, f)
}
