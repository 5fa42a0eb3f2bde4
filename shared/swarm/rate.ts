/** A windowed rate meter, time as input (the token bucket is shared/token-bucket.ts). */

/** Bytes per second over the last `windowMs`, in one-second buckets. */
export class RateMeter {
  private readonly buckets: number[]
  private readonly times: number[]
  private readonly start: number

  constructor(windowMs: number, now: number) {
    const n = Math.max(1, Math.ceil(windowMs / 1000))
    this.buckets = new Array<number>(n).fill(0)
    this.times = new Array<number>(n).fill(Number.NEGATIVE_INFINITY)
    this.start = now
  }

  add(now: number, bytes: number): void {
    const sec = Math.floor(now / 1000)
    const k = ((sec % this.buckets.length) + this.buckets.length) % this.buckets.length
    if (this.times[k] !== sec) {
      this.times[k] = sec
      this.buckets[k] = 0
    }
    this.buckets[k] = (this.buckets[k] as number) + bytes
  }

  /** Bytes per second over the buckets in the window (the current one partly filled), or since start if shorter. */
  rate(now: number): number {
    const n = this.buckets.length
    const sec = Math.floor(now / 1000)
    let sum = 0
    for (let k = 0; k < n; k++) {
      const t = this.times[k] as number
      if (t > sec - n && t <= sec) sum += this.buckets[k] as number
    }
    const from = Math.max(this.start, (sec - n + 1) * 1000)
    return Math.round((sum * 1000) / Math.max(1, now - from))
  }
}
