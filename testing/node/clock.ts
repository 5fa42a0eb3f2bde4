/**
 * A virtual clock for a test network: one time line for every node, which
 * moves only when the test says (`advanceTo`, driven by network.ts's
 * `advance` and `run`). Timers fire in time order (ties in the order they
 * were set); the caller lets promises settle between them.
 *
 * Each node gets its own view (`view()`): a `Clock` (client/node/clock.ts)
 * over the shared time line that remembers its timers, so a crashed node's
 * timers can all be cancelled at once (`stop`). `activity` counts what
 * happens (timers set and fired, plus whatever the network reports through
 * `touch`), so the network can tell when things have gone quiet.
 */
import type { Clock, TimerId } from '../../client/node/clock.ts'

/** A timer of the virtual clock: its handle is this object. */
interface Timer {
  due: number
  seq: number
  fn: () => void
  /** Repeats every `every` ms (setInterval), else fires once. */
  every: number | undefined
  owner: ClockView | undefined
  cancelled: boolean
}

export class VirtualClock {
  private time: number
  private seq = 0
  /** Pending timers, kept sorted by (due, seq): few hundred at most in a test, insertion is cheap. */
  private readonly queue: Timer[] = []
  /** Changes whenever something happens (timers set or fired, frames moved): see `touch`. */
  activity = 0

  constructor(start: number) {
    this.time = start
  }

  now(): number {
    return this.time
  }

  /** Something happened (the network moved a frame): settling waits for this to stop changing. */
  touch(): void {
    this.activity++
  }

  /** When the next live timer is due (undefined: none). */
  nextDue(): number | undefined {
    return this.queue.find((t) => !t.cancelled)?.due
  }

  /** Number of live timers. */
  get pending(): number {
    return this.queue.filter((t) => !t.cancelled).length
  }

  /**
   * Fire the earliest timer if it is due by `limit`, moving time to it; false
   * when none is. (Time never goes back; `moveTo` moves it without a timer.)
   */
  fireNext(limit: number): boolean {
    while (this.queue[0]?.cancelled) this.queue.shift()
    const t = this.queue[0]
    if (!t || t.due > limit) return false
    this.queue.shift()
    this.time = Math.max(this.time, t.due)
    this.activity++
    if (t.every !== undefined) {
      t.due = this.time + t.every
      t.seq = this.seq++
      this.insert(t)
    } else t.owner?.forget(t)
    t.fn()
    return true
  }

  /** Move time forward to `t` (no timer fires). */
  moveTo(t: number): void {
    if (t > this.time) this.time = t
  }

  schedule(fn: () => void, ms: number, every: number | undefined, owner: ClockView | undefined): Timer {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0
    const t: Timer = {
      due: this.time + delay,
      seq: this.seq++,
      fn,
      // An interval of 0 would fire forever at one instant: at least 1 ms, as platforms do.
      every: every === undefined ? undefined : Math.max(1, delay),
      owner,
      cancelled: false,
    }
    this.insert(t)
    this.activity++
    return t
  }

  cancel(id: TimerId | undefined): void {
    if (id === undefined || typeof id !== 'object' || !('cancelled' in id)) return
    const t = id as Timer
    t.cancelled = true
    t.owner?.forget(t)
    const i = this.queue.indexOf(t)
    if (i >= 0) this.queue.splice(i, 1)
  }

  /** A `Clock` over this time line for one node. */
  view(): ClockView {
    return new ClockView(this)
  }

  private insert(t: Timer): void {
    let i = this.queue.length
    while (i > 0) {
      const p = this.queue[i - 1] as Timer
      if (p.due < t.due || (p.due === t.due && p.seq < t.seq)) break
      i--
    }
    this.queue.splice(i, 0, t)
  }
}

/** One node's clock: the shared time line, with its timers remembered so they can be stopped. */
export class ClockView implements Clock {
  private readonly timers = new Set<Timer>()
  private stopped = false

  constructor(private readonly clock: VirtualClock) {}

  now(): number {
    return this.clock.now()
  }

  setTimeout(fn: () => void, ms: number): TimerId {
    return this.add(fn, ms, undefined)
  }

  setInterval(fn: () => void, ms: number): TimerId {
    return this.add(fn, ms, ms)
  }

  clearTimeout(id: TimerId | undefined): void {
    this.clock.cancel(id)
  }

  clearInterval(id: TimerId | undefined): void {
    this.clock.cancel(id)
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms))
  }

  /** The node crashed: every timer it set is cancelled, and new ones never fire. */
  stop(): void {
    this.stopped = true
    for (const t of [...this.timers]) this.clock.cancel(t)
  }

  /** @internal the clock fired or cancelled `t`. */
  forget(t: Timer): void {
    this.timers.delete(t)
  }

  private add(fn: () => void, ms: number, every: number | undefined): TimerId {
    if (this.stopped) return {}
    const t = this.clock.schedule(fn, ms, every, this)
    this.timers.add(t)
    return t
  }
}
