/**
 * Finding a position's successor.
 *
 * Lookups are iterative by default. The querier asks the closest preceding
 * node it knows, that node answers either `found` (the position's
 * predecessor and successor list) or `closer` (nodes nearer the position),
 * and the querier goes on. Why iterative: the querier sees every step, so it
 * sets one timeout per hop, and when a hop is dead it marks it and tries its
 * next-best candidate at once, where a recursive query just vanishes and can
 * only be retried as a whole after a long end-to-end timeout. Under churn
 * that is the difference between a slower lookup and a failed one. It also
 * never asks a node to send to a third party on our behalf. The cost is one
 * round trip per hop instead of one-way forwards; `iterative: false` gives
 * recursive lookups (forwarded node to node, answered to the origin,
 * falling back to iterative on timeout). `hops` counts the nodes a lookup
 * asked (0 when this node knew).
 *
 * Every lookup (and put, get, provide) then checks the answer with the node
 * it names (`resolve`): is the position between that node's predecessor and
 * it? If a node joined there a moment ago we step back to it; if the answer
 * came from a stale successor list and lies before the position we route on
 * from it; a dead one is skipped. That check is not counted as a hop, and
 * the node's own successor list, fresher than the answerer's, names the
 * replicas.
 */
import { bump } from '../protocol.ts'
import type { Liveness } from './liveness.ts'
import type { ChordContext } from './options.ts'
import { between, betweenRightIncl, closerToTarget, RING_BITS } from './ring.ts'
import type { RoutingTable } from './routing-table.ts'
import type { Rpc } from './rpc.ts'

/** Most nodes one lookup asks before giving up. */
export const MAX_STEPS = 48

export interface Route {
  /** The position's predecessor, as the answering node knows it. */
  p: string
  /**
   * The position's successor followed by its successors, as the answering
   * node knows them; some may be known dead here (not all: those answers are passed over).
   */
  s: string[]
  hops: number
}

export interface Resolved {
  /** The position's successor (its primary), then the nodes after it. */
  owners: string[]
  /** The primary's predecessor, when it told us. */
  pred: string | null
  hops: number
}

export interface Lookup {
  /** An iterative lookup; `seeds` replace our own tables as the first candidates (joining). */
  routeIter(target: string, seeds?: string[]): Promise<Route | null>
  /** Iterative or recursive, as configured. */
  route(target: string): Promise<Route | null>
  /** Route, then check the answer with the node it names (see the header). */
  resolve(target: string): Promise<Resolved | null>
}

