/**
 * The replica's storage: one entry per key (the winner so far, tombstones
 * included), with what anti-entropy and the limits need kept up to date on
 * every change rather than recomputed:
 *
 * - per bucket, the XOR of its entries' fingerprints (64 bits each), so the
 *   digest of the whole table is 64 × 8 bytes and its root 8 bytes;
 * - per bucket, its keys, so a bucket's version list costs its size only;
 * - the XOR and count of the live (non-tombstone) entries, for `digest()`;
 * - bytes and entries in total and per author, and each author's keys, for the
 *   table bounds and the authors' shares (quota.ts).
 *
 * XOR is order-free, so two replicas holding the same entries have the same
 * hashes whatever order they learned them in.
 */
import { toHex } from '../bytes.ts'
import { BUCKETS, type Entry, writeU32 } from './entry.ts'

export interface Usage {
  entries: number
  bytes: number
}

const EMPTY: ReadonlySet<string> = new Set()

export class Table {
  private readonly map = new Map<string, Entry>()
  private readonly hashes = new Uint32Array(BUCKETS * 2)
  private readonly bucketKeys: Set<string>[] = Array.from({ length: BUCKETS }, () => new Set<string>())
  private readonly tombstoneKeys = new Set<string>()
  private readonly authors = new Map<string, Usage>()
  private readonly authorKeys = new Map<string, Set<string>>()
  private live0 = 0
  private live1 = 0
  private liveCount = 0
  private totalBytes = 0

  get size(): number {
    return this.map.size
  }

  get bytes(): number {
    return this.totalBytes
  }

  /** Entries that are not tombstones. */
  get liveSize(): number {
    return this.liveCount
  }

  get(key: string): Entry | undefined {
    return this.map.get(key)
  }

  values(): IterableIterator<Entry> {
    return this.map.values()
  }

  /** Keys of tombstones (for collection). */
  tombstones(): string[] {
    return [...this.tombstoneKeys]
  }

  /** Entries and bytes held for `author`. */
  usage(author: string): Usage {
    return this.authors.get(author) ?? { entries: 0, bytes: 0 }
  }

  /** Every author holding entries, with its usage (live objects: do not change them). */
  authorUsage(): IterableIterator<[string, Readonly<Usage>]> {
    return this.authors.entries()
  }

  /** Number of authors holding entries. */
  get authorCount(): number {
    return this.authors.size
  }

  /** Keys whose entry is by `author`. */
  keysOf(author: string): ReadonlySet<string> {
    return this.authorKeys.get(author) ?? EMPTY
  }

  /** Store `e`, replacing whatever the table held for its key. */
  put(e: Entry): void {
    const old = this.map.get(e.key)
    if (old) this.unaccount(old)
    this.map.set(e.key, e)
    this.account(e)
  }

  /** Remove the entry for `key`; returns it. */
  remove(key: string): Entry | undefined {
    const old = this.map.get(key)
    if (!old) return undefined
    this.map.delete(key)
    this.unaccount(old)
    return old
  }

  /** The entries of one bucket. */
  bucket(i: number): Entry[] {
    const out: Entry[] = []
    for (const k of this.bucketKeys[i] ?? []) {
      const e = this.map.get(k)
      if (e) out.push(e)
    }
    return out
  }

  /** Bucket `i`'s hash as two 32-bit halves. */
  bucketHash(i: number): [number, number] {
    return [this.hashes[i * 2] as number, this.hashes[i * 2 + 1] as number]
  }

  /** All bucket hashes, 8 bytes each, big-endian: the `b` message. */
  bucketBytes(): Uint8Array {
    const out = new Uint8Array(BUCKETS * 8)
    for (let i = 0; i < BUCKETS * 2; i++) writeU32(out, i * 4, this.hashes[i] as number)
    return out
  }

  /** XOR of every bucket hash, 8 bytes: the `s` message. */
  rootBytes(): Uint8Array {
    let a = 0
    let b = 0
    for (let i = 0; i < BUCKETS; i++) {
      a ^= this.hashes[i * 2] as number
      b ^= this.hashes[i * 2 + 1] as number
    }
    const out = new Uint8Array(8)
    writeU32(out, 0, a >>> 0)
    writeU32(out, 4, b >>> 0)
    return out
  }

  /** Fingerprint of the live entries and their count: equal on two replicas ⇔ same live table. */
  liveDigest(): string {
    const out = new Uint8Array(8)
    writeU32(out, 0, this.live0 >>> 0)
    writeU32(out, 4, this.live1 >>> 0)
    return `${toHex(out)}:${this.liveCount}`
  }

  private account(e: Entry): void {
    this.hashes[e.bucket * 2] = ((this.hashes[e.bucket * 2] as number) ^ e.fp0) >>> 0
    this.hashes[e.bucket * 2 + 1] = ((this.hashes[e.bucket * 2 + 1] as number) ^ e.fp1) >>> 0
    this.bucketKeys[e.bucket]?.add(e.key)
    if (e.tombstone) this.tombstoneKeys.add(e.key)
    else {
      this.live0 ^= e.fp0
      this.live1 ^= e.fp1
      this.liveCount++
    }
    this.totalBytes += e.size
    const u = this.authors.get(e.author)
    if (u) {
      u.entries++
      u.bytes += e.size
    } else this.authors.set(e.author, { entries: 1, bytes: e.size })
    const keys = this.authorKeys.get(e.author)
    if (keys) keys.add(e.key)
    else this.authorKeys.set(e.author, new Set([e.key]))
  }

  private unaccount(e: Entry): void {
    this.hashes[e.bucket * 2] = ((this.hashes[e.bucket * 2] as number) ^ e.fp0) >>> 0
    this.hashes[e.bucket * 2 + 1] = ((this.hashes[e.bucket * 2 + 1] as number) ^ e.fp1) >>> 0
    if (!this.map.has(e.key)) this.bucketKeys[e.bucket]?.delete(e.key)
    if (e.tombstone) this.tombstoneKeys.delete(e.key)
    else {
      this.live0 ^= e.fp0
      this.live1 ^= e.fp1
      this.liveCount--
    }
    this.totalBytes -= e.size
    const u = this.authors.get(e.author)
    if (u) {
      u.entries--
      u.bytes -= e.size
      if (u.entries <= 0) this.authors.delete(e.author)
    }
    const keys = this.authorKeys.get(e.author)
    if (keys) {
      keys.delete(e.key)
      if (keys.size === 0) this.authorKeys.delete(e.author)
    }
  }
}
