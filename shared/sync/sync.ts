/**
 * The sync table: a key-value table every node holds a replica of, with
 * leases. (p2p.today's SyncSocket, made to converge and to keep its leases.)
 *
 * Entries. Each key holds one signed entry (entry.ts): key, value or
 * tombstone, the author's public key (the author id is derived from it), the
 * author's HLC timestamp, an optional lease, and the author's signature over
 * the exact body bytes. Relays cannot alter an entry; anyone can forward it.
 *
 * The rooms, one concept each:
 * - merge.ts: which of two versions a replica keeps. Last writer wins by a
 *   total order; a live lease refuses other authors' writes; concurrent
 *   lease acquisitions settle on the earliest; every claim is judged by the
 *   replica's own clock on first sight, so no one can back-date one.
 * - accept.ts: the checks every version passes, from the network or a local
 *   write, cheapest first, and the tombstone horizon.
 * - quota.ts: the authors' shares of a bounded table.
 * - anti-entropy.ts: repairing what broadcasts missed, link by link.
 * - budgets.ts: what one peer may make this replica check per period.
 * - table.ts, entry.ts, messages.ts, options.ts, events.ts: the storage, the
 *   signed entry, the wire grammar (PROTOCOL-sync.md), the options, and the
 *   listeners.
 *
 * Propagation. Every local write is broadcast (`deps.broadcast`, a signed
 * mesh broadcast in the host) as a `p` message, which the host hands back
 * to every replica through `handleBroadcast`; anti-entropy runs over links
 * (`handle`). Every input is parsed here, at the boundary (messages.ts
 * returns typed messages or null), and dropped and counted
 * (`drop.<reason>`) when it breaks a rule; nothing throws into the host.
 *
 * Time enters only through `deps.now()`; the host calls `tick` often (every
 * 100–250 ms) to run collection and anti-entropy.
 */
