/**
 * Keeping `replicas` copies of every record (DHash style). The primary for
 * (predecessor, self] offers digests of those records to its first
 * `replicas - 1` successors periodically (`republishMs`) and at once when
 * its predecessor or those successors change; a replica answers `want` with
 * what it lacks or holds older, and receives those in `store` messages of at
 * most 200 KiB of values. When a node joins inside our range, it is offered
 * the records it is now primary for. A node that receives from a successor
 * records lying before its own range passes them on to its predecessor
 * (several nodes joined in one gap). A record held here that no primary has
 * confirmed for three republish periods is offered to the owners a fresh
 * lookup names, and dropped once they acknowledge it.
 */
import { bump } from '../protocol.ts'
import type { Lookup } from './lookup.ts'
import {
  type ChordMsg,
  LIMITS,
  type OfferProv,
  type OfferRec,
  type ProviderWire,
  type RecordWire,
  type WantRec,
} from './messages.ts'
import type { ChordContext } from './options.ts'
import { digestNewer } from './records.ts'
import { betweenRightIncl } from './ring.ts'
import type { RoutingTable } from './routing-table.ts'
import type { Rpc } from './rpc.ts'
import type { Storage } from './storage.ts'
import type { StoredProvider, StoredRecord } from './store.ts'

export interface Replication {
  /**
   * Offer records to `to`; send what it wants. With `ack`, wait for each
   * store to be acknowledged. True when every exchange completed.
   */
  offerTo(to: string, recs: StoredRecord[], provs: StoredProvider[], ack: boolean): Promise<boolean>
  /** A primary's offer: answer with what we lack or hold older. */
  onOffer(from: string, msg: Extract<ChordMsg, { t: 'offer' }>): void
  /** A store from `from`: accept, answer when asked, and pass on what belongs to our predecessor. */
  onStore(from: string, msg: Extract<ChordMsg, { t: 'store' }>): Promise<void>
  /** Offer our primary range to our replicas; `periodic`: also hand off stray records. */
  republish(now: number, periodic: boolean): Promise<void>
  /** `p` joined inside our range (after `prevStart`): offer it the records it is now primary for. */
  onPredecessorJoined(p: string, prevStart: string | null): void
  /** Leaving: give the successor everything we hold, acknowledged. */
  handOverAll(to: string): Promise<boolean>
}

/** Value bytes per store message (records beyond go in the next one). */
const STORE_CHUNK_BYTES = 200 * 1024
/** Groups of stray records handed off per republish. */
const HANDOFF_GROUPS = 8

