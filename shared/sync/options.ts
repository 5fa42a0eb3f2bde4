/**
 * The sync table's options, their defaults and how they are resolved. Every
 * option is a number; anything else, or a non-finite number, keeps the
 * default, and negatives count as 0.
 */
import { DEFAULT_MAX_SKEW_MS } from '../hlc.ts'

export interface SyncOptions {
  /** Longest key, in UTF-8 bytes. @default 256 */
  maxKeyBytes?: number
  /** Largest value, in bytes of its MessagePack encoding. @default 65_536 */
  maxValueBytes?: number
  /** Most entries (tombstones included) the table holds; when full, the author holding the most gives way (quota.ts). @default 10_000 */
  maxEntries?: number
  /** Most bytes (signed bodies plus key and signature) the table holds; when full, the author holding the most gives way. @default 33_554_432 (32 MiB) */
  maxTableBytes?: number
  /** Most entries (tombstones included) one author may hold in the table; past it, its newest stay. @default 1_000 */
  perAuthorQuota?: number
  /** Most bytes one author may hold in the table; past it, its newest stay. @default 4_194_304 (4 MiB) */
  perAuthorBytes?: number
  /** How long a tombstone is kept after its HLC wall time before it is collected. @default 86_400_000 (one day) */
  tombstoneHorizonMs?: number
  /** Time between anti-entropy rounds with each neighbour. @default 5_000 */
  antiEntropyMs?: number
  /**
   * While a link finds both tables in sync and nothing changes, its period
   * doubles after each round, up to this; any change or exchange brings it
   * back to `antiEntropyMs` (anti-entropy.ts). @default 60_000
   */
  antiEntropyMaxMs?: number
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
   * Raise it for networks with many hops or clocks far apart; a thief then
   * has as long to race an acquisition (merge.ts, Claims).
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

/** Options with every default filled in. */
export type SyncConfig = Required<SyncOptions>

const DEFAULTS: SyncConfig = {
  maxKeyBytes: 256,
  maxValueBytes: 65_536,
  maxEntries: 10_000,
  maxTableBytes: 33_554_432,
  perAuthorQuota: 1_000,
  perAuthorBytes: 4_194_304,
  tombstoneHorizonMs: 86_400_000,
  antiEntropyMs: 5_000,
  antiEntropyMaxMs: 60_000,
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

const KEYS = Object.keys(DEFAULTS) as (keyof SyncConfig)[]

export function resolveSyncOptions(options: SyncOptions = {}): SyncConfig {
  const o: SyncConfig = { ...DEFAULTS }
  for (const k of KEYS) {
    const v = options[k]
    if (typeof v === 'number' && Number.isFinite(v)) o[k] = Math.max(0, v)
  }
  o.maxLeaseMs = Math.min(o.maxLeaseMs, o.tombstoneHorizonMs)
  o.antiEntropyMs = Math.max(1, o.antiEntropyMs)
  if (Number.isNaN(o.contentionWindowMs)) o.contentionWindowMs = 2 * o.antiEntropyMs
  return o
}
