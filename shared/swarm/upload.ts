/**
 * The seeding side: answering requests for pieces and manifests.
 *
 * Upload slots, not choking. A node sends at most `uploadSlots` pieces at
 * once (all files, all peers); a slot is held from the request until the
 * host's send resolves (the piece has left, after backpressure). A request
 * that finds no free slot, or finds its peer over its fair share, is
 * answered `busy` at once, and the requester asks someone else: no queue
 * grows here and nobody waits behind a choke. The fair share is the slots
 * divided among the peers that asked in the last two seconds (rounded up),
 * so one fast downloader cannot hold every slot while others wait, and a
 * lone one may use them all.
 *
 * Why not BitTorrent's choking (tit-for-tat, rechoke every 10 s, an
 * optimistic unchoke every 30 s): it is an incentive against free riders
 * among selfish clients. Here every node runs the same code and seeds what
 * it holds, and identities cost a proof of work; what remains to share out
 * is upload capacity, which slots do without the timers. A newcomer gets a
 * slot as soon as one frees (optimistic unchoking's purpose), and `busy`
 * answers in one round trip where a choked peer would wait.
 *
 * Suggestions: a seed (it holds every piece) that still holds pieces it
 * never sent answers a request for a piece it did send with `busy` and
 * `suggest`: one of those it never sent, that the requester lacks. The first copies of a file's pieces then leave
 * its seeder once each before any leaves twice (the aim of BitTorrent's
 * super-seeding, BEP 16, without hiding pieces), so the swarm, not the
 * seeder, makes the second copies: that halved the time to spread a file
 * in the simulator (bench/sim-swarm.ts).
 *
 * A piece is read from the store and hashed again before it goes (a store
 * can lose or corrupt bytes): a piece that fails is forgotten from our
 * have-map and answered `none`.
 */
import { bytesEqual } from '../bytes.ts'
import { bump } from '../protocol.ts'
import type { SwarmContext } from './context.ts'
import type { FileSwarm, Peer } from './file-swarm.ts'
import { pieceHash } from './manifest.ts'
import type { RequestMsg } from './messages.ts'

/** Requesters count toward the fair share this long after their last request. */
const FAIR_WINDOW_MS = 2_000

interface Upload {
  readonly peer: string
  readonly until: number
  cancelled: boolean
  released: boolean
}

export class Uploads {
  /** Slots in use. */
  used = 0
  /** Slots in use per peer. */
  readonly perPeer = new Map<string, number>()
  /** peer|file|index -> the upload. */
  readonly active = new Map<string, Upload>()
  /** Peer -> time of its last request (the fair share counts these). */
  readonly recent = new Map<string, number>()

  share(slots: number, now: number): number {
    let n = 0
    for (const [peer, t] of this.recent) {
      if (now - t <= FAIR_WINDOW_MS) n++
      else this.recent.delete(peer)
    }
    return Math.max(1, Math.ceil(slots / Math.max(1, n)))
  }

  take(key: string, peer: string, until: number): Upload {
    const u: Upload = { peer, until, cancelled: false, released: false }
    this.active.set(key, u)
    this.used++
    this.perPeer.set(peer, (this.perPeer.get(peer) ?? 0) + 1)
    return u
  }

  release(key: string, u: Upload): void {
    if (u.released) return
    u.released = true
    if (this.active.get(key) === u) this.active.delete(key)
    this.used--
    const n = (this.perPeer.get(u.peer) ?? 1) - 1
    if (n > 0) this.perPeer.set(u.peer, n)
    else this.perPeer.delete(u.peer)
  }

  /** Free the slots of sends that never settled. */
  tick(now: number): number {
    let n = 0
    for (const [key, u] of this.active)
      if (now >= u.until) {
        this.release(key, u)
        n++
      }
    this.share(0, now) // prunes `recent`
    return n
  }
}

