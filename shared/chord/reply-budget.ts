/**
 * What one peer's requests may make us send. A `get` of a few dozen bytes
 * asks for a record of up to 256 KiB, a `getProv` for up to 256 provider
 * records, a `table` for 160 ids: without a bound, a neighbour repeating
 * small queries makes us send megabytes, limited only by the link's send
 * queue. So every reply is charged, in bytes, to the peer that asked, from a
 * window of `replyWindowMs`: at most `replyBudgetBytes` per window; past
 * that the request gets a small `err busy` (`drop.replyBudget`), which a
 * requester takes as no answer from this node and asks another owner (or
 * candidate) instead. The same idea as the table's anti-entropy send budget
 * (shared/sync/budgets.ts).
 *
 * A peer's budget is kept until its window ends, whatever happens to its
 * link. At most MAX_REPLY_BUDGETS are kept; past that the one started
 * longest ago is evicted (`budget.evicted`) and what it had spent is kept in
 * one shared record until its window ends: a peer that gets a new budget
 * meanwhile starts from the most spent evicted one, so eviction never resets
 * anyone's budget.
 *
 * The same window budget, counted in routes instead of bytes, bounds the
 * `route`s one peer may have us pass on (`routeBudget`, handlers.ts):
 * `createWindowBudget` is the mechanism, `createReplyBudget` the byte one.
 */
import { bump, type Counters } from '../protocol.ts'
import type { ChordMsg } from './messages.ts'
import { providerSize, recordSize } from './store.ts'

/** Most per-peer budgets kept (a node has far fewer links). */
export const MAX_REPLY_BUDGETS = 1024

/** Bytes a node id costs in a reply (40 characters and their framing). */
const ID_BYTES = 42
/** A reply's type, request id and framing. */
const REPLY_OVERHEAD = 16

interface Window {
  start: number
  spent: number
}

export interface ReplyBudget {
  /** Charge `amount` (bytes, or routes) to `peer` now; false (nothing charged) when its window has not that much left. */
  take(peer: string, amount: number, now: number): boolean
  /** Budgets held. */
  readonly size: number
}

/** About what `msg` costs on the wire (the store's record and provider sizes, ids at 42 bytes). */
export function replyBytes(msg: ChordMsg): number {
  switch (msg.t) {
    case 'found':
    case 'routed':
    case 'pred':
      return REPLY_OVERHEAD + ID_BYTES * (msg.s.length + 1)
    case 'closer':
      return REPLY_OVERHEAD + ID_BYTES * msg.n.length
    case 'fingers':
      return REPLY_OVERHEAD + ID_BYTES * msg.f.length
    case 'got':
      return REPLY_OVERHEAD + (msg.rec ? recordSize(msg.rec) : 0)
    case 'provs': {
      let n = REPLY_OVERHEAD
      for (const p of msg.provs) n += providerSize(p)
      return n
    }
    default:
      return REPLY_OVERHEAD
  }
}

/** What one peer's requests may make us send, in bytes per `replyWindowMs`. */
export function createReplyBudget(
  opts: { replyBudgetBytes: number; replyWindowMs: number },
  counters: Counters,
): ReplyBudget {
  return createWindowBudget(
    { limit: opts.replyBudgetBytes, windowMs: opts.replyWindowMs },
    counters,
    'budget.evicted',
  )
}

/**
 * At most `limit` per peer per `windowMs` (in any unit the caller charges);
 * `evictedCounter` counts budgets evicted while their windows ran.
 */
export function createWindowBudget(
  opts: { limit: number; windowMs: number },
  counters: Counters,
  evictedCounter: string,
): ReplyBudget {
  /** Per peer, in the order the windows started: the first is the oldest. */
  const windows = new Map<string, Window>()
  /** The most spent of the windows evicted while they ran, until it ends. */
  let evicted: Window | undefined
  const ended = (w: Window, now: number) => now - w.start >= opts.windowMs

  function evictOne(now: number): void {
    for (const [id, w] of windows) if (ended(w, now)) windows.delete(id)
    if (windows.size < MAX_REPLY_BUDGETS) return
    const oldest = windows.entries().next().value
    if (!oldest) return
    const [id, w] = oldest
    windows.delete(id)
    bump(counters, evictedCounter)
    if (!evicted || ended(evicted, now)) evicted = { ...w }
    else evicted = { start: Math.max(evicted.start, w.start), spent: Math.max(evicted.spent, w.spent) }
  }

  function windowOf(peer: string, now: number): Window {
    let w = windows.get(peer)
    if (w && ended(w, now)) {
      windows.delete(peer) // a new window goes to the end of the map
      w = undefined
    }
    if (!w) {
      if (windows.size >= MAX_REPLY_BUDGETS) evictOne(now)
      w = evicted && !ended(evicted, now) ? { ...evicted } : { start: now, spent: 0 }
      windows.set(peer, w)
    }
    return w
  }

  /**
   * Ended windows at the front of the map (the oldest) are dropped: an ended
   * window is as good as none, and a node that answers thousands of peers in
   * turn would otherwise hold MAX_REPLY_BUDGETS of them for good.
   */
  function dropEnded(now: number): void {
    for (const [id, w] of windows) {
      if (!ended(w, now)) return
      windows.delete(id)
    }
  }

  return {
    take(peer, amount, now) {
      dropEnded(now)
      const w = windowOf(peer, now)
      if (w.spent + amount > opts.limit) return false
      w.spent += amount
      return true
    },
    get size() {
      return windows.size
    },
  }
}
