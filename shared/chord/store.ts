/**
 * The records one node holds: owned DHT records (one per author and key;
 * the highest sequence wins, see records.ts) and provider records (one per
 * key and provider, newest issue time wins), under bounds counted both in
 * records and in bytes: records in all, bytes in all (records and provider
 * records), records and bytes per author, provider records in all, per
 * provider and per key (a full key admits a new provider only in place of
 * an expired record). A full store gives every author an equal share, as
 * the table does: a record of an author who holds less than the heaviest
 * author takes the place of that author's oldest records (`evicted`), so a
 * few throw-away identities cannot fill a node for good. Pure bookkeeping:
 * the caller has already checked signatures.
 *
 * Each entry remembers its ring position and when it was last `confirmed`:
 * when this node was its primary, or the primary offered it to us as a
 * replica. Entries unconfirmed for long are handed off (chord.ts).
 */
import type { ProviderWire, RecordWire } from './messages.ts'
import { compareRecords, recordSlot } from './records.ts'

export interface StoreLimits {
  maxRecords: number
  maxStoreBytes: number
  perAuthorQuota: number
  perAuthorBytes: number
  maxProviderRecords: number
  perProviderQuota: number
  maxProvidersPerKey: number
}

export interface StoredRecord {
  rec: RecordWire
  /** Ring position: id160(utf8(recordSlot(rec.a, rec.k))). */
  pos: string
  /** Last time (local ms) we were known to be in this record's replica set. */
  confirmed: number
  /** Bytes it counts for. */
  size: number
}

export interface StoredProvider {
  rec: ProviderWire
  pos: string
  confirmed: number
}

/** new / updated: stored; same: already held; stale: ours is newer; quota / full: refused. */
export type PutResult = 'new' | 'updated' | 'same' | 'stale' | 'quota' | 'full'

export interface RecordStore {
  /** By recordSlot(author, key). */
  readonly records: ReadonlyMap<string, StoredRecord>
  /** key -> provider id -> record. */
  readonly providers: ReadonlyMap<string, ReadonlyMap<string, StoredProvider>>
  getRecord(author: string, key: string): StoredRecord | undefined
  putRecord(rec: RecordWire, pos: string, now: number): PutResult
  deleteRecord(author: string, key: string): void
  getProvider(key: string, provider: string): StoredProvider | undefined
  putProvider(rec: ProviderWire, pos: string, now: number): PutResult
  deleteProvider(key: string, provider: string): void
  /** Unexpired provider records for `key`. */
  providersOf(key: string, now: number): ProviderWire[]
  /** Drop expired provider records and tombstones signed more than `tombstoneTtlMs` ago; returns how many. */
  gc(now: number, tombstoneTtlMs: number): number
  readonly recordCount: number
  readonly providerCount: number
  /** Bytes of records and provider records held. */
  readonly bytes: number
  /** Records and bytes held for `author`. */
  authorUsage(author: string): { records: number; bytes: number }
  /** Records evicted to give an author its fair share of a full store. */
  readonly evicted: number
}

/** What an entry costs beyond its key and value: ids, keys, signature, map entries. */
const OVERHEAD = 160

export function recordSize(rec: RecordWire): number {
  return rec.vb.length + rec.k.length * 2 + OVERHEAD
}

export function providerSize(rec: ProviderWire): number {
  return rec.k.length * 2 + OVERHEAD
}

