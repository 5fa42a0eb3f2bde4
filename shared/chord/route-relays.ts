/**
 * The routes we passed on whose answers we may pass back: for each request
 * id, the peer the route came from and the node we passed it to, until its
 * origin stops waiting (`ttlMs`, 4 request timeouts). A `routed` naming the
 * id goes back to that peer once (handlers.ts), so no node opens a link to
 * an id a peer names; so does an `err busy` for it, from the node we passed
 * it to only.
 *
 * At most `max` routes are kept. Routes past their time go first; then,
 * when the table is still full, the oldest route of the peer holding the
 * most (`route.relayEvicted`; the peer adding one when it holds as many as
 * any). So one peer's routes, however many, push out only its own: an
 * honest neighbour's few are forgotten only when `max` / (its count)
 * peers each hold as many. How many routes a peer can add at all is the
 * route budget's business (handlers.ts). A request id pending from one
 * peer is not taken over by another naming it (`pendingFrom`): a node
 * that saw the route go by cannot have its answer sent to itself.
 */
import { bump, type Counters } from '../protocol.ts'

export interface RouteRelays {
  /** Remember that route `r` came from `back` and went to `to` (again from the same peer: its time starts over). */
  add(r: number, back: string, to: string, now: number): void
  /** The peer a pending route `r` came from, if it is still waited for. */
  pendingFrom(r: number, now: number): string | undefined
  /** The node a pending route `r` was passed to, if it is still waited for. */
  passedTo(r: number, now: number): string | undefined
  /** Whom route `r`'s answer goes back to, forgetting the route; undefined when none is pending. */
  take(r: number, now: number): string | undefined
  /** Routes held. */
  readonly size: number
  /** Routes held that came from `peer`. */
  heldBy(peer: string): number
}

interface Relay {
  back: string
  to: string
  until: number
}

export function createRouteRelays(opts: { max: number; ttlMs: number }, counters: Counters): RouteRelays {
  /** By request id, in the order added (so in the order they expire: one ttl for all). */
  const relays = new Map<number, Relay>()
  /** Each peer's request ids, oldest first. */
  const byPeer = new Map<string, Set<number>>()
  /** Peers by how many routes they hold (≥ 1), and the largest such count. */
  const byCount = new Map<number, Set<string>>()
  let top = 0

  function move(peer: string, from: number, to: number): void {
    if (from > 0) {
      const b = byCount.get(from)
      b?.delete(peer)
      if (b?.size === 0) byCount.delete(from)
    }
    if (to > 0) {
      const b = byCount.get(to)
      if (b) b.add(peer)
      else byCount.set(to, new Set([peer]))
    }
    if (to > top) top = to
    while (top > 0 && !byCount.has(top)) top--
  }

  function remove(r: number): Relay | undefined {
    const at = relays.get(r)
    if (!at) return undefined
    relays.delete(r)
    const mine = byPeer.get(at.back)
    if (mine) {
      mine.delete(r)
      move(at.back, mine.size + 1, mine.size)
      if (mine.size === 0) byPeer.delete(at.back)
    }
    return at
  }

  /** Forget the routes nobody waits for any more (the oldest first). */
  function purge(now: number): void {
    for (const [r, at] of relays) {
      if (at.until >= now) return
      remove(r)
    }
  }

  /** Make room: the oldest route of the peer holding the most (`peer` itself when it holds as many). */
  function evictOne(peer: string): void {
    const heaviest = (byPeer.get(peer)?.size ?? 0) === top ? peer : byCount.get(top)?.values().next().value
    const r = heaviest === undefined ? undefined : byPeer.get(heaviest)?.values().next().value
    if (r === undefined) return
    remove(r)
    bump(counters, 'route.relayEvicted')
  }

  return {
    add(r, back, to, now) {
      remove(r)
      purge(now)
      if (relays.size >= opts.max) evictOne(back)
      relays.set(r, { back, to, until: now + opts.ttlMs })
      const mine = byPeer.get(back) ?? new Set<number>()
      byPeer.set(back, mine)
      mine.add(r)
      move(back, mine.size - 1, mine.size)
    },
    pendingFrom(r, now) {
      const at = relays.get(r)
      return at && at.until >= now ? at.back : undefined
    },
    passedTo(r, now) {
      const at = relays.get(r)
      return at && at.until >= now ? at.to : undefined
    },
    take(r, now) {
      const at = remove(r)
      return at && at.until >= now ? at.back : undefined
    },
    get size() {
      return relays.size
    },
    heldBy: (peer) => byPeer.get(peer)?.size ?? 0,
  }
}
