/**
 * The downloading side of a file's swarm: what to ask whom, and what to do
 * with what comes back.
 *
 * - Requests: each connected peer gets up to `window` requests in flight
 *   (at most `pipeline`), chosen rarest first (picker.ts); the window grows
 *   by one with every piece from that peer and shrinks to what is in flight
 *   on a `busy` (the peer had no upload slot), and with nothing in flight a
 *   `busy` makes us wait (250 ms doubling to 4 s) before asking it again.
 * - Endgame: once every missing piece is asked of someone, free slots ask a
 *   second or third peer for those asked over `endgameAfterMs` ago; the
 *   first copy to arrive cancels the others.
 * - Verification: a piece is kept only when its length and SHA-256 are the
 *   manifest's. A peer that sends a bad one is banned from this file's swarm
 *   and the piece asked of someone else; a piece nobody asked that peer for
 *   counts against it.
 * - Timeouts: a request unanswered for `requestTimeoutMs` goes to another
 *   peer (a late copy is still welcome); `maxTimeouts` in a row drop the peer.
 * - The manifest: asked of one peer at a time, each peer once, used only
 *   if it hashes to the id.
 * - Ends: done when every piece is held; NotFoundError when no manifest came
 *   within `findTimeoutMs`, or no connected peer had any missing piece for
 *   `stallTimeoutMs`; IntegrityError instead when the only sources of what is
 *   missing lied. Either way what is held stays, and is served.
 */
import { bytesEqual } from '../bytes.ts'
import { ClosedError } from '../errors.ts'
import { bump } from '../protocol.ts'
import { lookup } from './candidates.ts'
import type { SwarmContext } from './context.ts'
import type { DownloadState } from './download-state.ts'
import { AbortError, IntegrityError, NotFoundError } from './errors.ts'
import type { FileSwarm, Peer } from './file-swarm.ts'
import { type Manifest, pieceHash, pieceLength, verifyManifest } from './manifest.ts'
import type { BusyMsg, MetaMsg, PieceMsg } from './messages.ts'
import type { FileInfo, Progress } from './options.ts'
import { pickPiece } from './picker.ts'
import { fileUri } from './uri.ts'

/** Late pieces remembered per peer (requests that timed out or were cancelled). */
const LATE_MAX = 16

export function fileInfo(id: string, m: Manifest): FileInfo {
  return {
    id,
    uri: fileUri(id, { name: m.name, size: m.size }),
    size: m.size,
    ...(m.name !== undefined ? { name: m.name } : {}),
    ...(m.type !== undefined ? { type: m.type } : {}),
  }
}

export function progressOf(ctx: SwarmContext, dl: DownloadState): Progress {
  const f = dl.file
  const m = f?.manifest
  let bytes = 0
  if (f?.have && m) {
    bytes = f.have.count * m.pieceSize
    if (f.have.has(m.pieces - 1)) bytes -= m.pieceSize - pieceLength(m, m.pieces - 1)
  }
  return {
    have: f?.have?.count ?? 0,
    total: m?.pieces ?? 0,
    peers: f?.peers.size ?? 0,
    bytesPerSec: dl.meter.rate(ctx.now()),
    bytes,
    size: m?.size ?? 0,
  }
}

export function emitProgress(ctx: SwarmContext, dl: DownloadState): void {
  const p = progressOf(ctx, dl)
  dl.lastPeers = p.peers
  for (const fn of dl.progressListeners) {
    try {
      fn(p)
    } catch {
      bump(ctx.counters, 'swarm.listener-threw')
    }
  }
}

/** Fill a peer's request window. */
export function refill(ctx: SwarmContext, f: FileSwarm, p: Peer): void {
  const dl = f.download
  if (!dl?.active || !f.have || !p.bits || f.have.complete) return
  const now = ctx.now()
  if (now < p.busyUntil) return
  const limit = Math.min(p.window, ctx.opts.pipeline)
  if (p.inflight.size >= limit) return
  const endgame = f.allRequested()
  while (p.inflight.size < limit) {
    const i = pickPiece({
      have: f.have,
      theirs: p.bits,
      avail: f.avail as Uint16Array,
      requested: f.requested as Uint8Array,
      // A piece this peer let time out goes to someone else first.
      skip: (k) => p.inflight.has(k) || f.storing.has(k) || p.late.has(k),
      endgame,
      endgameMax: ctx.opts.endgameMax,
      ripe: (k) => now - ((f.askedAt as Float64Array)[k] as number) >= ctx.opts.endgameAfterMs,
      random: ctx.deps.random,
    })
    if (i < 0) return
    if ((f.requested as Uint8Array)[i] !== 0) bump(ctx.counters, 'swarm.endgame.dup')
    f.request(p, i, now, now + ctx.opts.requestTimeoutMs)
    bump(ctx.counters, 'swarm.req.sent')
    ctx.send(p.id, { t: 'req', file: f.id, index: i })
  }
}

