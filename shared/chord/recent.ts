/**
 * The ids heard from lately (succ-check.ts): the last `capacity` distinct
 * ids touched, the least recently touched forgotten first. The same as a
 * Set that moves an id to its end on each touch and drops its first entry
 * past `capacity`, in a third of the memory: a Set whose entries keep moving
 * holds a table of twice its size (every move leaves a deleted entry behind
 * until the table is rebuilt), ~40 bytes an id, and every simulated node
 * keeps one of 1,024. Here an id costs its slot (8 bytes), its place in the
 * recency list and in an open-addressing index (two 16-bit numbers each).
 * The arrays grow as ids come, up to `capacity`.
 */
export class RecentIds {
  /** Slot -> id; slots are taken in order, then reused from the least recent. */
  private readonly keys: string[] = []
  /** Recency list over slots: prev/next slot, -1 at the ends. */
  private prev = new Int16Array(0)
  private next = new Int16Array(0)
  /** Open addressing with linear probing, twice the slots: slot + 1, 0 when empty. */
  private index = new Int16Array(2)
  private mask = 1
  private oldest = -1
  private newest = -1
  private used = 0

  constructor(readonly capacity: number) {
    if (!(capacity >= 1 && capacity <= 16_384)) throw new RangeError('RecentIds: capacity 1 … 16,384')
  }

  get size(): number {
    return this.used
  }

  has(x: string): boolean {
    return this.find(x) >= 0
  }

  /** `x` was heard: it becomes the most recent (the least recent is forgotten when full). */
  touch(x: string): void {
    const at = this.find(x)
    if (at >= 0) {
      const slot = (this.index[at] as number) - 1
      if (slot !== this.newest) {
        this.unlink(slot)
        this.append(slot)
      }
      return
    }
    let slot: number
    if (this.used < this.capacity) {
      if (this.used === this.prev.length) this.grow()
      slot = this.used++
    } else {
      slot = this.oldest
      this.unlink(slot)
      this.remove(this.find(this.keys[slot] as string))
    }
    this.keys[slot] = x
    this.index[this.free(x)] = slot + 1
    this.append(slot)
  }

  /** Room for twice the slots (up to capacity), the index rebuilt. */
  private grow(): void {
    const n = Math.min(this.capacity, Math.max(16, 2 * this.prev.length))
    const prev = new Int16Array(n)
    prev.set(this.prev)
    this.prev = prev
    const next = new Int16Array(n)
    next.set(this.next)
    this.next = next
    let size = 2
    while (size < 2 * n) size *= 2
    this.index = new Int16Array(size)
    this.mask = size - 1
    for (let slot = 0; slot < this.used; slot++) this.index[this.free(this.keys[slot] as string)] = slot + 1
  }

  /** FNV-1a of the last 12 characters: node ids are random throughout (and short test ids differ at the end). */
  private hash(x: string): number {
    let h = 0x811c9dc5
    for (let i = Math.max(0, x.length - 12); i < x.length; i++) h = Math.imul(h ^ x.charCodeAt(i), 0x01000193)
    return (h ^ (h >>> 15)) & this.mask
  }

  /** Where `x` is in the index, or -1. */
  private find(x: string): number {
    for (let i = this.hash(x); ; i = (i + 1) & this.mask) {
      const s = this.index[i] as number
      if (s === 0) return -1
      if (this.keys[s - 1] === x) return i
    }
  }

  /** The empty place where `x` (not in the index) goes. */
  private free(x: string): number {
    let i = this.hash(x)
    while (this.index[i] !== 0) i = (i + 1) & this.mask
    return i
  }

  /** Empty place `i`, moving back the entries after it that would no longer be found (no tombstones). */
  private remove(i: number): void {
    const { index, mask } = this
    index[i] = 0
    for (let j = (i + 1) & mask; index[j] !== 0; j = (j + 1) & mask) {
      const k = this.hash(this.keys[(index[j] as number) - 1] as string)
      // The entry at j stays when its home k lies cyclically in (i, j].
      if (i < j ? i < k && k <= j : i < k || k <= j) continue
      index[i] = index[j] as number
      index[j] = 0
      i = j
    }
  }

  private unlink(slot: number): void {
    const p = this.prev[slot] as number
    const n = this.next[slot] as number
    if (p >= 0) this.next[p] = n
    else this.oldest = n
    if (n >= 0) this.prev[n] = p
    else this.newest = p
  }

  private append(slot: number): void {
    this.prev[slot] = this.newest
    this.next[slot] = -1
    if (this.newest >= 0) this.next[this.newest] = slot
    else this.oldest = slot
    this.newest = slot
  }
}
