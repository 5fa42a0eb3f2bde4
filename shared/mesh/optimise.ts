/**
 * The tree optimisation: swap a slow tree link for a faster lazy one.
 *
 * The tree Plumtree builds is the first broadcast's latency tree: fine for
 * that origin, deep for the others (at N = 256, degree 6, the last node is
 * reached after ~11 hops where flooding takes ~8). The paper's optimisation:
 * when an IHAVE for m arrives from L with a hop count enough lower than the
 * eager copy's (which came over E), GRAFT L and PRUNE E. In a tree that swap
 * keeps a tree (L's announcer got m without passing through this node, so
 * the cycle L closes runs through E), and it shortens this node's and its
 * whole subtree's distance to the origin.
 *
 * Why it was left out, and why it destabilised the shared tree: there is one
 * tree for every origin, and hop counts depend on the origin. A swap that
 * pays for origin X (on E's side) is judged on one message and costs the
 * origins on the other sides; the next origin's message swaps back, and
 * every swap also sends a PRUNE that the prune rule (tree.ts) may fight,
 * while the link just grafted brings a duplicate during the transition and
 * gets pruned again. The tree never settles. The rule here:
 *
 * - judged on the traffic, not one message: each (eager E, lazy L) pair
 *   collects samples, gain = hops(E's copy) − (hops(L's announcement) + 1),
 *   from broadcasts that came first over E by eager push (not by GRAFT: a
 *   repaired copy's hops say nothing of the tree). Only origins on E's side
 *   produce samples for E, which is exactly the set the swap moves; so the
 *   mean gain over the last `optimiseSamples` broadcasts is what the swap
 *   would have saved on the traffic as it was, whatever the origins. A swap
 *   that pays for one origin only never reaches the mean;
 * - hysteresis: the mean gain must reach `optimiseMargin` hops. After the
 *   swap the reverse pair measures about −gain, so swapping back needs the
 *   traffic to change by twice the margin;
 * - a minimum time between swaps at one node (`optimiseGapMs`); all of the
 *   node's samples are void after its swap, and a pair's when either link
 *   changes sets otherwise (measured on the old tree), so decisions rest on
 *   fresh data;
 * - the link a swap grafted is not pruned for `optimiseGapMs` (duplicates in
 *   the transition, when neighbours swap at the same time, must not undo it);
 *   the PRUNE of E carries no id, so the other end always obeys it.
 *
 * IHAVEs carry the hop count each id was received at (PROTOCOL-mesh.md), and
 * round-0 announcements go to every lazy link, even one known to have the
 * message: otherwise of two neighbours only the later would hear from the
 * earlier, and samples would exist only when the lazy side was ahead. A hop
 * count is not signed: a liar can only claim to be close (0 is refused from
 * anyone but the origin, counted `drop.badIHaveHops`), which at worst makes
 * this node graft it, as any neighbour may ask; repairs then route around it.
 *
 * How far a shared tree can go (bench/sim-mesh.ts, N = 256, degree 6,
 * broadcasts from random origins): a tree has one path between two nodes,
 * so its last delivery hop (LDH) is its eccentricity from the origin,
 * whatever the latencies. The best breadth-first tree of the graph gives
 * 6.95, one rooted at a centre of the graph 7.08, a random root 8.18; this
 * optimisation settles at ~8.1 (11.1 without it). Below that needs
 * per-origin paths (shortest-path trees would give 4.92), which need
 * repeated broadcasts from the same origin to learn. Spending payloads
 * beyond the tree does not help: the first copy to arrive follows the
 * lowest-latency path, usually longer in hops (flooding, RMR 4: 8.34).
 * Measured and left out: the origin and hop-1 nodes pushing to every link
 * (on the best tree 6.95 → 7.23 and 7.51, latency-first over the sim's
 * latencies), and directional shortcuts (a node pushing to a lazy neighbour
 * whose announcements showed it 2+ hops behind for broadcasts from one
 * incoming link; in the simulator LDH 8.27 → 8.63 settled, 9.55 → 11.15
 * after churn, RMR 0.05-0.2).
 */
import { bump } from '../protocol.ts'
import type { MeshContext } from './context.ts'
import type { Push } from './push.ts'

