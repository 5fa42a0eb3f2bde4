/**
 * Broadcasts this node has heard of (IHAVE) but not received: Plumtree's
 * "missing" set with its timers. When an entry's deadline passes, the mesh
 * GRAFTs the next announcer; after `maxAttempts` it gives up.
 *
 * An IHAVE costs the sender nothing, so this table is the place a hostile
 * neighbour would try to fill. Bounds: `maxEntries` in all, at most
 * `maxPerPeer` entries created by any one neighbour (so a liar cannot crowd
 * out honest announcements), at most `maxAnnouncers` per entry; and every
 * entry is gone after its last attempt, so age is bounded too.
 */
export interface MissingEntry {
  readonly id: string
  /** Neighbours that announced it, in order of announcement. */
  readonly announcers: string[]
  /** The hop count each announcer said it got the broadcast at (`announcers[i]`'s is `hops[i]`; -1: not said). */
  readonly hops: number[]
  /** Whether each announcer got it over a per-origin route (routes.ts): its hop count says nothing of the shared tree. */
  readonly routed: boolean[]
  /** The neighbour whose IHAVE created the entry (charged against its quota). */
  readonly creator: string
  /** GRAFTs sent so far. */
  attempts: number
  /** Local time at which the next GRAFT is due. */
  deadline: number
}

export type AnnounceResult = 'created' | 'added' | 'known' | 'full' | 'quota'

export class MissingTable {
  private readonly entries = new Map<string, MissingEntry>()
  private readonly created = new Map<string, number>()

  constructor(
    readonly maxEntries: number,
    readonly maxPerPeer: number,
    readonly maxAnnouncers: number,
  ) {}

  get size(): number {
    return this.entries.size
  }

  has(id: string): boolean {
    return this.entries.has(id)
  }

  get(id: string): MissingEntry | undefined {
    return this.entries.get(id)
  }

  /** `peer` announced `id`, which it got at `hops` (-1: not said); a new entry's first GRAFT is due at `deadline`. */
  announce(id: string, peer: string, deadline: number, hops = -1, routed = false): AnnounceResult {
    const e = this.entries.get(id)
    if (e) {
      if (e.announcers.includes(peer) || e.announcers.length >= this.maxAnnouncers) return 'known'
      e.announcers.push(peer)
      e.hops.push(hops)
      e.routed.push(routed)
      return 'added'
    }
    if (this.entries.size >= this.maxEntries) return 'full'
    const mine = this.created.get(peer) ?? 0
    if (mine >= this.maxPerPeer) return 'quota'
    this.created.set(peer, mine + 1)
    this.entries.set(id, {
      id,
      announcers: [peer],
      hops: [hops],
      routed: [routed],
      creator: peer,
      attempts: 0,
      deadline,
    })
    return 'created'
  }

  delete(id: string): void {
    const e = this.entries.get(id)
    if (!e) return
    this.entries.delete(id)
    const n = this.created.get(e.creator)
    if (n !== undefined) {
      if (n <= 1) this.created.delete(e.creator)
      else this.created.set(e.creator, n - 1)
    }
  }

  /** Entries whose deadline has come. */
  due(now: number): MissingEntry[] {
    const out: MissingEntry[] = []
    for (const e of this.entries.values()) if (e.deadline <= now) out.push(e)
    return out
  }

  /** The link to `peer` closed: it can no longer answer a GRAFT. */
  removePeer(peer: string): void {
    for (const e of this.entries.values()) {
      const i = e.announcers.indexOf(peer)
      if (i >= 0) {
        e.announcers.splice(i, 1)
        e.hops.splice(i, 1)
        e.routed.splice(i, 1)
      }
    }
  }
}
