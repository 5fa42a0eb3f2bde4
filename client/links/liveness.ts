/**
 * Is the far end of a link still there? (link.ts)
 *
 * Heartbeats: every `heartbeatMs` a ping goes, unless we sent something in
 * the last half period (anything we send tells the far end we live, and its
 * answer or its own traffic tells us). Silence for `deadAfterMs` ends the
 * link ('heartbeat-timeout').
 *
 * Stalls: a tab that is closed or crashes says no goodbye, and its peers
 * kept its links for 16-18 s (Chromium, measured: ICE went `disconnected`
 * 6-8 s after the tab went, `failed` ten seconds later, and the heartbeat
 * timeout is 20 s). The transport says when it stops hearing the peer (ICE
 * `disconnected`, `Pipe.onStall`); then a ping goes at once, and the link
 * ends ('stalled') unless something arrives within `stallGraceMs`. ICE
 * often recovers from a brief `disconnected`, and a link that did answers
 * the ping well within that. Costs nothing while links are healthy: no
 * traffic is added before a stall.
 */

export interface LivenessOptions {
  heartbeatMs: number
  deadAfterMs: number
  stallGraceMs: number
  /** Is the link open (pings go only then)? */
  isOpen(): boolean
  ping(now: number): void
  /** End the link, for `reason`. */
  dead(reason: 'heartbeat-timeout' | 'stalled'): void
  /** Called each heartbeat period (housekeeping that runs at the same pace). */
  tick(now: number): void
  /** A stall check began: the host may ask elsewhere (the signal server) whether the peer is still there. */
  stalled?(): void
}

export class Liveness {
  private lastHeard = Date.now()
  private lastSent = Date.now()
  private timer: ReturnType<typeof setInterval> | undefined
  private stallTimer: ReturnType<typeof setTimeout> | undefined
  /** Something came from the peer since the stall under check. */
  private answered = false
  stalls = 0

  constructor(private readonly o: LivenessOptions) {}

  heard(now = Date.now()): void {
    this.lastHeard = now
    this.answered = true
  }

  sent(now = Date.now()): void {
    this.lastSent = now
  }

  start(): void {
    const { heartbeatMs: hb, deadAfterMs: dead } = this.o
    this.timer ??= setInterval(() => {
      const now = Date.now()
      if (now - this.lastHeard > dead) return this.o.dead('heartbeat-timeout')
      if (this.o.isOpen() && now - this.lastSent >= hb / 2) this.o.ping(now)
      this.o.tick(now)
    }, hb)
  }

  /** The transport stopped hearing the peer: ask now, and give it `stallGraceMs` to answer. */
  stalled(): void {
    if (this.stallTimer || !this.o.isOpen()) return
    this.stalls++
    this.answered = false
    this.o.ping(Date.now())
    this.o.stalled?.()
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined
      if (!this.answered && this.o.isOpen()) this.o.dead('stalled')
    }, this.o.stallGraceMs)
  }

  stop(): void {
    clearInterval(this.timer)
    clearTimeout(this.stallTimer)
    this.timer = undefined
    this.stallTimer = undefined
  }
}