export function refillAll(ctx: SwarmContext, f: FileSwarm): void {
  for (const p of f.peers.values()) refill(ctx, f, p)
}

/**
 * A peer's `have` (not budgeted: a real one follows each piece it gains). Only a piece new to its
 * have-map that we lack and nobody is asked for can give it something to be asked for: a have that
 * changes nothing else costs no scan of the file's pieces (a ripe endgame piece waits for the tick).
 */
export function onHave(ctx: SwarmContext, f: FileSwarm, p: Peer, i: number): void {
  const had = p.bits?.has(i) ?? false
  if (!f.peerHas(p, i)) return void bump(ctx.counters, 'drop.swarm.index')
  if (f.complete && p.bits?.complete) return ctx.dropPeer(f, p.id, 'done')
  if (had || f.have?.has(i) || f.requested?.[i] !== 0 || f.storing.has(i) || p.late.has(i)) return
  refill(ctx, f, p)
}

/** A piece arrived. */
export async function onPiece(ctx: SwarmContext, f: FileSwarm, p: Peer, msg: PieceMsg): Promise<void> {
  const m = f.manifest
  const i = msg.index
  if (!m || !f.have || i >= m.pieces) return void bump(ctx.counters, 'drop.swarm.index')
  const asked = f.unrequest(p, i, false, LATE_MAX) || p.late.delete(i)
  if (!asked) {
    // Nobody asked this peer for it: counted against it, never hashed.
    bump(ctx.counters, 'drop.swarm.unrequested')
    return void ctx.dropPeer(f, p.id, 'unrequested', { ban: true })
  }
  if (f.have.has(i) || f.storing.has(i)) {
    bump(ctx.counters, 'swarm.piece.dup') // the endgame's second copy, or a late one
    return refill(ctx, f, p)
  }
  const dl = f.download
  if (!dl?.active) return
  if (msg.data.length !== pieceLength(m, i)) return bad(ctx, f, dl, p, i, 'length')
  f.storing.add(i)
  let ok: boolean
  try {
    ok = bytesEqual(await ctx.hash(msg.data), pieceHash(m, i))
  } catch {
    ok = false
  }
  if (!ok) {
    f.storing.delete(i)
    return bad(ctx, f, dl, p, i, 'hash')
  }
  // Removed (or the node closed) while we hashed: a write now would leave a piece with no manifest behind.
  if (ctx.files.get(f.id) !== f) return void f.storing.delete(i)
  try {
    await ctx.deps.store.putPiece(f.id, i, msg.data)
  } catch (err) {
    f.storing.delete(i)
    bump(ctx.counters, 'swarm.store.failed')
    return fail(ctx, f, dl, err instanceof Error ? err : new Error(String(err)))
  }
  f.storing.delete(i)
  // The file may have been removed, or the download ended, while we hashed and stored.
  if (ctx.files.get(f.id) !== f || !f.gained(i)) return
  const now = ctx.now()
  bump(ctx.counters, 'swarm.piece.in')
  bump(ctx.counters, 'swarm.bytes.in', msg.data.length)
  dl.meter.add(now, msg.data.length)
  dl.lastSourceAt = now
  p.timeouts = 0
  p.busyStreak = 0
  p.window = Math.min(ctx.opts.pipeline, p.window + 1)
  for (const q of f.peers.values()) {
    // The endgame's other requests for it: cancel them.
    if (q !== p && f.unrequest(q, i, true, LATE_MAX)) {
      bump(ctx.counters, 'swarm.cancel.sent')
      ctx.send(q.id, { t: 'cancel', file: f.id, index: i })
    }
    if (!q.bits?.has(i)) ctx.send(q.id, { t: 'have', file: f.id, index: i })
  }
  for (const fn of dl.pieceListeners) {
    try {
      fn({ index: i, from: p.id })
    } catch {
      bump(ctx.counters, 'swarm.listener-threw')
    }
  }
  emitProgress(ctx, dl)
  dl.changed()
  if (f.have.complete) return finish(ctx, f, dl)
  refillAll(ctx, f)
}

/** A peer sent a piece that is not the manifest's: it leaves this file's swarm for good. */
function bad(ctx: SwarmContext, f: FileSwarm, dl: DownloadState, p: Peer, i: number, why: string): void {
  bump(ctx.counters, `drop.swarm.bad-piece-${why}`)
  dl.liedPieces.add(i)
  ctx.dropPeer(f, p.id, 'bad-piece', { ban: true })
  refillAll(ctx, f)
}

