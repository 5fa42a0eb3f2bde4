/**
 * The root's view of one topic's tree: who is in it, under which parent, and
 * where a newcomer goes. The root is the node that owns the topic's key on
 * the ring; it sits at the top of the tree (depth 0) and places members so the
 * tree stays shallow: a newcomer goes under the shallowest node with room
 * (fewer than `fanout` children), the root first. With fanout 4, 20 members
 * are at most 3 hops from the root.
 *
 * Soft state: every member refreshes its entry (a JOIN naming its parent)
 * every `refreshMs`; an entry not refreshed for 3 periods goes. A new root
 * (after the old one crashed, or when ownership moved) learns the tree from
 * those refreshes; a refresh naming a parent the root has not heard of yet is
 * believed (it refreshes too, soon), but one whose chain of parents loops
 * back to the member itself, or that would put a node under its own subtree,
 * is answered with a new parent.
 *
 * Bounded: at most `maxMembers` per topic (a JOIN past it is refused).
 */

export interface Member {
  parent: string
  /** Last refresh, local clock. */
  seen: number
}

export class TopicTree {
  readonly members = new Map<string, Member>()

  constructor(
    readonly root: string,
    readonly fanout: number,
    readonly maxMembers: number,
  ) {}

  /** Children per parent, counted over live entries. */
  private childCounts(): Map<string, number> {
    const n = new Map<string, number>()
    for (const m of this.members.values()) n.set(m.parent, (n.get(m.parent) ?? 0) + 1)
    return n
  }

  /** Depth of `id` (root 0), or Infinity when its chain does not reach the root (unknown, or a loop). */
  depth(id: string): number {
    let d = 0
    let at = id
    const seen = new Set<string>()
    while (at !== this.root) {
      if (seen.has(at)) return Number.POSITIVE_INFINITY
      seen.add(at)
      const m = this.members.get(at)
      if (!m) return Number.POSITIVE_INFINITY
      at = m.parent
      d++
    }
    return d
  }

  /** Is `node` in `id`'s subtree (or `id` itself)? */
  private under(node: string, id: string): boolean {
    let at = node
    for (let i = 0; i <= this.members.size; i++) {
      if (at === id) return true
      if (at === this.root) return false
      const m = this.members.get(at)
      if (!m) return false
      at = m.parent
    }
    return true // a loop: treat as under, never place there
  }

  /**
   * A JOIN or refresh from `member`, which has `parent` now (null: none yet),
   * and asks not to be put under `avoid`. Returns the parent it should have, or
   * null when the topic is full.
   */
  join(member: string, parent: string | null, avoid: readonly string[], now: number): string | null {
    const known = this.members.get(member)
    if (!known && this.members.size >= this.maxMembers) return null
    if (parent !== null && parent !== member && !avoid.includes(parent)) {
      // A refresh: keep the parent unless that makes a loop or overfills a known parent.
      const entry = { parent, seen: now }
      const before = this.members.get(member)
      this.members.set(member, entry)
      const loops = this.depth(member) === Number.POSITIVE_INFINITY && this.loops(member)
      const over = (this.childCounts().get(parent) ?? 0) > this.fanout + 1
      if (!loops && !over) return parent
      if (before) this.members.set(member, before)
      else this.members.delete(member)
    }
    const placed = this.place(member, avoid)
    this.members.set(member, { parent: placed, seen: now })
    return placed
  }

  /** Does `member`'s chain of parents come back to it? */
  private loops(member: string): boolean {
    let at = this.members.get(member)?.parent
    for (let i = 0; at !== undefined && i <= this.members.size; i++) {
      if (at === member) return true
      if (at === this.root) return false
      at = this.members.get(at)?.parent
    }
    return false
  }

  /** The shallowest node with room that is not in `member`'s subtree nor avoided; the root when none. */
  private place(member: string, avoid: readonly string[]): string {
    const counts = this.childCounts()
    if ((counts.get(this.root) ?? 0) < this.fanout && !avoid.includes(this.root)) return this.root
    let best: string | null = null
    let bestDepth = Number.POSITIVE_INFINITY
    let bestCount = Number.POSITIVE_INFINITY
    for (const id of this.members.keys()) {
      if (id === member || avoid.includes(id)) continue
      const c = counts.get(id) ?? 0
      if (c >= this.fanout) continue
      const d = this.depth(id)
      if (d === Number.POSITIVE_INFINITY) continue
      if (d < bestDepth || (d === bestDepth && c < bestCount)) {
        if (this.under(id, member)) continue
        best = id
        bestDepth = d
        bestCount = c
      }
    }
    return best ?? this.root
  }

  leave(member: string): void {
    this.members.delete(member)
  }

  /** Drop entries not refreshed since `before`. */
  expire(before: number): void {
    for (const [id, m] of this.members) if (m.seen < before) this.members.delete(id)
  }
}
