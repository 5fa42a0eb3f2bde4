/**
 * The sync table: a key-value table every node holds a replica of, with
 * leases. (p2p.today's SyncSocket, made to converge and to keep its leases.)
 *
 * Entries. Each key holds one signed entry (entry.ts): key, value or
 * tombstone, the author's public key (the author id is derived from it), the
 * author's HLC timestamp, an optional lease, and the author's signature over
 * the exact body bytes. Relays cannot alter an entry; anyone can forward it.
 *
 * Merge. Last writer wins by (HLC, author id), then body and signature bytes
 * (entry.ts `compareEntries`), a total order, so replicas that hold the same
 * entries hold the same table whatever order they saw them in. An entry is
 * accepted when it is well-formed, within limits, not dated more than
 * `maxSkewMs` ahead of this replica's clock, correctly signed, newer than
 * what the replica holds for the key (or an earlier lease acquisition, see
 * Contention), not blocked by a lease, and within the quotas. Everything
 * else is dropped and counted (`drop.<reason>`).
 *
 * Leases. `set(key, value, { leaseMs })` makes the author the key's owner
 * until `expires = hlc.wall + leaseMs`: the author's own HLC wall time, its
 * clock. The rule, applied by every replica to its own copy:
 *
 *   While the entry a replica holds for a key has a lease, the replica
 *   refuses any write or delete by another author until its own clock reads
 *   `expires + leaseGraceMs`. A local call throws LeaseHeldError(owner,
 *   expires); a remote entry is dropped (`drop.leaseHeld`), and comes back
 *   through anti-entropy once the lease has ended, if it is still the newest.
 *
 * The guarantee, which the simulator's property test checks at every
 * acceptance: no replica ever accepts a non-owner's write over a lease it
 * holds before the owner's clock reads `expires`, provided the two clocks
 * differ by at most `leaseGraceMs`. (When the replica can take over, its
 * clock reads ≥ expires + grace, so the owner's reads ≥ expires.) Clocks
 * further apart shorten the lease as seen by the fast replica by the excess;
 * entries dated more than `maxSkewMs` ahead are refused outright, so a node
 * with a runaway clock cannot pin keys. A replica can only honour a lease it
 * has heard of: a node cut off from the owner may write, and the write is
 * refused by every replica that holds the lease and wins after expiry only
 * if it is still the newest version. The owner renews by writing again with
 * `leaseMs` (renew at least `antiEntropyMs` before expiry so replicas that
 * lost the broadcast hear of it); its writes without `leaseMs` keep the
 * current expiry, and `leaseMs: 0` releases the lease. A delete keeps the
 * owner's lease the same way (the key stays reserved while deleted).
 *
 * Contention. Two nodes that take a lease on a key at about the same time,
 * each before hearing of the other, both succeed locally; the lease rule
 * alone would then leave each replica with whichever it heard first for the
 * whole lease. So a leased entry also carries `since`, the time its author
 * took the lease: the HLC wall of the write that took it when the author
 * held no live lease on the key (by its own clock), kept by every renewal
 * and every write that carries the lease on; an entry without a lease has
 * `since = wall`. The claim of an entry is (`since`, author id), and the
 * earlier claim is the rightful one. The rule, applied by every replica to
 * every entry `e` by another author than the held entry `cur`, at its clock
 * `now`:
 *
 *   If `e`'s lease binds, was still running when `cur` was claimed
 *   (`e.expires > cur.since`), and claims earlier (`e.since < cur.since`;
 *   at equal times, `e`'s author id is lower, or `cur`'s lease does not
 *   bind), then `e` replaces `cur`, whatever their HLCs, provided `now <
 *   cur.since + contentionWindowMs` (counted `contention.preempted`). Past
 *   the window `cur` stands: if its lease binds, `e` is dropped
 *   (`drop.lateClaim`); if not, last writer wins.
 *
 * Everything else is as before: a live lease refuses later claims
 * (`drop.leaseHeld`), with or without a lease of their own. For two
 * contenders the outcome is then the same in both arrival orders: heard
 * first, the earlier claim refuses the later; heard second, it replaces it.
 * A lease likewise beats a write without lease that a node made after the
 * acquisition without having heard of it. So every replica that hears all
 * the contending acquisitions within the window (a broadcast, or an
 * anti-entropy round when the broadcast is lost: the default window is two
 * rounds) settles on one owner, the earliest. The losers' own replicas
 * switch too: their `owner(key)` names the winner, their onChange listeners
 * see its value, and their next write throws LeaseHeldError(winner,
 * expires). The winner's renewals keep its `since`, so they win even where
 * only a loser's lease had been heard.
 *
 * Claims: `since` judged on first sight. `since`, like the HLC, is whatever
 * its signer says: a node that has just seen a lease taken can claim an
 * acquisition a millisecond earlier, or backdate the whole entry. Read
 * literally, the rule above would hand it the lease. So a replica judges
 * every claim against its own clock the first time it sees it, and credits
 * the acquisition with
 *
 *   claim = max(since, first sight − claimSkewMs)
 *
 * (a version that continues the tenure of the version held, same author and
 * same `since`, keeps the claim that one was given; this node's own writes
 * and its own snapshot are credited in full). An entry pre-empts only if it
 * claims earlier both by `since` (the rule above, the same on every replica)
 * and as credited here (`e.claim ≤ cur.claim`); otherwise an earlier `since`
 * is a late claim, refused while the held lease binds (`drop.lateClaim`).
 * Hence: no claim first seen more than claimSkewMs after a lease's credited
 * acquisition pre-empts it, whatever time it names. A lease this replica has
 * held for claimSkewMs is safe from everyone but its owner. What remains is
 * a race: a claim that reaches a replica within claimSkewMs of the
 * acquisition it contests cannot be told from a concurrent one, and is
 * credited like one. (Author times ahead of the replica's clock are bounded
 * separately: `wall` by `maxSkewMs` (`drop.future`), `since ≤ wall`,
 * `expires ≤ wall + maxLeaseMs`.)
 *
 * The price. Honest contenders are resolved by `since` on every replica that
 * hears each of them within claimSkewMs of its `since`: the broadcast delay
 * plus the clock difference between author and replica (the default, 500
 * ms, assumes clocks within a few hundred ms). A replica that hears an
 * earlier acquisition later than that (lost broadcasts repaired late, a
 * partition, a clock further off) keeps the lease it already holds, while
 * replicas that heard it in time switch; the two owners may then both keep
 * their leases, with the replicas split between them, until a lease ends.
 * This was already so for claims arriving after the contention window (a
 * longer partition, a crash), and the rest of the table is unaffected.
 *
 * Why the window as well. Claims bound what a replica credits from its first
 * sight of a claim; the window bounds it from the held lease's own `since`:
 * a replica gives an earlier claim no weight once its clock is
 * `contentionWindowMs` past the held lease's `since`, so contention ends
 * there whatever was credited. The window is read on the replica's clock
 * against the owner's `since`, so it is as exact as the clocks agree.
 *
 * The lease guarantee above therefore reads, with contention: no replica
 * accepts a non-owner's write over a lease before the owner's clock reads
 * `expires`, except an acquisition that is earlier by `since` and as
 * credited, within the contention window of the lease's acquisition.
 *
 * Tombstones and the horizon. A delete is a tombstone entry, kept for
 * `tombstoneHorizonMs` after its HLC wall time (and past any lease on it),
 * then collected. A collected delete must not be undone by a replica that
 * still holds the deleted value, so:
 *   1. A tombstone that arrives already older than the horizon still deletes
 *      any older entry it beats, but is not stored (nothing to resurrect from).
 *   2. `importState` refuses a snapshot older than `tombstoneHorizonMs −
 *      maxSkewMs`: a tab away longer than that may hold values whose
 *      tombstones are gone, so it starts empty and is refilled by anti-entropy.
 *      (Its own writes that nobody received are lost with it.)
 *   3. A partition lasting longer than the horizon is not supported: a value
 *      deleted on one side and collected there comes back from the other.
 *      Nothing in the data can tell it from a value written on the far side
 *      (the same limit as Cassandra's gc_grace); the default horizon is a day.
 *
 * Propagation. Every local write is broadcast (`deps.broadcast`, a signed
 * mesh broadcast in the host) as a `p` message. Anti-entropy repairs what
 * broadcasts missed: on link-up (the lower id starts at once), every
 * `antiEntropyMs`, and soon after a replica learns something through
 * anti-entropy (at most every `triggerGapMs` per link), a node sends each
 * neighbour the 8-byte root of its bucket hashes (`s`). On a mismatch the
 * other answers with its 64 bucket hashes (`b`); the first answers with its
 * (key, HLC, fingerprint) lists for the buckets that differ (`v`), and its
 * whole entries for buckets the other holds none of; the other answers with
 * the entries it has newer (`e`) and the keys it wants (`q`), which the first
 * answers with entries. A version whose lease binds goes across even when
 * it is older, as it may win as the earlier acquisition: the first flags
 * such versions in its lists, and the other sends its own when its lease
 * binds and asks for a flagged one while its own is within the contention
 * window. One exchange leaves both ends with the winner of every differing
 * key; the news then spreads link by link the same way, so a healed
 * partition or a late joiner converges without anyone flooding the table. A
 * node answers one exchange at a time and holds its own summaries meanwhile,
 * so a newcomer takes the table from one neighbour, not from all of them at
 * once. PROTOCOL-sync.md has the grammar.
 *
 * Bounds. Keys ≤ `maxKeyBytes`, values ≤ `maxValueBytes`, leases ≤
 * `maxLeaseMs`; the table holds at most `maxEntries` entries and
 * `maxTableBytes` bytes, and one author at most `perAuthorQuota` entries and
 * `perAuthorBytes` bytes (tombstones count). Shares (quota.ts): an author
 * past its own bounds keeps its newest entries; a full table makes room for
 * an entry by evicting the oldest entries of the author that holds the most
 * (`evicted`), so a few identities cannot fill it for good: each gets no
 * more than an honest author's share, and a newcomer, holding less, always
 * finds room. The rule depends only on the entries held, so replicas holding
 * the same entries keep the same ones. A local write never evicts this
 * node's own entries: it throws QuotaExceededError instead. Each neighbour may send
 * `peerMsgBudget` anti-entropy messages and `peerEntryBudget` entries per
 * `antiEntropyMs`; the rest is dropped and counted. A peer's anti-entropy
 * state is dropped with the link (or when it leaves `neighbours()`), but its
 * budget is kept until its window ends, so a peer that drops and restores its
 * link, or flaps in and out of the neighbour set, cannot refill it early. At
 * most MAX_PEER_BUDGETS budgets are kept; past that the one restarted longest
 * ago (a non-neighbour's first) is evicted (`budget.evicted`), and its spent
 * count is kept in one shared record until its window ends: any peer that
 * gets a new budget meanwhile starts from the most spent evicted window, so
 * eviction is never a way to reset one's own budget. Bounds trade
 * convergence for memory: a full table evicts or refuses entries that
 * replicas that are not full keep, until they are full too.
 *
 * Time enters only through `deps.now()`; the host calls `tick` often (every
 * 100–250 ms) to run collection and anti-entropy.
 */
