/**
 * A have-map: one bit per piece, the wire's order (BitTorrent's): piece 0 is
 * the high bit of byte 0. Spare bits past the last piece are zero, and a
 * bitfield from a peer with spare bits set, or of the wrong length, is refused.
 */
export class Bitfield {
  readonly bytes: Uint8Array
  private ones = 0

  constructor(readonly size: number) {
    this.bytes = new Uint8Array(Math.ceil(size / 8))
  }

  /** A copy of `bytes` as a bitfield of `size` bits; null when the length or a spare bit is wrong. */
  static from(bytes: Uint8Array, size: number): Bitfield | null {
    if (bytes.length !== Math.ceil(size / 8)) return null
    const spare = bytes.length * 8 - size
    if (spare > 0 && ((bytes[bytes.length - 1] as number) & ((1 << spare) - 1)) !== 0) return null
    const b = new Bitfield(size)
    b.bytes.set(bytes)
    let n = 0
    for (const x of bytes) n += popcount(x)
    b.ones = n
    return b
  }

  get count(): number {
    return this.ones
  }

  get complete(): boolean {
    return this.ones === this.size
  }

  has(i: number): boolean {
    return i >= 0 && i < this.size && (((this.bytes[i >> 3] as number) >> (7 - (i & 7))) & 1) === 1
  }

  /** Set bit i; returns whether it was clear. */
  set(i: number): boolean {
    if (i < 0 || i >= this.size || this.has(i)) return false
    this.bytes[i >> 3] = (this.bytes[i >> 3] as number) | (1 << (7 - (i & 7)))
    this.ones++
    return true
  }

  /** Clear bit i; returns whether it was set. */
  clear(i: number): boolean {
    if (!this.has(i)) return false
    this.bytes[i >> 3] = (this.bytes[i >> 3] as number) & ~(1 << (7 - (i & 7)))
    this.ones--
    return true
  }

  /** The indices of the set bits, in order. */
  *indices(): IterableIterator<number> {
    for (let i = 0; i < this.size; i++) if (this.has(i)) yield i
  }
}

function popcount(x: number): number {
  let n = 0
  for (let v = x; v; v &= v - 1) n++
  return n
}
