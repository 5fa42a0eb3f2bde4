/**
 * When to try WebRTC again for a link that fell back to the relay.
 *
 * A WebRTC setup that misses its deadline (`directTimeoutMs`) falls back to
 * the signal server's relay. On a busy machine (a page starting many tabs, a
 * phone waking up) that happens to links that would open fine a few seconds
 * later, and a relayed link costs the server and adds its latency for as long
 * as it lives. So each relayed link is tried over WebRTC again, by its lower
 * id (the side that offers), `firstTryMs` (2 × directTimeoutMs, 10 s by
 * default) after it opened and then at growing intervals (×3), at most TRIES
 * times; MAX_AT_ONCE attempts run at once. A link that cannot go direct (a
 * symmetric NAT, a firewall) costs TRIES attempts in all (with the defaults
 * over about six minutes), then none.
 */
import type { Dialer } from './dialer.ts'
import type { LinkTable } from './link-table.ts'

const GROWTH = 3
export const TRIES = 4
export const MAX_AT_ONCE = 2

export class Upgrades {
  /** Relayed links we offer for -> when the next attempt is due, and attempts made. */
  private readonly due = new Map<string, { at: number; tries: number }>()

  constructor(
    private readonly id: string,
    private readonly links: LinkTable,
    private readonly dialer: Pick<Dialer, 'dials' | 'upgrade'>,
    private readonly firstTryMs: number,
  ) {}

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
        u = { at: now + this.firstTryMs, tries: 0 }
        this.due.set(l.peer, u)
      }
      if (now < u.at || u.tries >= TRIES || running >= MAX_AT_ONCE) continue
      if (!this.dialer.upgrade(l.peer)) continue
      running++
      u.tries++
      u.at = now + this.firstTryMs * GROWTH ** u.tries
    }
    // A link that closed or went direct starts afresh if it is ever relayed again.
    for (const peer of this.due.keys()) if (!relayed.has(peer)) this.due.delete(peer)
  }
}
