/**
 * Keeping the broadcast tree whole: PRUNE, sent and received.
 *
 * A node that receives a payload it has already seen answers PRUNE, and
 * both ends make that link lazy. As published, every duplicate prunes at
 * once. When several origins broadcast at the same moment, a link can bring
 * one message first and another as a duplicate; pruning on the duplicate
 * cuts the first one's tree, and a burst of 8 broadcasts on a fresh 256-node
 * mesh leaves a forest of ~40 pieces held together by GRAFTs
 * (bench/sim-mesh.ts). Two changes keep the tree whole:
 *
 * - the prune rule: messages are ranked by id. A duplicate of m over link L
 *   prunes L only if L has not lately (`treeMemoryMs`) brought this node
 *   first a message ranked before m. The node at the other end applies the
 *   same rule to the PRUNE (which names m) and refuses it with an empty
 *   GRAFT if L brought it an earlier-ranked message first. Both ends agree,
 *   and the tree of the earliest-ranked message of a burst is never cut, so
 *   the burst leaves exactly that tree;
 * - the PRUNE waits `pruneDelayMs`, so every message of a burst has crossed
 *   its links before any link is judged.
 */
import { bump } from '../protocol.ts'
import type { MeshContext } from './context.ts'
import type { PruneMsg } from './messages.ts'
import type { Optimiser } from './optimise.ts'
import { noteHave } from './payload-cache.ts'
import type { Push } from './push.ts'

/** Most recent first deliveries remembered per link, for the prune rule. */
const FIRST_VIA_MAX = 16

export interface Tree {
  /** Link `peer` brought broadcast `id` first, at `now`. */
  noteFirst(peer: string, id: string, now: number): void
  /** A payload already accepted came again over `from`: the link is redundant for it; PRUNE it after `pruneDelayMs`. */
  duplicate(from: string, id: string): void
  /** Judge the links whose PRUNE is due at `now`. */
  prunesDue(now: number): void
  onPrune(from: string, m: PruneMsg): void
  /** The link to `peer` closed: forget what it brought. */
  forget(peer: string): void
}

export function createTree(ctx: MeshContext, push: Push, optimiser: Optimiser): Tree {
  const { deps, opt, counters, links, cache } = ctx
  // Broadcasts each link brought first, lately: link -> [id, local time][].
  const firstVia = new Map<string, [string, number][]>()
  // PRUNEs waiting for pruneDelayMs: link -> the earliest-ranked duplicate it brought, and when to judge.
  const pruneDue = new Map<string, { id: string; at: number }>()

  /**
   * Does the link to `peer` carry, lately, the tree of a broadcast that ranks
   * before `id`? Then a duplicate of `id` on it must not prune it.
   */
  function onEarlierTree(peer: string, id: string): boolean {
    const now = deps.now()
    for (const [other, t] of firstVia.get(peer) ?? [])
      if (other < id && now - t < opt.treeMemoryMs) return true
    return false
  }

  function prunesDue(now: number): void {
    if (pruneDue.size === 0) return
    for (const [peer, { id, at }] of pruneDue) {
      if (at > now) continue
      pruneDue.delete(peer)
      if (!links.has(peer)) continue
      // A link the tree optimisation just grafted stays through the transition (optimise.ts).
      if (onEarlierTree(peer, id) || optimiser.isProtected(peer, now)) {
        bump(counters, 'pruneHeld')
        continue
      }
      links.makeLazy(peer)
      deps.send(peer, { type: 'prune', id })
      bump(counters, 'pruneSent')
      bump(counters, 'controlSent')
    }
  }

  return {
    noteFirst(peer, id, now) {
      if (opt.treeMemoryMs <= 0) return
      const list = (firstVia.get(peer) ?? []).filter(([, t]) => now - t < opt.treeMemoryMs)
      list.push([id, now])
      if (list.length > FIRST_VIA_MAX) list.shift()
      firstVia.set(peer, list)
    },

    duplicate(from, id) {
      bump(counters, 'duplicates')
      const e = cache.get(id)
      if (e) noteHave(e, from)
      if (!links.has(from)) return
      const due = pruneDue.get(from)
      if (!due) pruneDue.set(from, { id, at: deps.now() + opt.pruneDelayMs })
      else if (id < due.id) due.id = id // judged against the earliest-ranked duplicate
      if (opt.pruneDelayMs <= 0) prunesDue(deps.now())
    },

    prunesDue,

    onPrune(from, m) {
      bump(counters, 'pruneIn')
      // A PRUNE names a broadcast it got twice: no announcement of it is owed there (push.ts).
      const e = m.id === undefined ? undefined : cache.get(m.id)
      if (e) noteHave(e, from)
      if (m.id !== undefined && links.has(from) && onEarlierTree(from, m.id)) {
        // The link is on an earlier broadcast's tree from our side: stay on it (an empty GRAFT says so).
        bump(counters, 'pruneRefused')
        links.makeEager(from)
        push.sendIds(from, 'graft', [])
        return
      }
      links.makeLazy(from)
    },

    forget(peer) {
      firstVia.delete(peer)
      pruneDue.delete(peer)
    },
  }
}
