/**
 * Peers that send what no honest node sends lose their link. A copy of a
 * broadcast or topic publication whose signature or shape fails is never
 * passed on by an honest node (each checks before it forwards:
 * SignedProtocolDeps.misbehaved), and each costs us a signature check; a
 * replayed one costs it again. One can be a bug; `max` within `windowMs`
 * close the link ('misbehaved', counted `link.misbehaved`), and a new link
 * costs the peer a whole handshake. Every strike is counted
 * `misbehaved.<protocol>.<reason>`. Kept only for linked peers (the host
 * forgets one whose link closed), and at most MAX_TRACKED.
 */
import { bump, type Counters } from '../../shared/protocol.ts'

const MAX_TRACKED = 1024

export interface StrikesOptions {
  /** Strikes within windowMs that drop the link. @default 8 */
  max?: number
  /** @default 60_000 */
  windowMs?: number
  now(): number
  /** Close the link to `peer`. */
  drop(peer: string): void
  counters: Counters
}

export class Strikes {
  private readonly byPeer = new Map<string, { n: number; since: number }>()
  /** Strikes within the window that drop the link (a test that counts every drop raises it). */
  max: number

  constructor(private readonly o: StrikesOptions) {
    this.max = o.max ?? 8
  }

  strike(peer: string, what: string): void {
    const { counters, windowMs = 60_000 } = this.o
    const { max } = this
    bump(counters, `misbehaved.${what}`)
    const now = this.o.now()
    let s = this.byPeer.get(peer)
    if (!s || now - s.since > windowMs) {
      s = { n: 0, since: now }
      this.byPeer.delete(peer)
      this.byPeer.set(peer, s)
      const oldest = this.byPeer.keys().next()
      if (this.byPeer.size > MAX_TRACKED && !oldest.done) this.byPeer.delete(oldest.value)
    }
    if (++s.n < max) return
    this.byPeer.delete(peer)
    bump(counters, 'link.misbehaved')
    this.o.drop(peer)
  }

  /** The link to `peer` closed: its strikes go. */
  forget(peer: string): void {
    this.byPeer.delete(peer)
  }

  get size(): number {
    return this.byPeer.size
  }
}
