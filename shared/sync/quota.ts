/**
 * Room in the table: the authors' shares (PROTOCOL-sync.md, Quotas).
 *
 * Every entry a replica stores counts, in entries and in bytes, against its
 * author and against the table. Two bounds apply to each:
 *
 * 1. An author holds at most `perAuthorQuota` entries and `perAuthorBytes`
 *    bytes. Past them it keeps its newest entries: a newer entry replaces
 *    its oldest, an entry older than all it holds is refused (`drop.quota`
 *    either way).
 * 2. The table holds at most `maxEntries` entries and `maxTableBytes` bytes.
 *    Past them the largest author gives way: the author holding the most of
 *    the resource that is over (ties: the greater id) loses its oldest entry,
 *    until the new entry fits (`evicted`); if that author is the new entry's
 *    own and the new entry is its oldest, the new entry is refused
 *    (`drop.tableFull`).
 *
 * "Oldest" is an entry order in which entries whose lease binds come last,
 * then the total order of entries (entry.ts), oldest first. So a full table
 * keeps, for every resource, the entries of smallest rank within their
 * author: max-min fair shares. A few identities can take no more than the
 * share of as many honest authors; an honest newcomer, holding less than the
 * largest, always finds room (until the table holds `maxEntries` authors of
 * one entry each). The rule depends only on the entries held, so replicas
 * that hold the same entries keep the same ones whatever order they came in,
 * and anti-entropy between two that differ moves each towards the entries
 * both would keep.
 *
 * `planRoom` works out what a new entry would cost without changing the
 * table; the caller applies it. At most MAX_EVICTIONS entries make room for
 * one: beyond that, the entry is refused as if it were the oldest (a value
 * of 64 KiB that could only fit by evicting hundreds of small entries).
 */
import { compareEntries, type Entry } from './entry.ts'
import type { Table, Usage } from './table.ts'

export interface QuotaLimits {
  perAuthorQuota: number
  perAuthorBytes: number
  maxEntries: number
  maxTableBytes: number
}

/** Most entries evicted to make room for one. */
export const MAX_EVICTIONS = 64

export type QuotaLimit = 'entries' | 'bytes' | 'tableEntries' | 'tableBytes'

/** An entry to remove: `quota`, replaced by a newer one of its author's; `share`, its author holds the most. */
export interface Victim {
  entry: Entry
  reason: 'quota' | 'share'
  /** The bound it makes room under. */
  limit: QuotaLimit
}

export type Room = { ok: true; victims: Victim[] } | { ok: false; limit: QuotaLimit }

type Resource = keyof Usage

/** Eviction order: entries whose lease binds last, then oldest first. */
function evictsBefore(x: Entry, y: Entry, binds: (e: Entry) => boolean): boolean {
  const bx = binds(x)
  if (bx !== binds(y)) return !bx
  return compareEntries(x, y) < 0
}

/** The order of authors for giving way: most of `r` first, then the greater id. */
function larger(ux: number, x: string, uy: number, y: string): boolean {
  return ux > uy || (ux === uy && x > y)
}

/**
 * The `k` authors that give way first for resource `r` (by the table's
 * current usage). A plan lowers at most k − 1 of them (MAX_EVICTIONS victims
 * and the author of the entry replaced), so no author outside the list can
 * come ahead of all of them.
 */
function topAuthors(table: Table, r: Resource, k: number): string[] {
  const top: [string, number][] = []
  for (const [id, u] of table.authorUsage()) {
    const last = top[top.length - 1]
    if (top.length >= k && last && !larger(u[r], id, last[1], last[0])) continue
    let i = top.length
    while (
      i > 0 &&
      larger(u[r], id, (top[i - 1] as [string, number])[1], (top[i - 1] as [string, number])[0])
    )
      i--
    top.splice(i, 0, [id, u[r]])
    if (top.length > k) top.pop()
  }
  return top.map(([id]) => id)
}

/**
 * What storing `e` in place of `cur` (the entry held for its key, if any)
 * takes: the entries to evict, or the bound that refuses it. `binds` says
 * whether an entry's lease binds now. Pure: the table is not changed.
 */
export function planRoom(
  table: Table,
  e: Entry,
  cur: Entry | undefined,
  limits: QuotaLimits,
  binds: (e: Entry) => boolean,
): Room {
  const a = e.author
  const delta = new Map<string, Usage>()
  const change = (author: string, entries: number, bytes: number) => {
    const d = delta.get(author)
    if (d) {
      d.entries += entries
      d.bytes += bytes
    } else delta.set(author, { entries, bytes })
  }
  const usage = (author: string): Usage => {
    const u = table.usage(author)
    const d = delta.get(author)
    return d ? { entries: u.entries + d.entries, bytes: u.bytes + d.bytes } : u
  }
  if (cur) change(cur.author, -1, -cur.size)
  change(a, 1, e.size)
  let entries = table.size + (cur ? 0 : 1)
  let bytes = table.bytes + e.size - (cur?.size ?? 0)
  const victims: Victim[] = []
  const gone = new Set<string>()

  /** The entry `author` would lose next (`e` counts as one of a's; the key `e` replaces does not). */
  const next = (author: string): Entry | undefined => {
    let best = author === a ? e : undefined
    for (const k of table.keysOf(author)) {
      if (k === e.key || gone.has(k)) continue
      const x = table.get(k)
      if (x && (!best || evictsBefore(x, best, binds))) best = x
    }
    return best
  }
  /** Plan to evict `v`; false when `v` is `e` itself (refused) or the plan is too long. */
  const take = (v: Entry | undefined, reason: Victim['reason'], limit: QuotaLimit): boolean => {
    if (!v || v === e || victims.length >= MAX_EVICTIONS) return false
    victims.push({ entry: v, reason, limit })
    gone.add(v.key)
    change(v.author, -1, -v.size)
    entries--
    bytes -= v.size
    return true
  }

  // 1. The author's own bounds: it keeps its newest entries.
  for (;;) {
    const u = usage(a)
    const over =
      u.entries > limits.perAuthorQuota ? 'entries' : u.bytes > limits.perAuthorBytes ? 'bytes' : null
    if (!over) break
    if (!take(next(a), 'quota', over)) return { ok: false, limit: over }
  }

  // 2. The table's bounds: the largest author gives way.
  const tops: Partial<Record<Resource, string[]>> = {}
  for (;;) {
    const over: Resource | null =
      entries > limits.maxEntries ? 'entries' : bytes > limits.maxTableBytes ? 'bytes' : null
    if (!over) break
    const candidates = tops[over] ?? [...topAuthors(table, over, MAX_EVICTIONS + 2), a]
    tops[over] = candidates
    let largest: string | undefined
    let most = 0
    for (const id of candidates) {
      const u = usage(id)[over]
      if (u > 0 && (largest === undefined || larger(u, id, most, largest))) {
        largest = id
        most = u
      }
    }
    const limit = over === 'entries' ? 'tableEntries' : 'tableBytes'
    if (largest === undefined || !take(next(largest), 'share', limit)) return { ok: false, limit }
  }
  return { ok: true, victims }
}
