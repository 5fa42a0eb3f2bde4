/**
 * Our own presence: the state, and when to announce it.
 *
 * An announcement is a record (record.ts) signed and handed to the mesh.
 * One goes out:
 *
 * - at once when this node joins, or rejoins after losing every link (a
 *   record sent while isolated reaches nobody, so none is sent then);
 * - after a `set`, at most one per `updateGapMs` (`set` calls in between
 *   are coalesced: the last state wins);
 * - every interval otherwise, the interval adapting to the network's size
 *   (`announceInterval`), each up to `jitter` early so nodes drift apart;
 *   while nothing is new (no join, no `set`, no report that we were lost)
 *   each periodic announcement doubles the interval, up to `maxIntervalMs`:
 *   a quiet network costs little, and crashes are reported by the crashed
 *   node's neighbours (lost.ts), not found by silence;
 * - soon (within `updateGapMs`) after someone reported us lost (`refute`):
 *   our newer record cancels the report everywhere.
 *
 * Each record says the interval it was scheduled with, and the next one
 * comes no later than that: receivers expire us by it. One announcement is
 * signed at a time (their order is their sequence numbers' order). `leave`
 * sends a last record, without state, and stops.
 */
import { ClosedError, ValueTooLargeError } from '../errors.ts'
import { bump } from '../protocol.ts'
import { isValue, type Value } from '../types.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import type { PresenceContext } from './context.ts'
import { recordValue } from './messages.ts'
import { announceInterval } from './options.ts'
import { encodeBody, signedBytes, type WireRecord } from './record.ts'

export interface Announce {
  /** When our session started (our clock): `since` in our own entry. */
  readonly session: number
  /** Our state's encoding now. */
  state(): Uint8Array
  /** Our latest record, for dumps (none before the first announcement). */
  record(): WireRecord | undefined
  /** The interval our next record will announce. */
  interval(): number
  /** Change our state. Rejects with TypeError (not a Value), ValueTooLargeError or ClosedError; resolves once it is announced, or at once while we have no link. */
  set(state: Value): Promise<void>
  /** Send what is due (see the header). */
  tick(now: number): void
  /** We (re)joined: announce now. */
  join(): void
  /** Someone reported us lost: announce again soon (within updateGapMs), from the base interval. */
  refute(): void
  /** Send the leave record (when we ever announced) and stop. */
  leave(): Promise<void>
  /** True while an announcement is being signed or sent. */
  busy(): boolean
  /** Resolves when no announcement is being signed or sent. */
  settled(): Promise<void>
}

/** Encode and size-check a state: the encoding, or a throw for the caller of `set`. */
export function encodeState(state: Value, maxBytes: number): Uint8Array {
  if (!isValue(state)) throw new TypeError('presence state must be a Value')
  const bytes = encodeValue(state)
  if (bytes.length > maxBytes) throw new ValueTooLargeError(bytes.length, maxBytes, 'presence state')
  return bytes
}

