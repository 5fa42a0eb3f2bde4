/**
 * Per-peer rate budgets for the messages a peer hands over a link: each
 * neighbour may send `peerMsgBudget` messages and `peerEntryBudget` entries
 * to check per `antiEntropyMs`; the rest is dropped (`drop.rateLimited`).
 * The same window bounds what the peer can make us send: at most
 * `peerEntryBudget` entries and `peerMsgBudget × maxBatchBytes` bytes of
 * them (what the peer, with our options, would itself take in a window); the
 * rest is not sent (`drop.sendBudget`), so a small query or version list
 * repeated, or naming one key many times, cannot make us send much more than
 * an honest newcomer would be sent.
 *
 * A peer's budget is kept until its window ends, whatever happens to its
 * link, so a peer that drops and restores its link, or flaps in and out of
 * the neighbour set, cannot refill it early. At most MAX_PEER_BUDGETS
 * budgets are kept; past that the one restarted longest ago (a
 * non-neighbour's first) is evicted (`budget.evicted`), and its spent count
 * is kept in one shared record until its window ends: any peer that gets a
 * new budget meanwhile starts from the most spent evicted window, so
 * eviction is never a way to reset one's own budget.
 */
import { bump, type Counters } from '../protocol.ts'
import type { SyncConfig } from './options.ts'

/**
 * Most per-peer rate budgets kept (each lives at most one antiEntropyMs after
 * its window starts). Far above any host's link count (the overlay keeps at
 * most 48 links), so only a churn of over a thousand peers within one window
 * evicts, and eviction stays conservative.
 */
export const MAX_PEER_BUDGETS = 1_024

/** What a peer has spent of its rate budget in the window that started at `windowStart`; outlives the link. */
export interface Budget {
  windowStart: number
  msgs: number
  entries: number
  /** Entries, and their bytes, sent to the peer in this window. */
  sent: number
  sentBytes: number
}

export interface Budgets {
  /** Charge one message to `peer`: its budget for this window, or undefined when its messages are spent. */
  spend(peer: string, now: number): Budget | undefined
  /** Charge one entry to a budget; false when its entries are spent. */
  takeEntry(b: Budget): boolean
  /** Charge one entry of `bytes` sent to the peer; false when what it may be sent is spent. */
  takeSend(b: Budget, bytes: number): boolean
  /** Forget budgets whose windows have ended (they hold nothing a fresh one would not). */
  prune(now: number): void
  /** Budgets held. */
  readonly size: number
}

export function createBudgets(
  opt: Pick<SyncConfig, 'antiEntropyMs' | 'peerMsgBudget' | 'peerEntryBudget' | 'maxBatchBytes'>,
  counters: Counters,
  neighbours: () => string[],
): Budgets {
  /** Per-peer budgets, in the order they were (re)started: the first is the oldest. */
  const budgets = new Map<string, Budget>()
  /** The most spent of the budgets evicted while their windows ran (latest start, highest counts), until it ends. */
  let evicted: Budget | undefined

  const expired = (b: Budget, now: number): boolean => now - b.windowStart >= opt.antiEntropyMs

  function prune(now: number): void {
    for (const [id, b] of budgets) if (expired(b, now)) budgets.delete(id)
    if (evicted && expired(evicted, now)) evicted = undefined
  }

  /** Make room for one budget: the oldest non-neighbour's goes (anyone's if all are neighbours), its spending kept in `evicted`. */
  function evictOne(now: number): void {
    const live = new Set(neighbours())
    let victim: [string, Budget] | undefined
    for (const entry of budgets)
      if (!live.has(entry[0])) {
        victim = entry
        break
      }
    victim ??= budgets.entries().next().value
    if (!victim) return
    const [id, b] = victim
    budgets.delete(id)
    bump(counters, 'budget.evicted')
    if (expired(b, now)) return
    if (!evicted || expired(evicted, now)) evicted = { ...b }
    else
      evicted = {
        windowStart: Math.max(evicted.windowStart, b.windowStart),
        msgs: Math.max(evicted.msgs, b.msgs),
        entries: Math.max(evicted.entries, b.entries),
        sent: Math.max(evicted.sent, b.sent),
        sentBytes: Math.max(evicted.sentBytes, b.sentBytes),
      }
  }

  /** A peer's budget for the current window: kept across link changes until the window ends. */
  function budgetOf(id: string, now: number): Budget {
    let b = budgets.get(id)
    if (b && expired(b, now)) {
      // A new window: moved to the end, so the first in the map is the one restarted longest ago.
      budgets.delete(id)
      b = undefined
    }
    if (!b) {
      if (budgets.size >= MAX_PEER_BUDGETS) prune(now)
      if (budgets.size >= MAX_PEER_BUDGETS) evictOne(now)
      // This may be a peer whose budget was evicted: it starts no better off than the most spent of those.
      b =
        evicted && !expired(evicted, now)
          ? { ...evicted }
          : { windowStart: now, msgs: 0, entries: 0, sent: 0, sentBytes: 0 }
      budgets.set(id, b)
    }
    return b
  }

  return {
    spend(peer, now) {
      const b = budgetOf(peer, now)
      b.msgs++
      return b.msgs <= opt.peerMsgBudget ? b : undefined
    },
    takeEntry(b) {
      if (b.entries >= opt.peerEntryBudget) return false
      b.entries++
      return true
    },
    takeSend(b, bytes) {
      if (b.sent >= opt.peerEntryBudget || b.sentBytes + bytes > opt.peerMsgBudget * opt.maxBatchBytes)
        return false
      b.sent++
      b.sentBytes += bytes
      return true
    },
    prune,
    get size() {
      return budgets.size
    },
  }
}