import { ValueTooLargeError } from '../errors.ts'
import { createHlcClock } from '../hlc.ts'
import { bump, type Counters, type ProtocolNode, type SignedProtocolDeps } from '../protocol.ts'
import { isValue, type Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import { type Acceptor, createAcceptor } from './accept.ts'
import { createAntiEntropy } from './anti-entropy.ts'
import { createBudgets } from './budgets.ts'
import { entryValue } from './entry.ts'
import { createEvents, type SyncAccept, type SyncChange } from './events.ts'
import { mergeRules } from './merge.ts'
import { parseSnapshot, parseSyncMsg, SNAPSHOT_VERSION, type SyncMsg } from './messages.ts'
import { resolveSyncOptions, type SyncOptions } from './options.ts'
import { Table } from './table.ts'

export { MAX_PEER_BUDGETS } from './budgets.ts'
export type { AcceptSource, SyncAccept, SyncChange } from './events.ts'
export { resolveSyncOptions, type SyncConfig, type SyncOptions } from './options.ts'

/**
 * The mesh topic sync broadcasts travel on: NUL-prefixed, so no application
 * topic meets it. The node composition (shared/node) carries them there, in
 * the browser node and the simulator alike.
 */
export const SYNC_TOPIC = '\u0000sync'

export interface SyncDeps extends SignedProtocolDeps<SyncMsg> {
  /** Ids this node has a live link to now. */
  neighbours(): string[]
  /** Send `msg` network-wide; the host wraps it in a signed mesh broadcast and hands copies to `handleBroadcast`. */
  broadcast(msg: SyncMsg): void
}

export interface Sync extends ProtocolNode<SyncMsg> {
  /** A broadcast delivered by the mesh (`origin` is the mesh's checked origin; `msg` its data, parsed here). */
  handleBroadcast(origin: string, msg: unknown): Promise<void>
  /** Write a value. Throws LeaseHeldError (another node's live lease), ValueTooLargeError, QuotaExceededError, TypeError (not a Value), RangeError (bad leaseMs). */
  set(key: string, value: Value, opts?: { leaseMs?: number }): Promise<void>
  get(key: string): Value | undefined
  /** Delete a key (a tombstone). A key this replica does not hold is a no-op. Throws LeaseHeldError. */
  delete(key: string): Promise<void>
  /** Live entries, sorted by key; values are fresh copies. */
  entries(): [string, Value][]
  /** The node holding a lease that binds this replica now. */
  owner(key: string): string | undefined
  /** That lease: its owner and `expires` (the owner's clock; others may write from expires + leaseGraceMs). */
  lease(key: string): { owner: string; expires: number } | undefined
  /** Called once per accepted version that changes the live view (not for a delete of an absent key), and per value evicted. */
  onChange(fn: (e: SyncChange) => void): () => void
  /** Called once per accepted version, whatever it changes. */
  onAccept(fn: (e: SyncAccept) => void): () => void
  /** Equal on two replicas ⇔ same live table (same versions of the same keys). */
  digest(): string
  /** Every entry with its signature, tombstones included, and this replica's clock: for persistence. */
  exportState(): Value
  /** Check and merge a snapshot from `exportState`; returns the number of entries accepted. */
  importState(v: Value): Promise<number>
  /** Entries held (tombstones included) and their bytes; `budgets`: per-peer rate budgets held (at most MAX_PEER_BUDGETS). */
  size(): { entries: number; live: number; bytes: number; budgets: number }
  readonly counters: Counters
}

export function createSync(deps: SyncDeps, options: SyncOptions = {}): Sync {
  const opt = resolveSyncOptions(options)
  const counters: Counters = {}
  const table = new Table()
  const clock = createHlcClock(() => deps.now(), opt.maxSkewMs)
  const rules = mergeRules(opt)
  const events = createEvents(counters)
  const acceptor: Acceptor = createAcceptor({ deps, opt, table, clock, rules, events, counters })
  const budgets = createBudgets(opt, counters, () => deps.neighbours())
  const antiEntropy = createAntiEntropy({ deps, opt, table, rules, acceptor, budgets, counters })
  let nextGc = 0

  const drop = (reason: string, n = 1): void => bump(counters, `drop.${reason}`, n)

  async function write(key: string, valueBytes: Uint8Array | undefined, leaseMs: number | undefined) {
    const e = await acceptor.write(key, valueBytes, leaseMs)
    if (!e) return
    deps.broadcast({ t: 'p', e })
    bump(counters, 'out.p')
  }

  const sync: Sync = {
    counters,

    async handle(from, msg) {
      if (typeof from !== 'string' || from === deps.id) return drop('malformed')
      const m = parseSyncMsg(msg)
      if (!m) return drop('malformed')
      bump(counters, `in.${m.t}`)
      const now = deps.now()
      const budget = budgets.spend(from, now)
      if (!budget) return drop('rateLimited')
      // A put handed over a link rather than through the mesh: checked the same way.
      if (m.t === 'p') return void (await acceptor.acceptWire(m.e, 'broadcast'))
      await antiEntropy.handle(from, m, budget, now)
    },

    async handleBroadcast(_origin, msg) {
      const m = parseSyncMsg(msg)
      if (!m) return drop('malformed')
      if (m.t !== 'p') return drop('unexpected')
      bump(counters, 'in.p')
      await acceptor.acceptWire(m.e, 'broadcast')
    },

    tick() {
      const now = deps.now()
      if (now >= nextGc) {
        acceptor.collect(now)
        budgets.prune(now)
        nextGc = now + Math.min(opt.antiEntropyMs, 1_000)
      }
      antiEntropy.tick(now)
    },

    linkUp: (p) => antiEntropy.linkUp(p),
    linkDown: (p) => antiEntropy.linkDown(p),

    async set(key, value, opts) {
      acceptor.checkKey(key)
      if (!isValue(value)) throw new TypeError('sync: not a Value')
      const vb = encodeValue(value)
      if (vb.length > opt.maxValueBytes) throw new ValueTooLargeError(vb.length, opt.maxValueBytes)
      let leaseMs: number | undefined
      if (opts?.leaseMs !== undefined) {
        const l = opts.leaseMs
        if (typeof l !== 'number' || Number.isNaN(l))
          throw new TypeError(
            `sync: leaseMs is milliseconds, a number (got ${typeof l === 'number' ? l : typeof l})`,
          )
        if (!Number.isFinite(l) || l < 0 || l > opt.maxLeaseMs)
          throw new RangeError(`sync: leaseMs must be between 0 and ${opt.maxLeaseMs}`)
        leaseMs = Math.ceil(l)
      }
      await write(key, vb, leaseMs)
    },

    get(key) {
      const e = table.get(key)
      return e ? entryValue(e) : undefined
    },

    async delete(key) {
      acceptor.checkKey(key)
      const cur = table.get(key)
      if (!cur || cur.tombstone) return
      await write(key, undefined, undefined)
    },

    entries() {
      const out: [string, Value][] = []
      for (const e of table.values()) {
        const v = entryValue(e)
        if (v !== undefined) out.push([e.key, v])
      }
      return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    },

    owner(key) {
      return sync.lease(key)?.owner
    },

    lease(key) {
      const e = table.get(key)
      if (!e || e.expires === undefined || !rules.leaseBinds(e, deps.now())) return undefined
      return { owner: e.author, expires: e.expires }
    },

    onChange: (fn) => events.onChange(fn),
    onAccept: (fn) => events.onAccept(fn),

    digest: () => table.liveDigest(),

    size: () => ({ entries: table.size, live: table.liveSize, bytes: table.bytes, budgets: budgets.size }),

    exportState() {
      const e: Value[] = []
      for (const x of table.values()) e.push([x.body, x.publicKey, x.sig])
      return { v: SNAPSHOT_VERSION, at: deps.now(), e }
    },

    async importState(v) {
      const snap = parseSnapshot(v)
      if (!snap) {
        drop('malformed')
        return 0
      }
      if (snap.bad > 0) drop('malformed', snap.bad)
      if (deps.now() - snap.at > opt.tombstoneHorizonMs - opt.maxSkewMs) {
        drop('snapshotTooOld')
        return 0
      }
      let accepted = 0
      for (const w of snap.entries) if (await acceptor.acceptWire(w, 'import')) accepted++
      if (accepted > 0) antiEntropy.announceNews(undefined)
      return accepted
    },
  }
  return sync
}
