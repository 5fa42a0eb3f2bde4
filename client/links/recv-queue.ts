/**
 * How a link paces what it receives (link.ts's header, "Receiving"): one
 * bounded queue of pipe messages (bytes and messages; overflow is dropped
 * and counted), one loop that takes them in arrival order and hands the
 * event loop back every SLICE_MS, and a budget of decode time and inflated
 * bytes per second (token buckets that a frame may overdraw once; past
 * them the loop waits and the queue absorbs, then drops).
 */
import { bump, type Counters } from '../../shared/protocol.ts'
import { MAX_VALUE_ITEMS } from '../../shared/wire/value.ts'

export interface RecvLimits {
  /** Bytes of link messages waiting to be processed. @default 16 MiB */
  maxQueueBytes: number
  /** Link messages waiting to be processed. @default 4096 */
  maxQueueMessages: number
  /** Milliseconds of decoding (msgpack and validators) per second, once the burst is spent. @default 100 */
  decodeMsPerSec: number
  /** @default 200 */
  decodeBurstMs: number
  /** Inflated bytes per second, once the burst is spent. @default 32 MiB */
  inflateBytesPerSec: number
  /** @default 16 MiB */
  inflateBurstBytes: number
  /** Most msgpack objects in one frame's body. @default MAX_VALUE_ITEMS (65,536) */
  maxItems: number
}

export const DEFAULT_RECV_LIMITS: Readonly<RecvLimits> = {
  maxQueueBytes: 16 * 1024 * 1024,
  maxQueueMessages: 4096,
  decodeMsPerSec: 100,
  decodeBurstMs: 200,
  inflateBytesPerSec: 32 * 1024 * 1024,
  inflateBurstBytes: 16 * 1024 * 1024,
  maxItems: MAX_VALUE_ITEMS,
}

/** The receive loop hands the event loop back after this much work in one go. */
const SLICE_MS = 8

const nextTask = () => new Promise<void>((r) => setTimeout(r, 0))
const EMPTY = new Uint8Array(0)

/**
 * The queue and its loop. `handle` takes one pipe message and says whether
 * to go on (false: stop reading, the link is done with this queue).
 */
export class RecvQueue {
  private inbox: Uint8Array[] = []
  private head = 0
  private bytes = 0
  private running = false
  private started = false
  private closed = false

  constructor(
    private readonly limits: RecvLimits,
    private readonly counters: Counters,
    private readonly handle: (piece: Uint8Array) => Promise<boolean>,
  ) {}

  /** A pipe message: queued (or dropped when the queue is full), and the loop started. */
  push(piece: Uint8Array): void {
    if (this.closed) return
    const waiting = this.inbox.length - this.head
    if (waiting >= this.limits.maxQueueMessages || this.bytes + piece.length > this.limits.maxQueueBytes)
      return bump(this.counters, 'drop.link.recv-queue')
    this.inbox.push(piece)
    this.bytes += piece.length
    this.pump()
  }

  /** Bytes waiting to be read. */
  get waitingBytes(): number {
    return this.bytes
  }

  /** Begin reading (what arrived before waits until then). */
  start(): void {
    this.started = true
    this.pump()
  }

  /** Whatever waits goes; the loop stops at its next step. */
  close(): void {
    this.closed = true
    this.inbox = []
    this.head = 0
    this.bytes = 0
  }

  private pump(): void {
    if (this.running || !this.started || this.closed) return
    this.running = true
    void this.drain()
  }

  /** One message at a time, in arrival order, until the queue is empty. */
  private async drain(): Promise<void> {
    let slice = performance.now()
    try {
      while (!this.closed && this.head < this.inbox.length) {
        const piece = this.inbox[this.head] as Uint8Array
        this.inbox[this.head++] = EMPTY
        this.bytes -= piece.length
        if (this.head > 1024 && this.head * 2 > this.inbox.length) {
          this.inbox = this.inbox.slice(this.head)
          this.head = 0
        }
        if (!(await this.handle(piece))) break
        if (performance.now() - slice > SLICE_MS) {
          await nextTask()
          slice = performance.now()
        }
      }
    } catch {
      // Not expected (every step guards itself); the loop must still never reject.
      bump(this.counters, 'link.recv-error')
    } finally {
      this.running = false
    }
  }
}

/** The decode-time and inflate budgets of one link. */
export class RecvBudget {
  private decode: number
  private inflate: number
  private at = performance.now()

  constructor(
    private readonly limits: RecvLimits,
    private readonly counters: Counters,
  ) {
    this.decode = limits.decodeBurstMs
    this.inflate = limits.inflateBurstBytes
  }

  /** What a frame cost, known only afterwards (a bucket may go below zero once). */
  spend(which: 'inflate' | 'decode', amount: number): void {
    if (which === 'decode') this.decode -= amount
    else this.inflate -= amount
  }

  /** Wait until the bucket is not in debt. False when `closed()` turned true meanwhile. */
  async wait(which: 'inflate' | 'decode', closed: () => boolean): Promise<boolean> {
    for (;;) {
      const now = performance.now()
      const dt = (now - this.at) / 1000
      this.at = now
      const r = this.limits
      this.decode = Math.min(r.decodeBurstMs, this.decode + dt * r.decodeMsPerSec)
      this.inflate = Math.min(r.inflateBurstBytes, this.inflate + dt * r.inflateBytesPerSec)
      if (closed()) return false
      const [tokens, rate] =
        which === 'decode' ? [this.decode, r.decodeMsPerSec] : [this.inflate, r.inflateBytesPerSec]
      if (tokens >= 0) return true
      bump(this.counters, `link.recv-throttled.${which}`)
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(1000, Math.max(5, (-tokens / rate) * 1000))),
      )
    }
  }
}
