/**
 * The simulator's links (sim.ts): per node, a map from each neighbour to the
 * link's index, the same at both ends; per link, its latency and the last
 * delivery scheduled each way, in one Float64Array off the collected heap.
 *
 * Built for 10,000 nodes that link to every peer they ever send to (about a
 * million links): a link costs its two map entries and 24 bytes, where an
 * object per link (three boxed doubles, its ends) and a list of all links in
 * creation order cost ~150 bytes more. That order, which partition and heal
 * walk, is the order of the indices (a link made again gets a new one).
 */
export class Links {
  /** node -> neighbour -> link index. */
  private readonly adj = new Map<string, Map<string, number>>()
  /** Link i: [3i] latency, [3i + 1] last delivery from the lower id, [3i + 2] from the higher. */
  private times = new Float64Array(3 * 1024)
  private made = 0

  /** `id`'s neighbours and their link indices (made empty when it has none yet). */
  of(id: string): Map<string, number> {
    let m = this.adj.get(id)
    if (!m) {
      m = new Map()
      this.adj.set(id, m)
    }
    return m
  }

  has(a: string, b: string): boolean {
    return this.adj.get(a)?.has(b) ?? false
  }

  /** How many links `id` has. */
  count(id: string): number {
    return this.adj.get(id)?.size ?? 0
  }

  /** Make a link of `latency` ms between a and b (not yet linked); its index. */
  add(a: string, b: string, latency: number): number {
    const i = this.made++
    if (3 * this.made > this.times.length) {
      const t = new Float64Array(2 * this.times.length)
      t.set(this.times)
      this.times = t
    }
    this.times[3 * i] = latency
    this.of(a).set(b, i)
    this.of(b).set(a, i)
    return i
  }

  /** Remove the link between a and b; false when there was none. */
  remove(a: string, b: string): boolean {
    if (!this.adj.get(a)?.delete(b)) return false
    this.adj.get(b)?.delete(a)
    return true
  }

  /** Forget `id`'s (empty) neighbour map. */
  forget(id: string): void {
    this.adj.delete(id)
  }

  /**
   * Schedule a delivery on link `i` leaving at `left`, from the lower id
   * (`up`) or the higher: after the link's latency and not before the last
   * one that way (FIFO). Returns its time.
   */
  schedule(i: number, up: boolean, left: number): number {
    const k = 3 * i + (up ? 1 : 2)
    const time = Math.max(left + (this.times[3 * i] as number), this.times[k] as number)
    this.times[k] = time
    return time
  }

  /** Every link as [index, lower id, higher id], in the order they were made. */
  all(): [number, string, string][] {
    const out: [number, string, string][] = []
    for (const [a, m] of this.adj) for (const [b, i] of m) if (a < b) out.push([i, a, b])
    return out.sort((x, y) => x[0] - y[0])
  }
}