/** Most (eager, lazy) pairs with samples: links are few, but the table must not grow with a host's mistakes. */
const MAX_PAIRS = 256
/** Chance that a pair meeting the rule swaps now (else at a later sample). */
const SWAP_CHANCE = 0.25

export interface Optimiser {
  /**
   * Broadcast m came first over eager link `eager` at `eagerHops`; lazy link
   * `lazy` announced it at `lazyHops`. Swaps when the pair's samples say so.
   */
  sample(eager: string, lazy: string, eagerHops: number, lazyHops: number): void
  /** A link a swap grafted lately: not to be pruned on a duplicate. */
  isProtected(peer: string, now: number): boolean
  /**
   * A link a swap pruned lately: a payload it brings now was in flight before
   * the PRUNE arrived, and must not put the link back on the tree at this end
   * only (the other end makes it lazy when the PRUNE comes).
   */
  isStraggler(peer: string, now: number): boolean
  /** `peer` changed sets or went away: samples about it are void. */
  moved(peer: string): void
  /**
   * `peer` asked to be pushed to (an empty GRAFT: a neighbour's swap, or a rejoin): the tree moved
   * here. Wait before swapping, and keep the link through the transition.
   */
  graftedOnto(peer: string, now: number): void
}

interface Pair {
  eager: string
  lazy: string
  gains: number[]
}

export function createOptimiser(ctx: MeshContext, push: Push): Optimiser {
  const { deps, opt, counters, links } = ctx
  const pairs = new Map<string, Pair>()
  const protectedUntil = new Map<string, number>()
  const prunedUntil = new Map<string, number>()
  let lastSwap = Number.NEGATIVE_INFINITY
  let swapping = false

  function swap(p: Pair, now: number): void {
    swapping = true
    links.makeEager(p.lazy)
    links.makeLazy(p.eager)
    swapping = false
    // An empty GRAFT puts the link on the tree at the other end; a PRUNE without id is always obeyed.
    push.sendIds(p.lazy, 'graft', [])
    deps.send(p.eager, { type: 'prune' })
    bump(counters, 'pruneSent')
    bump(counters, 'controlSent')
    bump(counters, 'optimiseSwaps')
    lastSwap = now
    protectedUntil.set(p.lazy, now + opt.optimiseGapMs)
    prunedUntil.set(p.eager, now + opt.optimiseGapMs)
    pairs.clear() // measured on the old tree
  }

  return {
    sample(eager, lazy, eagerHops, lazyHops) {
      if (opt.optimiseSamples <= 0 || eager === lazy) return
      if (!links.eager.has(eager) || !links.lazy.has(lazy)) return
      const key = `${eager}|${lazy}`
      let p = pairs.get(key)
      if (!p) {
        if (pairs.size >= MAX_PAIRS) {
          const oldest = pairs.keys().next()
          if (!oldest.done) pairs.delete(oldest.value)
        }
        p = { eager, lazy, gains: [] }
        pairs.set(key, p)
      }
      p.gains.push(eagerHops - (lazyHops + 1))
      if (p.gains.length > opt.optimiseSamples) p.gains.shift()
      if (p.gains.length < opt.optimiseSamples) return
      const now = deps.now()
      if (now - lastSwap < opt.optimiseGapMs) return
      let sum = 0
      for (const g of p.gains) sum += g
      // Neighbours reach their sample counts together: a swap only by chance spreads them out.
      if (sum / p.gains.length >= opt.optimiseMargin && deps.random() < SWAP_CHANCE) swap(p, now)
    },

    isProtected(peer, now) {
      const until = protectedUntil.get(peer)
      if (until === undefined) return false
      if (until > now) return true
      protectedUntil.delete(peer)
      return false
    },

    isStraggler(peer, now) {
      const until = prunedUntil.get(peer)
      if (until === undefined) return false
      if (until > now && links.lazy.has(peer)) return true
      prunedUntil.delete(peer)
      return false
    },

    graftedOnto(peer, now) {
      if (opt.optimiseSamples <= 0) return
      lastSwap = Math.max(lastSwap, now)
      protectedUntil.set(peer, now + opt.optimiseGapMs)
    },

    moved(peer) {
      if (swapping) return
      for (const [k, p] of pairs) if (p.eager === peer || p.lazy === peer) pairs.delete(k)
      if (!links.has(peer)) {
        protectedUntil.delete(peer)
        prunedUntil.delete(peer)
      }
    },
  }
}
