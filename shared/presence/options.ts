/**
 * Presence's dependencies and options, with their defaults (every option
 * documented with its `@default`), and the two timing rules every node
 * applies: how often a node announces (`announceInterval`, adaptive to the
 * network's size) and how long a node stays present without news
 * (`presenceTtl`). PROTOCOL-presence.md states them as formulas.
 */
import { DEFAULT_MAX_SKEW_MS } from '../hlc.ts'
import type { SignedProtocolDeps } from '../protocol.ts'
import type { Value } from '../types.ts'
import type { PresenceMsg } from './messages.ts'

export interface PresenceDeps extends SignedProtocolDeps<PresenceMsg> {
  /** Ids this node has a live mesh link to now (the links `linkUp`/`linkDown` report). */
  neighbours(): string[]
  /**
   * Send `record` to every node: the host signs it into a mesh broadcast on
   * PRESENCE_TOPIC, and hands every other node's delivery to
   * `handleBroadcast`. A rejection is counted (`broadcastFailed`).
   */
  broadcast(record: Value): Promise<unknown> | undefined
  /**
   * `id` may have crashed: a neighbour reported its link to it dead, or
   * ours died (lost.ts). A hint for the host (the node core wakes Chord's
   * maintenance with it); nothing is concluded from it here but a shorter expiry.
   */
  suspect?(id: string): void
}

export interface PresenceOptions {
  /** This node's state until `set` is called. @default null */
  state?: Value
  /** Largest state, in bytes of its MessagePack encoding, a node sets or accepts. @default 1_024 */
  maxStateBytes?: number
  /**
   * Least time between a node's periodic announcements (the interval of a
   * small network). @default 10_000
   */
  intervalMs?: number
  /**
   * Announcements per second the whole network should cost: a node announces
   * every `max(intervalMs, 1000 · n / networkRate)` ms, n being the nodes it
   * sees present (itself included), so that n nodes together send about
   * `networkRate` per second however many they are (until `maxIntervalMs`).
   * @default 10
   */
  networkRate?: number
  /**
   * Longest time between a node's announcements, whatever the network's
   * size; also the longest interval a receiver credits. A node whose state
   * does not change doubles its interval after each periodic announcement,
   * from `interval(n)` up to this (crashes are reported by the crashed
   * node's link neighbours meanwhile: `lostAfterMs`). @default 300_000
   */
  maxIntervalMs?: number
  /** A node not heard from for `expireIntervals` of its announced intervals (plus `graceMs`) is gone. @default 3 */
  expireIntervals?: number
  /** Slack added to the expiry for propagation and late ticks. @default 2_000 */
  graceMs?: number
  /** Each periodic announcement comes up to this fraction of the interval early, so nodes do not announce in step. @default 0.1 */
  jitter?: number
  /** Least time between two announcements of state changes (`set` calls in between are coalesced: the last wins). @default 250 */
  updateGapMs?: number
  /** Announcements a receiver accepts from one node in a burst; one more is allowed per `updateGapMs`. @default 8 */
  updateBurst?: number
  /** Most nodes (ourselves included) the table holds; past it new nodes are refused (`drop.full`) unless linked to us. @default 2_000 */
  maxNodes?: number
  /** A record signed further ahead of this node's clock is refused (`drop.future`). @default 60_000 (DEFAULT_MAX_SKEW_MS) */
  maxSkewMs?: number
  /** Neighbours asked for their table (`pull`) when this node joins, or rejoins after losing every link. @default 2 */
  pullPeers?: number
  /** After a join, links coming up within this long are asked, up to `pullPeers`. @default 10_000 */
  pullWindowMs?: number
  /** A neighbour asked that has sent no part of its answer after this long is asked once more. @default 1_000 */
  pullRetryMs?: number
  /** An unfinished answer to a pull is abandoned after this long (later parts are `drop.unsolicited`). @default 10_000 */
  pullTimeoutMs?: number
  /** One neighbour's pulls are answered at most twice (a pull and its retry) per this long (`drop.pullRate`). @default 10_000 */
  pullGapMs?: number
  /** Pulls answered per `pullGapMs`, all neighbours together (`drop.pullBudget`). @default 16 */
  maxPullAnswers?: number
  /** Target size of one `dump` message (one record may exceed it). @default 65_536 */
  maxDumpBytes?: number
  /**
   * A mesh link that closed and is not back this long after, to a node that
   * has not announced since, makes us report the node lost (a `lost`
   * broadcast; every receiver not linked to it expires it `lostGraceMs`
   * later unless it announces meanwhile). @default 2_000
   */
  lostAfterMs?: number
  /** How long a node reported lost has to answer with a newer record before it expires. @default 3_000 */
  lostGraceMs?: number
  /** `lost` reports a receiver accepts from one node in a burst; one more is allowed per `lostGapMs`. @default 4 */
  lostBurst?: number
  /** See `lostBurst`. @default 10_000 */
  lostGapMs?: number
}