/** No upload slot for our request: ask elsewhere, and ask this peer less; or ask it for the piece it suggests. */
export function onBusy(ctx: SwarmContext, f: FileSwarm, p: Peer, msg: BusyMsg): void {
  if (!f.requested || !f.have || !f.unrequest(p, msg.index, false, LATE_MAX)) return
  const j = msg.suggest
  if (
    j !== undefined &&
    j < f.pieces &&
    !f.have.has(j) &&
    !f.storing.has(j) &&
    f.requested[j] === 0 &&
    p.bits?.has(j) &&
    f.download?.active
  ) {
    bump(ctx.counters, 'swarm.suggest.taken')
    f.request(p, j, ctx.now(), ctx.now() + ctx.opts.requestTimeoutMs)
    ctx.send(p.id, { t: 'req', file: f.id, index: j })
  } else {
    bump(ctx.counters, 'swarm.busy.got')
    p.window = Math.max(1, p.inflight.size)
    if (p.inflight.size === 0) {
      const wait = Math.min(ctx.opts.busyBackoffMaxMs, ctx.opts.busyBackoffMs * 2 ** p.busyStreak)
      p.busyStreak = Math.min(p.busyStreak + 1, 16)
      p.busyUntil = ctx.now() + wait
    }
  }
  // The piece is free again: the next peer with room and the piece takes it.
  for (const q of f.peers.values()) if (q !== p && q.bits?.has(msg.index)) refill(ctx, f, q)
}

/** The peer does not have piece `index` after all. */
export function onNoPiece(ctx: SwarmContext, f: FileSwarm, p: Peer, index: number): void {
  if (!f.manifest || index >= f.manifest.pieces) return void bump(ctx.counters, 'drop.swarm.index')
  f.peerLacks(p, index)
  if (f.unrequest(p, index, false, LATE_MAX)) refillAll(ctx, f)
}

/** Ask a connected peer we have not asked yet for the manifest. */
export function askManifest(ctx: SwarmContext, f: FileSwarm, dl: DownloadState): void {
  if (f.manifest || dl.metaReq || dl.metaBusy || !dl.active) return
  for (const p of f.peers.values()) {
    if (dl.metaAsked.has(p.id)) continue
    dl.metaAsked.add(p.id)
    dl.metaReq = { peer: p.id, deadline: ctx.now() + ctx.opts.metaTimeoutMs }
    ctx.send(p.id, { t: 'meta-req', file: f.id })
    return
  }
}

/** The manifest arrived: used only when it hashes to the id. */
export async function onMeta(ctx: SwarmContext, f: FileSwarm, from: string, msg: MetaMsg): Promise<void> {
  const dl = f.download
  if (!dl?.active || f.manifest || dl.metaReq?.peer !== from || dl.metaBusy)
    return void bump(ctx.counters, 'drop.swarm.unasked-meta')
  dl.metaReq = undefined
  dl.metaBusy = true
  try {
    const m = await verifyManifest(f.id, msg.manifest, ctx.hash)
    if (typeof m === 'string') {
      bump(ctx.counters, `drop.swarm.bad-manifest-${m}`)
      dl.liedManifest = true
      ctx.dropPeer(f, from, 'bad-manifest', { ban: true })
      return
    }
    // Removed (or ended) while we checked it: writing it now would bring a removed file back.
    if (ctx.files.get(f.id) !== f || !dl.active) return
    await ctx.deps.store.putManifest(f.id, msg.manifest)
    const held = await ctx.deps.store.pieces(f.id)
    if (ctx.files.get(f.id) !== f || f.manifest || !dl.active) return
    installManifest(ctx, f, m, msg.manifest, held)
    provide(ctx, f.id) // we can serve the manifest now, and soon pieces
    bump(ctx.counters, 'swarm.manifest.got')
    emitProgress(ctx, dl)
    dl.changed()
    if (f.have?.complete) return finish(ctx, f, dl)
    refillAll(ctx, f)
  } catch (err) {
    bump(ctx.counters, 'swarm.store.failed')
    fail(ctx, f, dl, err instanceof Error ? err : new Error(String(err)))
  } finally {
    dl.metaBusy = false
    if (!f.manifest) askManifest(ctx, f, dl)
  }
}

