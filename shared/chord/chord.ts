/**
 * Chord (Stoica et al., SIGCOMM 2001) as a pure state machine, with DHash-
 * style replicated storage of owned records (BEP 44 style) and provider
 * records on top. `createChord(deps, options)` puts the parts together, the
 * way js-libp2p's kad-dht is laid out, one concept per file:
 *
 *   options.ts          dependencies, options and their defaults, the shared context
 *   routing-table.ts    predecessor, successor list, fingers, and what they answer
 *   liveness.ts         the failure detector (two timeouts in a row: dead for a while)
 *   rpc.ts              requests, their answers and timeouts
 *   lookup.ts           iterative (or recursive) lookups, and checking their answer
 *   maintenance.ts      join, stabilize, notify, fix-fingers, check-predecessor, repair
 *   succ-check.ts       not taking a successor's list on its word: vouched entries, merging
 *   storage.ts          the records held here; storing on and asking a position's owners
 *   replication.ts      offers to replicas, hand-off on join and leave, stray records
 *   owned-records.ts    writing and reading records in their author's namespace
 *   providers.ts        provider records (multi-writer sets)
 *   handlers.ts         validation at the boundary and a handler per message type
 *   scheduler.ts        the periodic work that tick(now) drives
 *   state.ts            saved state (an always-on peer's disk)
 *   messages.ts, records.ts, store.ts, ring.ts: the wire grammar, signed
 *   records, bounded bookkeeping, ring arithmetic (PROTOCOL-chord.md)
 *
 * Node ids and positions are 160-bit ids (the first 160 bits of SHA-256).
 * Time enters only through tick(now) and deps.now(); messages only through
 * handle(from, msg), which validates whatever arrives and never throws.
 */
