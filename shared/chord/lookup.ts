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
 *   - an answer may name nodes that never answer, each a timeout: the
 *     lookup charges an answerer for the silent nodes it alone named, and
 *     after SILENT_PER_ANSWERER of them stops asking it and passes over the
 *     nodes only it named (blame.ts). When `resolve` has nothing else left
 *     it goes on from the answer's predecessor, then asks those nodes after
 *     all (SILENT_PER_ANSWERER of them at once, once each: after a mass
 *     failure they are an honest answerer's live nodes), then routes again
 *     around the distrusted. A node passed over may be alive, so the node
 *     after it is not taken on a gone predecessor's strength (the vouching
 *     below). And while `resolve` asks a node a second time, it asks the next
 *     one too. A liar naming 24 silent ids cost a lookup up to 89 timeouts;
 *     now about 3 (PROTOCOL-chord.md).
 * What this leaves (a liar on every path, a sybil whose id was ground into
 * the gap before a position) is discussed in PROTOCOL-chord.md.
 */
import { bump } from '../protocol.ts'
import { type Blame, createBlame, SILENT_PER_ANSWERER } from './blame.ts'
import type { Liveness } from './liveness.ts'
import type { ChordContext } from './options.ts'
import { between, betweenRightIncl, closerToTarget, distance, fromOrigin, RING_BITS } from './ring.ts'
import type { RoutingTable } from './routing-table.ts'
import type { Rpc } from './rpc.ts'

