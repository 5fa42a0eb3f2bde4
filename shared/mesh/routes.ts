/**
 * Per-origin routes: a shortest-hop tree for each origin that broadcasts
 * again and again, on top of the shared tree.
 *
 * The shared tree (tree.ts, optimise.ts) is one tree for every origin, so
 * its last delivery hop (LDH) is the tree's eccentricity from the origin:
 * ~8.1 at N = 256, degree 6, where the best any one breadth-first tree of
 * that graph can do is 6.95 and per-origin shortest paths give 4.92
 * (bench/sim-mesh.ts). Below a shared tree's bound needs a tree per origin,
 * and a tree per origin can only be learnt from that origin's broadcasts.
 * So an origin's first broadcasts take the shared tree; once a node has had
 * `routeAfter` (3) of them, it may lay a route for that origin. Entering
 * the shared tree at more points does not do for a one-off origin either: a
 * fan (the origin pushing to every neighbour, or every node within two hops
 * pushing to all theirs) lowers the best tree's bound only to 6.95 (6.85),
 * and tried in the simulator it cost the tree optimiser its samples (the
 * fanned copies' hop counts are not the tree's): LDH 8.63 (9.26), not 7.93.
 *
 * Learning. Every broadcast of O comes to X first over one link at some hop
 * count h, and the neighbours that did not push it to X announce it with
 * the hop count they got it at (IHAVE round 0 goes to every link the
 * payload did not go to). When a neighbour L announces h_L with
 * h_L + 1 < h, X takes L for its parent for O:
 *
 * - `route {o: O, m: 1}` to L: "push O's broadcasts to me", whatever L's
 *   shared sets say;
 * - `route {o: O, m: 2}` to the link the copy came over (and to a previous
 *   parent): "do not push O's broadcasts to me";
 * - X pushes O's broadcasts to neither (both have them already).
 *
 * That is one step of Bellman-Ford per broadcast, at every node at once. A
 * new parent had a lower hop count than the node's own parent minus one,
 * on the same broadcast, so along the parent chain the hop counts strictly
 * fall and the switches of one broadcast cannot close a cycle. After a few
 * broadcasts every node's hop count is its distance to O.
 *
 * Keeping routes and the shared tree apart (each of these was measured
 * necessary in the simulator; without it the two fight, and the shared
 * tree's LDH for other origins went from 8 to 17-23):
 *
 * - pinning: a node asked to push O, or that got O over a route (and has
 *   had `routeAfter` broadcasts of it), takes its own supply of O by route
 *   too (`m: 1` to the neighbour its latest copy came from). So O's tree is routes all the way to O, and a change of the
 *   shared tree (an optimiser swap, a repair) cannot route a parent's
 *   supply back through its own child;
 * - a copy pushed by a route says so (`r` on GOSSIP), and so does every
 *   copy pushed on from it. Such a copy makes no shared link eager, and a
 *   duplicate involving one is answered per origin (the copy with more hops
 *   gets `m: 2`), never by a shared PRUNE, which would cut a link for every
 *   origin over one origin's business;
 * - IHAVE says which ids the sender got over a route (`r`): their hop
 *   counts are not the shared tree's, so the shared optimiser takes no
 *   sample from them, nor from a copy that came over a route;
 * - a GRAFT answered by a node that routes the origin says so (`r`), and
 *   the asker takes that node for its parent: the route repairs itself
 *   where it broke.
 *
 * Hop counts are not signed, so a neighbour can claim to be near and then
 * withhold. A parent that let a route down (a broadcast had to be fetched
 * by GRAFT from another node, or twice within `routeDistrustMs` from the
 * parent itself, which is asked `m: 1` again the first time) is not taken
 * for a parent again for `routeDistrustMs` (60 s). Switches are judged only
 * on the origin's latest broadcast, each must lower its hop count, and a
 * neighbour's `m: 2` makes nothing flagged here: what a liar costs is a
 * GRAFT delay or two per `routeDistrustMs`, and a few route messages per
 * broadcast, never a broadcast.
 *
 * A route is dropped (`m: 0`, "as the shared tree says", to each link it
 * named) when its parent's link closes, when an unflagged GRAFT answer had
 * to bring a broadcast (the shared tree, repaired, takes over), and when the
 * table is full and O's route is the one whose parent delivered least
 * lately. A neighbour that keeps pushing after `m: 2` (it forgot) is told
 * again; a neighbour's requests, when they are too many, lose their oldest
 * `m: 2` first.
 *
 * Measured (bench/sim-mesh.ts, routes.sim.test.ts): 16 origins broadcasting
 * in turn settle at LDH 4.88 (the shared tree alone: 8.7) with RMR 0 and
 * no GRAFT, within 5 broadcasts each; one-off origins keep the shared
 * tree's figures.
 *
 * What a neighbour can do with it: ask to be pushed an origin's broadcasts
 * (as a GRAFT can), or not to be (costing only itself). Each neighbour's
 * requests are kept for at most `routeOrigins` origins, and so are this
 * node's own routes and its memory of suppliers: bounded whatever it sends.
 */
