/**
 * The seen-cache, a replay window: ids of signed messages accepted lately,
 * each with its author (the origin) and the time the author signed into it.
 * The mesh keeps broadcast ids in one (nobody relays what it has seen,
 * p2p.today's third rule); routed unicast keeps envelope signatures in
 * another (shared/router/router.ts).
 *
 * The guarantee: a message is accepted at most once, however long after and
 * however many others came between. Entries are ordered by (signed time, id).
 * A message is admitted only when
 *
 * - its signed time lies in the window [now − maxAgeMs, now + maxSkewMs] of
 *   the local clock (else `tooOld` or `future`), and
 * - it orders after its origin's floor and after the global floor (else
 *   `forgotten`): a floor is the newest (time, id) this memory has let go.
 *
 * An id is let go only by age, once its time has fallen out of the window
 * (it would be refused as too old anyway; the global floor rises), or by
 * count, past `max` entries: the oldest-dated entry goes first and its
 * origin's floor rises. Every id let go orders at or below a floor that
 * covers it, and nothing at or below that floor is admitted again, so an id
 * that left can never be accepted a second time: not after a flood, not when
 * the local clock steps backwards (then messages wait for the floor; they
 * are not let in twice). A flood that overflows the memory within the window
 * narrows it; it never leaks.
 *
 * Why per origin, and oldest first: a flood from one author dated ahead (up
 * to the skew) would otherwise push every floor past the present and shut
 * out everyone's current messages. Oldest first, the present's messages go
 * before the flood's, and each raises only its own origin's floor (an
 * origin's later messages order after it); once the flood's own entries go,
 * only the flooding author is shut out. Floors are kept for `maxFloors`
 * origins; past that the least recently raised is folded into the global
 * floor (safe: the global floor then covers what it covered).
 *
 * The id breaks ties, so many messages signed in one millisecond are not
 * refused together when one is let go. Clocks of honest nodes must agree
 * within `maxSkewMs`, and `maxAgeMs` must cover that skew plus the longest a
 * message travels.
 */
export type Admission = 'ok' | 'tooOld' | 'future' | 'forgotten'

/** [signed time, id, origin]: ordered by time, then id. */
type Entry = readonly [time: number, id: string, origin: string]

function before(a: Entry, b: Entry): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1])
}

const NO_FLOOR: Entry = [Number.NEGATIVE_INFINITY, '', '']

export class SeenCache {
  private readonly entries = new Map<string, Entry>()
  /** Min-heap of the entries, so the oldest-dated is let go first. Holds exactly what `entries` holds. */
  private readonly heap: Entry[] = []
  /** Per-origin floors, least recently raised first. */
  private readonly floors = new Map<string, Entry>()
  private globalFloor: Entry = NO_FLOOR

  constructor(
    /** Most ids kept. */
    readonly max: number,
    /** Oldest signed time admitted, before the local clock. */
    readonly maxAgeMs: number,
    /** Furthest signed time admitted ahead of the local clock. */
    readonly maxSkewMs: number,
    /** Most origins with a floor of their own. */
    readonly maxFloors = 4_096,
  ) {}

  get size(): number {
    return this.entries.size
  }

  /** Origins with a floor of their own (bounded by maxFloors). */
  get floorCount(): number {
    return this.floors.size
  }

  /** The signed time below which nothing of `origin` is admitted (the newer of its own floor and the global one). */
  floorOf(origin: string): number {
    return Math.max(this.globalFloor[0], this.floors.get(origin)?.[0] ?? Number.NEGATIVE_INFINITY)
  }

  has(id: string): boolean {
    return this.entries.has(id)
  }

  /** May message `id` by `origin`, signed at `time`, be accepted at local time `now` (if it is not here)? Records nothing. */
  admit(origin: string, id: string, time: number, now: number): Admission {
    if (time > now + this.maxSkewMs) return 'future'
    if (time < now - this.maxAgeMs) return 'tooOld'
    const e: Entry = [time, id, origin]
    if (!before(this.globalFloor, e)) return 'forgotten'
    const own = this.floors.get(origin)
    if (own && !before(own, e)) return 'forgotten'
    return 'ok'
  }

  /** Record `id` by `origin`, signed at `time`; returns how many entries were let go to stay within `max`. */
  add(origin: string, id: string, time: number): number {
    if (this.entries.has(id)) return 0
    const e: Entry = [time, id, origin]
    this.entries.set(id, e)
    this.push(e)
    let evicted = 0
    while (this.entries.size > this.max) {
      const top = this.pop()
      if (!top) break
      this.entries.delete(top[1])
      this.raiseFloor(top)
      evicted++
    }
    return evicted
  }

  /** Let go of the ids whose time has fallen out of the window at `now`; returns how many went. */
  expire(now: number): number {
    const oldest = now - this.maxAgeMs
    let n = 0
    // Called every tick: nothing to let go costs two comparisons and no allocation.
    if (this.floors.size === 0 && (this.heap[0]?.[0] ?? oldest) >= oldest) return 0
    for (let top = this.heap[0]; top !== undefined && top[0] < oldest; top = this.heap[0]) {
      this.pop()
      this.entries.delete(top[1])
      if (before(this.globalFloor, top)) this.globalFloor = top
      n++
    }
    // Floors out of the window are covered by it (and by the global floor, should the clock step back).
    if (this.floors.size > 0)
      for (const [origin, f] of this.floors) {
        if (f[0] >= oldest) break
        this.fold(origin, f)
      }
    return n
  }

  private raiseFloor(e: Entry): void {
    const origin = e[2]
    const own = this.floors.get(origin)
    this.floors.delete(origin) // re-inserted last: the map's order is least recently raised first
    this.floors.set(origin, own && before(e, own) ? own : e)
    if (this.floors.size > this.maxFloors) {
      const [o, f] = this.floors.entries().next().value as [string, Entry]
      this.fold(o, f)
    }
  }

  private fold(origin: string, f: Entry): void {
    this.floors.delete(origin)
    if (before(this.globalFloor, f)) this.globalFloor = f
  }

  private push(x: Entry): void {
    const a = this.heap
    let i = a.length
    a.push(x)
    while (i > 0) {
      const p = (i - 1) >> 1
      const parent = a[p] as Entry
      if (!before(x, parent)) break
      a[i] = parent
      i = p
    }
    a[i] = x
  }

  private pop(): Entry | undefined {
    const a = this.heap
    const top = a[0]
    const last = a.pop()
    if (top === undefined || last === undefined || a.length === 0) return top
    // Sift the last entry down from the root.
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= a.length) break
      const r = l + 1
      const c = r < a.length && before(a[r] as Entry, a[l] as Entry) ? r : l
      const child = a[c] as Entry
      if (!before(child, last)) break
      a[i] = child
      i = c
    }
    a[i] = last
    return top
  }
}
