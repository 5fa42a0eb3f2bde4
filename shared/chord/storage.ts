/**
 * The records this node holds and the two ways to reach the nodes that
 * hold a position's records (its owners: its successor, the primary, and
 * the next `replicas - 1` nodes).
 *
 * `accept` checks records and provider records received from a peer (or
 * written here) and stores those that pass, counting every refusal by
 * reason (records.ts has the checks, store.ts the bounds). `storeFor` routes
 * to a position's owners and stores there; `askOwners` routes there and asks
 * them a question, `replicas` at once.
 */
import { id160, utf8 } from '../bytes.ts'
import { NoRouteError, RemoteError, TimeoutError } from '../errors.ts'
import { bump } from '../protocol.ts'
import type { Lookup } from './lookup.ts'
import type { ProviderWire, RecordWire } from './messages.ts'
import type { ChordContext } from './options.ts'
import { checkProvider, checkRecord, compareRecords, type RecordLimits, recordSlot } from './records.ts'
import type { Rpc } from './rpc.ts'
import { createRecordStore, type RecordStore, type StoredRecord } from './store.ts'

/** ok: records accepted; err: the first refusal; staleSeq: the highest sequence held for a record refused as stale. */
export interface Accepted {
  ok: number
  err: string | null
  staleSeq: number | null
  /** Records that were new or newer here. */
  fresh: StoredRecord[]
}

/** One owner's answer to a store: accepted or not, why not, and the sequence it holds when ours was stale. */
export interface OwnerAnswer {
  ok: number
  err: string | null
  q: number | null
}

export interface Storage {
  readonly store: RecordStore
  readonly recordLimits: RecordLimits
  readonly providerLimits: { maxKeyBytes: number; maxTtlMs: number; maxSkewMs: number }
  /** Ring position of a provider key or a record slot (recordSlot(author, key)). */
  positionOf(s: string): Promise<string>
  /**
   * Check and store records from a peer (or ourselves). A record older than
   * the one held (a replay, or a write below the author's last sequence) is
   * refused as `stale` without checking its signature, and the answer names
   * the sequence held.
   */
  accept(recs: RecordWire[], provs: ProviderWire[]): Promise<Accepted>
  /**
   * Route to the position's owners and store there; routed again while no
   * owner answers. Resolves when an owner accepted, or when one said it holds
   * a higher sequence of one of the records (`staleSeq`: it is the caller's
   * to judge that claim); any other refusal rejects with RemoteError. Owners'
   * answers that come after it resolved go to `onLate`.
   */
  storeFor(
    pos: string,
    recs: RecordWire[],
    provs: ProviderWire[],
    onLate?: (a: OwnerAnswer) => void,
  ): Promise<{ accepted: boolean; staleSeq: number | null }>
  /**
   * Ask the owners of position `pos` (its successor first, then the next
   * ones, past dead ones) until `replicas` of them have answered: the first
   * `replicas` at once, then one more for each that stayed silent. `ask`
   * gives undefined when a node did not answer. When nobody answers, routes
   * again (3 attempts in all); then TimeoutError if a route was found,
   * NoRouteError if not. `what` names the key in errors.
   */
  askOwners<T>(pos: string, what: string, ask: (w: string) => Promise<T | undefined>): Promise<[string, T][]>
}

/** Key -> position cache entries. */
const MAX_POS_CACHE = 4096

