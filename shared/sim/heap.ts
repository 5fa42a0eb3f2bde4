/**
 * A binary min-heap ordered by (time, seq): the simulator's event queue.
 * Each entry's time and seq are kept beside it in typed arrays, so sifting
 * compares numbers in two arrays instead of reading events scattered over
 * the heap (with thousands of messages in flight, each such read was a
 * cache miss).
 */
export interface Timed {
  time: number
  seq: number
}

export class EventHeap<T extends Timed> {
  private items: T[] = []
  private times = new Float64Array(1024)
  private seqs = new Float64Array(1024)

  get size(): number {
    return this.items.length
  }

  peek(): T | undefined {
    return this.items[0]
  }

  push(x: T): void {
    const a = this.items
    let i = a.length
    if (i === this.times.length) this.grow()
    a.push(x)
    const { times, seqs } = this
    const t = x.time
    const s = x.seq
    // Sift up: parents later than x move down into the hole.
    while (i > 0) {
      const p = (i - 1) >> 1
      const pt = times[p] as number
      if (!(t < pt || (t === pt && s < (seqs[p] as number)))) break
      a[i] = a[p] as T
      times[i] = pt
      seqs[i] = seqs[p] as number
      i = p
    }
    a[i] = x
    times[i] = t
    seqs[i] = s
  }

  pop(): T | undefined {
    const a = this.items
    if (a.length === 0) return undefined
    const top = a[0] as T
    const last = a.pop() as T
    const n = a.length
    if (n > 0) {
      const { times, seqs } = this
      const t = times[n] as number
      const s = seqs[n] as number
      // Sift the last entry down from the root: earlier children move up into the hole.
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        const r = l + 1
        let m = l
        if (r < n) {
          const lt = times[l] as number
          const rt = times[r] as number
          if (rt < lt || (rt === lt && (seqs[r] as number) < (seqs[l] as number))) m = r
        }
        const mt = times[m] as number
        if (!(mt < t || (mt === t && (seqs[m] as number) < s))) break
        a[i] = a[m] as T
        times[i] = mt
        seqs[i] = seqs[m] as number
        i = m
      }
      a[i] = last
      times[i] = t
      seqs[i] = s
    }
    return top
  }

  private grow(): void {
    const times = new Float64Array(2 * this.times.length)
    times.set(this.times)
    this.times = times
    const seqs = new Float64Array(2 * this.seqs.length)
    seqs.set(this.seqs)
    this.seqs = seqs
  }
}
