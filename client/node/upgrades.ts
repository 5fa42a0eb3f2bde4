/**
 * When to try WebRTC again for a link that fell back to the relay.
 *
 * A WebRTC setup that misses its deadline (`directTimeoutMs`) falls back to
 * the signal server's relay. On a busy machine (a page starting many tabs, a
 * phone waking up) that happens to links that would open fine a few seconds
 * later, and a relayed link costs the server and adds its latency for as long
 * as it lives. So each relayed link is tried over WebRTC again, by its lower
 * id (the side that offers), `firstTryMs` (2 × directTimeoutMs, 10 s by
 * default) after it opened, MAX_AT_ONCE attempts at once. When a try fails,
 * the next waits by how it failed (`failureKind`):
 *
 * - for load ('busy'): a candidate pair had worked (ICE connected) and the
 *   channel or the link's handshake was not done in time; or the setup timer
 *   fired late (this tab was busy); or the try signalled nothing (no offer
 *   made in time, or no RTCPeerConnection to be had); or ICE never began
 *   (the peer's answer did not come: a busy peer, or one full of setups).
 *   The next try comes 7-10 s later (BUSY_WAIT_MS), BUSY_TRIES times at
 *   most; past that such a failure counts as the other kind.
 * - as a pair that cannot connect ('no-route': ICE checked candidate pairs
 *   and none worked, 'failed' or still 'checking' when the timer fired on
 *   time; a symmetric NAT, a firewall): the wait grows ×3 (30, 90, 270 s by
 *   default), and after TRIES of these there is no other try.
 *
 * Waits count from the failure (the answering end backs off
 * UPGRADE_BACKOFF_MS after its side of the try failed: inbound.ts) and are
 * jittered (up to a quarter more; the first try too), so tabs that failed
 * together do not come back together. A relayed link so costs MAX_OFFERS
 * (10) WebRTC setups at most, ever, each an offer, an answer and their ICE
 * candidates; one that can never go direct costs TRIES (4), over about seven
 * minutes. The answering end takes no more than MAX_OFFERS per relayed link
 * either (inbound.ts), whatever the offerer does.
 */
import { bump, type Counters } from '../../shared/protocol.ts'
import type { Dial, Dialer } from './dialer.ts'
import type { LinkTable } from './link-table.ts'

const GROWTH = 3
/** Tries that failed as a pair that cannot connect ('no-route'): after this many, none. */
export const TRIES = 4
/** Tries that failed for load ('busy') and are tried again soon, at most. */
export const BUSY_TRIES = 6
/** WebRTC setups per relayed link at most, ever (the answering end takes no more: inbound.ts). */
export const MAX_OFFERS = TRIES + BUSY_TRIES
export const MAX_AT_ONCE = 2
/** The answering end's backoff after its side of a failed upgrade (inbound.ts). */
export const UPGRADE_BACKOFF_MS = 4000
/**
 * The wait after a try that failed for load: 7-10 s. Past the answerer's backoff, with 3 s and
 * more for its side of the try to have ended later than ours (its timer started at our offer).
 */
const BUSY_WAIT_MS = 7000
const BUSY_JITTER_MS = 3000
/** The other waits: up to this share more. */
const JITTER = 0.25

/** Did a try fail for load ('busy'), or as a pair that cannot connect ('no-route')? */
export type FailureKind = 'busy' | 'no-route'

/** What this end saw of a failed try. */
export interface FailedTry {
  /** From the start to the failure. */
  tookMs: number
  /** How long a try may take (the dialer's timer for it). */
  setupMs: number
  /** The ICE connection states it went through (WebRtcPipe.iceSeen). */
  iceSeen: readonly string[]
  /** Signals it sent: the offer and its candidates. */
  signalled: number
}