export function createStorage(ctx: ChordContext, rpc: Rpc, lookup: Lookup): Storage {
  const { self, deps, o, counters } = ctx
  const store = createRecordStore(o.store)
  const recordLimits = { maxValueBytes: o.maxValueBytes, maxKeyBytes: o.maxKeyBytes, maxSkewMs: o.maxSkewMs }
  const providerLimits = { maxKeyBytes: o.maxKeyBytes, maxTtlMs: o.maxProviderTtlMs, maxSkewMs: o.maxSkewMs }
  const posCache = new Map<string, string>()

  async function positionOf(s: string): Promise<string> {
    const held = store.records.get(s)?.pos
    if (held) return held
    let pos = posCache.get(s)
    if (pos === undefined) {
      pos = deps.keyPosition ? await deps.keyPosition(s) : await id160(utf8(s))
      posCache.set(s, pos)
      if (posCache.size > MAX_POS_CACHE) {
        const oldest = posCache.keys().next().value
        if (oldest !== undefined) posCache.delete(oldest)
      }
    }
    return pos
  }

  async function accept(recs: RecordWire[], provs: ProviderWire[]): Promise<Accepted> {
    let ok = 0
    let err: string | null = null
    let staleSeq: number | null = null
    const fresh: StoredRecord[] = []
    const now = deps.now()
    const stale = (held: RecordWire) => {
      bump(counters, 'store.stale')
      err ??= 'stale'
      staleSeq = Math.max(staleSeq ?? 0, held.q)
    }
    for (const rec of recs) {
      const held = store.getRecord(rec.a, rec.k)?.rec
      if (held) {
        const c = compareRecords(rec, held)
        if (c === 0) {
          ok++
          continue
        }
        if (c < 0) {
          stale(held)
          continue
        }
      }
      const fault = await checkRecord(deps.keys, rec, recordLimits, now)
      if (fault) {
        bump(counters, `drop.record.${fault}`)
        err ??= fault
        continue
      }
      const evicted = store.evicted
      const result = store.putRecord(rec, await positionOf(recordSlot(rec.a, rec.k)), now)
      if (store.evicted > evicted) bump(counters, 'store.evicted', store.evicted - evicted)
      const after = store.getRecord(rec.a, rec.k)
      if (result === 'stale' && after) {
        stale(after.rec) // a newer one arrived while we checked this one
        continue
      }
      bump(counters, `store.${result}`)
      if (result === 'quota' || result === 'full') err ??= result
      else ok++
      if ((result === 'new' || result === 'updated') && after) fresh.push(after)
    }
    for (const p of provs) {
      const held = store.getProvider(p.k, p.p)?.rec
      if (held && held.t === p.t) {
        ok++
        continue
      }
      const fault = await checkProvider(deps.keys, p, providerLimits, now)
      if (fault) {
        bump(counters, `drop.provider.${fault}`)
        err ??= fault
        continue
      }
      const result = store.putProvider(p, await positionOf(p.k), now)
      bump(counters, `provider.${result}`)
      if (result === 'quota' || result === 'full') err ??= result
      else ok++
    }
    return { ok, err, staleSeq, fresh }
  }

  /**
   * Store on the owners (the position's successor first). Resolves once the
   * primary accepted, or else once every owner answered (or timed out).
   */
  function storeAtOwners(
    owners: string[],
    recs: RecordWire[],
    provs: ProviderWire[],
    onLate: (a: OwnerAnswer) => void,
  ): Promise<{ answered: number; accepted: boolean; err: string | null; staleSeq: number | null }> {
    return new Promise((resolve) => {
      let left = owners.length
      let answered = 0
      let accepted = false
      let firstErr: string | null = null
      let staleSeq: number | null = null
      let settled = false
      const finish = () => {
        if (settled) return
        settled = true
        resolve({ answered, accepted, err: firstErr, staleSeq })
      }
      owners.forEach((owner, i) => {
        const p: Promise<OwnerAnswer | null> =
          owner === self
            ? accept(recs, provs).then((x) => ({ ok: x.ok, err: x.err, q: x.staleSeq }))
            : rpc
                .request(owner, (r) => ({ t: 'store', r, recs, provs }))
                .then((res) => (res?.t === 'stored' ? { ok: res.ok, err: res.err, q: res.q } : null))
        p.then(
          (res) => {
            if (!res) return
            if (settled) {
              onLate(res)
              return
            }
            answered++
            if (res.q !== null) staleSeq = Math.max(staleSeq ?? 0, res.q)
            if (res.ok > 0) {
              accepted = true
              if (i === 0 && res.err === null) finish()
            } else firstErr ??= res.err ?? 'refused'
          },
          () => undefined,
        ).finally(() => {
          if (--left === 0) finish()
        })
      })
    })
  }

  return {
    store,
    recordLimits,
    providerLimits,
    positionOf,
    accept,

    async storeFor(pos, recs, provs, onLate = () => undefined) {
      let routed = false
      for (let attempt = 0; attempt < 3; attempt++) {
        const r = await lookup.resolve(pos)
        if (!r) continue
        routed = true
        const res = await storeAtOwners(r.owners.slice(0, o.replicas), recs, provs, onLate)
        if (res.accepted || res.staleSeq !== null) return { accepted: res.accepted, staleSeq: res.staleSeq }
        if (res.answered > 0) throw new RemoteError(`the responsible node refused the record: ${res.err}`)
      }
      if (routed) throw new TimeoutError(`no node responsible for ${pos} answered`)
      throw new NoRouteError(pos, `no route to the nodes responsible for ${pos}`)
    },

    async askOwners<T>(pos: string, what: string, ask: (w: string) => Promise<T | undefined>) {
      let routed = false
      let partial: [string, T][] = []
      for (let attempt = 0; attempt < 3; attempt++) {
        const owners = (await lookup.resolve(pos))?.owners
        if (!owners) continue
        routed = true
        const answers: [string, T][] = []
        let silent = 0
        let next = 0
        while (answers.length < o.replicas && next < owners.length) {
          const wave = owners.slice(next, next + o.replicas - answers.length)
          next += wave.length
          const got = await Promise.all(wave.map(ask))
          got.forEach((a, i) => {
            if (a === undefined) silent++
            else answers.push([wave[i] as string, a])
          })
        }
        // Every owner asked has answered: that is the answer. When one stayed silent, the others'
        // "nothing here" may come from nodes that joined a moment ago and have not received their
        // share yet, while the silent one holds it: ask again (dead owners drop out of the route).
        if (answers.length > 0 && silent === 0) return answers
        if (answers.length > 0) partial = answers
      }
      if (partial.length > 0) return partial
      if (routed) throw new TimeoutError(`no node holding ${what} answered`)
      throw new NoRouteError(pos, `no route to the nodes holding ${what}`)
    },
  }
}
