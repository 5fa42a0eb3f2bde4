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
 *
 * Answers are not taken on the answerer's word alone (a hostile node on the
 * path could name itself, or a node of its choosing, as any position's
 * successor, and that node would confirm it):
 *   - a `found` that names a successor past us, seen from the position, is
 *     refused (`lookup.badFound`): we are a live node between the position
 *     and the node named, so it is not the successor. A node that is asked
 *     because it precedes the position and answers "me" is always caught;
 *   - the first `found` is cross-checked: the lookup goes on from the
 *     candidates not yet asked (so never through the first answerer again)
 *     until a second node answers `found` (at most CROSS_CHECK_ASKS more
 *     requests, not counted as hops). When the two name different successors
 *     (`lookup.disagree`) the one nearer the position wins, and both lists,
 *     in ring order from the position, are what `resolve` confirms: a liar
 *     can name only nodes past the true successor (a node before it that
 *     answers is the successor), so one honest answer outvotes it. A lookup
 *     with no candidate left to ask keeps the one answer. Finger refreshes
 *     skip it (a finger only chooses whom a lookup asks first, and every
 *     lookup that names owners is cross-checked): it would add about a
 *     quarter to a quiet ring's traffic.
 * What this leaves (a liar on every path, a sybil whose id was ground into
 * the gap before a position) is discussed in PROTOCOL-chord.md.
 */
import { bump } from '../protocol.ts'
import type { Liveness } from './liveness.ts'
import type { ChordContext } from './options.ts'
import { between, betweenRightIncl, closerToTarget, distance, RING_BITS } from './ring.ts'
import type { RoutingTable } from './routing-table.ts'
import type { Rpc } from './rpc.ts'

/** Most nodes one lookup asks before giving up. */
export const MAX_STEPS = 48
/** Most requests a lookup sends after its first `found`, looking for a second one. */
export const CROSS_CHECK_ASKS = 3

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
  /**
   * An iterative lookup; `seeds` replace our own tables as the first
   * candidates (joining). `crossCheck: false`: take the first plausible answer.
   */
  routeIter(target: string, seeds?: string[], crossCheck?: boolean): Promise<Route | null>
  /** Iterative or recursive, as configured (`crossCheck` as routeIter's). */
  route(target: string, crossCheck?: boolean): Promise<Route | null>
  /** Route, then check the answer with the node it names (see the header). */
  resolve(target: string): Promise<Resolved | null>
}

