/**
 * The node's open links, one per peer, and what a link must offer the node
 * (`NodeLink`: the production `Link` over WebRTC or the relay has it; an
 * in-memory test transport can give its own).
 *
 * One link per peer: when a second link to a peer opens, a direct one beats
 * a relayed one, and otherwise the link already open stays (`adopt`). The
 * traffic of links that closed is kept in `closedTotals`, so the node's
 * totals never go down.
 */
import type { Frame } from '../../shared/wire/frame.ts'
import type { LinkControl, LinkEvents, LinkState } from '../links/link.ts'

export interface LinkStats {
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
}

/** What the node uses of a link (client/links/link.ts `Link` is one). */
export interface NodeLink {
  readonly peer: string
  readonly transport: 'webrtc' | 'relay'
  readonly state: LinkState
  /** Smoothed round-trip time in ms (NaN until measured). */
  readonly rtt: number
  /** Both ends want this link in the broadcast mesh. */
  readonly isMesh: boolean
  /** We want this link in the mesh. */
  readonly localMesh: boolean
  readonly openedAt: number
  /** When a frame last went out on it (idle links close). */
  readonly lastUsed: number
  readonly stats: LinkStats
  send(frame: Frame): Promise<void>
  sendControl(c: LinkControl): Promise<void>
  /** Change whether we want it in the mesh, and tell the other end. */
  setMesh(mesh: boolean): void
  close(reason?: string): void
  on<K extends keyof LinkEvents>(event: K, fn: (payload: LinkEvents[K]) => void): () => void
}

export class LinkTable {
  private readonly byPeer = new Map<string, NodeLink>()
  /** Traffic of the links that closed. */
  readonly closedTotals: LinkStats = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }

  get size(): number {
    return this.byPeer.size
  }

  get(peer: string): NodeLink | undefined {
    return this.byPeer.get(peer)
  }

  has(peer: string): boolean {
    return this.byPeer.has(peer)
  }

  values(): IterableIterator<NodeLink> {
    return this.byPeer.values()
  }

  isOpen(peer: string): boolean {
    return this.byPeer.get(peer)?.state === 'open'
  }

  /** Open links now (mesh or not). */
  openPeers(): string[] {
    const out: string[] = []
    for (const l of this.byPeer.values()) if (l.state === 'open') out.push(l.peer)
    return out
  }

  /** Peers whose link carries the mesh now. */
  meshNeighbours(): string[] {
    const out: string[] = []
    for (const l of this.byPeer.values()) if (l.state === 'open' && l.isMesh) out.push(l.peer)
    return out
  }

  /**
   * An open link to take: returns the link kept for its peer. A direct link
   * replaces an open relayed one (closed 'upgraded', returned as `replaced`);
   * any other second link is closed ('duplicate') and the open one kept.
   */
  adopt(link: NodeLink): { kept: NodeLink; added: boolean; replaced?: NodeLink } {
    const old = this.byPeer.get(link.peer)
    if (old && old !== link && old.state === 'open') {
      if (old.transport === 'relay' && link.transport === 'webrtc') {
        // The new link takes the peer's place first: the relayed one's close is then not a
        // departure (`remove` no longer finds it), so the peer stays connected throughout.
        this.byPeer.set(link.peer, link)
        for (const k of Object.keys(this.closedTotals) as (keyof LinkStats)[])
          this.closedTotals[k] += old.stats[k]
        old.close('upgraded')
        return { kept: link, added: true, replaced: old }
      }
      link.close('duplicate')
      return { kept: old, added: false }
    }
    this.byPeer.set(link.peer, link)
    return { kept: link, added: true }
  }

  /** `link` closed: forget it if it is the one held for its peer (true), adding its traffic to the totals. */
  remove(link: NodeLink): boolean {
    if (this.byPeer.get(link.peer) !== link) return false
    this.byPeer.delete(link.peer)
    for (const k of Object.keys(this.closedTotals) as (keyof LinkStats)[])
      this.closedTotals[k] += link.stats[k]
    return true
  }

  /** Traffic of every link, open and closed. */
  totals(): LinkStats {
    const t = { ...this.closedTotals }
    for (const l of this.byPeer.values()) {
      t.messagesIn += l.stats.messagesIn
      t.messagesOut += l.stats.messagesOut
      t.bytesIn += l.stats.bytesIn
      t.bytesOut += l.stats.bytesOut
    }
    return t
  }
}
