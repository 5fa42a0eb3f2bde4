/**
 * Chord (Stoica et al., SIGCOMM 2001) as a pure state machine, with DHash-
 * style replicated storage and provider records on top.
 *
 * The ring. Node ids and key positions are 160-bit ids (the first 160 bits
 * of SHA-256). Each node keeps its predecessor, a list of its next
 * `successors` nodes, and a finger table: finger[i] = successor(id + 2^i),
 * i = 0 … 159 (most entries repeat the successor; fingers() lists the
 * distinct ones). Driven by tick(now):
 *   - stabilize: ask the successor for its predecessor and successor list;
 *     adopt the predecessor when it lies between us and the successor (and
 *     keep stepping back while the next one does too), take the successor's
 *     list as the tail of ours, then notify the successor;
 *   - notify: a node that lies between our predecessor and us becomes it;
 *   - fix-fingers: look up one finger start; every following start that the
 *     answer also covers takes the same node, so a full cycle costs about
 *     log2 N lookups rather than 160;
 *   - check-predecessor: ping it; no answer clears it.
 * Two requests in a row unanswered within `requestTimeoutMs` mark their
 * target dead for a while (one may be a lost message): it leaves the
 * successor list, the fingers and the predecessor, and lookups route around
 * it. A single silence makes a lookup try its next candidate. Joining: look up our own id through any member,
 * take the answer's successor list, notify the successor (it hands over the
 * keys we are now responsible for) and tell the predecessor it has a new
 * successor (which saves it a stabilization round); fingers start from the
 * successor's table as hints and are corrected by fix-fingers.
 *
 * Lookups are iterative by default. The querier asks the closest preceding
 * node it knows, that node answers either `found` (the key's predecessor and
 * successor list) or `closer` (nodes nearer the key), and the querier goes
 * on. Why iterative: the querier sees every step, so it sets one timeout per
 * hop, and when a hop is dead it marks it and tries its next-best candidate
 * at once, where a recursive query just vanishes and can only be retried as a
 * whole after a long end-to-end timeout. Under churn that is the difference
 * between a slower lookup and a failed one. It also never asks a node to send
 * to a third party on our behalf. The cost is one round trip per hop instead
 * of one-way forwards; `iterative: false` gives recursive lookups (forwarded
 * node to node, answered to the origin, falling back to iterative on
 * timeout). `hops` counts the nodes a lookup asked (0 when this node knew).
 * Every lookup (and put, get, provide) then checks the answer with the node
 * it names: is the key between that node's predecessor and it? If a node
 * joined there a moment ago we step back to it; if the answer came from a
 * stale successor list and lies before the key we route on from it; a dead
 * one is skipped. That check is not counted as a hop, and the node's own
 * successor list, fresher than the answerer's, names the replicas.
 *
 * Repair after failures. A timed-out stabilization pings the whole successor
 * list at once, so a run of dead successors is found in one timeout rather
 * than one per stabilization. A node whose successors all died takes the
 * nearest live node after it that it or its predecessor knows, and walks back
 * through predecessors before it publishes the list. A node left
 * without a predecessor looks up its own id and sends `newSucc` to the node
 * the ring names as its predecessor, which may have lost it from its list.
 *
 * Storage. Records are owned, as BEP 44's mutable items: a record (key,
 * value bytes, tombstone flag, author, author's public key, sequence number,
 * signing time, signature) lives in its author's namespace, at
 * id160(utf8(author ":" key)). It is stored on that position's successor
 * (its primary) and the next `replicas - 1` successors. put/delete sign a
 * new version with a higher sequence (at least the clock in ms, so an author
 * need not remember sequences across reloads) and send it to all of them; an
 * owner holding a higher one answers `stale` with its sequence, and the
 * author signs again above it. get asks `replicas` owners at once and
 * returns the highest verified version; owners that had none or an older one
 * get a copy (read repair), so one withholding or lying owner costs nothing
 * but its own answer. The primary for
 * (predecessor, self] offers digests of those records to its first
 * `replicas - 1` successors periodically (`republishMs`) and at once when its
 * predecessor or those successors change; a replica answers with what it
 * lacks or holds older, and receives those. When a node joins inside our
 * range, notify hands it the records it is now primary for. A record held
 * here that no primary has confirmed for three republish periods is offered
 * to the owners a fresh lookup names, and dropped once they acknowledge it.
 * The highest sequence wins; deletes are signed tombstones. Every record is
 * checked (size, signing time at most `maxSkewMs` ahead, author =
 * idOf(public key), signature) before it is stored or returned, under
 * per-author and total quotas counted in records and in bytes.
 * Provider records are stored and replicated the same way, expire `ttl`
 * after they were signed, and are re-signed by their provider every
 * `provideRefreshMs`.
 */
