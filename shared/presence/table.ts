/**
 * The table of present nodes (ourselves excepted: presence.ts holds our own
 * entry) and the memory of departed ones, both bounded.
 *
 * - An entry is one node's latest record, when we last heard it (by our
 *   clock), and its update budget (a token bucket: a node cannot make us
 *   churn events faster than `updateGapMs` after a burst).
 * - A tombstone remembers the version of a node that left or expired, so a
 *   late or replayed older record cannot bring it back. It is kept until
 *   any record it outranks would be refused as stale anyway; when there are
 *   more than `max`, the oldest goes first.
 *
 * The entries are capped at `max` by the caller (presence.ts decides who
 * gets a place when the table is full); this file only stores.
 */
import type { TokenBucket } from '../token-bucket.ts'
import type { Version, WireRecord } from './record.ts'

export interface Entry extends Version {
  readonly id: string
  /** The author's clock when it signed the latest record. */
  time: number
  /** The interval the latest record announced (uncapped; presenceTtl caps it). */
  interval: number
  /** When the node's session started, as we credit it: its claim, never later than our first sight. */
  since: number
  /** Our clock when we last heard it (for a record from a dump: minus the age its sender reported). */
  heardAt: number
  /** The state's encoding. */
  state: Uint8Array
  /** The latest record, kept to answer pulls. */
  record: WireRecord
  /** Update budget: one record per updateGapMs, up to updateBurst. */
  updates: TokenBucket
  /** Reported lost (lost.ts): gone at this time of ours unless a newer record comes first. Infinity: not reported. */
  deadline: number
  /** Budget of the `lost` reports this node may make: one per lostGapMs, up to lostBurst. */
  reports: TokenBucket
}

interface Tombstone extends Version {
  /** Our clock when it was made. */
  at: number
}

export class PresenceTable {
  private readonly entries = new Map<string, Entry>()
  private readonly tombs = new Map<string, Tombstone>()

  constructor(
    /** Most tombstones kept. */
    private readonly maxTombs: number,
    /** How long a tombstone is kept. */
    private readonly tombTtlMs: number,
  ) {}

  get size(): number {
    return this.entries.size
  }

  get tombstones(): number {
    return this.tombs.size
  }

  get(id: string): Entry | undefined {
    return this.entries.get(id)
  }

  values(): IterableIterator<Entry> {
    return this.entries.values()
  }

  /** The greatest version known of `id`: its entry's, else its tombstone's. */
  version(id: string): Version | undefined {
    return this.entries.get(id) ?? this.tombs.get(id)
  }

  set(e: Entry): void {
    this.entries.set(e.id, e)
    this.tombs.delete(e.id)
  }

  /** Remove `id`'s entry (if any) and remember `v` as its version. Returns the removed entry. */
  remove(id: string, v: Version, now: number): Entry | undefined {
    const e = this.entries.get(id)
    this.entries.delete(id)
    this.tombs.delete(id) // re-inserted last: Map order is age order
    this.tombs.set(id, { session: v.session, seq: v.seq, at: now })
    while (this.tombs.size > this.maxTombs) {
      const oldest = this.tombs.keys().next()
      if (oldest.done) break
      this.tombs.delete(oldest.value)
    }
    return e
  }

  /** Drop `id`'s entry without a tombstone (it made room for another; it may come back when there is room). */
  evict(id: string): void {
    this.entries.delete(id)
  }

  /** Forget tombstones older than their ttl. */
  expireTombstones(now: number): void {
    for (const [id, t] of this.tombs) {
      if (now - t.at <= this.tombTtlMs) break // insertion order is age order
      this.tombs.delete(id)
    }
  }

  /** The entry heard from longest ago among those `eligible` accepts. */
  stalest(eligible: (e: Entry) => boolean): Entry | undefined {
    let best: Entry | undefined
    for (const e of this.entries.values()) if (eligible(e) && (!best || e.heardAt < best.heardAt)) best = e
    return best
  }
}
