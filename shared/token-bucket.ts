/**
 * A token bucket: `rate` tokens per second, holding at most `burst`. The
 * signal server keeps some per socket (events, relay bytes, abuse strikes)
 * and per source address; the swarm one per peer (messages); presence two per
 * known node (its updates, its lost reports); topic repair per peer. Pure: time is
 * passed in (ms). A class rather than closures because there are many.
 */
export class TokenBucket {
  /** One token per `gapMs` (0: no limit), at most `burst` saved; full at `now`. */
  static perGap(gapMs: number, burst: number, now: number): TokenBucket {
    return new TokenBucket(gapMs > 0 ? 1000 / gapMs : Number.POSITIVE_INFINITY, burst, now)
  }

  private tokens: number
  private last: number

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst
    this.last = now
  }

  /** Take `n` tokens if there are that many; true when taken. */
  take(n: number, now: number): boolean {
    this.refill(now)
    if (this.tokens < n) return false
    this.tokens -= n
    return true
  }

  /** Full again at `now` (nothing to remember). */
  full(now: number): boolean {
    this.refill(now)
    return this.tokens >= this.burst
  }

  /** Tokens available at `now`. */
  available(now: number): number {
    this.refill(now)
    return this.tokens
  }

  private refill(now: number): void {
    if (this.rate === Number.POSITIVE_INFINITY) {
      // No limit (a gap of 0 between tokens): always full, also twice in one millisecond.
      this.tokens = this.burst
      this.last = now
    } else if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate)
      this.last = now
    }
  }
}
