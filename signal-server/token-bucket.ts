/**
 * A token bucket: `rate` tokens per second, holding at most `burst`. Used per
 * socket for events (tokens = events), relay traffic (tokens = bytes) and
 * abuse strikes. Pure: time is passed in (ms). A class rather than closures
 * because the server keeps three per connected socket.
 */
export class TokenBucket {
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

  /** Tokens available at `now`. */
  available(now: number): number {
    this.refill(now)
    return this.tokens
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate)
      this.last = now
    }
  }
}
