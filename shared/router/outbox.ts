/**
 * The outbox of routed unicast (PROTOCOL-route.md): the signed envelopes
 * this node sent over the ring, kept briefly by destination.
 * When the ring answers `noroute` (a view that has not caught up with a join
 * yet, or a path that broke), the same envelopes go again over a link opened
 * through the signal server: nothing is lost. Bounded in destinations,
 * entries and bytes (the oldest go first).
 *
 * The other memories of routed unicast: the envelopes delivered here (so a
 * second copy is dropped, however late) are the replay window of
 * shared/mesh/seen-cache.ts; the requests served here are served.ts.
 */

interface Kept<T> {
  item: T
  cost: number
  at: number
}

/** Per-entry bookkeeping counted on top of the body, so tiny messages are bounded too. */
const ENTRY_COST = 64

export interface OutboxOptions {
  /** How long an envelope is kept. */
  keepMs: number
  /** Most destinations kept (the least recently used go first). */
  maxDsts: number
  /** Most bytes kept in all (envelope bodies plus a per-entry cost). */
  maxBytes: number
  /** Most envelopes kept per destination (the oldest go first). */
  maxPerDst: number
}

export class Outbox<T> {
  private readonly byDst = new Map<string, Kept<T>[]>()
  private cost = 0

  constructor(private readonly opts: OutboxOptions) {}

  /** Keep `item` (of `bytes` on the wire) for `dst`, within the bounds. */
  keep(dst: string, item: T, bytes: number, now: number): void {
    const cost = bytes + ENTRY_COST
    if (cost > this.opts.maxBytes) return
    const list = this.fresh(dst, now)
    this.byDst.delete(dst) // re-inserted last: the map's order is least recently used first
    list.push({ item, cost, at: now })
    this.cost += cost
    while (list.length > this.opts.maxPerDst) this.cost -= (list.shift() as Kept<T>).cost
    this.byDst.set(dst, list)
    while (this.byDst.size > this.opts.maxDsts || this.cost > this.opts.maxBytes) {
      const oldest = this.byDst.keys().next()
      if (oldest.done) break
      this.drop(oldest.value)
    }
  }

  /** What is still fresh for `dst` (all, or those `which` picks), oldest first; forgotten here. */
  take(dst: string, now: number, which?: (item: T) => boolean): T[] {
    const list = this.fresh(dst, now)
    if (!which) {
      this.drop(dst)
      return list.map((k) => k.item)
    }
    const out: T[] = []
    const rest: Kept<T>[] = []
    for (const k of list) {
      if (which(k.item)) {
        out.push(k.item)
        this.cost -= k.cost
      } else rest.push(k)
    }
    if (rest.length > 0) this.byDst.set(dst, rest)
    else this.byDst.delete(dst)
    return out
  }

  /** Forget what is older than keepMs. */
  prune(now: number): void {
    for (const dst of [...this.byDst.keys()]) if (this.fresh(dst, now).length === 0) this.drop(dst)
  }

  get size(): { dsts: number; entries: number; bytes: number } {
    let entries = 0
    for (const l of this.byDst.values()) entries += l.length
    return { dsts: this.byDst.size, entries, bytes: this.cost }
  }

  /** The list for `dst` with stale entries removed (and their cost returned). */
  private fresh(dst: string, now: number): Kept<T>[] {
    const list = this.byDst.get(dst)
    if (!list) return []
    const keep = list.filter((k) => now - k.at < this.opts.keepMs)
    for (const k of list) if (now - k.at >= this.opts.keepMs) this.cost -= k.cost
    this.byDst.set(dst, keep)
    return keep
  }

  private drop(dst: string): void {
    for (const k of this.byDst.get(dst) ?? []) this.cost -= k.cost
    this.byDst.delete(dst)
  }
}