export function createAnnounce(ctx: PresenceContext, initial: Value): Announce {
  const { deps, cfg, counters, table } = ctx
  const session = Math.max(0, Math.floor(deps.now()))
  let stateBytes = encodeState(initial, cfg.maxStateBytes)
  let seq = 0
  let own: WireRecord | undefined
  /** Bumped by each set; `sentVersion` is the one the latest announcement carried. */
  let version = 0
  let sentVersion = 0
  let joinDue = true
  let refuteDue = false
  /** Periodic announcements in a row with nothing new: the interval is doubled this many times. */
  let quiet = 0
  let lastAt = Number.NEGATIVE_INFINITY
  let nextAt = Number.POSITIVE_INFINITY
  let lastInterval = cfg.intervalMs
  let inflight: Promise<void> | null = null
  let left = false
  /** The `set` calls the next announcement will carry: one promise for all of them, however many. */
  let waiting: Batch | null = null

  const interval = () => announceInterval(cfg, table.size + 1, quiet)

  /** Resolve every `set` waiting (isolated or leaving: nothing will carry them). */
  function releaseAll(): void {
    waiting?.resolve()
    waiting = null
  }

  /** Put back the set calls an announcement that failed was to carry. */
  function requeue(b: Batch): void {
    if (waiting) void waiting.promise.then(b.resolve)
    else waiting = b
  }

  async function send(leave: boolean): Promise<void> {
    const carried = version
    const prevSent = sentVersion
    const batch = waiting
    waiting = null
    const now = deps.now()
    // Nothing new since the last one (a periodic announcement): slow down; else back to the base.
    const calm = !joinDue && !refuteDue && carried === prevSent
    quiet = calm ? Math.min(quiet + 1, 30) : 0
    refuteDue = false
    const iv = leave ? lastInterval : interval()
    seq += 1
    const body = encodeBody({
      session,
      seq,
      time: Math.max(session, Math.floor(now)),
      interval: iv,
      ...(leave ? {} : { state: stateBytes }),
    })
    sentVersion = carried
    lastAt = now
    lastInterval = iv
    // Never later than the interval announced: receivers expire us by it.
    nextAt = now + iv * (1 - cfg.jitter * deps.random())
    joinDue = false
    let sig: Uint8Array
    try {
      sig = await deps.keys.sign(signedBytes(body))
    } catch {
      bump(counters, 'signFailed')
      // Not announced: due again after updateGapMs, and its set calls wait for that one.
      sentVersion = prevSent
      nextAt = now + Math.max(1, cfg.updateGapMs)
      if (batch) requeue(batch)
      return
    }
    const rec: WireRecord = [body, deps.keys.publicKey, sig]
    if (!leave) own = rec
    bump(counters, leave ? 'leaveSent' : 'announced')
    try {
      await deps.broadcast(recordValue(rec))
    } catch {
      bump(counters, 'broadcastFailed')
    }
    batch?.resolve()
  }

  function start(leave = false): void {
    const p = send(leave).finally(() => {
      if (inflight === p) inflight = null
    })
    inflight = p
  }

  function due(now: number): boolean {
    if (joinDue || now >= nextAt) return true
    return (refuteDue || version > sentVersion) && now - lastAt >= cfg.updateGapMs
  }

  return {
    session,
    state: () => stateBytes,
    record: () => own,
    interval,

    set(state) {
      if (left) return Promise.reject(new ClosedError('presence: this node has left'))
      let bytes: Uint8Array
      try {
        bytes = encodeState(state, cfg.maxStateBytes)
      } catch (err) {
        return Promise.reject(err)
      }
      stateBytes = bytes
      version += 1
      ctx.emit({ id: deps.id, kind: 'update', state: decodeValue(bytes) })
      if (ctx.linked.size === 0) return Promise.resolve()
      if (!waiting) waiting = batch()
      const p = waiting.promise
      if (!inflight && due(deps.now())) start()
      return p
    },

    tick(now) {
      if (left) return
      // Isolated: nothing can be announced; nobody waits for it.
      if (ctx.linked.size === 0) return releaseAll()
      if (!inflight && due(now)) start()
    },

    join() {
      if (left) return
      joinDue = true
      if (!inflight && ctx.linked.size > 0) start()
    },

    refute() {
      if (left || own === undefined) return
      refuteDue = true
      if (!inflight && ctx.linked.size > 0 && due(deps.now())) start()
    },

    async leave() {
      if (left) return
      left = true
      while (inflight) await inflight
      if (own && ctx.linked.size > 0) {
        start(true)
        while (inflight) await inflight
      }
      releaseAll()
    },

    busy: () => inflight !== null,

    async settled() {
      while (inflight) await inflight
    },
  }
}

interface Batch {
  promise: Promise<void>
  resolve: () => void
}

function batch(): Batch {
  let resolve = () => {}
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return { promise, resolve }
}
