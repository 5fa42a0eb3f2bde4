/**
 * A node's saved DHT state (an always-on peer keeps it on disk): the records
 * and provider records it holds, the keys it provides, and the last
 * sequence of each key it wrote. Loading treats the state as untrusted
 * input: every record is parsed and checked again as if a peer had sent it.
 *
 *   state = { v: 2, recs: [ record* ], provs: [ provider* ], provided: [ key* ], seqs: [ [key, seq]* ] }
 */
import type { Value } from '../types.ts'
import { LIMITS, type ProviderWire, parseProvider, parseRecord, type RecordWire } from './messages.ts'
import type { OwnedRecords } from './owned-records.ts'
import type { Providers } from './providers.ts'
import { keyBytes } from './records.ts'
import type { Storage } from './storage.ts'

/** Version 1 held last-writer-wins records without owners: none of them would verify now. */
const STATE_VERSION = 2

export function exportState(storage: Storage, providers: Providers, owned: OwnedRecords): Value {
  const { store } = storage
  const provs: ProviderWire[] = []
  for (const m of store.providers.values()) for (const x of m.values()) provs.push(x.rec)
  const recs: RecordWire[] = [...store.records.values()].map((x) => x.rec)
  return { v: STATE_VERSION, recs, provs, provided: [...providers.provided], seqs: owned.sequences() }
}

/** Records and provider records accepted from `v` (each one verified); the rest of the state is taken as well. */
export async function importState(
  v: Value,
  storage: Storage,
  providers: Providers,
  owned: OwnedRecords,
  maxKeyBytes: number,
): Promise<number> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return 0
  if (v.v !== STATE_VERSION) return 0
  const recs = Array.isArray(v.recs) ? v.recs.map(parseRecord).filter((x) => x !== null) : []
  const provs = Array.isArray(v.provs) ? v.provs.map(parseProvider).filter((x) => x !== null) : []
  let n = 0
  for (let i = 0; i < recs.length; i += LIMITS.records)
    n += (await storage.accept(recs.slice(i, i + LIMITS.records), [])).ok
  for (let i = 0; i < provs.length; i += LIMITS.records)
    n += (await storage.accept([], provs.slice(i, i + LIMITS.records))).ok
  if (Array.isArray(v.provided))
    for (const k of v.provided)
      if (typeof k === 'string' && keyBytes(k) <= maxKeyBytes) providers.provided.add(k)
  if (Array.isArray(v.seqs)) {
    const seqs: [string, number][] = []
    for (const x of v.seqs) {
      if (!Array.isArray(x)) continue
      const [k, q] = x
      if (typeof k === 'string' && typeof q === 'number' && Number.isSafeInteger(q) && q >= 0)
        seqs.push([k, q])
    }
    owned.restoreSequences(seqs)
  }
  return n
}
