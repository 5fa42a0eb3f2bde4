/**
 * The ring as one node sees it (Chord, Stoica et al. 2001): its
 * predecessor, a list of its next nodes (the successor list), and a finger table,
 * finger[i] = successor(self + 2^i) for i = 0 … 159 (most entries repeat the
 * successor; `fingers()` lists the distinct ones). Pure bookkeeping and the
 * questions answered from it: which known node most closely precedes a
 * target, whether this node can name a target's successor itself, the next
 * hop toward a node. The protocols that keep it right live in
 * maintenance.ts; nodes marked dead (liveness.ts) are skipped everywhere.
 *
 * The successor list is as long as the paper's r = 2·log2 N, so that a
 * fraction p of the ring failing at once leaves a node without any live
 * successor with probability p^r (1 / N² at p = 1/2). N is estimated from
 * the ring's density: r successors span about r/N of the circle. The list
 * never gets shorter than `successors` (the option) nor longer than
 * `maxSuccessors`; it grows as soon as the estimate asks for more and
 * shrinks only when the estimate falls two below (no flapping between two
 * lengths), and a stabilization adds at most one entry (the successor's
 * list and the successor itself).
 *
 * A change of predecessor that lands inside our old range means a node
 * joined there: the records it is now primary for are handed to it
 * (`onPredecessorJoined`, replication.ts). A change of predecessor or of the
 * first `replicas - 1` successors changes who holds our range's copies
 * (`onReplicaSetChanged`).
 *
 * Entries of the successor list not yet heard from (`unverified`,
 * succ-check.ts) are kept but not vouched for: nothing is answered from
 * them or past them (`vouchedSuccessors`), no `closer` names them, and the
 * list we pass on (`passedOn`) leaves them out.
 */
import { addPow2, between, betweenRightIncl, closerToTarget, distance, RING_BITS } from './ring.ts'

export interface RoutingTable {
  /**
   * finger[i]'s start: self + 2^i, computed when first asked and kept. Most
   * starts lie before the successor and are never asked for (startsUpTo
   * counts them): a node keeps about log2 N of the 160 strings.
   */
  start(i: number): string
  predecessor(): string | null
  /** Where our primary range starts: the predecessor, or while it is unknown the last one we had. */
  rangeStart(): string | null
  successors(): readonly string[]
  /** The successor list up to its first entry not yet heard from: what we answer from and replicate to. */
  vouchedSuccessors(): readonly string[]
  /** The list we pass on (getPred, leave): without the entries not yet heard from (each node checks the rest itself). */
  passedOn(): string[]
  /** How long the successor list may grow: 2·log2 of the ring size we estimate, within the options' bounds. */
  capacity(): number
  /** Whether we ever had a successor (else an empty list means we are alone in a ring we created). */
  hadSuccessor(): boolean
  /**
   * Every node we knew is dead and none is left to ask: we are alone, as in
   * a ring we created (we answer for every position again, and the next
   * node to notify us becomes our successor).
   */
  becomeAlone(): void
  fingerTable(): readonly (string | null)[]
  /** Distinct finger nodes, in finger order. */
  fingers(): string[]
  /** Every distinct node we know (successors, fingers, predecessor), not us. */
  known(): string[]
  /** Known live nodes in (self, target), closest to target first, at most k. */
  closestPreceding(target: string, k: number): string[]
  /**
   * What this node can say about `target` from its own tables: its
   * predecessor and successor list, or null (ask a closer node). A successor-
   * list entry other than the first answers only when `replicas` nodes follow
   * it, so every answer names a full replica set.
   */
  answerFor(target: string): { p: string; s: string[] } | null
  setSuccessors(list: readonly string[]): void
  setPredecessor(p: string | null): void
  setFinger(i: number, x: string | null): void
  /** `x` is dead: out of the successors, the fingers and the predecessor. */
  forget(x: string): void
  /** Is `pos` in our primary range? */
  isPrimary(pos: string): boolean
  /** Bumped by every change of the predecessor, the successor list or a finger (maintenance backs off while it holds). */
  version(): number
  /** Next node toward node id `target`; null when we are responsible for it. */
  nextHop(target: string): string | null
}

export interface RoutingTableHooks {
  isDead(x: string): boolean
  /** A successor-list entry not yet heard from (succ-check.ts); none when not given. */
  unverified?(x: string): boolean
  /** The successor list is now `list`. */
  listChanged?(list: readonly string[]): void
  /** `p` joined inside our range (after `prevStart`): it is now primary for (prevStart, p]. */
  onPredecessorJoined(p: string, prevStart: string | null): void
  /** The predecessor or the first replicas - 1 successors changed. */
  onReplicaSetChanged(): void
}

