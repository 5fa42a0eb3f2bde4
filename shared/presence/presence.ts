/**
 * Presence: who is in the network now, and what each says about itself
 * (y-webrtc's awareness, Trystero's onPeerJoin), for every live node, not
 * only the linked ones.
 *
 * Every node announces itself network-wide: a small signed record (its
 * state, at most `maxStateBytes` encoded) carried by a mesh broadcast, again
 * every interval and after each change. A node is present from its first
 * record until its leave record, or until it has not been heard from for
 * `expireIntervals` of the intervals it announced (plus `graceMs`): that is
 * how a crash ends its presence. The interval grows with the network
 * (`networkRate`), so the whole network's cost stays about `networkRate`
 * records per second, and so does each node's. A node that joins pulls the
 * table of its first neighbours, so it sees everyone at once rather than
 * over an interval.
 *
 * The rooms, one concept each:
 * - record.ts: the signed record, its grammar and order;
 * - announce.ts: our own state and when it is announced;
 * - accept.ts: the checks on others' records, join/update/leave, expiry;
 * - pull.ts: pull and dump, on joining;
 * - lost.ts: a crash reported by the crashed node's link neighbours;
 * - table.ts: the bounded table and its tombstones;
 * - messages.ts, options.ts, context.ts: the wire (PROTOCOL-presence.md),
 *   the options, and what the parts share.
 *
 * The host gives a mesh broadcast (`deps.broadcast`, on PRESENCE_TOPIC),
 * hands every other node's delivery on that topic to `handleBroadcast`,
 * passes link messages to `handle`, reports mesh links (`linkUp`,
 * `linkDown`) and calls `tick` often (every 100–250 ms). Every input is
 * parsed at the boundary and dropped and counted when it breaks a rule
 * (`drop.<reason>`); nothing throws into the host, and every table is
 * bounded (`maxNodes` entries, as many tombstones, a few pulls).
 */
import { bump, type Counters, type ProtocolNode } from '../protocol.ts'
import type { Value } from '../types.ts'
import { decodeValue } from '../wire/value.ts'
import { createAccept } from './accept.ts'
import { createAnnounce } from './announce.ts'
import type { PresenceContext, PresenceEvent } from './context.ts'
import { createLost } from './lost.ts'
import { type PresenceMsg, parseLost, parsePresenceMsg, parseRecord } from './messages.ts'
import { type PresenceDeps, type PresenceOptions, presenceTtl, resolvePresenceOptions } from './options.ts'
import { createPull } from './pull.ts'
import { PresenceTable } from './table.ts'

export type { PresenceEvent } from './context.ts'
export { PRESENCE_TOPIC } from './messages.ts'
export type { PresenceConfig, PresenceDeps, PresenceOptions } from './options.ts'
export { announceInterval, presenceTtl, resolvePresenceOptions } from './options.ts'

/** One present node, as `get` gives it. */
export interface PresenceInfo {
  state: Value
  /** When the node's session started (its clock, never later than our first sight of it). */
  since: number
}

export interface Presence extends ProtocolNode<PresenceMsg> {
  /** Traffic and drops, by name (PROTOCOL-presence.md, Counters). */
  readonly counters: Counters
  /** Set our state and announce it. Rejects with TypeError (not a Value), ValueTooLargeError (over maxStateBytes) or ClosedError (after leave). */
  set(state: Value): Promise<void>
  /** Every present node, ourselves included, with fresh copies of their states. Empty after leave. */
  get(): Map<string, PresenceInfo>
  /** Called on each join, update and leave of another node, and on our own updates. Returns the undo. */
  onPresence(fn: (e: PresenceEvent) => void): () => void
  /** A mesh delivery on PRESENCE_TOPIC from another node (`origin` is the mesh's checked origin). */
  handleBroadcast(origin: string, data: unknown): Promise<void>
  /** A link message from a neighbour (untrusted; parsed here). */
  handle(from: string, msg: PresenceMsg): Promise<void>
  tick(now: number): void
  /** A mesh link to `peer` opened. */
  linkUp(peer: string): void
  /** The mesh link to `peer` closed. */
  linkDown(peer: string): void
  /**
   * A link to `peer` closed (not only lost its mesh role): if it stays
   * closed and `peer` silent for `lostAfterMs`, we report it lost (lost.ts).
   */
  linkClosed(peer: string): void
  /**
   * Say goodbye: a leave record goes out (when we ever announced), then
   * nothing more is sent or accepted. Keep the links open a little after
   * (the mesh relays and repairs it from them). Idempotent.
   */
  leave(): Promise<void>
  /** The interval our next announcement will carry. */
  interval(): number
  /** How long a node announcing `interval` stays present without news. */
  ttl(interval: number): number
  /** Resolves when no announcement and no record check started here is still running. */
  settled(): Promise<void>
  /** Entries held in each bounded table, to watch memory. */
  sizes(): PresenceSizes
}