import { isNodeId } from '../bytes.ts'
import { NoRouteError, ValueTooLargeError } from '../errors.ts'
import { bump, type Counters, type ProtocolNode } from '../protocol.ts'
import type { Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import { createHandlers, dispatch } from './handlers.ts'
import { createLiveness } from './liveness.ts'
import { createLookup } from './lookup.ts'
import { createMaintenance } from './maintenance.ts'
import type { ChordMsg } from './messages.ts'
import { type ChordDeps, type ChordOptions, createContext } from './options.ts'
import { createOwnedRecords } from './owned-records.ts'
import { createProviders } from './providers.ts'
import { decodeRecordValue, keyBytes } from './records.ts'
import { createReplication, type Replication } from './replication.ts'
import { between } from './ring.ts'
import { createRoutingTable, type RoutingTable } from './routing-table.ts'
import { createRpc } from './rpc.ts'
import { createScheduler, type Scheduler } from './scheduler.ts'
import { exportState, importState } from './state.ts'
import { createStorage } from './storage.ts'
import { createSuccessorCheck } from './succ-check.ts'

export type { ChordDeps, ChordOptions } from './options.ts'

export interface LookupResult {
  /** The node responsible for the key: its successor. */
  node: string
  /** Nodes asked on the way (0 when this node knew the answer). */
  hops: number
}

/** A record as a reader sees it. */
export interface DhtRecord {
  key: string
  author: string
  /** undefined for a deleted key (a tombstone). */
  value: Value | undefined
  deleted: boolean
  seq: number
  /** When the author signed it, ms since the epoch (the author's clock). */
  time: number
}

export interface Chord extends ProtocolNode<ChordMsg> {
  /** null: create a new ring; else join through any member. */
  join(bootstrap: string | null): Promise<void>
  /**
   * Leave the ring gracefully: hand every record to the successor (waiting
   * for its acknowledgement), then tell the predecessor and successor to
   * close the gap. The node does no more periodic work afterwards.
   */
  leave(): Promise<void>
  /** The successor of a 40-hex position. */
  lookup(key: string): Promise<LookupResult>
  /** Store `value` under `key` in our own namespace (ValueTooLargeError beyond maxValueBytes). */
  put(key: string, value: Value): Promise<void>
  /** `author`'s value for `key` (default: ours); undefined when none or deleted. */
  get(key: string, author?: string): Promise<Value | undefined>
  /** `author`'s record for `key` (default: ours) with its version; tombstones too. */
  getRecord(key: string, author?: string): Promise<DhtRecord | undefined>
  /** Delete our own record for `key`: a signed tombstone with a higher sequence. */
  delete(key: string): Promise<void>
  /** Announce that this node provides `key`; refreshed until unprovide. */
  provide(key: string): Promise<void>
  /** Stop refreshing our provider record for `key` (it expires). */
  unprovide(key: string): void
  findProviders(key: string): Promise<string[]>
  successor(): string
  successors(): string[]
  /** The successor list up to its first entry not yet heard from: what this node answers from and replicates to. */
  vouchedSuccessors(): string[]
  /** How long the successor list may grow: 2·log2 of the ring size this node estimates (options.successors at least). */
  successorCapacity(): number
  predecessor(): string | null
  /** Distinct finger nodes, in finger order. */
  fingers(): string[]
  /** The full table: 160 entries, null where unknown. */
  fingerTable(): (string | null)[]
  /** Where finger i starts: self + 2^i, i = 0 … 159. */
  fingerStart(i: number): string
  /** Ids the ring needs links to now (predecessor, successors, fingers). */
  neededLinks(): Set<string>
  /**
   * Is `id` this node's ring neighbour, or would it become one (it lies
   * between our predecessor and us, or between us and our successor)? A
   * node at its link budget still lets such a peer in: without a link to
   * its neighbours a node is off the ring.
   */
  ringNeighbour(id: string): boolean
  /** Next node toward node id `target`; null when we are responsible for it. */
  nextHop(target: string): string | null
  /** Records held here. */
  storedKeys(): number
  /** Is `author`'s record (or tombstone) for `key` held here? (tests, diagnostics) */
  holds(key: string, author: string): boolean
  /** The sequence of `author`'s record for `key` held here, if any. (tests, diagnostics) */
  heldSeq(key: string, author: string): number | undefined
  /** Provider records held here. */
  storedProviders(): number
  /**
   * Pause (true) or resume the periodic ring upkeep: stabilize, fix fingers,
   * check the predecessor, republish. Requests still time out and silent
   * nodes are still marked dead. For experiments (what a lookup answers
   * while the ring has not repaired itself) and diagnostics.
   */
  pauseMaintenance(paused: boolean): void
  /**
   * Live peers known from elsewhere (the node's links): one between us and
   * a ring neighbour is a sign of a second ring, which this merges
   * (maintenance.ts). At most one check at a time, one per stabilize period.
   */
  consider(peers: Iterable<string>): void
  /**
   * A hint that `x` may be gone: our link to it closed, or presence heard
   * that it crashed. When `x` is our predecessor or our successor,
   * maintenance leaves its back-off and checks at the fast pace, and `x` is
   * pinged at once (nothing is concluded from the hint itself: the requests decide).
   */
  peerDown(x: string): void
  /** Is a provider record of `provider` for `key` held here (expired or not, until collected)? */
  holdsProvider(key: string, provider: string): boolean
  exportState(): Value
  /** Records and provider records accepted from `v` (each is verified). */
  importState(v: Value): Promise<number>
  readonly counters: Counters
}

export function createChord(deps: ChordDeps, options: ChordOptions = {}): Chord {
  const ctx = createContext(deps, options)
  const { self, o, counters } = ctx
  let started = false
  /** We left the ring (leave): every request is answered `err left` until we join again. */
  let left = false
  let paused = false
  /** The merge check (consider): one at a time, one per stabilize period; a probe now and then (maintenance.ts). */
  let considering = false
  let considerDue = 0
  const PROBE_FIRST_MS = 5 * o.stabilizeMs
  const PROBE_MAX_MS = Math.max(PROBE_FIRST_MS, 60_000)
  let probeEvery = PROBE_FIRST_MS
  let probeDue = 0
  let probed = 0
  /** Ring neighbours whose link went down: pinged at the next tick (at most two: see peerDown). */
  const toProbe = new Set<string>()

  // The parts, each given what it uses. A few are needed before they exist (the failure detector
  // clears the routing table, whose changes start replication and the scheduler): those are
  // reached through the variables below, which are all set before any message or tick arrives.
  let table: RoutingTable
  let replication: Replication
  let scheduler: Scheduler
  const rpc = createRpc(ctx, (to) => {
    // A timeout is news: maintenance goes back to its fast pace to chase it.
    scheduler.wake()
    liveness.strike(to)
  })
  const liveness = createLiveness(ctx, {
    probe: (x) => rpc.request(x, (r) => ({ t: 'ping', r })),
    onDead: (x) => {
      check.dead(x)
      table.forget(x)
    },
  })
  const check = createSuccessorCheck(ctx, liveness.isDead, (x) => rpc.request(x, (r) => ({ t: 'ping', r })))
  /** Every message from a peer: it is alive (liveness), and it exists (the successor check). */
  const heard = {
    ...liveness,
    heard(x: string) {
      liveness.heard(x)
      check.heard(x)
    },
  }
  table = createRoutingTable(self, o, {
    isDead: liveness.isDead,
    unverified: check.unverified,
    listChanged: check.listChanged,
    onPredecessorJoined: (p, prevStart) => replication.onPredecessorJoined(p, prevStart),
    onReplicaSetChanged: () => scheduler.republishSoon(),
  })
  const lookup = createLookup(ctx, table, liveness, rpc)
  const maintenance = createMaintenance(ctx, table, liveness, rpc, lookup, check, () =>
    scheduler.stabilizeSoon(),
  )
  const storage = createStorage(ctx, rpc, lookup)
  replication = createReplication(ctx, table, rpc, lookup, storage)
  const owned = createOwnedRecords(ctx, rpc, storage)
  const providers = createProviders(ctx, rpc, storage)
  const handlers = createHandlers(ctx, { table, liveness, rpc, maintenance, replication, storage })
  const { store } = storage
  scheduler = createScheduler(
    ctx,
    {
      stabilize: maintenance.stabilize,
      checkPredecessor: maintenance.checkPredecessor,
      fixFingers: maintenance.fixFingers,
      republish: replication.republish,
      refreshProviders: providers.refresh,
      providing: () => providers.provided.size > 0,
      gc(now) {
        bump(counters, 'gc.dropped', store.gc(now, o.tombstoneTtlMs))
        liveness.sweep(now)
      },
    },
    table.version,
  )

  /** `op` after `check`; a failed check rejects, as it would in an async function. */
  function checked<T>(check: () => void, op: () => Promise<T>): Promise<T> {
    try {
      check()
    } catch (e) {
      return Promise.reject(e)
    }
    return op()
  }

  function checkKey(key: string): void {
    const n = keyBytes(key)
    if (n > o.maxKeyBytes) throw new ValueTooLargeError(n, o.maxKeyBytes, 'key')
  }

  const chord: Chord = {
    counters,
    handle(from, msg) {
      // A node that has not joined takes no ring state: a merging neighbour's newSucc would
      // pull it onto a ring before it joins one (maintenance.ts, merging rings).
      if (!left && !started && (msg.t === 'newSucc' || msg.t === 'notify'))
        return bump(counters, 'drop.not-joined')
      return dispatch(ctx, { liveness: heard, rpc }, handlers, from, msg, left)
    },
    tick(now) {
      rpc.expire(now)
      for (const x of toProbe)
        if (table.predecessor() === x || table.successors()[0] === x)
          ctx.background(rpc.request(x, (r) => ({ t: 'ping', r })))
      toProbe.clear()
      if (started && !paused) scheduler.tick(now)
    },

    join(bootstrap) {
      started = true
      left = false
      if (bootstrap === null || bootstrap === self) return Promise.resolve()
      return maintenance.join(bootstrap)
    },

    async leave() {
      if (!started) return
      started = false
      providers.provided.clear()
      const s0 = table.successors()[0]
      // The successor becomes primary for our range: it must hold everything first.
      if (s0 !== undefined) await replication.handOverAll(s0)
      const pred = table.predecessor()
      const msg: ChordMsg = { t: 'leave', p: pred, s: table.passedOn() }
      if (s0 !== undefined) ctx.send(s0, msg)
      if (pred !== null && pred !== s0) ctx.send(pred, msg)
      left = true
      bump(counters, 'left')
    },

    async lookup(key) {
      if (!isNodeId(key)) throw new TypeError('lookup takes a 40-hex-character position')
      bump(counters, 'lookup')
      for (let attempt = 0; attempt < 2; attempt++) {
        const r = await lookup.resolve(key)
        const node = r?.owners[0]
        if (!r || node === undefined) continue
        bump(counters, 'lookup.hops', r.hops)
        return { node, hops: r.hops }
      }
      bump(counters, 'lookup.failed')
      throw new NoRouteError(key, `lookup of ${key} failed`)
    },

    async put(key, value) {
      checkKey(key)
      const vb = encodeValue(value)
      if (vb.length > o.maxValueBytes) throw new ValueTooLargeError(vb.length, o.maxValueBytes)
      await owned.write(key, vb, false)
    },

    async get(key, author = self) {
      return (await chord.getRecord(key, author))?.value
    },

    async getRecord(key, author = self) {
      checkKey(key)
      if (!isNodeId(author)) throw new TypeError('an author is a node id: 40 lowercase hex characters')
      const rec = await owned.read(key, author)
      if (!rec) return undefined
      return { key, author, value: decodeRecordValue(rec), deleted: rec.d, seq: rec.q, time: rec.t }
    },

    async delete(key) {
      checkKey(key)
      await owned.write(key, new Uint8Array(0), true)
    },

    provide: (key) =>
      checked(
        () => checkKey(key),
        () => providers.provide(key),
      ),
    unprovide: (key) => providers.unprovide(key),
    findProviders: (key) =>
      checked(
        () => checkKey(key),
        () => providers.find(key),
      ),

    successor: () => table.successors()[0] ?? self,
    successors: () => [...table.successors()],
    vouchedSuccessors: () => table.passedOn(),
    successorCapacity: () => table.capacity(),
    predecessor: () => table.predecessor(),
    fingers: () => table.fingers(),
    fingerTable: () => [...table.fingerTable()],
    fingerStart: (i) => table.start(i),
    neededLinks: () => new Set(table.known()),
    ringNeighbour: (id) => {
      if (id === self) return false
      const p = table.predecessor()
      const s = table.successors()[0]
      if (p === null || s === undefined) return true
      return id === p || id === s || between(id, p, self) || between(id, self, s)
    },
    nextHop: (target) => table.nextHop(target),

    storedKeys: () => store.recordCount,
    holds: (key, author) => store.getRecord(author, key) !== undefined,
    heldSeq: (key, author) => store.getRecord(author, key)?.rec.q,
    storedProviders: () => store.providerCount,
    holdsProvider: (key, provider) => store.getProvider(key, provider) !== undefined,

    pauseMaintenance(p) {
      paused = p
    },

    consider(peers) {
      const now = ctx.deps.now()
      if (!started || paused || considering || now < considerDue) return
      considering = true
      considerDue = now + o.stabilizeMs
      if (probeDue === 0) probeDue = now + ctx.jitter(probeEvery)
      const run = async () => {
        const list = [...peers]
        if ((await maintenance.consider(list)) || now < probeDue || list.length === 0) return
        // Now and then, through one linked node (round robin), is it on another ring?
        const via = list[probed++ % list.length] as string
        const found = await maintenance.probe(via)
        probeEvery = found ? PROBE_FIRST_MS : Math.min(PROBE_MAX_MS, probeEvery * 2)
        probeDue = ctx.deps.now() + ctx.jitter(probeEvery)
      }
      run()
        .catch(() => bump(counters, 'error.internal'))
        .finally(() => {
          considering = false
        })
    },

    peerDown(x) {
      // Our two ring neighbours only, whose links both ends keep: a link to a finger or to a later
      // successor may be closed by the other end for idleness (it does not need us). A dead one is
      // found by the requests that time out on it (a strike wakes maintenance too).
      if (table.predecessor() === x || table.successors()[0] === x) {
        bump(counters, 'maintenance.peerDown')
        scheduler.wake()
        // Start the failure detector's clock at the next tick rather than at the next stabilization
        // (not now: the host is inside its link-down handling): an answer clears the doubt, a
        // timeout is a strike (liveness.ts).
        toProbe.add(x)
      }
    },

    exportState: () => exportState(storage, providers, owned),
    importState: (v) => importState(v, storage, providers, owned, o.maxKeyBytes),
  }
  return chord
}