export function createRecordStore(limits: StoreLimits): RecordStore {
  const records = new Map<string, StoredRecord>()
  const providers = new Map<string, Map<string, StoredProvider>>()
  /** Per author: records, bytes, and the keys of its records (oldest first). */
  const perAuthor = new Map<string, { records: number; bytes: number; keys: Set<string> }>()
  const perProvider = new Map<string, number>()
  let bytes = 0
  let providerCount = 0
  let evicted = 0

  const usage = (a: string) => perAuthor.get(a) ?? { records: 0, bytes: 0, keys: new Set<string>() }
  const addUsage = (a: string, key: string, n: number, size: number) => {
    const u = perAuthor.get(a) ?? { records: 0, bytes: 0, keys: new Set<string>() }
    u.records += n
    u.bytes += size
    if (n > 0) u.keys.add(key)
    else if (n < 0) u.keys.delete(key)
    if (u.records <= 0) perAuthor.delete(a)
    else perAuthor.set(a, u)
  }

  /**
   * A full store makes room for `need` more bytes and `add` more records of `author` by evicting the
   * heaviest author's oldest records, as long as that author holds more bytes than `author` would
   * after the put. False (nothing evicted beyond what fairness allowed) when it cannot.
   */
  function makeRoom(author: string, need: number, add: number): boolean {
    const after = usage(author).bytes + need
    const full = () => records.size + add > limits.maxRecords || bytes + need > limits.maxStoreBytes
    let heavy: [string, { bytes: number; keys: Set<string> }] | undefined
    while (full()) {
      if (!heavy || heavy[1].bytes <= after) {
        heavy = undefined
        for (const e of perAuthor) if (e[0] !== author && (!heavy || e[1].bytes > heavy[1].bytes)) heavy = e
        if (!heavy || heavy[1].bytes <= after) return false
      }
      const key = heavy[1].keys.values().next()
      if (key.done) return false
      removeRecord(heavy[0], key.value)
      evicted++
    }
    return true
  }
  const inc = (m: Map<string, number>, k: string, n: number) => {
    const v = (m.get(k) ?? 0) + n
    if (v <= 0) m.delete(k)
    else m.set(k, v)
  }

  function removeRecord(author: string, key: string): void {
    const slot = recordSlot(author, key)
    const old = records.get(slot)
    if (!old) return
    records.delete(slot)
    bytes -= old.size
    addUsage(author, key, -1, -old.size)
  }

  function removeProvider(key: string, provider: string): void {
    const m = providers.get(key)
    const old = m?.get(provider)
    if (!m || !old) return
    m.delete(provider)
    if (m.size === 0) providers.delete(key)
    providerCount--
    bytes -= providerSize(old.rec)
    inc(perProvider, provider, -1)
  }

  return {
    records,
    providers,
    getRecord: (author, key) => records.get(recordSlot(author, key)),
    putRecord(rec, pos, now) {
      const old = records.get(recordSlot(rec.a, rec.k))
      if (old) {
        const c = compareRecords(rec, old.rec)
        if (c === 0) return 'same'
        if (c < 0) return 'stale'
      }
      const size = recordSize(rec)
      const oldSize = old?.size ?? 0
      const u = usage(rec.a)
      if (!old && u.records >= limits.perAuthorQuota) return 'quota'
      if (u.bytes - oldSize + size > limits.perAuthorBytes) return 'quota'
      const full =
        (!old && records.size >= limits.maxRecords) || bytes - oldSize + size > limits.maxStoreBytes
      if (full && !makeRoom(rec.a, size - oldSize, old ? 0 : 1)) return 'full'
      removeRecord(rec.a, rec.k)
      records.set(recordSlot(rec.a, rec.k), { rec, pos, confirmed: old?.confirmed ?? now, size })
      bytes += size
      addUsage(rec.a, rec.k, 1, size)
      return old ? 'updated' : 'new'
    },
    deleteRecord: removeRecord,
    getProvider: (key, provider) => providers.get(key)?.get(provider),
    putProvider(rec, pos, now) {
      let m = providers.get(rec.k)
      const old = m?.get(rec.p)
      if (old) {
        if (rec.t === old.rec.t) return 'same'
        if (rec.t < old.rec.t) return 'stale'
        m?.set(rec.p, { rec, pos, confirmed: old.confirmed })
        return 'updated'
      }
      const size = providerSize(rec)
      if ((perProvider.get(rec.p) ?? 0) >= limits.perProviderQuota) return 'quota'
      if (providerCount >= limits.maxProviderRecords || bytes + size > limits.maxStoreBytes) return 'full'
      if (m && m.size >= limits.maxProvidersPerKey) {
        // A full key keeps its live providers (they refresh in place): only an expired record gives way.
        // Preferring longer lifetimes let any 256 throw-away identities, signing for a day, evict them all.
        let victim: StoredProvider | undefined
        for (const x of m.values())
          if (!victim || x.rec.t + x.rec.ttl < victim.rec.t + victim.rec.ttl) victim = x
        if (!victim || victim.rec.t + victim.rec.ttl > now) return 'full'
        removeProvider(rec.k, victim.rec.p)
        m = providers.get(rec.k)
      }
      if (!m) {
        m = new Map()
        providers.set(rec.k, m)
      }
      m.set(rec.p, { rec, pos, confirmed: now })
      providerCount++
      bytes += size
      inc(perProvider, rec.p, 1)
      return 'new'
    },
    deleteProvider: removeProvider,
    providersOf(key, now) {
      const out: ProviderWire[] = []
      for (const x of providers.get(key)?.values() ?? []) if (x.rec.t + x.rec.ttl > now) out.push(x.rec)
      return out
    },
    gc(now, tombstoneTtlMs) {
      let n = 0
      for (const [key, m] of [...providers]) {
        for (const x of [...m.values()]) {
          if (x.rec.t + x.rec.ttl <= now) {
            removeProvider(key, x.rec.p)
            n++
          }
        }
      }
      for (const x of [...records.values()]) {
        if (x.rec.d && x.rec.t + tombstoneTtlMs <= now) {
          removeRecord(x.rec.a, x.rec.k)
          n++
        }
      }
      return n
    },
    get recordCount() {
      return records.size
    },
    get providerCount() {
      return providerCount
    },
    get bytes() {
      return bytes
    },
    authorUsage: (author) => {
      const u = usage(author)
      return { records: u.records, bytes: u.bytes }
    },
    get evicted() {
      return evicted
    },
  }
}
