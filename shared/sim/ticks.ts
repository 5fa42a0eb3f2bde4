/**
 * The simulator's pending ticks, one per live node instance, in (time, seq)
 * order. Ticks outnumber messages (every node ticks every `tickMs`), so they
 * are kept out of the event heap: a tick that fires is appended again
 * `tickMs` later, which is never before a tick already pending (each was
 * scheduled at most `tickMs` after a time already passed), so the order
 * holds in O(1) per step; only a new instance's first tick is inserted by
 * binary search.
 */
export interface TickEvent {
  time: number
  seq: number
  type: 'tick'
  node: string
  epoch: number
}

export class TickQueue {
  private items: (TickEvent | undefined)[] = []
  private head = 0

  get size(): number {
    return this.items.length - this.head
  }

  peek(): TickEvent | undefined {
    return this.items[this.head]
  }

  shift(): TickEvent | undefined {
    const e = this.items[this.head]
    if (e === undefined) return undefined
    this.items[this.head++] = undefined
    // Drop the consumed prefix now and then, so the array does not grow without bound.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return e
  }

  /** Add `e`, usually at the back (a tick fired and was scheduled again). */
  append(e: TickEvent): void {
    const last = this.items[this.items.length - 1]
    if (last !== undefined && this.items.length > this.head && tickBefore(e, last)) this.insert(e)
    else this.items.push(e)
  }

  /** Add `e` in order (a new instance's first tick, at a random phase). */
  insert(e: TickEvent): void {
    let lo = this.head
    let hi = this.items.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (tickBefore(this.items[mid] as TickEvent, e)) lo = mid + 1
      else hi = mid
    }
    this.items.splice(lo, 0, e)
  }
}

export function tickBefore(a: { time: number; seq: number }, b: { time: number; seq: number }): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq)
}
