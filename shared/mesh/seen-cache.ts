/**
 * The seen-cache: ids of broadcasts this node has accepted, so nobody
 * relays what it has seen (p2p.today's third rule).
 *
 * Bounded two ways: at most `max` entries (the oldest go first), and an
 * entry lives `ttlMs` from the moment *this node* first accepted the
 * message, by its own clock. No origin timestamp is ever read, so clocks
 * need not agree across nodes. A Map keeps insertion order, which is
 * acceptance order, so eviction only looks at the head.
 */
export class SeenCache {
  private readonly at = new Map<string, number>()

  constructor(
    readonly max: number,
    readonly ttlMs: number,
  ) {}

  get size(): number {
    return this.at.size
  }

  has(id: string): boolean {
    return this.at.has(id)
  }

  /** Record `id` as seen at local time `now`; returns the number of entries evicted to stay under `max`. */
  add(id: string, now: number): number {
    if (this.at.has(id)) return 0
    this.at.set(id, now)
    let evicted = 0
    while (this.at.size > this.max) {
      const oldest = this.at.keys().next().value as string
      this.at.delete(oldest)
      evicted++
    }
    return evicted
  }

  /** Drop entries first seen more than `ttlMs` ago; returns how many went. */
  expire(now: number): number {
    let n = 0
    for (const [id, t] of this.at) {
      // A local clock that stepped backwards leaves `t` in the future: such an entry waits, it is not dropped early.
      if (now - t <= this.ttlMs) break
      this.at.delete(id)
      n++
    }
    return n
  }
}