import { bump } from '../protocol.ts'
import type { MeshContext } from './context.ts'
import type { RouteMode, RouteMsg } from './messages.ts'

/** Route modes on the wire (PROTOCOL-mesh.md). */
export const ROUTE_CLEAR: RouteMode = 0
export const ROUTE_PUSH: RouteMode = 1
export const ROUTE_STOP: RouteMode = 2

interface Route {
  /** The neighbour this node asked for the origin's broadcasts. */
  parent: string
  /** Neighbours told not to push them (the shared tree's link, former parents). */
  stopped: Set<string>
  /** The broadcast the last switch was judged on, and the hop count the parent promised for it. */
  msg: string
  best: number
  /** When the parent last answered by GRAFT a broadcast it had not pushed (-Infinity: never). */
  missedAt: number
}

export interface Routes {
  /** Does this node push broadcasts of `origin` to `peer`? The shared tree's eager links, unless a route says otherwise. */
  pushes(peer: string, origin: string): boolean
  /** This node follows a route of its own for `origin`: its broadcasts are not the shared tree's business. */
  has(origin: string): boolean
  /** Routes for `origin` are around: this node's, or a neighbour's request. */
  involved(origin: string): boolean
  /**
   * A broadcast of `origin` was accepted, first over `from`; `requested`: fetched by GRAFT. Returns
   * whether the shared tree should treat the copy as its own (make `from` eager, note it first).
   */
  arrived(origin: string, id: string, from: string, requested: boolean, routed: boolean): boolean
  /** `peer` announced broadcast `id` of `origin` at `peerHops`; it came here first over `from` at `hops`. */
  sample(origin: string, id: string, from: string, hops: number, peer: string, peerHops: number): void
  /**
   * A duplicate of a broadcast of `origin` over `from` (`routed`: pushed by the sender's route); the
   * first copy came over `first` (`firstRouted` likewise). True when it is the routes' business (a
   * per-origin stop), false when the shared tree's (a PRUNE).
   */
  duplicate(
    origin: string,
    from: string,
    routed: boolean,
    hops: number,
    first: string | undefined,
    firstRouted: boolean,
    firstHops: number,
  ): boolean
  onRoute(from: string, m: RouteMsg): void
  /** `from` asked for a broadcast of `origin` by GRAFT: whatever it said of that origin before is stale. */
  grafted(from: string, origin: string): void
  /** The link to `peer` closed. */
  forget(peer: string): void
  /** Own routes, and neighbours' requests, held. */
  readonly size: { routes: number; asked: number; suppliers: number }
}