import { bytesEqual, toHex, utf8 } from '../bytes.ts'
import { LeaseHeldError, ValueTooLargeError } from '../errors.ts'
import { compareHlc, createHlcClock, DEFAULT_MAX_SKEW_MS, type Hlc } from '../hlc.ts'
import { bump, type Counters, type ProtocolNode, type SignedProtocolDeps } from '../protocol.ts'
import { isValue, type Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import {
  BUCKETS,
  bucketOf,
  compareEntries,
  type Entry,
  encodeBody,
  entryValue,
  FINGERPRINT_BYTES,
  makeEntry,
  type ParsedBody,
  parseBody,
  readU32,
  signedBytes,
} from './entry.ts'
import { QuotaExceededError } from './errors.ts'
import {
  MAX_ENTRIES_PER_MSG,
  parseSnapshot,
  parseSyncMsg,
  SNAPSHOT_VERSION,
  type SyncMsg,
  type VersionItem,
  type WireEntry,
} from './messages.ts'
import { planRoom, type QuotaLimit, type Room, type Victim } from './quota.ts'
import { Table } from './table.ts'

/** The mesh topic a host should carry sync broadcasts on. */
export const SYNC_TOPIC = 'weft/sync'

export interface SyncDeps extends SignedProtocolDeps<SyncMsg> {
  /** Ids this node has a live link to now. */
  neighbours(): string[]
  /** Send `msg` network-wide; the host wraps it in a signed mesh broadcast and hands copies to `handleBroadcast`. */
  broadcast(msg: SyncMsg): void
}

export interface SyncOptions {
  /** Longest key, in UTF-8 bytes. @default 256 */
  maxKeyBytes?: number
  /** Largest value, in bytes of its MessagePack encoding. @default 65_536 */
  maxValueBytes?: number
  /** Most entries (tombstones included) the table holds. @default 10_000 */
  maxEntries?: number
  /** Most bytes (signed bodies plus key and signature) the table holds. @default 33_554_432 (32 MiB) */
  maxTableBytes?: number
  /** Most entries (tombstones included) one author may hold in the table. @default 1_000 */
  perAuthorQuota?: number
  /** Most bytes one author may hold in the table. @default 4_194_304 (4 MiB) */
  perAuthorBytes?: number
  /** How long a tombstone is kept after its HLC wall time before it is collected. @default 86_400_000 (one day) */
  tombstoneHorizonMs?: number
  /** Time between anti-entropy rounds with each neighbour. @default 5_000 */
  antiEntropyMs?: number
  /** Entries dated further ahead of this replica's clock are refused. @default 60_000 (DEFAULT_MAX_SKEW_MS) */
  maxSkewMs?: number
  /** A lease binds other writers until `expires + leaseGraceMs` by their own clock: the clock difference leases tolerate. @default 2_000 */
  leaseGraceMs?: number
  /**
   * How long after a version's lease acquisition (its `since`, by this
   * replica's clock) an earlier concurrent acquisition by another author may
   * still replace it. Longer lets contention settle over slower paths (it
   * must cover a broadcast, or an anti-entropy round when the broadcast is
   * lost); shorter narrows the time in which a node lying about its `since`
   * can take a fresh lease from its holder. @default 2 × antiEntropyMs (10_000)
   */
  contentionWindowMs?: number
  /**
   * How far before this replica first sees an entry its `since` (the lease
   * acquisition it claims) may lie and still be credited in full. An earlier
   * `since` counts as `first sight − claimSkewMs` when acquisitions contend,
   * so no signer can date a claim back past a lease this replica already
   * holds by more than this. It must cover honest lateness: broadcast delay
   * plus the clock difference between author and replica; concurrent
   * acquisitions that reach a replica later than that are resolved there by
   * arrival instead, and replicas may then disagree until the lease ends.
   * @default 500
   */
  claimSkewMs?: number
  /** Longest lease a write may take (at most tombstoneHorizonMs). @default 600_000 (ten minutes) */
  maxLeaseMs?: number
  /** Least time between two summaries to one neighbour when news triggers them. @default 250 */
  triggerGapMs?: number
  /** Anti-entropy messages accepted from one neighbour per antiEntropyMs. @default 64 */
  peerMsgBudget?: number
  /** Entries accepted for checking from one neighbour per antiEntropyMs. @default 4_096 */
  peerEntryBudget?: number
  /** Target size of one `e` message (one entry may exceed it). @default 131_072 */
  maxBatchBytes?: number
  /** An exchange this node answers is abandoned after this long without a message from the peer. @default 2_000 */
  exchangeTimeoutMs?: number
}

export interface SyncChange {
  key: string
  /** The new value; undefined when the key was deleted, or evicted from this replica by the table's bounds. */
  value: Value | undefined
  /** The author of the new version (of the evicted one, for an eviction). */
  from: string
}

/** Where an accepted version came from. */
export type AcceptSource = 'local' | 'broadcast' | 'anti-entropy' | 'import'

/** Every version a replica accepts (for persistence hosts and instrumentation). */
export interface SyncAccept {
  key: string
  author: string
  hlc: Hlc
  /** The lease the new version carries, if any. */
  lease: { owner: string; expires: number } | undefined
  /** When the author took that lease (its clock); the HLC wall for a version without one. */
  since: number
  /** `since` as this replica credits it: no earlier than its first sight here − claimSkewMs. */
  claim: number
  /** It replaced another author's version by an earlier lease acquisition (contention). */
  preempted: boolean
  tombstone: boolean
  via: AcceptSource
  /** This replica's clock when it accepted. */
  at: number
}

export interface Sync extends ProtocolNode<SyncMsg> {
  /** A broadcast delivered by the mesh (`origin` is the mesh's checked origin). */
  handleBroadcast(origin: string, msg: SyncMsg): Promise<void>
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
  /** Called once per accepted version that changes the live view (not for a delete of an absent key). */
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

type Resolved = Required<SyncOptions>

type Decision = 'accept' | 'preempt' | 'duplicate' | 'stale' | 'leaseHeld' | 'lateClaim'

const DEFAULTS: Resolved = {
  maxKeyBytes: 256,
  maxValueBytes: 65_536,
  maxEntries: 10_000,
  maxTableBytes: 33_554_432,
  perAuthorQuota: 1_000,
  perAuthorBytes: 4_194_304,
  tombstoneHorizonMs: 86_400_000,
  antiEntropyMs: 5_000,
  maxSkewMs: DEFAULT_MAX_SKEW_MS,
  leaseGraceMs: 2_000,
  contentionWindowMs: Number.NaN, // resolved from antiEntropyMs
  claimSkewMs: 500,
  maxLeaseMs: 600_000,
  triggerGapMs: 250,
  peerMsgBudget: 64,
  peerEntryBudget: 4_096,
  maxBatchBytes: 131_072,
  exchangeTimeoutMs: 2_000,
}

export function resolveSyncOptions(options: SyncOptions = {}): Resolved {
  const o: Resolved = { ...DEFAULTS }
  for (const [k, v] of Object.entries(options))
    if (typeof v === 'number' && Number.isFinite(v)) (o as Record<string, number>)[k] = Math.max(0, v)
  o.maxLeaseMs = Math.min(o.maxLeaseMs, o.tombstoneHorizonMs)
  o.antiEntropyMs = Math.max(1, o.antiEntropyMs)
  if (Number.isNaN(o.contentionWindowMs)) o.contentionWindowMs = 2 * o.antiEntropyMs
  return o
}

/** Most public key → node id results remembered. */
const ID_CACHE_MAX = 1_024
/** Most keys in one `q` message. */
const KEYS_PER_QUERY = 4_096
/** Most version items in one `v` message (whole buckets only, so one may exceed it). */
const ITEMS_PER_VERSIONS = 4_096
/**
 * Most per-peer rate budgets kept (each lives at most one antiEntropyMs after
 * its window starts). Far above any host's link count (the overlay keeps at
 * most 48 links), so only a churn of over a thousand peers within one window
 * evicts, and eviction stays conservative (see the header's Bounds).
 */
export const MAX_PEER_BUDGETS = 1_024

/** Anti-entropy state for a current neighbour; dropped with the link. */
interface Peer {
  /** When our next periodic summary to this neighbour is due. */
  nextRound: number
  lastSummary: number
  /** News arrived while the trigger gap was running: send a summary when it ends. */
  pending: boolean
}

/** What a peer has spent of its rate budget in the window that started at `windowStart`; outlives the link. */
interface Budget {
  windowStart: number
  msgs: number
  entries: number
}

export function createSync(deps: SyncDeps, options: SyncOptions = {}): Sync {
  const opt = resolveSyncOptions(options)
  const counters: Counters = {}
  const table = new Table()
  const clock = createHlcClock(() => deps.now(), opt.maxSkewMs)
  const peers = new Map<string, Peer>()
  /** Per-peer budgets, in the order they were (re)started: the first is the oldest. */
  const budgets = new Map<string, Budget>()
  /** The most spent of the budgets evicted while their windows ran (latest start, highest counts), until it ends. */
  let evicted: Budget | undefined
  const idOfKey = new Map<string, string>()
  const changeListeners = new Set<(e: SyncChange) => void>()
  const acceptListeners = new Set<(e: SyncAccept) => void>()
  let nextGc = 0

  const drop = (reason: string, n = 1): false => {
    bump(counters, `drop.${reason}`, n)
    return false
  }

  /** Does `e`'s lease bind writers other than its author at local time `now`? */
  const leaseBinds = (e: Entry, now: number): boolean =>
    e.expires !== undefined && now < e.expires + opt.leaseGraceMs

  /**
   * Is `e` (another author's, leased) an earlier claim on the key than `cur`,
   * with its lease still running when `cur` was claimed? By acquisition time,
   * then author id; at equal times a lease beats a version whose lease does
   * not bind (that version would be refused in the other arrival order).
   */
  const claimsEarlier = (e: Entry, cur: Entry, now: number): boolean =>
    (e.expires as number) > cur.since &&
    (e.since < cur.since || (e.since === cur.since && (!leaseBinds(cur, now) || e.author < cur.author)))

  /**
   * What a replica holding `cur` does with a verified `e` at local time `now`
   * (the header's Merge and Contention rules). Both arrival orders of two
   * versions give the same winner while `now` is within the window.
   */
  function decide(e: Entry, cur: Entry | undefined, now: number): Decision {
    if (!cur) return 'accept'
    const c = compareEntries(e, cur)
    if (c === 0) return 'duplicate'
    if (e.author === cur.author) return c > 0 ? 'accept' : 'stale'
    const held = leaseBinds(cur, now)
    if (leaseBinds(e, now) && claimsEarlier(e, cur, now)) {
      // An earlier claim by its signer's word; it counts only if it is earlier as credited here too.
      if (now < cur.since + opt.contentionWindowMs && e.claim <= cur.claim) return 'preempt'
      if (held) return 'lateClaim'
    }
    if (held) return 'leaseHeld'
    return c > 0 ? 'accept' : 'stale'
  }

  /**
   * The cheap pre-check on a body not yet verified: could it still win
   * against `cur` although its HLC is older? Only as an earlier lease
   * acquisition (author unknown yet, so a tie on `since` passes).
   */
  function mayPreempt(p: ParsedBody, cur: Entry, now: number): 'yes' | 'no' | 'lateClaim' {
    const expires = p.hlc[0] + p.leaseMs
    if (p.leaseMs === 0 || now >= expires + opt.leaseGraceMs) return 'no'
    const since = p.hlc[0] - p.heldMs
    if (expires <= cur.since || since > cur.since) return 'no'
    // Earlier by its signer's word, but not as credited here: a late claim, refused before its signature is checked.
    return credit(since, now) <= cur.claim ? 'yes' : leaseBinds(cur, now) ? 'lateClaim' : 'no'
  }

  /** The acquisition time an entry first seen now is credited with (the header's Claims). */
  const credit = (since: number, now: number): number => Math.max(since, now - opt.claimSkewMs)

  /**
   * The claim of a verified entry seen now: the one already credited when it
   * continues the tenure of the version held (same author, same `since`),
   * full credit for our own snapshot, else `credit`.
   */
  function claimOf(p: ParsedBody, author: string, via: AcceptSource, now: number): number {
    const since = p.hlc[0] - p.heldMs
    if (via === 'import') return since
    const cur = table.get(p.key)
    if (cur && cur.author === author && cur.since === since) return cur.claim
    return credit(since, now)
  }

  // --- accepting entries -----------------------------------------------------

  async function authorOf(pk: Uint8Array): Promise<string> {
    const hex = toHex(pk)
    const hit = idOfKey.get(hex)
    if (hit !== undefined) return hit
    const id = await deps.keys.idOf(pk)
    idOfKey.set(hex, id)
    if (idOfKey.size > ID_CACHE_MAX) idOfKey.delete(idOfKey.keys().next().value as string)
    return id
  }

  /** What storing `e` over `cur` takes (quota.ts): entries to evict, or the bound that refuses it. */
  function room(e: Entry, cur: Entry | undefined, now: number): Room {
    return planRoom(table, e, cur, opt, (x) => leaseBinds(x, now))
  }

  const quotaError = (limit: QuotaLimit): QuotaExceededError =>
    new QuotaExceededError(
      limit,
      limit === 'entries'
        ? opt.perAuthorQuota
        : limit === 'bytes'
          ? opt.perAuthorBytes
          : limit === 'tableEntries'
            ? opt.maxEntries
            : opt.maxTableBytes,
    )

  /** Remove what a plan evicts; an evicted value shows as a change to undefined by its author. */
  function evict(victims: Victim[], now: number): void {
    for (const { entry: v, reason } of victims) {
      table.remove(v.key)
      if (reason === 'quota') bump(counters, 'drop.quota')
      else {
        bump(counters, 'evicted')
        if (leaseBinds(v, now)) bump(counters, 'evicted.leased')
      }
      if (!v.tombstone && changeListeners.size > 0) {
        const ch: SyncChange = { key: v.key, value: undefined, from: v.author }
        for (const fn of [...changeListeners]) call(fn, ch)
      }
    }
  }

  function emit(prev: Entry | undefined, e: Entry, via: AcceptSource, now: number, preempted = false): void {
    bump(counters, 'accepted')
    bump(counters, `accepted.${via}`)
    if (preempted) bump(counters, 'contention.preempted')
    if (acceptListeners.size > 0) {
      const ev: SyncAccept = {
        key: e.key,
        author: e.author,
        hlc: e.hlc,
        lease: e.expires === undefined ? undefined : { owner: e.author, expires: e.expires },
        since: e.since,
        claim: e.claim,
        preempted,
        tombstone: e.tombstone,
        via,
        at: now,
      }
      for (const fn of [...acceptListeners]) call(fn, ev)
    }
    if (changeListeners.size === 0 || (e.tombstone && (!prev || prev.tombstone))) return
    const ch: SyncChange = { key: e.key, value: entryValue(e), from: e.author }
    for (const fn of [...changeListeners]) call(fn, ch)
  }

  function call<T>(fn: (x: T) => void, x: T): void {
    try {
      fn(x)
    } catch {
      // The application's listener failed; the replica carries on.
      bump(counters, 'listenerErrors')
    }
  }

  /** Apply a verified entry: order, lease, horizon and quota checks, then store. Synchronous. */
  function apply(e: Entry, via: AcceptSource): boolean {
    const now = deps.now()
    const cur = table.get(e.key)
    const d = decide(e, cur, now)
    if (d === 'duplicate') {
      bump(counters, 'duplicates')
      return false
    }
    if (d === 'stale') return drop('stale')
    // Even a refused version moves our clock, so our next write orders after it.
    clock.observe(e.hlc)
    if (d === 'leaseHeld' || d === 'lateClaim') return drop(d)
    const preempted = d === 'preempt'
    if (e.tombstone && e.hlc[0] + opt.tombstoneHorizonMs <= now && !leaseBinds(e, now)) {
      // Rule 1 of the header: an expired delete deletes what it beats, and is not kept.
      if (!cur) return drop('expiredTombstone')
      table.remove(e.key)
      bump(counters, 'expiredTombstoneApplied')
      emit(cur, e, via, now, preempted)
      return true
    }
    const r = room(e, cur, now)
    if (!r.ok) return drop(r.limit === 'entries' || r.limit === 'bytes' ? 'quota' : 'tableFull')
    evict(r.victims, now)
    table.put(e)
    emit(cur, e, via, now, preempted)
    return true
  }

  /** Check a wire entry (cheapest first: shape, limits, clock, duplicate, staleness, signature) and apply it. */
  async function acceptWire(w: WireEntry, via: AcceptSource): Promise<boolean> {
    const [body, pk, sig] = w
    const p = parseBody(body, opt)
    if (typeof p === 'string') return drop(p)
    const now = deps.now()
    if (p.hlc[0] > now + opt.maxSkewMs) return drop('future')
    const cur = table.get(p.key)
    if (cur) {
      if (bytesEqual(cur.sig, sig) && bytesEqual(cur.body, body)) {
        bump(counters, 'duplicates')
        return false
      }
      // An older version can still win as an earlier lease acquisition: apply() decides after the signature.
      if (compareHlc(p.hlc, cur.hlc) < 0) {
        const may = mayPreempt(p, cur, now)
        if (may !== 'yes') return drop(may === 'no' ? 'stale' : may)
      }
    }
    let author: string
    try {
      author = await authorOf(pk)
      if (!(await deps.keys.verify(pk, signedBytes(body), sig))) return drop('badSignature')
    } catch {
      return drop('badSignature')
    }
    const seen = deps.now()
    return apply(makeEntry(p, author, body, pk, sig, claimOf(p, author, via, seen)), via)
  }

  // --- local writes ---------------------------------------------------------

  function assertFree(key: string, now: number): Entry | undefined {
    const cur = table.get(key)
    if (cur && cur.author !== deps.id && leaseBinds(cur, now))
      throw new LeaseHeldError(key, cur.author, cur.expires as number)
    return cur
  }

  function checkKey(key: unknown): asserts key is string {
    if (typeof key !== 'string') throw new TypeError('sync: a key must be a string')
    const n = utf8(key).length
    if (n > opt.maxKeyBytes) throw new ValueTooLargeError(n, opt.maxKeyBytes, 'key')
  }

  async function write(key: string, valueBytes: Uint8Array | undefined, leaseOpt: number | undefined) {
    const cur = assertFree(key, deps.now())
    const hlc = clock.now()
    // Our own lease, live by our clock: our writes keep it (and its acquisition time) unless told otherwise.
    const held =
      cur && cur.author === deps.id && cur.expires !== undefined && cur.expires > hlc[0] ? cur : undefined
    const leaseMs = leaseOpt ?? (held ? (held.expires as number) - hlc[0] : 0)
    const heldMs = held && leaseMs > 0 ? hlc[0] - held.since : 0
    const body = encodeBody(key, hlc, leaseMs, valueBytes, heldMs)
    const sig = await deps.keys.sign(signedBytes(body))
    const parsed: ParsedBody = {
      key,
      hlc,
      leaseMs,
      heldMs,
      tombstone: valueBytes === undefined,
      valueOffset: body.length - (valueBytes?.length ?? 0),
    }
    // Our own acquisition is credited in full; a lease carried on keeps the claim it had.
    const e = makeEntry(parsed, deps.id, body, deps.keys.publicKey, sig, held ? held.claim : hlc[0])
    // Signing awaited: another version (or a lease) may have arrived meanwhile.
    const now = deps.now()
    const cur2 = assertFree(key, now)
    const r = room(e, cur2, now)
    if (!r.ok) throw quotaError(r.limit)
    // Our own entries are never evicted for our own write: the application hears of the bound instead.
    const own = r.victims.find((v) => v.entry.author === deps.id)
    if (own) throw quotaError(own.limit)
    const d = decide(e, cur2, now)
    if (d !== 'accept' && d !== 'preempt') {
      // A newer version arrived while we signed; ours would lose everywhere.
      bump(counters, 'localSuperseded')
      return
    }
    evict(r.victims, now)
    table.put(e)
    emit(cur2, e, 'local', now, d === 'preempt')
    deps.broadcast({ t: 'p', e: [body, deps.keys.publicKey, sig] })
    bump(counters, 'out.p')
  }

  // --- anti-entropy -----------------------------------------------------------

  function peer(id: string): Peer {
    let st = peers.get(id)
    if (!st) {
      const now = deps.now()
      st = {
        nextRound: now + Math.floor(deps.random() * opt.antiEntropyMs),
        lastSummary: -Infinity,
        pending: false,
      }
      peers.set(id, st)
    }
    return st
  }

  const expired = (b: Budget, now: number): boolean => now - b.windowStart >= opt.antiEntropyMs

  /** Forget budgets whose windows have ended (they hold nothing a fresh one would not). */
  function pruneBudgets(now: number): void {
    for (const [id, b] of budgets) if (expired(b, now)) budgets.delete(id)
    if (evicted && expired(evicted, now)) evicted = undefined
  }

  /** Make room for one budget: the oldest non-neighbour's goes (anyone's if all are neighbours), its spending kept in `evicted`. */
  function evictBudget(now: number): void {
    const live = new Set(deps.neighbours())
    let victim: string | undefined
    for (const id of budgets.keys())
      if (!live.has(id)) {
        victim = id
        break
      }
    victim ??= budgets.keys().next().value as string
    const b = budgets.get(victim) as Budget
    budgets.delete(victim)
    bump(counters, 'budget.evicted')
    if (expired(b, now)) return
    if (!evicted || expired(evicted, now)) evicted = { ...b }
    else
      evicted = {
        windowStart: Math.max(evicted.windowStart, b.windowStart),
        msgs: Math.max(evicted.msgs, b.msgs),
        entries: Math.max(evicted.entries, b.entries),
      }
  }

  /** A peer's budget for the current window: kept across link changes until the window ends. */
  function budgetOf(id: string, now: number): Budget {
    let b = budgets.get(id)
    if (b && expired(b, now)) {
      // A new window: moved to the end, so the first in the map is the one restarted longest ago.
      budgets.delete(id)
      b = undefined
    }
    if (!b) {
      if (budgets.size >= MAX_PEER_BUDGETS) pruneBudgets(now)
      if (budgets.size >= MAX_PEER_BUDGETS) evictBudget(now)
      // This may be a peer whose budget was evicted: it starts no better off than the most spent of those.
      b = evicted && !expired(evicted, now) ? { ...evicted } : { windowStart: now, msgs: 0, entries: 0 }
      budgets.set(id, b)
    }
    return b
  }

  /** Charge one message to a peer's budget for this window. */
  function spend(id: string, now: number): Budget | undefined {
    const b = budgetOf(id, now)
    b.msgs++
    return b.msgs <= opt.peerMsgBudget ? b : undefined
  }

  function send(to: string, msg: SyncMsg): void {
    deps.send(to, msg)
    bump(counters, `out.${msg.t}`)
  }

  function sendSummary(to: string, st: Peer, now: number): void {
    send(to, { t: 's', r: table.rootBytes() })
    st.lastSummary = now
    st.nextRound = now + opt.antiEntropyMs
    st.pending = false
  }

  /**
   * The one exchange this node answers at a time (it sent `b` to `peer`).
   * Other neighbours' summaries wait meanwhile, so a newcomer takes the table
   * from one neighbour rather than from all of them at once, and then finds
   * itself in sync with the rest. It ends when the peer's last `v` has come
   * and every `q` we sent has its last `e`, or after `exchangeTimeoutMs`
   * without a message from the peer.
   */
  let inbound: { peer: string; until: number; awaitingV: boolean; queries: number } | undefined

  function busy(now: number): boolean {
    if (inbound && now >= inbound.until) {
      inbound = undefined
      bump(counters, 'ae.timeouts')
    }
    return inbound !== undefined
  }

  function maybeFinish(): void {
    if (!inbound || inbound.awaitingV || inbound.queries > 0) return
    inbound = undefined
    flushPending(deps.now())
  }

  /** Send the summaries that wait (news, deferred rounds), unless an exchange is running. */
  function flushPending(now: number): void {
    if (busy(now)) return
    for (const n of deps.neighbours()) {
      const st = peers.get(n)
      if (st?.pending && now - st.lastSummary >= opt.triggerGapMs) sendSummary(n, st, now)
    }
  }

  /** We learned something the other neighbours may lack: summaries to them, soon. */
  function announceNews(except: string | undefined): void {
    for (const n of deps.neighbours()) if (n !== except && n !== deps.id) peer(n).pending = true
    flushPending(deps.now())
  }

  function wire(e: Entry): WireEntry {
    return [e.body, e.publicKey, e.sig]
  }

  /** Entries in batches of about maxBatchBytes; every batch but the last says more follow (and the last too when `more`). */
  function sendEntries(to: string, list: Entry[], more: boolean): void {
    const batches: WireEntry[][] = [[]]
    let bytes = 0
    for (const e of list) {
      const size = e.size + 16
      let batch = batches[batches.length - 1] as WireEntry[]
      if (batch.length > 0 && (bytes + size > opt.maxBatchBytes || batch.length >= MAX_ENTRIES_PER_MSG)) {
        batch = []
        batches.push(batch)
        bytes = 0
      }
      batch.push(wire(e))
      bytes += size
    }
    for (let i = 0; i < batches.length; i++) {
      const e = batches[i] as WireEntry[]
      send(to, more || i < batches.length - 1 ? { t: 'e', e, m: true } : { t: 'e', e })
    }
    bump(counters, 'ae.entriesSent', list.length)
  }

  /** Sends the queries; returns how many `q` messages went. */
  function sendQuery(to: string, keys: string[]): number {
    let n = 0
    for (let i = 0; i < keys.length; i += KEYS_PER_QUERY) {
      send(to, { t: 'q', k: keys.slice(i, i + KEYS_PER_QUERY) })
      n++
    }
    bump(counters, 'ae.keysAsked', keys.length)
    return n
  }

  function bucketEmpty(b: Uint8Array, i: number): boolean {
    for (let j = i * 8; j < i * 8 + 8; j++) if (b[j] !== 0) return false
    return true
  }

  function onSummary(from: string, st: Peer, r: Uint8Array, now: number): void {
    // The neighbour runs this round; ours can wait a period.
    st.nextRound = Math.max(st.nextRound, now + opt.antiEntropyMs)
    if (bytesEqual(r, table.rootBytes())) return void bump(counters, 'ae.inSync')
    if (busy(now) && inbound?.peer !== from) {
      st.pending = true
      return void bump(counters, 'ae.deferred')
    }
    inbound = { peer: from, until: now + opt.exchangeTimeoutMs, awaitingV: true, queries: 0 }
    bump(counters, 'ae.rounds')
    send(from, { t: 'b', b: table.bucketBytes() })
  }

  /** We started this exchange: send what they lack outright, then version lists; the last `v` ends our part. */
  function onBuckets(from: string, theirs: Uint8Array): void {
    const now = deps.now()
    const mine = table.bucketBytes()
    const direct: Entry[] = []
    const lists: { i: number[]; v: VersionItem[] }[] = []
    let cur: { i: number[]; v: VersionItem[] } = { i: [], v: [] }
    for (let i = 0; i < BUCKETS; i++) {
      if (bytesEqual(mine.subarray(i * 8, i * 8 + 8), theirs.subarray(i * 8, i * 8 + 8))) continue
      const entries = table.bucket(i)
      // They hold nothing there: skip the version list and send the entries.
      if (bucketEmpty(theirs, i)) {
        direct.push(...entries)
        continue
      }
      if (cur.i.length > 0 && cur.v.length + entries.length > ITEMS_PER_VERSIONS) {
        lists.push(cur)
        cur = { i: [], v: [] }
      }
      cur.i.push(i)
      for (const e of entries) {
        const fp = e.sig.slice(0, FINGERPRINT_BYTES)
        // Flag a binding lease: it may beat the other end's newer version (contention), so it is asked for.
        cur.v.push(leaseBinds(e, now) ? [e.key, e.hlc[0], e.hlc[1], fp, 1] : [e.key, e.hlc[0], e.hlc[1], fp])
      }
    }
    lists.push(cur)
    if (direct.length > 0) sendEntries(from, direct, true)
    for (let n = 0; n < lists.length; n++) {
      const l = lists[n] as { i: number[]; v: VersionItem[] }
      send(from, n < lists.length - 1 ? { t: 'v', ...l, m: true } : { t: 'v', ...l })
    }
  }

  function onVersions(
    from: string,
    buckets: number[],
    items: VersionItem[],
    more: boolean,
    now: number,
  ): void {
    const wanted = new Set(buckets)
    const theirs = new Map<string, VersionItem>()
    for (const it of items) {
      const key = it[0]
      if (!theirs.has(key) && wanted.has(bucketOf(key))) theirs.set(key, it)
    }
    const give: Entry[] = []
    const ask: string[] = []
    for (const b of buckets) {
      for (const e of table.bucket(b)) {
        const t = theirs.get(e.key)
        if (!t) {
          give.push(e)
          continue
        }
        theirs.delete(e.key)
        const c = compareHlc(e.hlc, [t[1], t[2]])
        if (c === 0 && e.fp0 === readU32(t[3], 0) && e.fp1 === readU32(t[3], 4)) continue
        // Newer goes across; so does an older version with a binding lease, which may still win
        // as the earlier acquisition (theirs only while ours is young enough to be taken over).
        // Same timestamp, other entry: both ends need both to pick the same winner.
        if (c >= 0 || leaseBinds(e, now)) give.push(e)
        if (c <= 0 || (t[4] === 1 && now < e.since + opt.contentionWindowMs)) ask.push(e.key)
      }
    }
    for (const key of theirs.keys()) if (utf8(key).length <= opt.maxKeyBytes) ask.push(key)
    if (give.length > 0) sendEntries(from, give, false)
    const queries = ask.length > 0 ? sendQuery(from, ask) : 0
    if (inbound?.peer === from) {
      inbound.until = now + opt.exchangeTimeoutMs
      inbound.queries += queries
      if (!more) inbound.awaitingV = false
      maybeFinish()
    }
  }

  function onQuery(from: string, keys: string[]): void {
    const out: Entry[] = []
    for (const k of keys) {
      const e = table.get(k)
      if (e) out.push(e)
    }
    // Always answer, even with nothing: the asker counts answers to know the exchange is over.
    sendEntries(from, out, false)
  }

  async function onEntries(from: string, b: Budget, list: WireEntry[], more: boolean): Promise<void> {
    let news = 0
    for (let i = 0; i < list.length; i++) {
      if (b.entries >= opt.peerEntryBudget) {
        drop('rateLimited', list.length - i)
        break
      }
      b.entries++
      if (await acceptWire(list[i] as WireEntry, 'anti-entropy')) news++
    }
    if (news > 0) announceNews(from)
    if (inbound?.peer === from) {
      inbound.until = deps.now() + opt.exchangeTimeoutMs
      if (!more && !inbound.awaitingV && inbound.queries > 0) inbound.queries--
      maybeFinish()
    }
  }

  function collect(now: number): void {
    for (const k of table.tombstones()) {
      const e = table.get(k)
      if (e && e.hlc[0] + opt.tombstoneHorizonMs <= now && !leaseBinds(e, now)) {
        table.remove(k)
        bump(counters, 'collected')
      }
    }
  }

  // --- the node ---------------------------------------------------------------

  const sync: Sync = {
    counters,

    async handle(from, msg) {
      if (typeof from !== 'string' || from === deps.id) return void drop('malformed')
      const m = parseSyncMsg(msg as Value)
      if (!m) return void drop('malformed')
      bump(counters, `in.${m.t}`)
      const now = deps.now()
      const b = spend(from, now)
      if (!b) return void drop('rateLimited')
      switch (m.t) {
        case 'p':
          // A put handed over a link rather than through the mesh: checked the same way.
          return void (await acceptWire(m.e, 'broadcast'))
        case 's':
          return onSummary(from, peer(from), m.r, now)
        case 'b':
          return onBuckets(from, m.b)
        case 'v':
          return onVersions(from, m.i, m.v, m.m === true, now)
        case 'q':
          return onQuery(from, m.k)
        case 'e':
          return onEntries(from, b, m.e, m.m === true)
      }
    },

    async handleBroadcast(_origin, msg) {
      const m = parseSyncMsg(msg as Value)
      if (!m) return void drop('malformed')
      if (m.t !== 'p') return void drop('unexpected')
      bump(counters, 'in.p')
      await acceptWire(m.e, 'broadcast')
    },

    tick() {
      const now = deps.now()
      if (now >= nextGc) {
        collect(now)
        pruneBudgets(now)
        nextGc = now + Math.min(opt.antiEntropyMs, 1_000)
      }
      const nbrs = deps.neighbours()
      const live = new Set(nbrs)
      // Anti-entropy state goes with the link; budgets stay until their windows end (pruneBudgets).
      for (const p of peers.keys()) if (!live.has(p)) peers.delete(p)
      if (inbound && !live.has(inbound.peer)) inbound = undefined
      // While we answer one exchange, our own rounds wait: they would show a half-updated table.
      if (busy(now)) return
      for (const n of nbrs) {
        if (n === deps.id) continue
        const st = peer(n)
        if (now >= st.nextRound || (st.pending && now - st.lastSummary >= opt.triggerGapMs))
          sendSummary(n, st, now)
      }
    },

    linkUp(p) {
      if (p === deps.id) return
      peers.delete(p)
      const st = peer(p)
      const now = deps.now()
      // The lower id starts at once; the other waits half a period in case that summary is lost.
      if (deps.id < p) sendSummary(p, st, now)
      else st.nextRound = now + Math.floor(opt.antiEntropyMs / 2)
    },

    linkDown(p) {
      peers.delete(p)
      if (inbound?.peer === p) {
        inbound = undefined
        flushPending(deps.now())
      }
    },

    async set(key, value, opts) {
      checkKey(key)
      if (!isValue(value)) throw new TypeError('sync: not a Value')
      const vb = encodeValue(value)
      if (vb.length > opt.maxValueBytes) throw new ValueTooLargeError(vb.length, opt.maxValueBytes)
      let leaseMs: number | undefined
      if (opts?.leaseMs !== undefined) {
        const l = opts.leaseMs
        if (typeof l !== 'number' || !Number.isFinite(l) || l < 0 || l > opt.maxLeaseMs)
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
      checkKey(key)
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
      if (!e || e.expires === undefined || !leaseBinds(e, deps.now())) return undefined
      return { owner: e.author, expires: e.expires }
    },

    onChange(fn) {
      changeListeners.add(fn)
      return () => void changeListeners.delete(fn)
    },

    onAccept(fn) {
      acceptListeners.add(fn)
      return () => void acceptListeners.delete(fn)
    },

    digest: () => table.liveDigest(),

    size: () => ({ entries: table.size, live: table.liveSize, bytes: table.bytes, budgets: budgets.size }),

    exportState() {
      const e: Value[] = []
      for (const x of table.values()) e.push(wire(x))
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
      for (const w of snap.entries) if (await acceptWire(w, 'import')) accepted++
      if (accepted > 0) announceNews(undefined)
      return accepted
    },
  }
  return sync
}
