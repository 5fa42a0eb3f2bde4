/**
 * Recent broadcasts kept in full, to answer GRAFTs and to announce them to
 * lazy links (Plumtree's "received messages" set). Bounded in entries, in
 * payload bytes and in age (local clock at acceptance); the oldest go first.
 *
 * Each entry also remembers which neighbours are known to hold the message
 * (they sent it or announced it), so nobody is sent an IHAVE or a payload it
 * already has, and how often each neighbour grafted it, so a GRAFT loop
 * cannot turn into a payload amplifier.
 */
export interface CachedBroadcast {
  readonly id: string
  /** The origin's node id (checked). */
  readonly origin: string
  /** The neighbour it came from first (undefined at the origin). */
  readonly from: string | undefined
  /** The origin's signed bytes, exactly as received. */
  readonly payload: Uint8Array
  readonly sig: Uint8Array
  /** Hops at which this node received it (0 at the origin). */
  readonly hops: number
  /** This node asked for it (GRAFT): it did not come by eager push, so its hops say nothing of the tree. */
  readonly requested: boolean
  /**
   * Routes carry this copy (routes.ts): it came with `r`, or this node has a route for its origin.
   * Copies pushed on from it say so, and its hop count is not the shared tree's.
   */
  readonly routed: boolean
  /** The shared tree did not take it as its own (it came over a route, or flagged): no link went eager for it. */
  readonly viaRoute: boolean
  /** Local time of acceptance. */
  readonly at: number
  /** Neighbours known to have it. */
  readonly haves: Set<string>
  /** GRAFT answers given, by neighbour. */
  readonly grafted: Map<string, number>
  /** Announcement rounds done so far, and when the next is due. */
  round: number
  nextAnnounceAt: number
}

/** Most neighbours remembered per entry, in `haves` and `grafted`. */
export const MAX_PEERS_PER_ENTRY = 64

export class PayloadCache {
  private readonly entries = new Map<string, CachedBroadcast>()
  private totalBytes = 0

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number,
    readonly ttlMs: number,
  ) {}

  get size(): number {
    return this.entries.size
  }

  get bytes(): number {
    return this.totalBytes
  }

  get(id: string): CachedBroadcast | undefined {
    return this.entries.get(id)
  }

  values(): IterableIterator<CachedBroadcast> {
    return this.entries.values()
  }

  /** Keep `e`, evicting the oldest entries to stay within bounds. A payload larger than `maxBytes` is not kept. */
  add(e: CachedBroadcast): void {
    if (this.entries.has(e.id)) return
    const size = e.payload.length + e.sig.length
    if (size > this.maxBytes) return
    this.entries.set(e.id, e)
    this.totalBytes += size
    while (this.entries.size > this.maxEntries || this.totalBytes > this.maxBytes) this.evictOldest()
  }

  /** Drop entries older than `ttlMs`. */
  expire(now: number): void {
    if (this.entries.size === 0) return
    for (const e of this.entries.values()) {
      if (now - e.at <= this.ttlMs) break
      this.evictOldest()
    }
  }

  private evictOldest(): void {
    const first = this.entries.values().next().value
    if (!first) return
    this.entries.delete(first.id)
    this.totalBytes -= first.payload.length + first.sig.length
  }
}

/** Remember that `peer` has the message, within the per-entry bound. */
export function noteHave(e: CachedBroadcast, peer: string): void {
  if (e.haves.size < MAX_PEERS_PER_ENTRY) e.haves.add(peer)
}
