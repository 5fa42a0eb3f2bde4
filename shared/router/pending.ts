/**
 * The requests this node sent and waits on: the source's half of
 * request/response (PROTOCOL-route.md). Each waits for an answer from the
 * node it went to until its deadline (TimeoutError), and is sent again
 * while unanswered: after `retryMs`, then after twice as long each time up
 * to `maxRetryGapMs`, for `retryWindowMs` after its first send. Time moves
 * only by `tick(now)`.
 */
import { TimeoutError } from '../errors.ts'
import type { Value } from '../types.ts'
import type { Envelope, RequestMsg } from './messages.ts'

export interface PendingRequest {
  readonly to: string
  readonly request: RequestMsg
  readonly resolve: (v: Value) => void
  readonly reject: (e: Error) => void
  readonly deadline: number
  readonly timeoutMs: number
  readonly firstSent: number
  /** Small enough to be sent again (maxRetryBytes). */
  readonly retries: boolean
  /** When the next copy goes (Infinity while a send is under way). */
  retryAt: number
  gap: number
  /** The envelope it went in, if it went over the ring (a copy is the very same). */
  envelope: Envelope | undefined
  sending: boolean
  /** Its destination refused a link for now (keep): the next copy goes in a new envelope. */
  anew: boolean
}

export interface PendingOptions {
  retryMs: number
  maxRetryGapMs: number
  retryWindowMs: number
}

export class PendingRequests {
  private readonly byId = new Map<number, PendingRequest>()

  constructor(private readonly opts: PendingOptions) {}

  get size(): number {
    return this.byId.size
  }

  /** A request about to be sent (its first send is under way). */
  add(p: Omit<PendingRequest, 'retryAt' | 'gap' | 'envelope' | 'sending' | 'anew'>): PendingRequest {
    const entry: PendingRequest = {
      ...p,
      retryAt: Number.POSITIVE_INFINITY,
      gap: this.opts.retryMs,
      envelope: undefined,
      sending: true,
      anew: false,
    }
    this.byId.set(p.request.id, entry)
    return entry
  }

  /** Does the request `id` still wait for its answer? */
  has(id: number): boolean {
    return this.byId.has(id)
  }

  /** Is `p` still waiting? */
  waiting(p: PendingRequest): boolean {
    return this.byId.get(p.request.id) === p
  }

  /** A send of `p` is done (in `envelope`, when it went in one): the next copy is due a gap later. */
  sent(p: PendingRequest, envelope: Envelope | undefined, now: number): void {
    p.sending = false
    if (p.anew) return // refused while it went (keep): its next copy is scheduled, in a new envelope
    if (envelope) p.envelope = envelope
    this.schedule(p, now)
  }

  /** The request `id`, if it waits for an answer from `from`: taken out, for the caller to settle. */
  take(id: number, from: string): PendingRequest | undefined {
    const p = this.byId.get(id)
    if (!p || p.to !== from) return undefined
    this.byId.delete(id)
    return p
  }

  /** The request `id`, if it waits for an answer from `from` (left in). */
  get(id: number, from: string): PendingRequest | undefined {
    const p = this.byId.get(id)
    return p?.to === from ? p : undefined
  }

  /**
   * `p` found its destination refusing a link for now (full, while the ring
   * around it settles): it waits for its next copy, which goes in a new
   * envelope, routed over the ring as the ring is then. False, for the
   * caller to fail it, when it no longer waits, is not copied (too large),
   * or no copy is due within its retry window and before its deadline.
   */
  keep(p: PendingRequest, now: number): boolean {
    if (!this.waiting(p) || !p.retries) return false
    p.envelope = undefined
    p.anew = true
    // Refused on its first send, or on a copy whose time has come: the next is due a gap from now.
    if (p.retryAt === Number.POSITIVE_INFINITY || p.retryAt <= now) this.schedule(p, now)
    return p.retryAt - p.firstSent < this.opts.retryWindowMs && p.retryAt < p.deadline
  }

  /** Take `p` out (the caller fails it). False when it no longer waits. */
  remove(p: PendingRequest): boolean {
    if (!this.waiting(p)) return false
    this.byId.delete(p.request.id)
    return true
  }

  /** Time passes: requests past their deadline fail (TimeoutError); those due for a copy go to `again`. */
  tick(now: number, again: (p: PendingRequest) => void): void {
    for (const [id, p] of this.byId) {
      if (now >= p.deadline) {
        this.byId.delete(id)
        p.reject(new TimeoutError(`request ${p.request.method} to ${p.to} timed out after ${p.timeoutMs} ms`))
        continue
      }
      if (!p.retries || p.sending || now < p.retryAt || now - p.firstSent >= this.opts.retryWindowMs) continue
      this.schedule(p, now)
      again(p)
    }
  }

  /** Requests waiting for `peer` fail with `err()`. */
  failTo(peer: string, err: () => Error): void {
    for (const [id, p] of this.byId) {
      if (p.to !== peer) continue
      this.byId.delete(id)
      p.reject(err())
    }
  }

  /** Every request fails with `err()`. */
  failAll(err: () => Error): void {
    for (const p of this.byId.values()) p.reject(err())
    this.byId.clear()
  }

  private schedule(p: PendingRequest, now: number): void {
    p.retryAt = now + p.gap
    p.gap = Math.min(p.gap * 2, this.opts.maxRetryGapMs)
  }
}