export function createRoutes(ctx: MeshContext): Routes {
  const { deps, opt, counters, links } = ctx
  const max = opt.routeOrigins
  // Own routes, least recently used first.
  const mine = new Map<string, Route>()
  // What each neighbour asked of this node: peer -> origin -> ROUTE_PUSH | ROUTE_STOP, oldest first.
  const asked = new Map<string, Map<string, RouteMode>>()
  let askedCount = 0
  // The neighbour each origin's latest broadcast came from first, for pinning, and how many of
  // its broadcasts came (least recently heard first).
  const lastFrom = new Map<string, { peer: string; count: number; id: string }>()
  // Neighbours that lately let a route down (a broadcast had to be fetched by GRAFT): not taken for a
  // parent again until then. One entry per link at most.
  const distrusted = new Map<string, number>()

  function trusted(peer: string): boolean {
    const until = distrusted.get(peer)
    if (until === undefined) return true
    if (until > deps.now()) return false
    distrusted.delete(peer)
    return true
  }

  /** The parent of `r` did not deliver: a neighbour that claims to be near and then withholds wins once. */
  function letDown(r: Route): void {
    if (!links.has(r.parent)) return
    distrusted.set(r.parent, deps.now() + opt.routeDistrustMs)
    bump(counters, 'routeDistrusted')
  }

  /**
   * Routes carry `origin` here: this node has one, or a neighbour asked it to push (`m: 1`). A
   * neighbour's `m: 2` is not enough: it costs that neighbour only.
   */
  function involved(origin: string): boolean {
    return mine.has(origin) || hasAskers(origin)
  }

  /** Some neighbour asked this node to push `origin`'s broadcasts. */
  function hasAskers(origin: string): boolean {
    for (const a of asked.values()) if (a.get(origin) === ROUTE_PUSH) return true
    return false
  }

  /**
   * A node that pushes an origin's broadcasts on request takes its own supply by route too, from
   * the neighbour its latest copy came from: a route's parent never hangs on the shared tree,
   * whose changes could route that parent's supply back through its own child.
   */
  function pin(origin: string, supplier: string | undefined): void {
    if (max <= 0 || origin === deps.id || mine.has(origin) || supplier === undefined) return
    if (!links.has(supplier) || !trusted(supplier) || asked.get(supplier)?.get(origin) === ROUTE_PUSH) return
    setParent(origin, supplier)
    bump(counters, 'routePins')
  }

  function noteSupplier(origin: string, from: string, id: string): number {
    const count = (lastFrom.get(origin)?.count ?? 0) + 1
    lastFrom.delete(origin)
    if (lastFrom.size >= Math.max(1, max)) {
      const oldest = lastFrom.keys().next()
      if (!oldest.done) lastFrom.delete(oldest.value)
    }
    lastFrom.set(origin, { peer: from, count, id })
    return count
  }

  function send(to: string, origin: string, m: RouteMode): void {
    deps.send(to, { type: 'route', o: origin, m })
    bump(counters, 'routeSent')
    bump(counters, 'controlSent')
  }

  function stop(r: Route, origin: string, peer: string): void {
    if (r.parent === peer || !links.has(peer)) return
    // Again if it pushes after all: it may have forgotten (its table full, a GRAFT of ours cleared it).
    r.stopped.add(peer)
    send(peer, origin, ROUTE_STOP)
    bump(counters, 'routeStops')
  }

  /** "Do not push `origin`'s broadcasts to me", to a neighbour this node keeps no route with. */
  function stopOnce(peer: string, origin: string): void {
    if (!links.has(peer)) return
    send(peer, origin, ROUTE_STOP)
    bump(counters, 'routeStops')
  }

  /** Drop the route for `origin`: every link it named goes back to the shared tree's rules. */
  function drop(origin: string, why: 'graft' | 'link' | 'full' | 'conflict'): void {
    const r = mine.get(origin)
    if (!r) return
    mine.delete(origin)
    for (const p of [r.parent, ...r.stopped]) if (links.has(p)) send(p, origin, ROUTE_CLEAR)
    bump(counters, `routeDropped.${why}`)
  }

  /**
   * Take `parent` for `origin`'s route (`m: 1` to it): a new route, or a new parent for one, the
   * old parent told to stop. `best` is the hop count it promised for broadcast `id`.
   */
  function setParent(origin: string, parent: string, id = '', best = Number.POSITIVE_INFINITY): Route {
    let r = mine.get(origin)
    if (r) {
      mine.delete(origin) // to the end: most recently used
      mine.set(origin, r)
      const old = r.parent
      r.parent = parent
      r.stopped.delete(parent)
      if (old !== parent) stop(r, origin, old)
    } else {
      if (mine.size >= max) {
        const oldest = mine.keys().next()
        if (!oldest.done) drop(oldest.value, 'full')
      }
      r = { parent, stopped: new Set(), msg: id, best, missedAt: Number.NEGATIVE_INFINITY }
      mine.set(origin, r)
    }
    r.msg = id
    r.best = best
    r.missedAt = Number.NEGATIVE_INFINITY
    send(parent, origin, ROUTE_PUSH)
    return r
  }

  /** The parent delivered a broadcast of `origin`: the route is in use (the least lately used goes first when the table is full). */
  function delivered(origin: string, r: Route): void {
    mine.delete(origin)
    mine.set(origin, r)
  }

  /**
   * A broadcast of `origin` had to be fetched by GRAFT from `from` (`routed`: the answer says routes
   * carry it there). Returns whether the shared tree takes the copy as its own.
   */
  function fetched(origin: string, r: Route | undefined, from: string, routed: boolean): boolean {
    if (r && from === r.parent) {
      // The parent had it but did not push: ask once more (it may have forgotten); a second time
      // within routeDistrustMs, whatever it delivered in between, gives up on it.
      const now = deps.now()
      if (now - r.missedAt >= opt.routeDistrustMs) {
        r.missedAt = now
        send(from, origin, ROUTE_PUSH)
        return false
      }
      letDown(r)
      drop(origin, 'graft')
      return true
    }
    if (routed && max > 0 && trusted(from)) {
      // The answer of a neighbour that routes this origin: take it for the parent (it had the
      // broadcast before this node, so its supply does not come through here).
      if (r) letDown(r)
      setParent(origin, from)
      bump(counters, 'routeRepairs')
      return false
    }
    // The route lost it, and the shared tree answered: the shared tree carries this origin again.
    if (r) {
      letDown(r)
      drop(origin, 'graft')
    }
    return true
  }

  return {
    pushes(peer, origin) {
      const r = mine.get(origin)
      if (r && (r.parent === peer || r.stopped.has(peer))) return false
      const a = asked.get(peer)?.get(origin)
      if (a !== undefined) return a === ROUTE_PUSH
      return links.eager.has(peer)
    },

    has: (origin) => mine.has(origin),

    involved,

    arrived(origin, id, from, requested, routed) {
      const count = max > 0 ? noteSupplier(origin, from, id) : 0
      const r = mine.get(origin)
      if (requested) return fetched(origin, r, from, routed)
      if (!r) {
        // Routes carry this origin (the copy says so, or a neighbour asked this node for it): take
        // this node's from the copy's sender. Then the origin's tree is routes all the way, and the
        // shared tree's changes cannot cut it. A flagged copy alone counts only for an origin heard
        // from `routeAfter` times, as a switch does.
        if (hasAskers(origin) || (routed && count >= opt.routeAfter)) pin(origin, from)
        return !mine.has(origin) && !routed
      }
      if (from === r.parent) delivered(origin, r)
      else stop(r, origin, from) // pushed by someone this node did not ask
      return false
    },

    sample(origin, id, from, hops, peer, peerHops) {
      if (max <= 0 || peer === from || origin === deps.id || !links.has(peer) || !trusted(peer)) return
      const r = mine.get(origin)
      const heard = lastFrom.get(origin)
      // Only on the origin's latest broadcast: announcements of older ones cannot make the route flap.
      if (heard?.id !== id) return
      // Only for an origin that broadcasts again and again: one heard from once or twice stays on the shared tree.
      if (!r && heard.count < opt.routeAfter) return
      const best = r && r.msg === id ? r.best : hops
      if (peerHops + 1 >= best) return
      if (r?.parent === peer) {
        r.msg = id
        r.best = peerHops + 1
        return
      }
      // The copy's link is told to stop too: it is this node's supply no more (unless told already:
      // setParent told the old parent, a pusher it did not ask was told when its copy came).
      const next = setParent(origin, peer, id, peerHops + 1)
      if (!next.stopped.has(from)) stop(next, origin, from)
      bump(counters, 'routeSwitches')
    },

    duplicate(origin, from, routed, hops, first, firstRouted, firstHops) {
      const r = mine.get(origin)
      if (r) {
        if (from === r.parent) delivered(origin, r)
        else stop(r, origin, from)
        return true
      }
      if (!routed && !firstRouted) return false
      // No route here, but one of the copies came over a route: the two paths are this origin's
      // business only. Keep the shorter, stop the other (a PRUNE would cut the link for every origin).
      if (first !== undefined && firstHops > hops) stopOnce(first, origin)
      else stopOnce(from, origin)
      return true
    },

    onRoute(from, m) {
      bump(counters, 'routeIn')
      if (!links.has(from)) return
      let a = asked.get(from)
      if (m.m === ROUTE_CLEAR) {
        if (a?.delete(m.o)) askedCount--
        return
      }
      if (max <= 0) return
      const r = mine.get(m.o)
      if (r && m.m === ROUTE_PUSH) {
        // It takes this node for its parent: this node must push to it, and cannot be its child.
        if (r.parent === from) drop(m.o, 'conflict')
        else r.stopped.delete(from)
      }
      if (!a) {
        a = new Map()
        asked.set(from, a)
      }
      if (a.delete(m.o)) askedCount--
      else if (a.size >= max) {
        // The oldest stop goes first, else the oldest request: that neighbour's own rules correct what follows.
        let victim: string | undefined
        for (const [o, mode] of a)
          if (mode === ROUTE_STOP) {
            victim = o
            break
          }
        victim ??= a.keys().next().value
        if (victim !== undefined) {
          a.delete(victim)
          askedCount--
          bump(counters, 'routeAskedEvicted')
        }
      }
      a.set(m.o, m.m)
      askedCount++
      if (m.m === ROUTE_PUSH) pin(m.o, lastFrom.get(m.o)?.peer)
    },

    grafted(from, origin) {
      const a = asked.get(from)
      if (a?.get(origin) === ROUTE_STOP) {
        a.delete(origin)
        askedCount--
      }
      const r = mine.get(origin)
      if (r?.parent === from) drop(origin, 'conflict')
      else r?.stopped.delete(from)
    },

    forget(peer) {
      const a = asked.get(peer)
      if (a) {
        askedCount -= a.size
        asked.delete(peer)
      }
      distrusted.delete(peer)
      for (const [origin, r] of [...mine]) {
        r.stopped.delete(peer)
        if (r.parent === peer) drop(origin, 'link')
      }
    },

    get size() {
      return { routes: mine.size, asked: askedCount, suppliers: lastFrom.size }
    },
  }
}