/** A peer asks for piece `index`. */
export async function onRequest(ctx: SwarmContext, f: FileSwarm, p: Peer, msg: RequestMsg): Promise<void> {
  const up = ctx.uploads
  const m = f.manifest
  const i = msg.index
  if (!m || !f.have?.has(i)) {
    if (m && i >= m.pieces) return void bump(ctx.counters, 'drop.swarm.index')
    bump(ctx.counters, 'swarm.none.sent')
    return ctx.send(p.id, { t: 'none', file: f.id, index: i })
  }
  const key = `${p.id}|${f.id}|${i}`
  if (up.active.has(key)) return void bump(ctx.counters, 'drop.swarm.dup-req')
  const now = ctx.now()
  up.recent.set(p.id, now)
  if (f.complete && f.unsent > 0 && (f.sent?.[i] ?? 0) > 0) {
    // A seed's pieces it never sent may exist nowhere else yet: suggest one instead of a second copy of this.
    const j = f.unsentFor(p, (k) => up.active.has(`${p.id}|${f.id}|${k}`), ctx.deps.random)
    if (j >= 0) {
      bump(ctx.counters, 'swarm.suggest.sent')
      return ctx.send(p.id, { t: 'busy', file: f.id, index: i, suggest: j })
    }
  }
  const share = up.share(ctx.opts.uploadSlots, now)
  if (up.used >= ctx.opts.uploadSlots || (up.perPeer.get(p.id) ?? 0) >= share) {
    bump(ctx.counters, 'swarm.busy.sent')
    return ctx.send(p.id, { t: 'busy', file: f.id, index: i })
  }
  const u = up.take(key, p.id, now + ctx.opts.uploadTimeoutMs)
  f.uploaded(i)
  const release = () => up.release(key, u)
  let sent: void | Promise<void>
  try {
    const data = await ctx.deps.store.getPiece(f.id, i)
    if (u.cancelled || u.released) {
      bump(ctx.counters, 'swarm.upload.cancelled')
      return release()
    }
    const good =
      data !== undefined && (!ctx.opts.verifyOnServe || bytesEqual(await ctx.hash(data), pieceHash(m, i)))
    if (!data || !good) {
      bump(ctx.counters, 'swarm.store.corrupt')
      f.lost(i)
      ctx.send(p.id, { t: 'none', file: f.id, index: i })
      return release()
    }
    bump(ctx.counters, 'swarm.piece.out')
    bump(ctx.counters, 'swarm.bytes.out', data.length)
    f.lastActive = ctx.now()
    sent = ctx.deps.send(p.id, { t: 'piece', file: f.id, index: i, data })
  } catch {
    bump(ctx.counters, 'swarm.send-failed')
    return release()
  }
  // The slot is held until the piece has left; not awaited, so the caller's receive loop goes on meanwhile.
  if (!sent) return release()
  sent.then(release, () => {
    bump(ctx.counters, 'swarm.send-failed')
    release()
  })
}

/** The peer no longer wants piece `index`: if it has not left yet, it will not. */
export function onCancel(ctx: SwarmContext, f: FileSwarm, p: Peer, index: number): void {
  const u = ctx.uploads.active.get(`${p.id}|${f.id}|${index}`)
  if (u) u.cancelled = true
  bump(ctx.counters, 'swarm.cancel.got')
}

/** Most manifests sent to one peer of a file (a manifest is up to 512 KiB: no amplification). */
const MAX_META_PER_PEER = 2

/** A peer asks for the manifest. */
export function onMetaRequest(ctx: SwarmContext, f: FileSwarm, p: Peer): void {
  if (!f.manifestBytes) return ctx.send(p.id, { t: 'none', file: f.id })
  if (p.metaSent >= MAX_META_PER_PEER) return void bump(ctx.counters, 'drop.swarm.meta-again')
  p.metaSent++
  bump(ctx.counters, 'swarm.manifest.sent')
  ctx.send(p.id, { t: 'meta', file: f.id, manifest: f.manifestBytes })
}