export function createLookup(ctx: ChordContext, table: RoutingTable, liveness: Liveness, rpc: Rpc): Lookup {
  const { self, o, counters } = ctx
  const { isDead } = liveness
  const { request } = rpc

  /**
   * An iterative walk toward `target`: each `next()` asks candidates, best
   * first, until one answers a plausible `found`, and gives it (null when
   * none is left). The first runs up to MAX_STEPS requests and is the
   * lookup; a later one, the cross-check, at most CROSS_CHECK_ASKS more,
   * never asking a node asked before (nor counting hops).
   */
  function walk(target: string, seeds: string[]): { next(): Promise<Route | null> } {
    const cmp = closerToTarget(target)
    const cands = seeds.length ? [...seeds] : table.closestPreceding(target, RING_BITS)
    const tried = new Set<string>()
    const silent = new Set<string>()
    let widened = false
    let hops = 0
    let answered = false
    const next = async (): Promise<Route | null> => {
      const checking = answered
      for (let step = 0; step < (checking ? CROSS_CHECK_ASKS : MAX_STEPS); step++) {
        let c: string | undefined
        for (const x of cands) if (!tried.has(x) && !isDead(x) && (c === undefined || cmp(x, c) < 0)) c = x
        if (c === undefined && !widened && !checking) {
          // Every node we know before the target is dead: any live node can route it, the long way round.
          widened = true
          for (const x of table.known()) if (!tried.has(x) && !isDead(x)) cands.push(x)
          continue
        }
        if (c === undefined) break
        if (checking) bump(counters, 'lookup.crossCheck')
        tried.add(c)
        const at = c
        const res = await request(at, (r) => ({ t: 'find', r, k: target }))
        if (!res) {
          silent.add(at)
          continue
        }
        if (!checking && (res.t === 'found' || res.t === 'closer')) hops++
        if (res.t === 'found') {
          // All dead: ask another. Else the whole list: the dead in it are evidence too (resolve).
          if (res.s.every((x) => isDead(x) || silent.has(x))) continue
          if (!plausible(target, res.s[0] as string)) {
            bump(counters, 'lookup.badFound')
            continue
          }
          answered = true
          return { p: res.p, s: res.s, hops }
        }
        if (res.t === 'closer')
          for (const x of res.n) if (x !== self && !tried.has(x) && between(x, at, target)) cands.push(x)
      }
      return null
    }
    return { next }
  }

  async function routeIter(target: string, seeds: string[] = [], crossCheck = true): Promise<Route | null> {
    if (seeds.length === 0) {
      const local = table.answerFor(target)
      if (local) return { ...local, hops: 0 }
    }
    const w = walk(target, seeds)
    const a = await w.next()
    if (!a || !crossCheck) return a
    const b = await w.next()
    return b ? merge(target, a, b) : a
  }

  /**
   * Can `s0` be `target`'s successor, as far as we know? Not when we lie
   * between them: we are live, and nearer. (Our own id's lookup, when
   * joining or probing another ring, expects exactly that.)
   */
  function plausible(target: string, s0: string): boolean {
    return target === self || !between(self, target, s0)
  }

  /** Two answers for `target`: the same successor, or the nearer one first and both lists behind it. */
  function merge(target: string, a: Route, b: Route): Route {
    if (a.s[0] === b.s[0]) return a
    bump(counters, 'lookup.disagree')
    const d = (x: string) => distance(target, x)
    const [w, l] = d(b.s[0] as string) < d(a.s[0] as string) ? [b, a] : [a, b]
    const s = [...new Set([...w.s, ...l.s])]
      .map((x) => ({ x, d: d(x) }))
      .sort((x, y) => (x.d < y.d ? -1 : x.d > y.d ? 1 : 0))
      .map((e) => e.x)
    return { p: w.p, s, hops: a.hops }
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
      if (!plausible(target, res.s[0] as string)) bump(counters, 'lookup.badFound')
      else if (res.s.some((x) => !isDead(x))) return { p: res.p, s: res.s, hops: res.h }
    }
    bump(counters, 'lookup.recursiveFallback')
    return routeIter(target)
  }

  function route(target: string, crossCheck = true): Promise<Route | null> {
    return o.iterative ? routeIter(target, [], crossCheck) : routeRec(target)
  }

  /**
   * routeIter's lookup and cross-check, for `resolve`: while the cross-check
   * runs, the first answer's successor is already asked for its predecessor
   * (`confirm`, whose answer resolve then finds cached), so when the two
   * agree, as they do but for a liar or a ring in flux, the check costs no
   * round trip of its own.
   */
  async function checkedRoute(
    target: string,
    confirm: (s: string) => Promise<unknown>,
  ): Promise<Route | null> {
    const local = table.answerFor(target)
    if (local) return { ...local, hops: 0 }
    const w = walk(target, [])
    const a = await w.next()
    if (!a) return null
    const s0 = a.s.find((x) => !isDead(x))
    if (s0 !== undefined && betweenRightIncl(target, a.p, s0)) ctx.background(confirm(s0))
    const b = await w.next()
    return b ? merge(target, a, b) : a
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
    // Nodes that did not answer during this resolution: gone for its purposes, even before a
    // second timeout marks them dead for everyone.
    const silent = new Set<string>()
    const gone = (x: string) => isDead(x) || silent.has(x)
    type Answer = { p: string | null; s: readonly string[] } | null
    /** Each node's answer, asked once per resolution (null: it stayed silent, or did not answer `pred`). */
    const answers = new Map<string, Promise<Answer>>()
    const ask = (s: string): Promise<Answer> => {
      if (s === self) return Promise.resolve({ p: table.predecessor(), s: table.successors() })
      let a = answers.get(s)
      if (!a) {
        a = (async () => {
          let res = await request(s, (r) => ({ t: 'getPred', r }))
          // Silence once may be a lost message: ask again before passing over the node.
          if (!res) res = await request(s, (r) => ({ t: 'getPred', r }))
          if (!res) silent.add(s)
          return res?.t === 'pred' ? { p: res.p, s: res.s } : null
        })()
        answers.set(s, a)
      }
      return a
    }
    const first = o.iterative ? await checkedRoute(target, ask) : await routeRec(target)
    if (!first) return null
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