export function createLookup(ctx: ChordContext, table: RoutingTable, liveness: Liveness, rpc: Rpc): Lookup {
  const { self, o, counters } = ctx
  const { isDead } = liveness
  const { request } = rpc

  async function routeIter(target: string, seeds: string[] = []): Promise<Route | null> {
    if (seeds.length === 0) {
      const local = table.answerFor(target)
      if (local) return { ...local, hops: 0 }
    }
    const cmp = closerToTarget(target)
    const cands = seeds.length ? [...seeds] : table.closestPreceding(target, RING_BITS)
    const tried = new Set<string>()
    const silent = new Set<string>()
    let widened = false
    let hops = 0
    for (let step = 0; step < MAX_STEPS; step++) {
      let c: string | undefined
      for (const x of cands) if (!tried.has(x) && !isDead(x) && (c === undefined || cmp(x, c) < 0)) c = x
      if (c === undefined && !widened) {
        // Every node we know before the target is dead: any live node can route it, the long way round.
        widened = true
        for (const x of table.known()) if (!tried.has(x) && !isDead(x)) cands.push(x)
        continue
      }
      if (c === undefined) break
      tried.add(c)
      const at = c
      const res = await request(at, (r) => ({ t: 'find', r, k: target }))
      if (!res) {
        silent.add(at)
        continue
      }
      if (res.t === 'found') {
        hops++
        // All dead: ask another. Else the whole list: the dead in it are evidence too (resolve).
        if (res.s.every((x) => isDead(x) || silent.has(x))) continue
        return { p: res.p, s: res.s, hops }
      }
      if (res.t === 'closer') {
        hops++
        for (const x of res.n) if (x !== self && !tried.has(x) && between(x, at, target)) cands.push(x)
      }
    }
    return null
  }

  /** A recursive lookup; on timeout, the iterative one. */
  async function routeRec(target: string): Promise<Route | null> {
    const local = table.answerFor(target)
    if (local) return { ...local, hops: 0 }
    const next = table.closestPreceding(target, 1)[0]
    if (next === undefined) return null
    const res = await request(next, (r) => ({ t: 'route', r, k: target, o: self, h: 1 }), {
      anyFrom: true,
      timeoutMs: o.requestTimeoutMs * 4,
    })
    if (res?.t === 'routed') {
      if (res.s.some((x) => !isDead(x))) return { p: res.p, s: res.s, hops: res.h }
    }
    bump(counters, 'lookup.recursiveFallback')
    return routeIter(target)
  }

  function route(target: string): Promise<Route | null> {
    return o.iterative ? routeIter(target) : routeRec(target)
  }

  /**
   * Confirm a route's answer with the node it names (see the header).
   *
   * The evidence carried along: `lo`, a node before the target such that,
   * as the answering node saw the ring, `list` is what follows it (less the
   * nodes it knew dead), so the target lies in (lo, list[0]]. Nodes of the
   * list found gone (dead, or silent during this resolution) are skipped.
   * The first live one, `s`, must still lie at or past the target (else the
   * answer was stale: route on from s). Then s is taken as the target's
   * successor when
   *   - its own predecessor says so (target in (pred, s]), or it has none; or
   *   - its predecessor is gone: the answerer vouches that every node in
   *     (lo, s) is one it named, all gone, and s that none lies between its
   *     predecessor and it.
   * A node that names a live predecessor at or past the target sends us
   * back to that one. A gone predecessor never makes a node the owner of a
   * position before `lo` (the check the old `gone(p)` lacked), and a node
   * whose successors all died answers nothing past its own range
   * (routing-table.ts): when no live node is vouched for, we say we do not
   * know (null) rather than guess.
   */
  async function resolve(target: string): Promise<Resolved | null> {
    const first = await route(target)
    if (!first) return null
    // Nodes that did not answer during this resolution: gone for its purposes, even before a
    // second timeout marks them dead for everyone.
    const silent = new Set<string>()
    const gone = (x: string) => isDead(x) || silent.has(x)
    /** Each node's answer, asked once per resolution (null: it stayed silent, or did not answer `pred`). */
    const answers = new Map<string, { p: string | null; s: readonly string[] } | null>()
    const ask = async (s: string) => {
      if (s === self) return { p: table.predecessor(), s: table.successors() }
      if (answers.has(s)) return answers.get(s) ?? null
      let res = await request(s, (r) => ({ t: 'getPred', r }))
      // Silence once may be a lost message: ask again before passing over the node.
      if (!res) res = await request(s, (r) => ({ t: 'getPred', r }))
      const a = res?.t === 'pred' ? { p: res.p, s: res.s } : null
      if (!res) silent.add(s)
      answers.set(s, a)
      return a
    }
    let hops = first.hops
    let lo = first.p
    let list = first.s
    /** Nodes we routed on from after a list ran out. */
    const reseeded = new Set<string>()
    const takeRoute = (r: Route) => {
      hops += r.hops
      lo = r.p
      list = r.s
    }
    for (let i = 0; i < 24; i++) {
      list = list.filter((x) => !gone(x))
      const s = list[0]
      if (s === undefined) {
        // Every node the answer named is gone. The answer came from a list that ended soon after
        // the target; `lo`, the node before them, has a list of its own that goes further.
        if (gone(lo) || reseeded.has(lo)) break
        reseeded.add(lo)
        bump(counters, 'lookup.reseeded')
        const on = lo === self ? await routeIter(target) : await routeIter(target, [lo])
        if (!on) break
        takeRoute(on)
        continue
      }
      if (!betweenRightIncl(target, lo, s)) {
        // The answer is broken (a stale list pointed before the target): route on from s.
        bump(counters, 'lookup.corrected')
        const on = await routeIter(target, [s])
        if (!on) break
        takeRoute(on)
        continue
      }
      const a = await ask(s)
      if (a === null) {
        list = list.slice(1)
        continue
      }
      bump(counters, 'lookup.confirm')
      const p = a.p
      const owners = (): Resolved => ({
        owners: [s, ...a.s.filter((x) => x !== s && !gone(x))],
        pred: p !== null && !gone(p) ? p : null,
        hops,
      })
      // A gone predecessor past the target lies in (lo, s): the answerer vouched for that stretch.
      if (p === null || p === s || betweenRightIncl(target, p, s) || gone(p)) return owners()
      // s has a live predecessor at or past the target (a node joined there): step back to it.
      bump(counters, 'lookup.corrected')
      list = [p, s, ...a.s]
    }
    bump(counters, 'lookup.unconfirmed')
    return null
  }

  return { routeIter, route, resolve }
}