/** Most nodes one lookup asks before giving up. */
export const MAX_STEPS = 48
/** Most requests a lookup sends after its first `found`, looking for a second one. */
export const CROSS_CHECK_ASKS = 3
/** The answerer charged for a `routed` answer's names (any node on the path may have sent it). */
const ROUTED = 'routed'

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
   * never asking a node asked before (nor counting hops). `blame` records
   * who named each candidate; a distrusted answerer, and the candidates
   * only it named, are passed over (blame.ts).
   */
  function walk(target: string, seeds: string[], blame: Blame): { next(): Promise<Route | null> } {
    const cmp = closerToTarget(target)
    const cands = seeds.length ? [...seeds] : table.closestPreceding(target, RING_BITS)
    if (seeds.length === 0) blame.name(self, cands)
    const tried = new Set<string>()
    /** The untried live candidate nearest the target, of those `ok` accepts. */
    const best = (ok: (x: string) => boolean) => {
      let c: string | undefined
      for (const x of cands)
        if (!tried.has(x) && !isDead(x) && ok(x) && (c === undefined || cmp(x, c) < 0)) c = x
      return c
    }
    const trusted = (x: string) => !blame.distrusted(x) && !blame.discredited(x)
    const silent = new Set<string>()
    let widened = false
    let hops = 0
    let answered = false
    const next = async (): Promise<Route | null> => {
      const checking = answered
      for (let step = 0; step < (checking ? CROSS_CHECK_ASKS : MAX_STEPS); step++) {
        let c = best(trusted)
        if (c === undefined && !widened && !checking) {
          // Every node we know before the target is dead: any live node can route it, the long way round.
          widened = true
          const known = table.known().filter((x) => !tried.has(x) && !isDead(x))
          blame.name(self, known)
          cands.push(...known)
          continue
        }
        // Last, what only distrusted answerers named (after a mass failure honest ones are too).
        c ??= best(() => true)
        if (c === undefined) break
        if (checking) bump(counters, 'lookup.crossCheck')
        tried.add(c)
        const at = c
        const res = await request(at, (r) => ({ t: 'find', r, k: target }), {
          onTimeout: () => blame.silent(at),
        })
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
          blame.name(at, [res.p, ...res.s])
          return { p: res.p, s: res.s, hops }
        }
        if (res.t === 'closer') {
          const named = res.n.filter((x) => x !== self && !tried.has(x) && between(x, at, target))
          blame.name(at, named)
          cands.push(...named)
        }
      }
      return null
    }
    return { next }
  }

  function routeIter(target: string, seeds: string[] = [], crossCheck = true): Promise<Route | null> {
    const blame = createBlame(self, counters)
    blame.name(self, seeds) // ours to ask
    return iter(target, seeds, crossCheck, blame)
  }

  /** routeIter with the names and charges of a lookup under way. */
  async function iter(
    target: string,
    seeds: string[],
    crossCheck: boolean,
    blame: Blame,
  ): Promise<Route | null> {
    if (seeds.length === 0) {
      const local = table.answerFor(target)
      if (local) return { ...local, hops: 0 }
    }
    const w = walk(target, seeds, blame)
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
    return { p: w.p, s: fromTarget(target, [...w.s, ...l.s]), hops: a.hops }
  }

  /** `xs` without repeats, in ring order from `target`. */
  function fromTarget(target: string, xs: readonly string[]): string[] {
    return [...new Set(xs)].sort(fromOrigin(target))
  }

  /** A recursive lookup; on timeout, the iterative one. */
  async function routeRec(target: string, blame = createBlame(self, counters)): Promise<Route | null> {
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
      else if (res.s.some((x) => !isDead(x))) {
        // Any node on the path may have sent it: its names are charged to the path as one answerer.
        blame.name(ROUTED, [res.p, ...res.s])
        return { p: res.p, s: res.s, hops: res.h }
      }
    }
    bump(counters, 'lookup.recursiveFallback')
    return iter(target, [], true, blame)
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
    blame: Blame,
  ): Promise<Route | null> {
    const local = table.answerFor(target)
    if (local) return { ...local, hops: 0 }
    const w = walk(target, [], blame)
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
    const blame = createBlame(self, counters)
    // Nodes that did not answer during this resolution: gone for its purposes, even before a
    // second timeout marks them dead for everyone.
    const silent = new Set<string>()
    const gone = (x: string) => isDead(x) || silent.has(x)
    /** Passed over: gone, or named only by answerers whose names stayed silent (blame.ts). */
    const passed = (x: string) => gone(x) || (!resorting() && blame.discredited(x))
    /**
     * Nothing else left in the present list: its nodes only distrusted answerers named are asked
     * after all, in order, until SILENT_PER_ANSWERER more nodes stay silent. How many had when
     * that began (null: not yet, for this list).
     */
    let resortFrom: number | null = null
    const resorting = () => resortFrom !== null && silent.size - resortFrom < SILENT_PER_ANSWERER
    let lo = self
    let list: readonly string[] = []
    type Answer = { p: string | null; s: readonly string[] } | null
    /** Each node's answer, asked once per resolution (null: it stayed silent, or did not answer `pred`). */
    const answers = new Map<string, Promise<Answer>>()
    /** `once`: no second request when the first goes unanswered (the last resort's probes, below). */
    const ask = (s: string, once = false): Promise<Answer> => {
      if (s === self) {
        const p = table.predecessor()
        blame.name(self, p === null ? table.successors() : [p, ...table.successors()])
        return Promise.resolve({ p, s: table.successors() })
      }
      let a = answers.get(s)
      if (!a) {
        a = (async () => {
          const opts = { onTimeout: () => blame.silent(s) }
          let res = await request(s, (r) => ({ t: 'getPred', r }), opts)
          if (!res && !once) {
            // Silence once may be a lost message: ask again before passing over the node, and
            // meanwhile ask the next node of the list, which is needed if this one stays silent.
            const next = list.slice(list.indexOf(s) + 1).find((x) => !passed(x))
            if (list.includes(s) && next !== undefined) void ask(next)
            res = await request(s, (r) => ({ t: 'getPred', r }), opts)
          }
          if (!res) silent.add(s)
          if (res?.t !== 'pred') return null
          blame.name(s, res.p === null ? res.s : [res.p, ...res.s])
          return { p: res.p, s: res.s }
        })()
        answers.set(s, a)
      }
      return a
    }
    const first = o.iterative ? await checkedRoute(target, ask, blame) : await routeRec(target, blame)
    if (!first) return null
    let hops = first.hops
    lo = first.p
    list = first.s
    /** Nodes we routed on from after a list ran out; whether we routed again around the distrusted. */
    const reseeded = new Set<string>()
    let rerouted = false
    const takeRoute = (r: Route) => {
      hops += r.hops
      lo = r.p
      list = r.s
      resortFrom = null
    }
    /**
     * Nothing in the list is left to ask but nodes only distrusted answerers
     * named: go on from `lo`'s own list, which goes further; else ask those
     * nodes after all, in order, until SILENT_PER_ANSWERER more stay silent
     * (after a mass failure they are an honest answerer's live nodes); else
     * route again from our own tables, around the distrusted (once). False
     * when nothing is left.
     */
    const fallback = async (): Promise<boolean> => {
      if (!passed(lo) && !blame.distrusted(lo) && !reseeded.has(lo)) {
        reseeded.add(lo)
        bump(counters, 'lookup.reseeded')
        const on = await iter(target, lo === self ? [] : [lo], true, blame)
        if (on) {
          takeRoute(on)
          return true
        }
      }
      const resort = () => {
        if (resortFrom !== null || list.length === 0) return false
        resortFrom = silent.size
        bump(counters, 'lookup.lastResort')
        // Asked at once, and once: if they are a liar's, their silence costs one wait in all.
        for (const x of list.filter((y) => !gone(y)).slice(0, SILENT_PER_ANSWERER)) void ask(x, true)
        return true
      }
      if (resort()) return true
      if (!rerouted && blame.any()) {
        rerouted = true
        bump(counters, 'lookup.rerouted')
        const on = await iter(target, [], true, blame)
        if (on) {
          takeRoute(on)
          return true
        }
      }
      return resort()
    }
    for (let i = 0; i < 24; i++) {
      list = list.filter((x) => !gone(x))
      // Passed over, while anything else is left: nodes named only by distrusted answerers (blame.ts).
      const at = list.findIndex((x) => !passed(x))
      const s = list[at]
      if (s === undefined) {
        // Every node the answer named is gone. The answer came from a list that ended soon after
        // the target; `lo`, the node before them, has a list of its own that goes further.
        if (!(await fallback())) break
        continue
      }
      if (!betweenRightIncl(target, lo, s)) {
        // The answer is broken (a stale list pointed before the target): route on from s.
        bump(counters, 'lookup.corrected')
        const on = await iter(target, [s], true, blame)
        if (!on) break
        takeRoute(on)
        continue
      }
      const a = await ask(s)
      if (a === null) {
        list = list.filter((x) => x !== s)
        continue
      }
      bump(counters, 'lookup.confirm')
      const p = a.p
      const owners = (): Resolved => ({
        owners: [s, ...a.s.filter((x) => x !== s && !gone(x))],
        pred: p !== null && !gone(p) ? p : null,
        hops,
      })
      if (p === s || (p !== null && betweenRightIncl(target, p, s))) return owners()
      if (p === null || gone(p)) {
        // No predecessor, or a gone one past the target (in (lo, s)): the answerer vouched for
        // that stretch. Not when we passed over nodes of it that may be alive.
        if (at === 0) return owners()
        if (!(await fallback())) break
        continue
      }
      // s has a live predecessor at or past the target (a node joined there): step back to it,
      // keeping the nodes passed over before s (they may lie before p). If s was distrusted, its
      // predecessor is asked only as a last resort.
      if (passed(p)) {
        if (!(await fallback())) break
        continue
      }
      bump(counters, 'lookup.corrected')
      list = at === 0 ? [p, s, ...a.s] : fromTarget(target, [...list.slice(0, at), p, s, ...a.s])
    }
    bump(counters, 'lookup.unconfirmed')
    return null
  }

  return { routeIter, route, resolve }
}
