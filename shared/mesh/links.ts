/**
 * Plumtree's two sets of links: eager links carry full payloads at once (the
 * broadcast tree), lazy links carry only IHAVE announcements. A link is in
 * exactly one set while it is up; every link starts eager.
 */
export class LinkSets {
  readonly eager = new Set<string>()
  readonly lazy = new Set<string>()
  /**
   * An eager link closed since a payload last came here unasked: this node's
   * side of the tree may be cut off from the rest (repair.ts GRAFTs at once).
   */
  cut = false

  constructor(private readonly self: string) {}

  /** A link opened: it starts eager (on the tree). */
  add(peer: string): void {
    if (peer === this.self) return
    this.lazy.delete(peer)
    this.eager.add(peer)
  }

  remove(peer: string): void {
    if (this.eager.delete(peer)) this.cut = true
    else if (!this.lazy.delete(peer)) return
    this.onMove?.(peer)
  }

  /** Links up, eager and lazy. */
  get size(): number {
    return this.eager.size + this.lazy.size
  }

  has(peer: string): boolean {
    return this.eager.has(peer) || this.lazy.has(peer)
  }

  /** Put a live link on the tree (a GRAFT, or a payload it brought first). */
  makeEager(peer: string): void {
    if (!this.lazy.delete(peer)) return
    this.eager.add(peer)
    this.onMove?.(peer)
  }

  /** Take a live link off the tree (a PRUNE either way). */
  makeLazy(peer: string): void {
    if (!this.eager.delete(peer)) return
    this.lazy.add(peer)
    this.onMove?.(peer)
  }

  /** Called when a live link changes sets or goes away (the tree optimisation's samples about it are then void). */
  onMove: ((peer: string) => void) | undefined

  all(): string[] {
    return [...this.eager, ...this.lazy]
  }
}
