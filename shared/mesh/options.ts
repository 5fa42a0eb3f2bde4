/**
 * The mesh's dependencies and options, with their defaults (every option
 * documented with its `@default`). `resolveMeshOptions` fills in defaults and
 * clamps what must be clamped.
 */
import { DEFAULT_MAX_SKEW_MS } from '../hlc.ts'
import type { SignedProtocolDeps } from '../protocol.ts'
import { MAX_HOPS_FIELD, type MeshMsg } from './messages.ts'

export interface MeshDeps extends SignedProtocolDeps<MeshMsg> {
  /** Ids this node has a live link to now. */
  neighbours(): string[]
}

export interface MeshOptions {
  /** Most links a broadcast travels. A copy arriving with more hops is dropped; one at the limit is delivered but not relayed. Trees grow 30+ hops deep on thin graphs after churn (mesh.sim.test.ts). @default 64 */
  maxHops?: number
  /**
   * Most ids in the seen-cache. Past it the oldest-dated go first and the
   * replay window narrows for their origins (seen-cache.ts). @default 20_000
   */
  seenMax?: number
  /**
   * The replay window's past: a broadcast signed longer ago than this, by
   * this node's clock, is refused (`drop.tooOld`); its id is remembered
   * until then. Must cover `maxSkewMs` plus the longest a broadcast travels.
   * @default 120_000
   */
  maxAgeMs?: number
  /**
   * Clock skew allowed between honest nodes: a broadcast signed further
   * ahead of this node's clock is refused (`drop.future`).
   * @default 60_000 (DEFAULT_MAX_SKEW_MS, as the table's)
   */
  maxSkewMs?: number
  /** Largest signed payload (MessagePack of the body) a node sends or accepts. @default 1_048_576 (1 MiB) */
  maxPayloadBytes?: number
  /** Longest topic, in UTF-16 code units. @default 256 */
  maxTopicLength?: number
  /** Least time an announcement waits before the tick that sends it in an IHAVE batch. @default 0 (the next tick) */
  lazyDelayMs?: number
  /** Time from the first IHAVE for a missing id to the first GRAFT. @default 500 */
  graftTimeoutMs?: number
  /** Time between GRAFTs to successive announcers while the id is still missing. @default 250 */
  graftRetryMs?: number
  /** GRAFTs sent for one missing id before giving up on it. @default 6 */
  maxGraftAttempts?: number
  /**
   * Announcement rounds per broadcast. Round 0 goes to lazy links (Plumtree's
   * lazy push) and, as an acknowledgement, to the link it came from; later
   * rounds go to links that have not acknowledged it (eager links only when
   * the optimisation and routes are both off). 1 is Plumtree as published.
   * @default 4
   */
  announceRounds?: number
  /** Time between announcement rounds. @default 1_000 */
  announceRepeatMs?: number
  /** Most broadcasts kept in full to answer GRAFTs. @default 1_024 */
  cacheMax?: number
  /** Most payload bytes kept to answer GRAFTs (raised to fit one maxPayloadBytes message). @default 16_777_216 (16 MiB) */
  cacheMaxBytes?: number
  /** How long a broadcast is kept to answer GRAFTs. @default 30_000 */
  cacheTtlMs?: number
  /** Most ids heard of (IHAVE) but not received. @default 4_096 */
  missingMax?: number
  /** Most missing ids one neighbour's announcements may create. @default 1_024 */
  missingPerPeer?: number
  /** Most broadcasts whose signature check is running at once. @default 256 */
  pendingMax?: number
  /** Most payload bytes waiting on signature checks (raised to fit one maxPayloadBytes message). @default 8_388_608 (8 MiB) */
  pendingMaxBytes?: number
  /** A signature check still running after this long is abandoned. @default 10_000 */
  pendingTtlMs?: number
  /** Different copies (same id, other bytes) checked for one id: forgeries race the genuine one. @default 4 */
  maxCandidates?: number
  /** GRAFT answers one neighbour gets for one broadcast. @default 3 */
  graftAnswersPerPeer?: number
  /**
   * A duplicate's PRUNE waits this long, so that when the link is judged the
   * trees of all concurrent broadcasts are known (see the header). 0 prunes
   * at once. @default 250
   */
  pruneDelayMs?: number
  /**
   * How long a link that brought this node a broadcast first counts as on
   * that broadcast's tree, for the prune rule. 0 turns the rule off: every
   * duplicate prunes, as in the paper. @default 2_000
   */
  treeMemoryMs?: number
  /**
   * The tree optimisation (optimise.ts): broadcasts on which a lazy link's
   * announcements are compared with an eager link's copies before the lazy
   * one may take the eager one's place. 0 turns the optimisation off.
   * @default 8 (with 16 the tree settles slower: ~0.3 hops deeper after 60
   * broadcasts, ~0.8 after 10 % churn; bench/sim-mesh.ts, optimise.sim.test.ts)
   */
  optimiseSamples?: number
  /** Hops sooner, on average over those broadcasts, the lazy link must have been: the hysteresis. @default 1 */
  optimiseMargin?: number
  /** Least time between two swaps at one node; the link a swap grafted is not pruned for that long. @default 2_000 */
  optimiseGapMs?: number
  /**
   * Per-origin routes (routes.ts): the most origins this node keeps a route
   * of its own for, and the most origins each neighbour may ask it about.
   * 0 turns routes off (every broadcast takes the shared tree). @default 512
   */
  routeOrigins?: number
  /**
   * Broadcasts of an origin this node must have had before it lays a route
   * for it: origins heard from once or twice stay on the shared tree, which
   * their traffic keeps optimised. @default 3
   */
  routeAfter?: number
  /** How long a neighbour that let a route down (a GRAFT had to fetch the broadcast) is not taken for a parent. @default 60_000 */
  routeDistrustMs?: number
}

