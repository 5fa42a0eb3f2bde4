/**
 * Plumtree's two pushes, and what the mesh sends.
 *
 * Eager push: a broadcast accepted here goes in full at once to every eager
 * link that is not known to have it.
 *
 * Lazy push (announcements). Round 0 goes to lazy links, and to the link the
 * payload came from, as an acknowledgement. Later rounds (`announceRounds`,
 * every `announceRepeatMs`) go to links that have not acknowledged it (sent,
 * announced, GRAFTed or PRUNEd it; eager links only when round 0 does not go
 * to every link, below): a payload pushed on a tree link and lost, or an
 * IHAVE lost on a lazy link that is a node's only way to the rest (the tree
 * cut by a crash or a partition), is announced again until the neighbour has
 * it or GRAFTs it. Over reliable channels this costs N − 1 ids per broadcast
 * and nothing more; it is what keeps coverage at 1.0 when the transport loses
 * messages (the simulator's loss, a link that dies with messages in flight).
 * Under 5 % loss, repeats to links whose acknowledgement was lost add 10-25 %
 * to the ids announced (mesh.sim.test.ts, 300 nodes, medians of seeds 1-20).
 * One round is Plumtree as published. Announcements due wait in two FIFO
 * queues, each in deadline order, so a tick only looks at their heads; the
 * ids are batched per peer into one IHAVE per tick.
 */
import { bump } from '../protocol.ts'
import { addToBatch, type Batches, type MeshContext } from './context.ts'
import { MAX_IDS_PER_MSG } from './messages.ts'
import type { CachedBroadcast } from './payload-cache.ts'
import type { Routes } from './routes.ts'

export interface Push {
  /** Send `e` in full to `to`, eagerly or in answer to a GRAFT. */
  sendGossip(to: string, e: CachedBroadcast, kind: 'Eager' | 'Graft', routed?: boolean): void
  /** Send IHAVE or GRAFT for `ids` to `to`, in messages of at most MAX_IDS_PER_MSG (an empty GRAFT too). */
  sendIds(to: string, type: 'ihave' | 'graft', ids: string[]): void
  /** `e` was just accepted: push it to eager links now and queue its announcements. */
  relay(e: CachedBroadcast): void
  /** Add the announcements due at `now` to `batches`. */
  announce(now: number, batches: Batches): void
  /** Announcements waiting. */
  readonly queued: number
}

export function createPush(ctx: MeshContext, routes: Routes): Push {
  const { deps, opt, counters, links, cache } = ctx
  // Announcements due: round 0 after lazyDelayMs, later rounds every announceRepeatMs.
  const firstRound: string[] = []
  const laterRounds: string[] = []
  const queueMax = opt.cacheMax * opt.announceRounds
  // Round 0 goes to every link not pushed to, even one known to have it (below).
  const all = opt.optimiseSamples > 0 || opt.routeOrigins > 0

  function sendGossip(to: string, e: CachedBroadcast, kind: 'Eager' | 'Graft', routed = false): void {
    const hops = e.hops + 1
    deps.send(
      to,
      routed
        ? { type: 'gossip', payload: e.payload, sig: e.sig, hops, r: true }
        : { type: 'gossip', payload: e.payload, sig: e.sig, hops },
    )
    bump(counters, 'payloadSent')
    bump(counters, `payloadSent${kind}`)
  }

  function sendIds(to: string, type: 'ihave' | 'graft', ids: string[]): void {
    // An empty GRAFT still goes out: it asks only to be pushed to.
    for (let i = 0; i < ids.length || (i === 0 && type === 'graft'); i += MAX_IDS_PER_MSG) {
      const chunk = ids.slice(i, i + MAX_IDS_PER_MSG)
      if (type === 'ihave') {
        // With the hops each was received at, for the receiver's tree optimisation (optimise.ts).
        const hops = chunk.map((id) => cache.get(id)?.hops ?? opt.maxHops)
        // And which came over a per-origin route: those hop counts are not the shared tree's (routes.ts).
        const r: number[] = []
        chunk.forEach((id, i) => {
          const e = cache.get(id)
          if (e && (e.routed || e.viaRoute)) r.push(i)
        })
        deps.send(to, r.length > 0 ? { type, ids: chunk, hops, r } : { type, ids: chunk, hops })
      } else deps.send(to, { type, ids: chunk })
      bump(counters, `${type}Sent`)
      bump(counters, `${type}IdsSent`, chunk.length)
      bump(counters, 'controlSent')
    }
  }

  function relay(e: CachedBroadcast): void {
    // The shared tree's eager links, as the origin's routes amend them; a copy routes carry here, or
    // that travelled a route, says so all the way down (routes.ts).
    const flagged = e.routed || routes.involved(e.origin)
    for (const set of [links.eager, links.lazy])
      for (const p of set)
        if (!e.haves.has(p) && routes.pushes(p, e.origin)) sendGossip(p, e, 'Eager', flagged)
    if (cache.get(e.id) === e) {
      firstRound.push(e.id)
      if (firstRound.length > queueMax) firstRound.shift()
    }
  }

  function step(queue: string[], now: number, batches: Batches): void {
    for (let head = queue[0]; head !== undefined; head = queue[0]) {
      const e = cache.get(head)
      if (e && e.nextAnnounceAt > now) break
      queue.shift()
      if (!e) continue
      if (e.round === 0) {
        // Plumtree's lazy push, and the acknowledgement that tells the sender not to repeat.
        // With the optimisation on, to every lazy link: the hop count is what its optimiser compares.
        // Routes too (routes.ts): every link not pushed to hears of it, with the hop count, even one
        // known to have it (a node learns its route from its neighbours' hop counts).
        for (const set of [links.lazy, links.eager])
          for (const p of set)
            if (p !== e.from && (all || !e.haves.has(p)) && !routes.pushes(p, e.origin))
              addToBatch(batches, p, e.id)
        if (opt.announceRounds > 1 && e.from !== undefined && links.has(e.from))
          addToBatch(batches, e.from, e.id)
      } else {
        // A payload pushed, or a round-0 IHAVE, may have been lost: announce it again until
        // acknowledged. Whether a link is eager now says nothing of what it was sent: a link pruned
        // after the push, or grafted after it (so neither pushed to nor announced to), is as likely
        // to lack it. With round 0 to every link, every neighbour that has it says so (its own round
        // 0, or the acknowledgement to the sender), so any link not heard from is asked again;
        // without, only the eager links, as a lazy one that has it stays silent.
        for (const set of [links.eager, links.lazy])
          for (const p of set)
            if (!e.haves.has(p) && (all || routes.pushes(p, e.origin))) addToBatch(batches, p, e.id)
      }
      e.round++
      if (e.round < opt.announceRounds) {
        e.nextAnnounceAt = now + opt.announceRepeatMs
        laterRounds.push(e.id)
        if (laterRounds.length > queueMax) laterRounds.shift()
      }
    }
  }

  return {
    sendGossip,
    sendIds,
    relay,
    announce(now, batches) {
      step(firstRound, now, batches)
      step(laterRounds, now, batches)
    },
    get queued() {
      return firstRound.length + laterRounds.length
    },
  }
}