export function createRoutingTable(
  self: string,
  opts: { successors: number; maxSuccessors: number; replicas: number },
  hooks: RoutingTableHooks,
): RoutingTable {
  const { isDead } = hooks
  const unverified = hooks.unverified ?? (() => false)
  const startCache = new Map<number, string>()
  let pred: string | null = null
  let lastPred: string | null = null
  let succs: string[] = []
  let hadSuccessor = false
  let capacity = opts.successors
  const finger: (string | null)[] = new Array(RING_BITS).fill(null)
  let knownCache: string[] | null = null

  function known(): string[] {
    if (knownCache) return knownCache
    const s = new Set<string>(succs)
    for (const f of finger) if (f !== null) s.add(f)
    if (pred !== null) s.add(pred)
    s.delete(self)
    knownCache = [...s]
    return knownCache
  }

  function closestPreceding(target: string, k: number): string[] {
    const out: string[] = []
    for (const x of known()) if (between(x, self, target) && !isDead(x) && !unverified(x)) out.push(x)
    out.sort(closerToTarget(target))
    return out.length > k ? out.slice(0, k) : out
  }

  /** The list length for the ring that `list` (our next nodes, in order) suggests. */
  function capacityFor(list: readonly string[]): number {
    const last = list[list.length - 1]
    if (last === undefined) return capacity
    // k nodes span about k/N of the circle: log2 N ≈ log2 k + 160 - log2(span).
    const log2n = Math.log2(list.length) + RING_BITS - Math.log2(Number(distance(self, last)))
    const want = Math.min(opts.maxSuccessors, Math.max(opts.successors, Math.ceil(2 * log2n)))
    return want > capacity || want < capacity - 2 ? want : capacity
  }

  /** See `version()`. */
  let version = 0

  function setSuccessors(list: readonly string[]): void {
    let out: string[] = []
    for (const x of list) {
      if (x === self) break // the list came round the ring to us
      if (out.includes(x) || isDead(x)) continue
      out.push(x)
      if (out.length >= opts.maxSuccessors) break
    }
    capacity = capacityFor(out)
    if (out.length > capacity) out = out.slice(0, capacity)
    const k = opts.replicas - 1
    const changed = out.length !== succs.length || out.some((x, i) => x !== succs[i])
    if (!changed) return
    const oldPrefix = succs.slice(0, k)
    succs = out
    vouched = null
    version++
    if (out.length > 0) hadSuccessor = true
    knownCache = null
    hooks.listChanged?.(out)
    if (out.slice(0, k).some((x) => !oldPrefix.includes(x))) hooks.onReplicaSetChanged()
  }

  /** See `vouchedSuccessors()`; recomputed when the list changes or an entry is heard from. */
  let vouched: { list: string[]; at: number } | null = null
  function vouchedSuccessors(): string[] {
    const i = succs.findIndex(unverified)
    if (i < 0) return succs
    if (vouched?.at !== i) vouched = { list: succs.slice(0, i), at: i }
    return vouched.list
  }

  function passedOn(): string[] {
    return succs.some(unverified) ? succs.filter((x) => !unverified(x)) : [...succs]
  }

  function setFinger(i: number, x: string | null): void {
    if (finger[i] !== x) {
      finger[i] = x
      version++
      knownCache = null
    }
  }

  function setPredecessor(p: string | null): void {
    if (p === pred) return
    const prevStart = pred ?? lastPred
    pred = p
    version++
    knownCache = null
    if (p !== null) {
      lastPred = p
      if (prevStart === null || between(p, prevStart, self)) hooks.onPredecessorJoined(p, prevStart)
    }
    hooks.onReplicaSetChanged()
  }

  return {
    start(i) {
      let st = startCache.get(i)
      if (st === undefined) {
        st = addPow2(self, i)
        startCache.set(i, st)
      }
      return st
    },
    predecessor: () => pred,
    rangeStart: () => pred ?? lastPred,
    successors: () => succs,
    vouchedSuccessors,
    passedOn,
    capacity: () => capacity,
    hadSuccessor: () => hadSuccessor,
    becomeAlone() {
      if (succs.length === 0) hadSuccessor = false
    },
    fingerTable: () => finger,
    fingers() {
      const out: string[] = []
      for (const f of finger) if (f !== null && !out.includes(f)) out.push(f)
      return out
    },
    known,
    closestPreceding,
    answerFor(target) {
      const succs = vouchedSuccessors()
      if (pred !== null && betweenRightIncl(target, pred, self))
        return { p: pred, s: [self, ...succs].slice(0, capacity) }
      if (succs.length === 0) {
        // Alone in a ring we created, we own every position. A node whose successors all died
        // knows nothing past itself: it must not claim the position (it would answer "me" for any).
        return hadSuccessor ? null : { p: pred ?? self, s: [self] }
      }
      let prev = self
      for (let i = 0; i < succs.length; i++) {
        const s = succs[i] as string
        if (betweenRightIncl(target, prev, s)) {
          if (i > 0 && succs.length - i < opts.replicas) return null
          return { p: prev, s: succs.slice(i) }
        }
        prev = s
      }
      return null
    },
    setSuccessors,
    setPredecessor,
    setFinger,
    forget(x) {
      if (succs.includes(x)) setSuccessors(succs.filter((s) => s !== x))
      for (let i = 0; i < RING_BITS; i++)
        if (finger[i] === x) {
          finger[i] = null
          version++
        }
      if (pred === x) setPredecessor(null)
      knownCache = null
    },
    version: () => version,
    isPrimary(pos) {
      const start = pred ?? lastPred
      return start === null || betweenRightIncl(pos, start, self)
    },
    nextHop(target) {
      if (target === self) return null
      if (pred !== null && betweenRightIncl(target, pred, self)) return null
      if (known().includes(target) && !isDead(target)) return target
      // Every successor died: pass it toward the target if we can, but do not claim it.
      if (succs.length === 0) return hadSuccessor ? (closestPreceding(target, 1)[0] ?? null) : null
      const s0 = succs[0] as string
      // Target falls between us and our successor but is not a node we know: it is not on the ring
      // as we see it. Passing it to s0 would overshoot, and greedy forwarding would go round again.
      if (betweenRightIncl(target, self, s0)) return target === s0 ? s0 : null
      return closestPreceding(target, 1)[0] ?? s0
    },
  }
}
