/**
 * Crashes reported by the crashed node's link neighbours, so that presence
 * need not broadcast every node every few seconds to find them by silence
 * (issue 14: a quiet network's announcements back off to `maxIntervalMs`).
 *
 * Reporting. When a mesh link to a present node X closes (`linkClosed`,
 * called before the link leaves the mesh: an auxiliary link closing for
 * idleness, or a link losing its mesh role, is no sign), we
 * wait `lostAfterMs`: if X is linked again by then, or has announced since,
 * or someone already reported it, nothing is sent. Otherwise we broadcast a
 * `lost` notice naming X and the version of X's latest record we hold, and
 * apply it ourselves.
 *
 * Receiving, from the mesh's checked origin O (the notice's authentication):
 * - O must be present here (`drop.lostUnknown`), within its report budget
 *   (`lostBurst`, then one per `lostGapMs`: `drop.lostRate`);
 * - a notice about us: we announce again at once (`refute`, counted
 *   `refuted`): our newer record cancels the report everywhere;
 * - a notice about a node we hold no record of (`lostIgnored`), whose record
 *   we hold is newer than the notice's (`lostOutdated`: it spoke since), or
 *   that we are linked to ourselves (`lostLinked`: our link says it lives)
 *   changes nothing;
 * - else X's entry expires `lostGraceMs` from now (`suspected`) unless a
 *   newer record of X comes first.
 *
 * So a report only shortens an expiry, and X's own word wins: a stranger
 * who reports live nodes costs each of them one more announcement (within
 * its budget), never their presence, unless the node cannot be heard at
 * all — which is what a crash is. Bounded: one pending check per present
 * node (`maxNodes`), a budget per reporter kept in its entry.
 */
import { bump } from '../protocol.ts'
import type { Announce } from './announce.ts'
import type { PresenceContext } from './context.ts'
import { type LostNotice, lostValue } from './messages.ts'
import { compareVersion } from './record.ts'
import type { Entry } from './table.ts'

export interface Lost {
  /** Any link to `peer` closed: check on it after lostAfterMs. */
  linkClosed(peer: string, now: number): void
  /** A `lost` notice from the mesh's checked `origin`. */
  notice(origin: string, n: LostNotice): void
  /** Send the reports that are due. */
  tick(now: number): void
  /** Checks waiting. */
  readonly waiting: number
}

export function createLost(ctx: PresenceContext, announce: Announce): Lost {
  const { deps, cfg, counters, table, linked } = ctx
  /** Nodes whose link closed, and when. */
  const pending = new Map<string, number>()
  const drop = (reason: string) => void bump(counters, `drop.${reason}`)

  /** Shorten `e`'s expiry to lostGraceMs from now (never lengthen it). */
  function suspect(e: Entry, now: number): void {
    const deadline = now + cfg.lostGraceMs
    if (deadline >= e.deadline) return
    e.deadline = deadline
    bump(counters, 'suspected')
    try {
      deps.suspect?.(e.id)
    } catch {
      bump(counters, 'listenerErrors')
    }
  }

  function report(id: string, since: number, now: number): void {
    const e = table.get(id)
    // Gone already, back, heard from since the link closed, or reported by someone else.
    if (!e || linked.has(id) || e.heardAt > since || e.deadline !== Number.POSITIVE_INFINITY) {
      bump(counters, 'lostCancelled')
      return
    }
    suspect(e, now)
    bump(counters, 'lostSent')
    const sent = deps.broadcast(lostValue({ t: 'lost', id, s: e.session, q: e.seq }))
    sent?.then(undefined, () => bump(counters, 'broadcastFailed'))
  }

  return {
    linkClosed(peer, now) {
      // Only mesh links: an auxiliary link closing for idleness says nothing of the peer.
      if (ctx.closed() || !linked.has(peer) || !table.get(peer)) return
      if (!pending.has(peer) && pending.size >= cfg.maxNodes) return
      pending.set(peer, now)
    },

    notice(origin, n) {
      bump(counters, 'lostIn')
      if (ctx.closed()) return drop('closed')
      if (n.id === origin) return drop('malformed')
      const now = deps.now()
      const from = table.get(origin)
      if (!from) return drop('lostUnknown')
      if (!from.reports.take(1, now)) return drop('lostRate')
      if (n.id === deps.id) {
        bump(counters, 'refuted')
        return announce.refute()
      }
      const e = table.get(n.id)
      if (!e) return void bump(counters, 'lostIgnored')
      if (compareVersion(e, { session: n.s, seq: n.q }) > 0) return void bump(counters, 'lostOutdated')
      if (linked.has(n.id)) return void bump(counters, 'lostLinked')
      suspect(e, now)
    },

    tick(now) {
      for (const [id, since] of pending) {
        if (linked.has(id)) pending.delete(id)
        else if (now - since >= cfg.lostAfterMs) {
          pending.delete(id)
          report(id, since, now)
        }
      }
    },

    get waiting() {
      return pending.size
    },
  }
}