/** Every option, with defaults filled in. */
export type PresenceConfig = Required<Omit<PresenceOptions, 'state'>>

const DEFAULTS: PresenceConfig = {
  maxStateBytes: 1_024,
  intervalMs: 10_000,
  networkRate: 10,
  maxIntervalMs: 300_000,
  expireIntervals: 3,
  graceMs: 2_000,
  jitter: 0.1,
  updateGapMs: 250,
  updateBurst: 8,
  maxNodes: 2_000,
  maxSkewMs: DEFAULT_MAX_SKEW_MS,
  pullPeers: 2,
  pullWindowMs: 10_000,
  pullRetryMs: 1_000,
  pullTimeoutMs: 10_000,
  pullGapMs: 10_000,
  maxPullAnswers: 16,
  maxDumpBytes: 65_536,
  lostAfterMs: 2_000,
  lostGraceMs: 3_000,
  lostBurst: 4,
  lostGapMs: 10_000,
}

/** Fill in defaults; a non-finite or negative option keeps its default, and a few are clamped to what works. */
export function resolvePresenceOptions(options: PresenceOptions = {}): PresenceConfig {
  const o: PresenceConfig = { ...DEFAULTS }
  for (const k of Object.keys(DEFAULTS) as (keyof PresenceConfig)[]) {
    const v = options[k]
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) o[k] = v
  }
  o.intervalMs = Math.max(1, Math.floor(o.intervalMs))
  o.maxIntervalMs = Math.max(o.intervalMs, Math.floor(o.maxIntervalMs))
  o.networkRate = o.networkRate > 0 ? o.networkRate : DEFAULTS.networkRate
  o.expireIntervals = Math.max(1, o.expireIntervals)
  o.jitter = Math.min(0.5, o.jitter)
  o.updateBurst = Math.max(1, Math.floor(o.updateBurst))
  o.maxNodes = Math.max(1, Math.floor(o.maxNodes))
  o.pullPeers = Math.floor(o.pullPeers)
  o.maxPullAnswers = Math.floor(o.maxPullAnswers)
  o.lostBurst = Math.max(1, Math.floor(o.lostBurst))
  return o
}

/**
 * How often a node that sees `n` nodes present (itself included) announces,
 * after `quiet` periodic announcements in a row with nothing new (each
 * doubles it, up to `maxIntervalMs`).
 */
export function announceInterval(cfg: PresenceConfig, n: number, quiet = 0): number {
  const scaled = Math.ceil((1000 * n) / cfg.networkRate)
  const base = Math.max(cfg.intervalMs, scaled)
  return Math.min(cfg.maxIntervalMs, base * 2 ** Math.min(quiet, 30))
}

/**
 * How long a node whose last announcement said `interval` stays present
 * without news. The interval is the sender's claim, so it is capped at
 * `maxIntervalMs`: nobody stays present longer than the cap allows.
 */
export function presenceTtl(cfg: PresenceConfig, interval: number): number {
  return cfg.expireIntervals * Math.min(interval, cfg.maxIntervalMs) + cfg.graceMs
}