export interface PresenceSizes {
  /** Present nodes, ourselves included. */
  nodes: number
  tombstones: number
  /** Pulls waiting for an answer. */
  pulls: number
  /** Bytes of the records held. */
  recordBytes: number
}

const SETTLED: Promise<void> = Promise.resolve()

export function createPresence(deps: PresenceDeps, options: PresenceOptions = {}): Presence {
  const cfg = resolvePresenceOptions(options)
  const counters: Counters = {}
  const listeners = new Set<(e: PresenceEvent) => void>()
  let left = false
  const maxTtl = presenceTtl(cfg, cfg.maxIntervalMs)
  const ctx: PresenceContext = {
    deps,
    cfg,
    counters,
    // A tombstone must outlive every record it outranks: those are refused as stale by then.
    table: new PresenceTable(cfg.maxNodes, maxTtl + 2 * cfg.maxSkewMs),
    linked: new Set(),
    emit(e) {
      for (const fn of [...listeners]) {
        try {
          fn(e)
        } catch {
          // The application's listener failed; presence carries on.
          bump(counters, 'listenerErrors')
        }
      }
    },
    closed: () => left,
  }
  const { table, linked } = ctx
  const accept = createAccept(ctx)
  const announce = createAnnounce(ctx, options.state ?? null)
  const pull = createPull(ctx, accept, announce)
  const lost = createLost(ctx, announce)
  /** Record checks running (each awaits a signature check). */
  const checks = new Set<Promise<void>>()

  function track(p: Promise<void>): Promise<void> {
    checks.add(p)
    return p.finally(() => checks.delete(p))
  }

  function linkUp(peer: string): void {
    if (left || peer === deps.id || linked.has(peer)) return
    const rejoined = linked.size === 0
    linked.add(peer)
    if (rejoined) announce.join()
    pull.linkUp(peer, deps.now(), rejoined)
  }

  function linkDown(peer: string): void {
    linked.delete(peer)
    pull.linkDown(peer)
  }

  /** Follow the host's link table even if a linkUp/linkDown went missing. */
  function reconcile(): void {
    const now = new Set(deps.neighbours())
    for (const p of now) linkUp(p)
    for (const p of [...linked]) if (!now.has(p)) linkDown(p)
  }

  return {
    counters,

    set: (state) => announce.set(state),

    get() {
      const out = new Map<string, PresenceInfo>()
      if (left) return out
      out.set(deps.id, { state: decodeValue(announce.state()), since: announce.session })
      for (const e of table.values()) out.set(e.id, { state: decodeValue(e.state), since: e.since })
      return out
    },

    onPresence(fn) {
      listeners.add(fn)
      return () => void listeners.delete(fn)
    },

    handleBroadcast(origin, data) {
      const notice = parseLost(data)
      if (notice && typeof origin === 'string') return Promise.resolve(lost.notice(origin, notice))
      bump(counters, 'recordsIn')
      const rec = parseRecord(data)
      if (typeof origin !== 'string' || !rec) return Promise.resolve(void bump(counters, 'drop.malformed'))
      return track(accept.record(rec, { via: 'mesh', origin }))
    },

    async handle(from, msg) {
      if (left) return void bump(counters, 'drop.closed')
      if (typeof from !== 'string' || from === deps.id) return void bump(counters, 'drop.malformed')
      // The host's frame is untrusted whatever its static type: parsed here, once.
      const m = parsePresenceMsg(msg)
      if (!m) return void bump(counters, 'drop.malformed')
      if (m.t === 'pull') return pull.onPull(from, deps.now())
      return track(pull.onDump(from, m))
    },

    tick(now) {
      if (left) return
      reconcile()
      accept.expire(now)
      lost.tick(now)
      pull.tick(now)
      announce.tick(now)
    },

    linkUp,
    linkDown,
    linkClosed: (peer) => lost.linkClosed(peer, deps.now()),

    async leave() {
      if (left) return
      await announce.leave()
      left = true
      listeners.clear()
    },

    interval: () => announce.interval(),
    ttl: (interval) => presenceTtl(cfg, interval),

    settled() {
      // Hosts and the simulator ask after every event: the common case allocates nothing.
      if (!announce.busy() && checks.size === 0) return SETTLED
      return (async () => {
        for (;;) {
          await announce.settled()
          if (checks.size === 0) return
          await Promise.all([...checks])
        }
      })()
    },

    sizes() {
      let recordBytes = announce.record()?.[0].length ?? 0
      for (const e of table.values()) recordBytes += e.record[0].length
      return {
        nodes: left ? 0 : table.size + 1,
        tombstones: table.tombstones,
        pulls: pull.waiting,
        recordBytes,
      }
    },
  }
}
