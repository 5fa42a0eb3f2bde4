/**
 * Repairing the tree: IHAVE in, GRAFT in and out (Plumtree's missing-message
 * timers).
 *
 * When a tree link breaks (a crash, a partition, a lost message) the nodes
 * below it still hear IHAVEs on their lazy links. An id heard of but not
 * received within `graftTimeoutMs` is fetched with GRAFT from an announcer
 * (the next one every `graftRetryMs`, at most `maxGraftAttempts` times),
 * which also makes that link eager again: the tree repairs itself where it
 * broke. A node left with no eager link GRAFTs one of its lazy links at once
 * (an empty GRAFT) to join the tree again. A node that lost an eager link
 * (its neighbour crashed or left) and has had no payload pushed to it since
 * GRAFTs an announced id at the next tick instead of after `graftTimeoutMs`:
 * the push it would wait for may have nowhere to come from. After a crash the
 * tree falls in pieces, some reachable only through others, and each piece
 * waited out the timeout in turn (optimise.sim.test.ts, 10 % crashed: the
 * last node of the first broadcast at 0.8-1.5 s, seeds 1-40; 0.4-0.95 s
 * now). A GRAFT received is answered from the payload cache, a bounded
 * number of times per neighbour and broadcast, so a GRAFT loop cannot turn
 * into a payload amplifier.
 */
import { bump } from '../protocol.ts'
import { addToBatch, type Batches, type MeshContext } from './context.ts'
import type { GraftMsg, IHaveMsg } from './messages.ts'
import type { Optimiser } from './optimise.ts'
import { MAX_PEERS_PER_ENTRY, noteHave } from './payload-cache.ts'
import type { Push } from './push.ts'
import type { Routes } from './routes.ts'

export interface Repair {
  onIHave(from: string, m: IHaveMsg): void
  onGraft(from: string, m: GraftMsg): void
  /** Add the GRAFTs due at `now` for missing ids to `batches`. */
  graftMissing(now: number, batches: Batches): void
  /** With no eager link left, take one lazy link back onto the tree (an empty GRAFT in `batches`). */
  rejoin(batches: Batches): void
}

export function createRepair(ctx: MeshContext, push: Push, optimiser: Optimiser, routes: Routes): Repair {
  const { deps, opt, counters, links, seen, cache, missing, pending } = ctx

  return {
    onIHave(from, m) {
      bump(counters, 'ihaveIn')
      // With no eager link left nothing can come unasked, and with one lost since the last payload
      // pushed here the tree may be cut above this node (a crash): GRAFT at the next tick.
      const deadline = deps.now() + (links.eager.size === 0 || links.cut ? 0 : opt.graftTimeoutMs)
      const viaRoute = new Set(m.r)
      for (let i = 0; i < m.ids.length; i++) {
        const id = m.ids[i] as string
        let hops = m.hops?.[i] ?? -1
        const routed = viaRoute.has(i)
        if (seen.has(id)) {
          const e = cache.get(id)
          if (!e) continue
          noteHave(e, from)
          if (hops === 0 && e.origin !== from) {
            // Only the origin has a broadcast at 0 hops: the claim is not used.
            bump(counters, 'drop.badIHaveHops')
            hops = -1
          }
          // Came first by eager push: would this announcer have been sooner? (optimise.ts)
          if (hops >= 0 && e.from !== undefined && !e.requested) {
            if (!e.viaRoute && !e.routed && !routed) optimiser.sample(e.from, from, e.hops, hops)
            routes.sample(e.origin, id, e.from, e.hops, from, hops)
          }
          continue
        }
        const r = missing.announce(id, from, deadline, hops, routed)
        if (r === 'full') bump(counters, 'drop.missingFull')
        else if (r === 'quota') bump(counters, 'drop.missingQuota')
      }
    },

    onGraft(from, m) {
      bump(counters, 'graftIn')
      links.makeEager(from)
      if (m.ids.length === 0) optimiser.graftedOnto(from, deps.now())
      for (const id of m.ids) {
        const e = cache.get(id)
        if (!e) {
          bump(counters, 'drop.graftUnknown')
          continue
        }
        if (e.hops >= opt.maxHops) {
          bump(counters, 'drop.graftHopLimit')
          continue
        }
        routes.grafted(from, e.origin)
        const n = e.grafted.get(from) ?? 0
        if (n >= opt.graftAnswersPerPeer || (n === 0 && e.grafted.size >= MAX_PEERS_PER_ENTRY)) {
          bump(counters, 'drop.graftRepeat')
          continue
        }
        e.grafted.set(from, n + 1)
        noteHave(e, from)
        // Routes carry its origin here: the answer says so, and the asker takes this node for its route's parent (routes.ts).
        push.sendGossip(from, e, 'Graft', routes.involved(e.origin))
      }
    },

    graftMissing(now, batches) {
      for (const e of missing.due(now)) {
        if (seen.has(e.id)) {
          missing.delete(e.id)
          continue
        }
        if (pending.has(e.id)) {
          e.deadline = now + opt.graftRetryMs
          continue
        }
        const peer = e.announcers[e.attempts % e.announcers.length]
        if (e.attempts >= opt.maxGraftAttempts || peer === undefined) {
          missing.delete(e.id)
          bump(counters, 'missingGaveUp')
          continue
        }
        e.attempts++
        e.deadline = now + opt.graftRetryMs
        links.makeEager(peer)
        addToBatch(batches, peer, e.id)
      }
    },

    rejoin(batches) {
      if (links.eager.size > 0 || links.lazy.size === 0) return
      // Cut off from the tree (its links pruned or gone): join it again through one lazy link.
      const peers = [...links.lazy]
      const peer = peers[Math.floor(deps.random() * peers.length)]
      if (peer === undefined) return
      links.makeEager(peer)
      if (!batches.has(peer)) batches.set(peer, [])
      bump(counters, 'rejoins')
    },
  }
}