export function failureKind(t: FailedTry): FailureKind {
  // Nothing went out: no offer was made in time, or no RTCPeerConnection could be (it cost the server nothing).
  if (t.signalled === 0) return 'busy'
  // A candidate pair worked: the channel, or the link's handshake, was slow.
  if (t.iceSeen.includes('connected') || t.iceSeen.includes('completed')) return 'busy'
  // The timer fired late: this tab was too busy to run it (or anything else) on time.
  if (t.tookMs > t.setupMs + Math.max(1000, t.setupMs / 5)) return 'busy'
  // ICE checked candidate pairs and none worked (what a symmetric NAT or a firewall looks like).
  if (t.iceSeen.some((s) => s !== 'new')) return 'no-route'
  // ICE never began: the peer's answer and candidates did not come (a busy peer, a full one).
  return 'busy'
}

export interface UpgradesOptions {
  /** How long one try may take (the dialer's timer for an upgrade). @default firstTryMs */
  setupMs?: number
  now?: () => number
  random?: () => number
  /** `upgrade.busy` and `upgrade.no-route`, by how each try failed. */
  counters?: Counters
}

/** A relayed link we offer for: when its next try is due, and its failed tries by kind. */
interface Due {
  at: number
  failed: number
  busy: number
}

export class Upgrades {
  private readonly due = new Map<string, Due>()
  private readonly setupMs: number
  private readonly now: () => number
  private readonly random: () => number

  constructor(
    private readonly id: string,
    private readonly links: LinkTable,
    private readonly dialer: Pick<Dialer, 'dials' | 'upgrade'>,
    private readonly firstTryMs: number,
    private readonly opts: UpgradesOptions = {},
  ) {
    this.setupMs = opts.setupMs ?? firstTryMs
    this.now = opts.now ?? Date.now
    this.random = opts.random ?? Math.random
  }

  /** The connection manager's round: start the attempts that are due. */
  round(now: number): void {
    let running = 0
    for (const d of this.dialer.dials.values()) if (d.upgrade) running++
    const relayed = new Set<string>()
    for (const l of this.links.values()) {
      if (l.transport !== 'relay' || l.state !== 'open' || !(this.id < l.peer)) continue
      relayed.add(l.peer)
      let u = this.due.get(l.peer)
      if (!u) {
        u = { at: now + this.firstTryMs * (1 + JITTER * this.random()), failed: 0, busy: 0 }
        this.due.set(l.peer, u)
      }
      // A try that ended without a word (its dial gone unsettled): as if it failed for load.
      if (u.at === Number.POSITIVE_INFINITY && !this.dialer.dials.has(l.peer)) this.failed(u, 'busy', now)
      if (now < u.at || u.failed >= TRIES || running >= MAX_AT_ONCE) continue
      if (!this.dialer.upgrade(l.peer)) continue
      running++
      const d = this.dialer.dials.get(l.peer)
      if (d) this.follow(d, u)
      else this.failed(u, 'no-route', now)
    }
    // A link that closed or went direct starts afresh if it is ever relayed again.
    for (const peer of this.due.keys()) if (!relayed.has(peer)) this.due.delete(peer)
  }

  /** The try `d` of link `u` is under way: none other until it ends; if it fails, the next by how. */
  private follow(d: Dial, u: Due): void {
    u.at = Number.POSITIVE_INFINITY
    d.waiters.push({
      // Direct: the relayed link closed ('upgraded'), and the round forgets it. If the relayed link
      // is the one kept after all, a later round tries again.
      resolve: () => {
        u.at = this.now() + BUSY_WAIT_MS + BUSY_JITTER_MS * this.random()
      },
      reject: () => {
        const now = this.now()
        const kind = failureKind({
          tookMs: now - d.started,
          setupMs: this.setupMs,
          iceSeen: d.pipe?.iceSeen() ?? [],
          signalled: d.sent?.length ?? 0,
        })
        this.failed(u, kind, now)
      },
    })
  }

  private failed(u: Due, kind: FailureKind, now: number): void {
    if (this.opts.counters) bump(this.opts.counters, `upgrade.${kind}`)
    if (kind === 'busy' && u.busy < BUSY_TRIES) {
      u.busy++
      u.at = now + BUSY_WAIT_MS + BUSY_JITTER_MS * this.random()
      return
    }
    u.failed++
    u.at = now + Math.max(BUSY_WAIT_MS, this.firstTryMs * GROWTH ** u.failed) * (1 + JITTER * this.random())
  }
}