/** Every option, with defaults filled in. */
export type ResolvedMeshOptions = Required<MeshOptions>

const DEFAULTS: ResolvedMeshOptions = {
  maxHops: 64,
  seenMax: 20_000,
  maxAgeMs: 120_000,
  maxSkewMs: DEFAULT_MAX_SKEW_MS,
  maxPayloadBytes: 1_048_576,
  maxTopicLength: 256,
  lazyDelayMs: 0,
  graftTimeoutMs: 500,
  graftRetryMs: 250,
  maxGraftAttempts: 6,
  announceRounds: 4,
  announceRepeatMs: 1_000,
  cacheMax: 1_024,
  cacheMaxBytes: 16_777_216,
  cacheTtlMs: 30_000,
  missingMax: 4_096,
  missingPerPeer: 1_024,
  pendingMax: 256,
  pendingMaxBytes: 8_388_608,
  pendingTtlMs: 10_000,
  maxCandidates: 4,
  graftAnswersPerPeer: 3,
  pruneDelayMs: 250,
  treeMemoryMs: 2_000,
  optimiseSamples: 8,
  optimiseMargin: 1,
  optimiseGapMs: 2_000,
  routeOrigins: 512,
  routeAfter: 3,
  routeDistrustMs: 60_000,
}

export function resolveMeshOptions(options: MeshOptions = {}): ResolvedMeshOptions {
  const o: ResolvedMeshOptions = { ...DEFAULTS }
  for (const [k, v] of Object.entries(options)) if (v !== undefined) (o as Record<string, number>)[k] = v
  o.maxHops = Math.max(1, Math.min(MAX_HOPS_FIELD, Math.floor(o.maxHops)))
  o.announceRounds = Math.max(1, Math.floor(o.announceRounds))
  o.optimiseSamples = Math.max(0, Math.floor(o.optimiseSamples))
  o.routeOrigins = Math.max(0, Math.floor(o.routeOrigins))
  const oneMessage = o.maxPayloadBytes + 128
  o.cacheMaxBytes = Math.max(o.cacheMaxBytes, oneMessage)
  o.pendingMaxBytes = Math.max(o.pendingMaxBytes, oneMessage)
  return o
}