/** Set a verified manifest on a file's swarm: peers whose early have-maps do not fit it are dropped. */
export function installManifest(
  ctx: SwarmContext,
  f: FileSwarm,
  m: Manifest,
  bytes: Uint8Array,
  held: Iterable<number>,
): void {
  const valid = [...held].filter((i) => Number.isSafeInteger(i) && i >= 0 && i < m.pieces)
  for (const p of f.setManifest(m, bytes, valid)) {
    bump(ctx.counters, 'drop.swarm.bits')
    ctx.dropPeer(f, p.id, 'bad-bits', { ban: true })
  }
}

/** Announce in the DHT that we provide the file (the host's DHT refreshes the record). */
export function provide(ctx: SwarmContext, id: string): void {
  try {
    void Promise.resolve(ctx.deps.provide?.(id)).catch(() => bump(ctx.counters, 'swarm.provide-failed'))
  } catch {
    bump(ctx.counters, 'swarm.provide-failed')
  }
}

export function finish(ctx: SwarmContext, f: FileSwarm, dl: DownloadState): void {
  if (!dl.active || !f.manifest) return
  dl.settled = 'done'
  ctx.downloads.delete(f.id)
  f.download = undefined
  dl.unlisten?.()
  bump(ctx.counters, 'swarm.download.complete')
  f.connecting.clear()
  f.candidates.clear()
  emitProgress(ctx, dl)
  dl.resolve(fileInfo(f.id, f.manifest))
  dl.changed()
  // Two complete ends have nothing for each other.
  for (const p of [...f.peers.values()]) if (p.bits?.complete) ctx.dropPeer(f, p.id, 'done')
}

/** End a download with an error; what it holds stays and is served. */
export function fail(ctx: SwarmContext, f: FileSwarm | undefined, dl: DownloadState, err: Error): void {
  if (!dl.active) return
  dl.settled = err
  ctx.downloads.delete(dl.id)
  dl.unlisten?.()
  bump(ctx.counters, `swarm.download.${err.name}`)
  if (f && f.download === dl) {
    f.download = undefined
    f.connecting.clear()
    f.candidates.clear()
    for (const p of f.peers.values())
      for (const i of [...p.inflight.keys()]) {
        f.unrequest(p, i, true, LATE_MAX) // a copy already on its way is no fault of the peer
        ctx.send(p.id, { t: 'cancel', file: f.id, index: i })
      }
  }
  dl.reject(err)
  dl.changed()
}

export function abortDownload(ctx: SwarmContext, dl: DownloadState, reason?: string): void {
  fail(ctx, dl.file, dl, new AbortError(reason))
}

export function closeDownload(ctx: SwarmContext, dl: DownloadState): void {
  fail(ctx, dl.file, dl, new ClosedError('the swarm was closed'))
}

/** Time passes for a download: timeouts, the manifest, lookups, the end of hope. */
export function tickDownload(ctx: SwarmContext, f: FileSwarm, dl: DownloadState, now: number): void {
  for (const p of [...f.peers.values()]) {
    for (const [i, deadline] of [...p.inflight]) {
      if (now < deadline) continue
      f.unrequest(p, i, true, LATE_MAX)
      p.timeouts++
      bump(ctx.counters, 'swarm.timeout')
    }
    if (p.timeouts >= ctx.opts.maxTimeouts) {
      bump(ctx.counters, 'swarm.peer.slow')
      ctx.dropPeer(f, p.id, 'timeouts', { retry: true })
    }
  }
  if (!f.manifest) {
    if (dl.metaReq && now >= dl.metaReq.deadline) {
      bump(ctx.counters, 'swarm.manifest.timeout')
      dl.metaReq = undefined
    }
    askManifest(ctx, f, dl)
    if (now - dl.startedAt >= ctx.opts.findTimeoutMs)
      return fail(
        ctx,
        f,
        dl,
        dl.liedManifest
          ? new IntegrityError(f.id, `every manifest of ${f.id} received failed its hash`)
          : new NotFoundError(f.id),
      )
  } else {
    let source = false
    for (const p of f.peers.values()) if (f.useful(p)) source = true
    if (source || f.storing.size > 0) dl.lastSourceAt = now
    else if (now - dl.lastSourceAt >= ctx.opts.stallTimeoutMs) {
      const lied = [...dl.liedPieces].some((i) => !f.have?.has(i))
      return fail(
        ctx,
        f,
        dl,
        lied
          ? new IntegrityError(
              f.id,
              `no honest source of ${f.id} remains: the peers that had its missing pieces lied`,
            )
          : new NotFoundError(f.id, `no peer has the missing pieces of ${f.id}`),
      )
    }
  }
  lookup(ctx, f, dl, now)
  refillAll(ctx, f)
  if (f.peers.size !== dl.lastPeers) emitProgress(ctx, dl)
}