import { id160, isNodeId, utf8 } from '../bytes.ts'
import { NoRouteError, RemoteError, TimeoutError, ValueTooLargeError } from '../errors.ts'
import { DEFAULT_MAX_SKEW_MS } from '../hlc.ts'
import { bump, type Counters, type ProtocolNode, type SignedProtocolDeps } from '../protocol.ts'
import type { Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import {
  type ChordMsg,
  LIMITS,
  type OfferProv,
  type OfferRec,
  type ProviderWire,
  parseChordMsg,
  parseProvider,
  parseRecord,
  REPLY_TYPES,
  type RecordWire,
  type WantRec,
} from './messages.ts'
import {
  checkProvider,
  checkRecord,
  compareRecords,
  decodeRecordValue,
  digestNewer,
  keyBytes,
  recordSlot,
  signProvider,
  signRecord,
} from './records.ts'
import { between, betweenRightIncl, closerToTarget, fingerStarts, RING_BITS } from './ring.ts'
import { createRecordStore, type StoredProvider, type StoredRecord } from './store.ts'

export interface ChordDeps extends SignedProtocolDeps<ChordMsg> {
  /**
   * A string's ring position: id160(utf8(s)), for provider keys and record
   * slots (recordSlot(author, key)). Injected where WebCrypto's asynchronous
   * digest does not fit (the simulator gives keyPositionSync).
   * @default id160(utf8(s)) through WebCrypto
   */
  keyPosition?: (key: string) => string | Promise<string>
}

export interface ChordOptions {
  /** Length of the successor list. @default 8 */
  successors?: number
  /** Copies of each record in all: on the key's successor and the next ones. @default 3 */
  replicas?: number
  /** Interval between stabilizations. @default 1000 */
  stabilizeMs?: number
  /** Interval between finger refreshes (one lookup each). @default 500 */
  fixFingersMs?: number
  /** Interval between predecessor pings. @default 2000 */
  checkPredecessorMs?: number
  /** A request (one hop) unanswered this long fails and marks its target dead. @default 3000 */
  requestTimeoutMs?: number
  /** Interval between a primary's offers to its replicas (and hand-off of stray records). @default 60_000 */
  republishMs?: number
  /** Lifetime of our provider records. @default 600_000 */
  providerTtlMs?: number
  /** How often we re-sign and re-store what we provide. @default providerTtlMs / 3 */
  provideRefreshMs?: number
  /** Largest encoded value (MessagePack bytes). @default 262_144 */
  maxValueBytes?: number
  /** Largest key, in UTF-8 bytes. @default 1024 */
  maxKeyBytes?: number
  /** Records one author may have stored on this node. @default 10_000 */
  perAuthorQuota?: number
  /** Bytes of records one author may have stored on this node. @default 16_777_216 (16 MiB) */
  perAuthorBytes?: number
  /**
   * A record or provider record signed more than this far ahead of our clock
   * is refused (`drop.record.future`, `drop.provider.future`).
   * @default 60_000
   */
  maxSkewMs?: number
  /** Records this node stores in all. @default 100_000 */
  maxRecords?: number
  /** Bytes of records this node stores in all. @default 134_217_728 (128 MiB) */
  maxStoreBytes?: number
  /** Provider records this node stores in all. @default 100_000 */
  maxProviderRecords?: number
  /** Provider records one provider may have stored on this node. @default 1_000 */
  perProviderQuota?: number
  /** Providers kept per key (those expiring last win). @default 256 */
  maxProvidersPerKey?: number
  /** Longest provider record lifetime accepted from others. @default 86_400_000 */
  maxProviderTtlMs?: number
  /** Tombstones are dropped this long after they were written. @default 86_400_000 */
  tombstoneTtlMs?: number
  /** Requests in flight at once; more fail at once. @default 1024 */
  maxPending?: number
  /** Iterative lookups (see the header); false: recursive. @default true */
  iterative?: boolean
}

export interface LookupResult {
  /** The node responsible for the key: its successor. */
  node: string
  /** Nodes asked on the way (0 when this node knew the answer). */
  hops: number
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
  predecessor(): string | null
  /** Distinct finger nodes, in finger order. */
  fingers(): string[]
  /** The full table: 160 entries, null where unknown. */
  fingerTable(): (string | null)[]
  /** Ids the ring needs links to now (predecessor, successors, fingers). */
  neededLinks(): Set<string>
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
  /** Is a provider record of `provider` for `key` held here (expired or not, until collected)? */
  holdsProvider(key: string, provider: string): boolean
  exportState(): Value
  /** Records and provider records accepted from `v` (each is verified). */
  importState(v: Value): Promise<number>
  readonly counters: Counters
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

interface Route {
  /** The key's predecessor, as the answering node knows it. */
  p: string
  /** The key's successor followed by its successors. */
  s: string[]
  hops: number
}

interface Pending {
  /** Who must answer; null for a recursive lookup, answered by whoever ends it. */
  to: string | null
  deadline: number
  done: (m: ChordMsg | null) => void
}

/** ok: records accepted; err: the first refusal; staleSeq: the highest sequence held for a record refused as stale. */
type StoreOutcome = { ok: number; err: string | null; staleSeq: number | null; fresh: StoredRecord[] }

/** One owner's answer to a store: accepted or not, why not, and the sequence it holds when ours was stale. */
type OwnerAnswer = { ok: number; err: string | null; q: number | null }

/** Most nodes one lookup asks before giving up. */
const MAX_STEPS = 48
/** Candidates a `closer` answer carries. */
const CLOSER_COUNT = 6
/** Value bytes per store message (records beyond go in the next one). */
const STORE_CHUNK_BYTES = 200 * 1024
/** Timeouts in a row that mark a node dead. */
const STRIKES_TO_DEAD = 2
/** Dead marks kept at most. */
const MAX_DEAD = 2048
/** Key -> position cache entries. */
const MAX_POS_CACHE = 4096
/** Groups of stray records handed off per republish. */
const HANDOFF_GROUPS = 8
/** Keys whose last sequence we remember (beyond that, the clock is the floor). */
const MAX_SEQS = 4096
/** Times a write is signed again above a sequence an owner holds. */
const STALE_RETRIES = 3

export function createChord(deps: ChordDeps, options: ChordOptions = {}): Chord {
  const self = deps.id
  const o = {
    successors: Math.max(1, options.successors ?? 8),
    replicas: Math.max(1, options.replicas ?? 3),
    stabilizeMs: options.stabilizeMs ?? 1000,
    fixFingersMs: options.fixFingersMs ?? 500,
    checkPredecessorMs: options.checkPredecessorMs ?? 2000,
    requestTimeoutMs: options.requestTimeoutMs ?? 3000,
    republishMs: options.republishMs ?? 60_000,
    providerTtlMs: options.providerTtlMs ?? 600_000,
    provideRefreshMs: options.provideRefreshMs ?? Math.floor((options.providerTtlMs ?? 600_000) / 3),
    maxValueBytes: options.maxValueBytes ?? 262_144,
    maxKeyBytes: options.maxKeyBytes ?? 1024,
    maxSkewMs: options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS,
    maxProviderTtlMs: options.maxProviderTtlMs ?? 86_400_000,
    tombstoneTtlMs: options.tombstoneTtlMs ?? 86_400_000,
    maxPending: options.maxPending ?? 1024,
    iterative: options.iterative ?? true,
  }
  const counters: Counters = {}
  const store = createRecordStore({
    maxRecords: options.maxRecords ?? 100_000,
    maxStoreBytes: options.maxStoreBytes ?? 128 * 1024 * 1024,
    perAuthorQuota: options.perAuthorQuota ?? 10_000,
    perAuthorBytes: options.perAuthorBytes ?? 16 * 1024 * 1024,
    maxProviderRecords: options.maxProviderRecords ?? 100_000,
    perProviderQuota: options.perProviderQuota ?? 1_000,
    maxProvidersPerKey: options.maxProvidersPerKey ?? 256,
  })
  const recordLimits = { maxValueBytes: o.maxValueBytes, maxKeyBytes: o.maxKeyBytes, maxSkewMs: o.maxSkewMs }
  const providerLimits = {
    maxKeyBytes: o.maxKeyBytes,
    maxTtlMs: o.maxProviderTtlMs,
    maxSkewMs: o.maxSkewMs,
  }
  const starts = fingerStarts(self)
  const deadTtlMs = 5 * o.stabilizeMs + 2 * o.requestTimeoutMs

  // ring state
  let started = false
  let pred: string | null = null
  /** The last predecessor we had: bounds our primary range while pred is unknown. */
  let lastPred: string | null = null
  let succs: string[] = []
  /** Whether we ever had a successor (else an empty list means we are alone in a ring we created). */
  let hadSuccessor = false
  const finger: (string | null)[] = new Array(RING_BITS).fill(null)
  let fixNext = 0
  let knownCache: string[] | null = null
  const dead = new Map<string, number>()
  /** Timeouts in a row per node, below STRIKES_TO_DEAD. */
  const strikes = new Map<string, number>()
  /** Nodes a probe ping is out to. */
  const probing = new Set<string>()

  // requests
  const pending = new Map<number, Pending>()
  let nextRid = 1

  // periodic work
  const due = { stabilize: 0, fix: 0, checkPred: 0, republish: 0, provide: 0, gc: 0 }
  const busy = { stabilize: false, fix: false, checkPred: false, republish: false, provide: false }
  let republishSoon = false
  let firstTick = true

  /** Keys this node provides: refreshed every provideRefreshMs. */
  const provided = new Set<string>()
  const posCache = new Map<string, string>()
  /** Our own keys -> the last sequence we wrote (or learnt an owner holds). */
  const seqs = new Map<string, number>()
  /** Our own keys -> how many writes of it we started: a late repair only reasserts the latest. */
  const writes = new Map<string, number>()

  // ---------------------------------------------------------------- helpers

  const jitter = (ms: number) => Math.floor(ms * (0.75 + 0.5 * deps.random()))

  function isDead(x: string): boolean {
    const until = dead.get(x)
    if (until === undefined) return false
    if (until <= deps.now()) {
      dead.delete(x)
      return false
    }
    return true
  }

  /**
   * A request to `x` timed out. One loss is not a death: the second timeout
   * in a row marks it dead. The first one sends a probe at once, so a crashed
   * node is known dead two timeouts after we first missed it, whatever else
   * we were asking it.
   */
  function strike(x: string): void {
    const n = (strikes.get(x) ?? 0) + 1
    strikes.delete(x)
    if (n >= STRIKES_TO_DEAD) {
      markDead(x)
      return
    }
    strikes.set(x, n)
    if (strikes.size > MAX_DEAD) {
      const oldest = strikes.keys().next().value
      if (oldest !== undefined) strikes.delete(oldest)
    }
    if (!probing.has(x) && probing.size < MAX_DEAD) {
      probing.add(x)
      request(x, (r) => ({ t: 'ping', r })).then(() => probing.delete(x))
    }
  }

  function markDead(x: string): void {
    if (x === self) return
    bump(counters, 'peer.dead')
    dead.delete(x)
    dead.set(x, deps.now() + deadTtlMs)
    if (dead.size > MAX_DEAD) {
      const oldest = dead.keys().next().value
      if (oldest !== undefined) dead.delete(oldest)
    }
    if (succs.includes(x)) setSuccs(succs.filter((s) => s !== x))
    for (let i = 0; i < RING_BITS; i++) if (finger[i] === x) finger[i] = null
    if (pred === x) setPred(null)
    knownCache = null
  }

  function known(): string[] {
    if (knownCache) return knownCache
    const s = new Set<string>(succs)
    for (const f of finger) if (f !== null) s.add(f)
    if (pred !== null) s.add(pred)
    s.delete(self)
    knownCache = [...s]
    return knownCache
  }

  /** Known live nodes in (self, target), closest to target first. */
  function closestPreceding(target: string, k: number): string[] {
    const out: string[] = []
    for (const x of known()) if (between(x, self, target) && !isDead(x)) out.push(x)
    out.sort(closerToTarget(target))
    return out.length > k ? out.slice(0, k) : out
  }

  /**
   * What this node can say about `target` from its own tables: its
   * predecessor and successor list, or null (ask a closer node). A successor-
   * list entry other than the first answers only when `replicas` nodes follow
   * it, so every answer names a full replica set.
   */
  function answerFor(target: string): { p: string; s: string[] } | null {
    if (succs.length === 0) return { p: pred ?? self, s: [self] }
    if (pred !== null && betweenRightIncl(target, pred, self))
      return { p: pred, s: [self, ...succs].slice(0, o.successors) }
    let prev = self
    for (let i = 0; i < succs.length; i++) {
      const s = succs[i] as string
      if (betweenRightIncl(target, prev, s)) {
        if (i > 0 && succs.length - i < o.replicas) return null
        return { p: prev, s: succs.slice(i) }
      }
      prev = s
    }
    return null
  }

  function setSuccs(list: string[]): void {
    const out: string[] = []
    for (const x of list) {
      if (x === self) break // the list came round the ring to us
      if (out.includes(x) || isDead(x)) continue
      out.push(x)
      if (out.length >= o.successors) break
    }
    const k = o.replicas - 1
    const changed = out.length !== succs.length || out.some((x, i) => x !== succs[i])
    if (!changed) return
    const oldPrefix = succs.slice(0, k)
    succs = out
    if (out.length > 0) hadSuccessor = true
    knownCache = null
    if (out.slice(0, k).some((x) => !oldPrefix.includes(x))) republishSoon = true
  }

  function setFinger(i: number, x: string | null): void {
    if (finger[i] !== x) {
      finger[i] = x
      knownCache = null
    }
  }

  function setPred(p: string | null): void {
    if (p === pred) return
    const prevStart = pred ?? lastPred
    pred = p
    knownCache = null
    if (p !== null) {
      lastPred = p
      // p joined inside our range: the records in (prevStart, p] are now p's, as its primary.
      if (prevStart === null || between(p, prevStart, self)) {
        const recs: StoredRecord[] = []
        const provs: StoredProvider[] = []
        const moves = (pos: string) =>
          !betweenRightIncl(pos, p, self) && (prevStart === null || betweenRightIncl(pos, prevStart, p))
        for (const x of store.records.values()) if (moves(x.pos)) recs.push(x)
        for (const m of store.providers.values()) for (const x of m.values()) if (moves(x.pos)) provs.push(x)
        if (recs.length + provs.length > 0) {
          bump(counters, 'handoff.join', recs.length + provs.length)
          background(offerTo(p, recs, provs, false))
        }
      }
    }
    republishSoon = true
  }

  function isPrimary(pos: string): boolean {
    const start = pred ?? lastPred
    return start === null || betweenRightIncl(pos, start, self)
  }

  /** The host's send, which must not throw into a handler or a tick: a failure is a lost message. */
  function send(to: string, msg: ChordMsg): void {
    try {
      deps.send(to, msg)
    } catch {
      bump(counters, 'error.send')
    }
  }

  function background(p: Promise<unknown>): void {
    p.catch(() => bump(counters, 'error.internal'))
  }

  /** Ring position of a provider key or a record slot (recordSlot(author, key)). */
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

  // --------------------------------------------------------------- requests

  /** Send a request and wait for its answer; null on timeout (the target is then marked dead) or when too many are in flight. */
  function request(
    to: string,
    make: (r: number) => ChordMsg,
    opts: { anyFrom?: boolean; timeoutMs?: number } = {},
  ): Promise<ChordMsg | null> {
    if (pending.size >= o.maxPending) {
      bump(counters, 'drop.pendingFull')
      return Promise.resolve(null)
    }
    const r = nextRid++
    return new Promise((resolve) => {
      pending.set(r, {
        to: opts.anyFrom ? null : to,
        deadline: deps.now() + (opts.timeoutMs ?? o.requestTimeoutMs),
        done: (m) => {
          if (m === null && !opts.anyFrom) {
            bump(counters, 'rpc.timeout')
            strike(to)
          }
          resolve(m)
        },
      })
      send(to, make(r))
    })
  }

  function onReply(from: string, msg: ChordMsg & { r: number }): void {
    const p = pending.get(msg.r)
    if (!p || (p.to !== null && p.to !== from)) {
      bump(counters, 'drop.unexpectedReply')
      return
    }
    pending.delete(msg.r)
    p.done(msg)
  }

  function expirePending(now: number): void {
    for (const [r, p] of pending) {
      if (p.deadline > now) continue
      pending.delete(r)
      p.done(null)
    }
  }

  // ----------------------------------------------------------------- lookup

  /** An iterative lookup; `seeds` replace our own tables as the first candidates (joining). */
  async function routeIter(target: string, seeds: string[] = []): Promise<Route | null> {
    if (seeds.length === 0) {
      const local = answerFor(target)
      if (local) return { ...local, hops: 0 }
    }
    const cmp = closerToTarget(target)
    const cands = seeds.length ? [...seeds] : closestPreceding(target, RING_BITS)
    const tried = new Set<string>()
    const silent = new Set<string>()
    let widened = false
    let hops = 0
    for (let step = 0; step < MAX_STEPS; step++) {
      let c: string | undefined
      for (const x of cands) if (!tried.has(x) && !isDead(x) && (c === undefined || cmp(x, c) < 0)) c = x
      if (c === undefined && !widened) {
        // Every node we know before the target is dead: any live node can route it, the long way round.
        widened = true
        for (const x of known()) if (!tried.has(x) && !isDead(x)) cands.push(x)
        continue
      }
      if (c === undefined) break
      tried.add(c)
      const at = c
      const res = await request(at, (r) => ({ t: 'find', r, k: target }))
      if (!res) {
        silent.add(at)
        continue
      }
      if (res.t === 'found') {
        hops++
        const s = res.s.filter((x) => !isDead(x) && !silent.has(x))
        if (s.length === 0) continue
        return { p: res.p, s, hops }
      }
      if (res.t === 'closer') {
        hops++
        for (const x of res.n) if (x !== self && !tried.has(x) && between(x, at, target)) cands.push(x)
      }
    }
    return null
  }

  /** A recursive lookup; on timeout, the iterative one. */
  async function routeRec(target: string): Promise<Route | null> {
    const local = answerFor(target)
    if (local) return { ...local, hops: 0 }
    const next = closestPreceding(target, 1)[0]
    if (next === undefined) return null
    const res = await request(next, (r) => ({ t: 'route', r, k: target, o: self, h: 1 }), {
      anyFrom: true,
      timeoutMs: o.requestTimeoutMs * 4,
    })
    if (res?.t === 'routed') {
      const s = res.s.filter((x) => !isDead(x))
      if (s.length > 0) return { p: res.p, s, hops: res.h }
    }
    bump(counters, 'lookup.recursiveFallback')
    return routeIter(target)
  }

  function route(target: string): Promise<Route | null> {
    return o.iterative ? routeIter(target) : routeRec(target)
  }

  /**
   * Check a lookup's answer with the node it names: ask it for its
   * predecessor and successor list. When the target lies between the two,
   * that node is responsible and its own successor list names the replicas.
   * When its predecessor lies at or past the target, step back to it (a node
   * joined a moment ago). When the node lies before the target (a stale
   * successor list pointed there), route on from it. A dead node is skipped.
   */
  async function resolve(
    target: string,
  ): Promise<{ owners: string[]; pred: string | null; hops: number } | null> {
    const first = await route(target)
    if (!first) return null
    // Nodes that did not answer during this resolution: gone for its purposes, even before a
    // second timeout marks them dead for everyone.
    const silent = new Set<string>()
    const gone = (x: string) => isDead(x) || silent.has(x)
    let hops = first.hops
    let list = first.s.filter((x) => !gone(x))
    const asked = new Set<string>()
    for (let i = 0; i < 24; i++) {
      const s = list[0]
      if (s === undefined) return null
      if (s === self) return { owners: [self, ...succs], pred, hops }
      if (asked.has(s)) return { owners: list, pred: null, hops }
      asked.add(s)
      let res = await request(s, (r) => ({ t: 'getPred', r }))
      // Silence once may be a lost message: ask again before passing over the node.
      if (!res) res = await request(s, (r) => ({ t: 'getPred', r }))
      if (res?.t !== 'pred') {
        if (!res) silent.add(s)
        list = list.slice(1).filter((x) => !gone(x))
        continue
      }
      bump(counters, 'lookup.confirm')
      const p = res.p
      if (p === null || p === s || betweenRightIncl(target, p, s) || gone(p))
        return { owners: [s, ...res.s.filter((x) => x !== s && !gone(x))], pred: p, hops }
      bump(counters, 'lookup.corrected')
      if (p === target || between(p, target, s)) {
        list = [p, s, ...res.s]
        continue
      }
      const on = await routeIter(target, [s])
      if (!on) return null
      hops += on.hops
      list = on.s.filter((x) => !gone(x))
    }
    return null
  }

  // --------------------------------------------------------- ring upkeep

  async function stabilize(): Promise<void> {
    if (succs.length === 0) {
      if (!hadSuccessor) {
        // Alone in a ring we created (the paper's successor = self): adopt whoever notified us.
        if (pred !== null) setSuccs([pred])
      } else await recoverSuccessor()
      if (succs.length === 0) return
    }
    const first = succs[0] as string
    let s = first
    let res = await request(s, (r) => ({ t: 'getPred', r }))
    if (res?.t !== 'pred') {
      if (!res) {
        // It is marked dead. Others in the list may have died with it: ping them all at once
        // rather than finding out one stabilization at a time, and go on at the next tick.
        due.stabilize = 0
        await Promise.all(succs.map((x) => request(x, (r) => ({ t: 'ping', r }))))
      }
      return
    }
    // The successor's predecessor lies between us: it is our closer successor. Keep stepping back
    // (a round trip a step) until none does, so a far successor, after failures, is corrected in one
    // stabilization and our predecessors never copy a list that skips live nodes.
    for (let step = 0; step < 64; step++) {
      const x: string | null = res.p
      if (x === null || x === self || !between(x, self, s) || isDead(x)) break
      const closer = await request(x, (r) => ({ t: 'getPred', r }))
      if (closer?.t !== 'pred') break
      s = x
      res = closer
    }
    if (succs[0] !== first) return // changed meanwhile (a newSucc, a death): start again next time
    setSuccs([s, ...res.s])
    if (succs[0] !== undefined) send(succs[0], { t: 'notify' })
  }

  function onNotify(from: string): void {
    if (pred === null || between(from, pred, self)) setPred(from)
    // Alone in the ring we created: the first node to notify us is also our successor.
    if (succs.length === 0 && !hadSuccessor) setSuccs([from])
  }

  function onNewSucc(from: string): void {
    if (succs.length === 0 || between(from, self, succs[0] as string)) {
      setSuccs([from, ...succs])
      send(from, { t: 'notify' })
    }
  }

  /** `from` leaves: splice it out (its predecessor becomes ours, its successors ours), then forget it. */
  function onLeave(from: string, p: string | null, list: string[]): void {
    bump(counters, 'ring.leave')
    if (pred === from) setPred(p === self ? null : p)
    if (succs[0] === from) setSuccs(list)
    markDead(from)
  }

  async function fixFingers(): Promise<void> {
    const s0 = succs[0]
    if (s0 === undefined) {
      for (let i = 0; i < RING_BITS; i++) setFinger(i, null)
      return
    }
    let i = fixNext
    while (i < RING_BITS && betweenRightIncl(starts[i] as string, self, s0)) setFinger(i++, s0)
    if (i >= RING_BITS) {
      fixNext = 0
      return
    }
    const start = starts[i] as string
    const res = await route(start)
    const f = res?.s[0]
    // An answer before the start (from a stale successor list) is no finger.
    if (f === undefined || f === self || !(f === start || between(f, start, self))) {
      setFinger(i, null)
      fixNext = (i + 1) % RING_BITS
      return
    }
    setFinger(i, f)
    let j = i + 1
    if (f !== start)
      while (j < RING_BITS && betweenRightIncl(starts[j] as string, start, f)) setFinger(j++, f)
    fixNext = j % RING_BITS
  }

  /**
   * Every successor failed. Take the nearest live node after us that we, or
   * our predecessor, know (the predecessor's fingers just past us are close),
   * then step back through predecessors to the nearest one.
   */
  async function recoverSuccessor(): Promise<void> {
    bump(counters, 'ring.recover')
    const cands = new Set(known())
    if (pred !== null) {
      const res = await request(pred, (r) => ({ t: 'table', r }))
      if (res?.t === 'fingers') for (const x of res.f) cands.add(x)
    }
    let best: string | null = null
    for (const x of cands) if (x !== self && !isDead(x) && (best === null || between(x, self, best))) best = x
    // Walk back from there through predecessors, one round trip a step, before anyone copies the
    // list: a far successor in our list would reach our predecessors' lists too.
    let list: string[] = []
    for (let step = 0; best !== null && step < 64; step++) {
      if (succs.length > 0) return // someone notified us meanwhile
      const at: string = best
      const res = await request(at, (r) => ({ t: 'getPred', r }))
      if (res?.t !== 'pred') {
        best = list[0] ?? null
        list = list.slice(1)
        continue
      }
      list = [at, ...res.s]
      const p = res.p
      if (p === null || p === self || !between(p, self, at) || isDead(p)) break
      best = p
    }
    if (succs.length === 0 && list.length > 0) setSuccs(list)
  }

  /** Finger hints from a node's table: finger[i] = the first hint at or past start[i] (before coming round to us). */
  async function fetchFingerHints(from: string): Promise<void> {
    const res = await request(from, (r) => ({ t: 'table', r }))
    if (res?.t !== 'fingers') return
    const hints = [...new Set([from, ...res.f, ...succs])].filter((x) => x !== self && !isDead(x)).sort()
    if (hints.length === 0) return
    for (let i = 0; i < RING_BITS; i++) {
      const st = starts[i] as string
      let best: string | null = null
      for (const h of hints)
        if ((h === st || between(h, st, self)) && (best === null || between(h, st, best))) best = h
      if (best !== null && finger[i] === null) setFinger(i, best)
    }
  }

  async function checkPredecessor(): Promise<void> {
    const p = pred
    if (p === null) {
      if (hadSuccessor) await seekPredecessor()
      return
    }
    await request(p, (r) => ({ t: 'ping', r })) // a timeout marks it dead, which clears it
  }

  /**
   * No predecessor has notified us: the node the ring believes precedes our id
   * may have lost us from its successor list (all its successors died at once).
   * Look up our own id and tell that node we are its successor, as a joining node does.
   */
  async function seekPredecessor(): Promise<void> {
    const r = await routeIter(self)
    if (!r || pred !== null) return
    if (r.p !== self && !r.s.includes(self)) {
      bump(counters, 'ring.seekPredecessor')
      send(r.p, { t: 'newSucc' })
    }
  }

  // ------------------------------------------------------------ storage

  function offerDigest(x: StoredRecord): OfferRec {
    return [x.rec.k, x.rec.a, x.rec.q, x.rec.t]
  }

  /**
   * Offer records to `to`; send what it wants. With `ack`, wait for each store
   * to be acknowledged. True when every exchange completed.
   */
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
      const res = await request(to, (r) => ({
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
        send(to, { t: 'store', r: 0, recs: rc, provs: pc })
        return
      }
      const res = await request(to, (r) => ({ t: 'store', r, recs: rc, provs: pc }))
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
   * Check and store records from a peer (or ourselves). A record older than
   * the one held (a replay, or a write below the author's last sequence) is
   * refused as `stale` without checking its signature, and the answer names
   * the sequence held.
   */
  async function applyStore(recs: RecordWire[], provs: ProviderWire[]): Promise<StoreOutcome> {
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
      const result = store.putRecord(rec, await positionOf(recordSlot(rec.a, rec.k)), now)
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

  function onOffer(from: string, msg: Extract<ChordMsg, { t: 'offer' }>): void {
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
    send(from, { t: 'want', r: msg.r, recs, provs })
  }

  /**
   * Store on the owners (the position's successor first). Resolves once the
   * primary accepted, or else once every owner answered (or timed out):
   * `accepted` when any did. `staleSeq`: the highest sequence an owner said
   * it holds above ours, among the answers so far; later answers still reach
   * `onLate` (the primary's acceptance does not wait for the replicas).
   */
  function storeAtOwners(
    owners: string[],
    recs: RecordWire[],
    provs: ProviderWire[],
    onLate: (a: OwnerAnswer) => void = () => undefined,
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
            ? applyStore(recs, provs).then((x) => ({ ok: x.ok, err: x.err, q: x.staleSeq }))
            : request(owner, (r) => ({ t: 'store', r, recs, provs })).then((res) =>
                res?.t === 'stored' ? { ok: res.ok, err: res.err, q: res.q } : null,
              )
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

  /**
   * Route to the position's owners and store there; routed again while no
   * owner answers. Resolves when an owner accepted, or when one said it holds
   * a higher sequence of one of the records (`staleSeq`: it is the caller's
   * to judge that claim); any other refusal rejects with RemoteError.
   */
  async function storeFor(
    pos: string,
    recs: RecordWire[],
    provs: ProviderWire[],
    onLate?: (a: OwnerAnswer) => void,
  ): Promise<{ accepted: boolean; staleSeq: number | null }> {
    let routed = false
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await resolve(pos)
      if (!r) continue
      routed = true
      const res = await storeAtOwners(r.owners.slice(0, o.replicas), recs, provs, onLate)
      if (res.accepted || res.staleSeq !== null) return { accepted: res.accepted, staleSeq: res.staleSeq }
      if (res.answered > 0) throw new RemoteError(`the responsible node refused the record: ${res.err}`)
    }
    if (routed) throw new TimeoutError(`no node responsible for ${pos} answered`)
    throw new NoRouteError(pos, `no route to the nodes responsible for ${pos}`)
  }

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

  /**
   * Write our own record for `key` (a value, or a tombstone) with a sequence
   * above every one we know of. An owner may answer that it holds a higher
   * sequence of ours (written before a reload, or while our clock ran
   * ahead), even after the primary accepted: we believe only what our own
   * signature proves (a verified read), then sign again above it, at most
   * `retries` times. A false claim costs one read and changes nothing.
   */
  async function writeOwn(
    key: string,
    vb: Uint8Array,
    deleted: boolean,
    retries = STALE_RETRIES,
  ): Promise<void> {
    const pos = await positionOf(recordSlot(self, key))
    const gen = (writes.get(key) ?? 0) + 1
    remember(writes, key, gen)
    const seq = nextSeq(key)
    noteSeq(key, seq)
    const rec = await signRecord(deps.keys, self, key, vb, deleted, { seq, time: Math.floor(deps.now()) })
    let checked: Promise<boolean> | null = null
    const writeAbove = (): Promise<boolean> => {
      checked ??= (async () => {
        const best = await readRecord(key, self)
        if (!best || compareRecords(best, rec) <= 0) {
          bump(counters, 'put.staleUnproven')
          return false
        }
        noteSeq(key, best.q)
        if (writes.get(key) !== gen) return true // a newer write of ours is on its way
        if (retries <= 1) throw new RemoteError(`the responsible nodes keep a newer record of ${key}`)
        await writeOwn(key, vb, deleted, retries - 1)
        return true
      })()
      return checked
    }
    const res = await storeFor(pos, [rec], [], (late) => {
      if (late.q === null || late.q < seq) return
      bump(counters, 'put.lateStale')
      background(writeAbove())
    })
    if (res.staleSeq === null) return
    bump(counters, 'put.stale')
    if (!(await writeAbove()) && !res.accepted)
      throw new RemoteError('the responsible node refused the record: stale')
  }

  /**
   * Read `author`'s record for `key` from `replicas` owners at once; the
   * highest verified version wins. A record that fails its checks, or is not
   * the one asked for, counts as none (`drop.got.bad`). Owners that had none
   * or an older one get the winner (read repair).
   */
  async function readRecord(key: string, author: string): Promise<RecordWire | null> {
    const pos = await positionOf(recordSlot(author, key))
    const answers = await askOwners(pos, key, async (w): Promise<RecordWire | null | undefined> => {
      if (w === self) return store.getRecord(author, key)?.rec ?? null
      const res = await request(w, (r) => ({ t: 'get', r, k: key, a: author }))
      if (res?.t !== 'got') return undefined
      if (!res.rec) return null
      if (
        res.rec.k !== key ||
        res.rec.a !== author ||
        (await checkRecord(deps.keys, res.rec, recordLimits, deps.now())) !== null
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
      if (w === self) background(applyStore([best], []))
      else send(w, { t: 'store', r: 0, recs: [best], provs: [] })
    }
    return best
  }

  async function republish(now: number, periodic: boolean): Promise<void> {
    republishSoon = false
    const recs: StoredRecord[] = []
    const provs: StoredProvider[] = []
    for (const x of store.records.values())
      if (isPrimary(x.pos)) {
        x.confirmed = now
        recs.push(x)
      }
    for (const m of store.providers.values())
      for (const x of m.values())
        if (isPrimary(x.pos)) {
          x.confirmed = now
          provs.push(x)
        }
    if (recs.length + provs.length > 0) {
      const targets = succs.slice(0, o.replicas - 1)
      await Promise.all(targets.map((t) => offerTo(t, recs, provs, false)))
    }
    if (periodic) await handOffStrays(now)
  }

  /**
   * Records no primary has confirmed for three republish periods: offer them
   * to the owners a fresh lookup names, and drop them once those owners have
   * acknowledged (unless we turn out to be one of them).
   */
  async function handOffStrays(now: number): Promise<void> {
    const limit = now - 3 * o.republishMs
    const strays = [...store.records.values()]
      .filter((x) => x.confirmed < limit && !isPrimary(x.pos))
      .sort((a, b) => (a.pos < b.pos ? -1 : a.pos > b.pos ? 1 : 0))
    for (let g = 0; g < HANDOFF_GROUPS && strays.length > 0; g++) {
      const first = strays[0] as StoredRecord
      const r = await resolve(first.pos)
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

  async function provideOnce(key: string): Promise<void> {
    const pos = await positionOf(key)
    const rec = await signProvider(deps.keys, self, key, Math.floor(deps.now()), o.providerTtlMs)
    await storeFor(pos, [], [rec])
  }

  async function refreshProvided(): Promise<void> {
    for (const key of [...provided]) {
      if (!provided.has(key)) continue
      try {
        await provideOnce(key)
      } catch {
        bump(counters, 'provide.refreshFailed')
      }
    }
  }

  /**
   * Ask the owners of position `pos` (its successor first, then the next
   * ones, past dead ones) until `replicas` of them have answered: the first
   * `replicas` at once, then one more for each that stayed silent. `ask`
   * gives undefined when a node did not answer. When nobody answers, routes
   * again (3 attempts in all); then TimeoutError if a route was found,
   * NoRouteError if not. `what` names the key in errors.
   */
  async function askOwners<T>(
    pos: string,
    what: string,
    ask: (w: string) => Promise<T | undefined>,
  ): Promise<[string, T][]> {
    let routed = false
    let partial: [string, T][] = []
    for (let attempt = 0; attempt < 3; attempt++) {
      const owners = (await resolve(pos))?.owners
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
  }

  // ------------------------------------------------------------- handlers

  /** A message from `from`. Validated here with parseChordMsg whatever the host did; never throws. */
  async function handle(from: string, raw: ChordMsg): Promise<void> {
    if (!isNodeId(from) || from === self) {
      bump(counters, 'drop.from')
      return
    }
    const msg = parseChordMsg(raw as Value)
    if (!msg) {
      bump(counters, 'drop.malformed')
      return
    }
    dead.delete(from) // it spoke: it is alive
    strikes.delete(from)
    if (REPLY_TYPES.has(msg.t)) {
      onReply(from, msg as ChordMsg & { r: number })
      return
    }
    switch (msg.t) {
      case 'ping':
        send(from, { t: 'pong', r: msg.r })
        return
      case 'find': {
        const a = answerFor(msg.k)
        if (a) send(from, { t: 'found', r: msg.r, p: a.p, s: a.s })
        else send(from, { t: 'closer', r: msg.r, n: closestPreceding(msg.k, CLOSER_COUNT) })
        return
      }
      case 'route': {
        const a = answerFor(msg.k)
        if (a) {
          send(msg.o, { t: 'routed', r: msg.r, p: a.p, s: a.s, h: msg.h })
          return
        }
        const next = closestPreceding(msg.k, 1)[0]
        if (next === undefined || msg.h >= MAX_STEPS) {
          bump(counters, 'drop.routeStuck')
          return
        }
        send(next, { ...msg, h: msg.h + 1 })
        return
      }
      case 'getPred':
        send(from, { t: 'pred', r: msg.r, p: pred, s: [...succs] })
        return
      case 'notify':
        onNotify(from)
        return
      case 'newSucc':
        onNewSucc(from)
        return
      case 'leave':
        onLeave(from, msg.p, msg.s)
        return
      case 'table':
        send(from, { t: 'fingers', r: msg.r, f: known().slice(0, LIMITS.ids) })
        return
      case 'offer':
        onOffer(from, msg)
        return
      case 'store': {
        const res = await applyStore(msg.recs, msg.provs)
        if (msg.r > 0) send(from, { t: 'stored', r: msg.r, ok: res.ok, err: res.err, q: res.staleSeq })
        // A successor handing us records that lie before our range: they belong to our predecessor
        // (several nodes joined in one gap, and it told us before we had them).
        const p = pred
        if (p !== null && succs.includes(from)) {
          const back = res.fresh.filter((x) => !betweenRightIncl(x.pos, p, self))
          if (back.length > 0) {
            bump(counters, 'handoff.back', back.length)
            background(offerTo(p, back, [], false))
          }
        }
        return
      }
      case 'get':
        send(from, { t: 'got', r: msg.r, rec: store.getRecord(msg.a, msg.k)?.rec ?? null })
        return
      case 'getProv':
        send(from, {
          t: 'provs',
          r: msg.r,
          provs: store.providersOf(msg.k, deps.now()).slice(0, LIMITS.records),
        })
        return
      default:
        bump(counters, 'drop.unexpected')
    }
  }

  function run(name: keyof typeof busy, task: () => Promise<void>): void {
    busy[name] = true
    task()
      .catch(() => bump(counters, 'error.internal'))
      .finally(() => {
        busy[name] = false
      })
  }

  function tick(now: number): void {
    expirePending(now)
    if (!started) return
    if (firstTick) {
      firstTick = false
      due.stabilize = now + jitter(o.stabilizeMs) / 4
      due.fix = now + jitter(o.fixFingersMs)
      due.checkPred = now + jitter(o.checkPredecessorMs)
      due.republish = now + jitter(o.republishMs)
      due.provide = now + jitter(o.provideRefreshMs)
      due.gc = now + jitter(Math.min(o.republishMs, 30_000))
    }
    if (now >= due.stabilize && !busy.stabilize) {
      due.stabilize = now + jitter(o.stabilizeMs)
      run('stabilize', stabilize)
    }
    if (now >= due.checkPred && !busy.checkPred) {
      due.checkPred = now + jitter(o.checkPredecessorMs)
      run('checkPred', checkPredecessor)
    }
    if (now >= due.fix && !busy.fix) {
      due.fix = now + jitter(o.fixFingersMs)
      run('fix', fixFingers)
    }
    if ((republishSoon || now >= due.republish) && !busy.republish) {
      const periodic = now >= due.republish
      if (periodic) due.republish = now + jitter(o.republishMs)
      run('republish', () => republish(now, periodic))
    }
    if (now >= due.provide && !busy.provide && provided.size > 0) {
      due.provide = now + jitter(o.provideRefreshMs)
      run('provide', refreshProvided)
    }
    if (now >= due.gc) {
      due.gc = now + jitter(Math.min(o.republishMs, 30_000))
      bump(counters, 'gc.dropped', store.gc(now, o.tombstoneTtlMs))
      for (const [x, until] of dead) if (until <= now) dead.delete(x)
    }
  }

  // ----------------------------------------------------------- public API

  function checkKey(key: string): void {
    const n = keyBytes(key)
    if (n > o.maxKeyBytes) throw new ValueTooLargeError(n, o.maxKeyBytes, 'key')
  }

  const chord: Chord = {
    counters,
    handle,
    tick,

    async join(bootstrap) {
      started = true
      if (bootstrap === null || bootstrap === self) return
      for (let attempt = 0; attempt < 3; attempt++) {
        const r = await routeIter(self, [bootstrap])
        const s = r?.s.filter((x) => x !== self) ?? []
        if (!r || s.length === 0) continue
        setSuccs(s)
        const first = succs[0]
        if (first === undefined) continue
        send(first, { t: 'notify' })
        if (r.p !== self && r.p !== first) send(r.p, { t: 'newSucc' })
        background(fetchFingerHints(first))
        bump(counters, 'joined')
        return
      }
      throw new NoRouteError(bootstrap, `could not join the ring through ${bootstrap}`)
    },

    async leave() {
      if (!started) return
      started = false
      provided.clear()
      const s0 = succs[0]
      if (s0 !== undefined) {
        const provs: StoredProvider[] = []
        for (const m of store.providers.values()) for (const x of m.values()) provs.push(x)
        // The successor becomes primary for our range: it must hold everything first.
        await offerTo(s0, [...store.records.values()], provs, true)
      }
      const msg: ChordMsg = { t: 'leave', p: pred, s: [...succs] }
      if (s0 !== undefined) send(s0, msg)
      if (pred !== null && pred !== s0) send(pred, msg)
      bump(counters, 'left')
    },

    async lookup(key) {
      if (!isNodeId(key)) throw new TypeError('lookup takes a 40-hex-character position')
      bump(counters, 'lookup')
      for (let attempt = 0; attempt < 2; attempt++) {
        const r = await resolve(key)
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
      await writeOwn(key, vb, false)
    },

    async get(key, author = self) {
      const rec = await chord.getRecord(key, author)
      return rec?.value
    },

    async getRecord(key, author = self) {
      checkKey(key)
      if (!isNodeId(author)) throw new TypeError('an author is a node id: 40 lowercase hex characters')
      const rec = await readRecord(key, author)
      if (!rec) return undefined
      return { key, author, value: decodeRecordValue(rec), deleted: rec.d, seq: rec.q, time: rec.t }
    },

    async delete(key) {
      checkKey(key)
      await writeOwn(key, new Uint8Array(0), true)
    },

    async provide(key) {
      checkKey(key)
      provided.add(key)
      await provideOnce(key)
    },

    unprovide(key) {
      provided.delete(key)
    },

    async findProviders(key) {
      checkKey(key)
      // No early stop: providers announced while the ring was settling may sit on different
      // owners, so the answer is the union over up to `replicas` of them.
      const answers = await askOwners(await positionOf(key), key, async (w) => {
        if (w === self) return store.providersOf(key, deps.now())
        const res = await request(w, (r) => ({ t: 'getProv', r, k: key }))
        return res?.t === 'provs' ? res.provs : undefined
      })
      const found = new Set<string>()
      for (const [, list] of answers)
        for (const p of list) {
          if (p.k !== key || found.has(p.p)) continue
          if ((await checkProvider(deps.keys, p, providerLimits, deps.now())) !== null) {
            bump(counters, 'drop.provs.bad')
            continue
          }
          found.add(p.p)
        }
      return [...found]
    },

    successor: () => succs[0] ?? self,
    successors: () => [...succs],
    predecessor: () => pred,
    fingers() {
      const out: string[] = []
      for (const f of finger) if (f !== null && !out.includes(f)) out.push(f)
      return out
    },
    fingerTable: () => [...finger],
    neededLinks: () => new Set(known()),

    nextHop(target) {
      if (target === self || succs.length === 0) return null
      if (pred !== null && betweenRightIncl(target, pred, self)) return null
      if (known().includes(target) && !isDead(target)) return target
      const s0 = succs[0] as string
      // Target falls between us and our successor but is not a node we know: it is not on the ring
      // as we see it. Passing it to s0 would overshoot, and greedy forwarding would go round again.
      if (betweenRightIncl(target, self, s0)) return target === s0 ? s0 : null
      return closestPreceding(target, 1)[0] ?? s0
    },

    storedKeys: () => store.recordCount,
    holds: (key, author) => store.getRecord(author, key) !== undefined,
    heldSeq: (key, author) => store.getRecord(author, key)?.rec.q,
    storedProviders: () => store.providerCount,
    holdsProvider: (key, provider) => store.getProvider(key, provider) !== undefined,

    exportState() {
      const provs: ProviderWire[] = []
      for (const m of store.providers.values()) for (const x of m.values()) provs.push(x.rec)
      return {
        v: 2,
        recs: [...store.records.values()].map((x) => x.rec),
        provs,
        provided: [...provided],
        seqs: [...seqs],
      }
    },

    async importState(v) {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return 0
      // Version 1 held last-writer-wins records without owners: none of them would verify now.
      if (v.v !== 2) return 0
      const recs = Array.isArray(v.recs) ? v.recs.map(parseRecord).filter((x) => x !== null) : []
      const provs = Array.isArray(v.provs) ? v.provs.map(parseProvider).filter((x) => x !== null) : []
      let n = 0
      for (let i = 0; i < recs.length; i += LIMITS.records)
        n += (await applyStore(recs.slice(i, i + LIMITS.records), [])).ok
      for (let i = 0; i < provs.length; i += LIMITS.records)
        n += (await applyStore([], provs.slice(i, i + LIMITS.records))).ok
      if (Array.isArray(v.provided))
        for (const k of v.provided) if (typeof k === 'string' && keyBytes(k) <= o.maxKeyBytes) provided.add(k)
      if (Array.isArray(v.seqs))
        for (const x of v.seqs.slice(-MAX_SEQS)) {
          if (!Array.isArray(x)) continue
          const [k, q] = x
          if (typeof k === 'string' && typeof q === 'number' && Number.isSafeInteger(q) && q >= 0)
            noteSeq(k, q)
        }
      return n
    },
  }
  return chord
}