export function createReplication(
  ctx: ChordContext,
  table: RoutingTable,
  rpc: Rpc,
  lookup: Lookup,
  storage: Storage,
): Replication {
  const { self, deps, o, counters } = ctx
  const { store } = storage

  function offerDigest(x: StoredRecord): OfferRec {
    return [x.rec.k, x.rec.a, x.rec.q, x.rec.t]
  }

  async function offerTo(
    to: string,
    recs: StoredRecord[],
    provs: StoredProvider[],
    ack: boolean,
  ): Promise<boolean> {
    if (to === self) return true
    let ok = true
    for (let i = 0; i < Math.max(recs.length, provs.length); i += LIMITS.offer) {
      const rc = recs.slice(i, i + LIMITS.offer)
      const pc = provs.slice(i, i + LIMITS.offer)
      bump(counters, 'replicate.offers')
      const res = await rpc.request(to, (r) => ({
        t: 'offer',
        r,
        recs: rc.map(offerDigest),
        provs: pc.map((x): OfferProv => [x.rec.k, x.rec.p, x.rec.t]),
      }))
      if (res?.t !== 'want') {
        ok = false
        break
      }
      const wantRecs: RecordWire[] = []
      for (const [k, a] of res.recs) {
        const held = store.getRecord(a, k)
        if (held) wantRecs.push(held.rec)
      }
      const wantProvs: ProviderWire[] = []
      for (const [k, p] of res.provs) {
        const held = store.getProvider(k, p)
        if (held) wantProvs.push(held.rec)
      }
      if (!(await sendStore(to, wantRecs, wantProvs, ack))) ok = false
    }
    return ok
  }

  /** Send records in messages of bounded size. With `ack`, true only when every message was acknowledged. */
  async function sendStore(
    to: string,
    recs: RecordWire[],
    provs: ProviderWire[],
    ack: boolean,
  ): Promise<boolean> {
    let ok = true
    const flush = async (rc: RecordWire[], pc: ProviderWire[]) => {
      if (rc.length + pc.length === 0) return
      bump(counters, 'replicate.sent', rc.length + pc.length)
      if (!ack) {
        ctx.send(to, { t: 'store', r: 0, recs: rc, provs: pc })
        return
      }
      const res = await rpc.request(to, (r) => ({ t: 'store', r, recs: rc, provs: pc }))
      if (res?.t !== 'stored') ok = false
    }
    let batch: RecordWire[] = []
    let bytes = 0
    for (const rec of recs) {
      if (batch.length > 0 && (bytes + rec.vb.length > STORE_CHUNK_BYTES || batch.length >= LIMITS.records)) {
        await flush(batch, [])
        batch = []
        bytes = 0
      }
      batch.push(rec)
      bytes += rec.vb.length
    }
    await flush(batch, [])
    for (let i = 0; i < provs.length; i += LIMITS.records) await flush([], provs.slice(i, i + LIMITS.records))
    return ok
  }

  /**
   * Records no primary has confirmed for three republish periods: offer them
   * to the owners a fresh lookup names, and drop them once those owners have
   * acknowledged (unless we turn out to be one of them).
   */
  async function handOffStrays(now: number): Promise<void> {
    const limit = now - 3 * o.republishMs
    const strays = [...store.records.values()]
      .filter((x) => x.confirmed < limit && !table.isPrimary(x.pos))
      .sort((a, b) => (a.pos < b.pos ? -1 : a.pos > b.pos ? 1 : 0))
    for (let g = 0; g < HANDOFF_GROUPS && strays.length > 0; g++) {
      const first = strays[0] as StoredRecord
      const r = await lookup.resolve(first.pos)
      if (!r) return
      const owners = r.owners.slice(0, o.replicas)
      const head = owners[0] as string
      // The records the same owners hold: those in (the owner's predecessor, owner].
      const group: StoredRecord[] = []
      for (let i = 0; i < strays.length; ) {
        const x = strays[i] as StoredRecord
        if (x === first || (r.pred !== null && betweenRightIncl(x.pos, r.pred, head))) {
          group.push(x)
          strays.splice(i, 1)
        } else i++
      }
      if (owners.includes(self)) {
        for (const x of group) x.confirmed = now
        await Promise.all(owners.map((w) => offerTo(w, group, [], false)))
        continue
      }
      const results = await Promise.all(owners.map((w) => offerTo(w, group, [], true)))
      if (results.every(Boolean)) {
        for (const x of group) {
          if (store.getRecord(x.rec.a, x.rec.k) === x) {
            store.deleteRecord(x.rec.a, x.rec.k)
            bump(counters, 'handoff.dropped')
          }
        }
      }
    }
  }

  return {
    offerTo,

    onOffer(from, msg) {
      const now = deps.now()
      const recs: WantRec[] = []
      for (const [k, a, q, t] of msg.recs) {
        const held = store.getRecord(a, k)
        if (held) held.confirmed = now
        // A digest dated beyond the skew names a record we would refuse: do not ask for it.
        if (digestNewer(held?.rec, q, t) && t <= now + o.maxSkewMs) recs.push([k, a])
      }
      const provs: [string, string][] = []
      for (const [k, p, t] of msg.provs) {
        const held = store.getProvider(k, p)
        if (held) held.confirmed = now
        if ((!held || held.rec.t < t) && t + o.maxProviderTtlMs > now) provs.push([k, p])
      }
      ctx.send(from, { t: 'want', r: msg.r, recs, provs })
    },

    async onStore(from, msg) {
      const res = await storage.accept(msg.recs, msg.provs)
      if (msg.r > 0) ctx.send(from, { t: 'stored', r: msg.r, ok: res.ok, err: res.err, q: res.staleSeq })
      // A successor handing us records that lie before our range: they belong to our predecessor
      // (several nodes joined in one gap, and it told us before we had them).
      const p = table.predecessor()
      if (p !== null && table.successors().includes(from)) {
        const back = res.fresh.filter((x) => !betweenRightIncl(x.pos, p, self))
        if (back.length > 0) {
          bump(counters, 'handoff.back', back.length)
          ctx.background(offerTo(p, back, [], false))
        }
      }
    },

    async republish(now, periodic) {
      const recs: StoredRecord[] = []
      const provs: StoredProvider[] = []
      for (const x of store.records.values())
        if (table.isPrimary(x.pos)) {
          x.confirmed = now
          recs.push(x)
        }
      for (const m of store.providers.values())
        for (const x of m.values())
          if (table.isPrimary(x.pos)) {
            x.confirmed = now
            provs.push(x)
          }
      if (recs.length + provs.length > 0) {
        const targets = table.vouchedSuccessors().slice(0, o.replicas - 1)
        await Promise.all(targets.map((t) => offerTo(t, recs, provs, false)))
      }
      if (periodic) await handOffStrays(now)
    },

    onPredecessorJoined(p, prevStart) {
      // The records in (prevStart, p] are now p's, as its primary.
      const recs: StoredRecord[] = []
      const provs: StoredProvider[] = []
      const moves = (pos: string) =>
        !betweenRightIncl(pos, p, self) && (prevStart === null || betweenRightIncl(pos, prevStart, p))
      for (const x of store.records.values()) if (moves(x.pos)) recs.push(x)
      for (const m of store.providers.values()) for (const x of m.values()) if (moves(x.pos)) provs.push(x)
      if (recs.length + provs.length > 0) {
        bump(counters, 'handoff.join', recs.length + provs.length)
        ctx.background(offerTo(p, recs, provs, false))
      }
    },

    handOverAll(to) {
      const provs: StoredProvider[] = []
      for (const m of store.providers.values()) for (const x of m.values()) provs.push(x)
      return offerTo(to, [...store.records.values()], provs, true)
    },
  }
}
