/**
 * Records owned by their author, as BitTorrent's BEP 44 mutable items: a
 * record (key, value bytes, tombstone flag, author, author's public key,
 * sequence number, signing time, signature) lives in its author's
 * namespace, at id160(utf8(author ":" key)), and only the author's key can
 * sign it (records.ts).
 *
 * Writing (`put`, `delete`): sign a new version with a sequence above every
 * one we know of and at least the clock in ms, so an author need not
 * remember sequences across reloads, and store it on the slot's owners. An
 * owner that holds a higher sequence of ours answers `stale` with it (during
 * the write, or after the primary accepted it: the replicas are not waited
 * for). We believe only what our own signature proves: a verified read; if
 * a record we signed really is newer, we sign again above it (at most
 * `STALE_RETRIES` times). A false claim costs one read and changes nothing.
 *
 * Reading: ask `replicas` owners at once; the highest verified version wins;
 * owners that had none or an older one get it (read repair). One
 * withholding or lying owner, even one that ground its id next to the slot,
 * costs nothing but its own answer: it cannot forge our signature.
 */
import { RemoteError } from '../errors.ts'
import { bump } from '../protocol.ts'
import type { RecordWire } from './messages.ts'
import type { ChordContext } from './options.ts'
import { checkRecord, compareRecords, recordSlot, signRecord } from './records.ts'
import type { Rpc } from './rpc.ts'
import type { Storage } from './storage.ts'

export interface OwnedRecords {
  /** Write our own record for `key`: a value's bytes, or a tombstone. */
  write(key: string, vb: Uint8Array, deleted: boolean): Promise<void>
  /** `author`'s record for `key`: the highest verified version the owners hold, or null. */
  read(key: string, author: string): Promise<RecordWire | null>
  /** The last sequence per key we wrote (for the node's saved state). */
  sequences(): [string, number][]
  /** Sequences from saved state: the next write of each key goes above. */
  restoreSequences(list: readonly (readonly [string, number])[]): void
}

/** Keys whose last sequence we remember (beyond that, the clock is the floor). */
const MAX_SEQS = 4096
/** Times a write is signed again above a sequence an owner holds. */
const STALE_RETRIES = 3

export function createOwnedRecords(ctx: ChordContext, rpc: Rpc, storage: Storage): OwnedRecords {
  const { self, deps, counters } = ctx
  const { store } = storage
  /** Our own keys -> the last sequence we wrote (or learnt an owner holds). */
  const seqs = new Map<string, number>()
  /** Our own keys -> how many writes of it we started: a late repair only reasserts the latest. */
  const writes = new Map<string, number>()

  /** The sequence for our next write of `key`: above every one we know of, and at least the clock. */
  function nextSeq(key: string): number {
    const held = store.getRecord(self, key)?.rec.q ?? -1
    return Math.max(Math.floor(deps.now()), (seqs.get(key) ?? -1) + 1, held + 1)
  }

  function remember<V>(m: Map<string, V>, key: string, v: V): void {
    m.delete(key)
    m.set(key, v)
    if (m.size > MAX_SEQS) {
      const oldest = m.keys().next().value
      if (oldest !== undefined) m.delete(oldest)
    }
  }

  function noteSeq(key: string, q: number): void {
    if (q > (seqs.get(key) ?? -1)) remember(seqs, key, q)
  }

  async function write(
    key: string,
    vb: Uint8Array,
    deleted: boolean,
    retries = STALE_RETRIES,
  ): Promise<void> {
    const pos = await storage.positionOf(recordSlot(self, key))
    const gen = (writes.get(key) ?? 0) + 1
    remember(writes, key, gen)
    const seq = nextSeq(key)
    noteSeq(key, seq)
    const rec = await signRecord(deps.keys, self, key, vb, deleted, { seq, time: Math.floor(deps.now()) })
    let checked: Promise<boolean> | null = null
    const writeAbove = (): Promise<boolean> => {
      checked ??= (async () => {
        const best = await read(key, self)
        if (!best || compareRecords(best, rec) <= 0) {
          bump(counters, 'put.staleUnproven')
          return false
        }
        noteSeq(key, best.q)
        if (writes.get(key) !== gen) return true // a newer write of ours is on its way
        if (retries <= 1) throw new RemoteError(`the responsible nodes keep a newer record of ${key}`)
        await write(key, vb, deleted, retries - 1)
        return true
      })()
      return checked
    }
    const res = await storage.storeFor(pos, [rec], [], (late) => {
      if (late.q === null || late.q < seq) return
      bump(counters, 'put.lateStale')
      ctx.background(writeAbove())
    })
    if (res.staleSeq === null) return
    bump(counters, 'put.stale')
    if (!(await writeAbove()) && !res.accepted)
      throw new RemoteError('the responsible node refused the record: stale')
  }

  async function read(key: string, author: string): Promise<RecordWire | null> {
    const pos = await storage.positionOf(recordSlot(author, key))
    const answers = await storage.askOwners(pos, key, async (w): Promise<RecordWire | null | undefined> => {
      if (w === self) return store.getRecord(author, key)?.rec ?? null
      const res = await rpc.request(w, (r) => ({ t: 'get', r, k: key, a: author }))
      if (res?.t !== 'got') return undefined
      if (!res.rec) return null
      // Not the record asked for, or one that fails its checks: as good as none.
      if (
        res.rec.k !== key ||
        res.rec.a !== author ||
        (await checkRecord(deps.keys, res.rec, storage.recordLimits, deps.now())) !== null
      ) {
        bump(counters, 'drop.got.bad')
        return null
      }
      return res.rec
    })
    let best: RecordWire | null = null
    for (const [, rec] of answers) if (rec && (!best || compareRecords(rec, best) > 0)) best = rec
    if (!best) return null
    for (const [w, rec] of answers) {
      if (rec && compareRecords(rec, best) === 0) continue
      bump(counters, 'read.repair')
      if (w === self) ctx.background(storage.accept([best], []))
      else ctx.send(w, { t: 'store', r: 0, recs: [best], provs: [] })
    }
    return best
  }

  return {
    write: (key, vb, deleted) => write(key, vb, deleted),
    read,
    sequences: () => [...seqs],
    restoreSequences(list) {
      for (const [k, q] of list.slice(-MAX_SEQS)) noteSeq(k, q)
    },
  }
}
