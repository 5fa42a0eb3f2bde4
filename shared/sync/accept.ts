/**
 * Accepting versions: an entry from the network or a snapshot
 * (`acceptWire`), and a write by this node (`write`). Both go through the
 * same checks; PROTOCOL-sync.md lists them in order with their counters.
 *
 * From the network, cheapest first: shape and limits (entry.ts `parseBody`),
 * a `wall` no further ahead of our clock than `maxSkewMs` (`drop.future`),
 * the duplicate, the staleness pre-check (an older version goes unless it
 * may still pre-empt: merge.ts), then the signature, then the merge rules,
 * the tombstone horizon, and room under the quotas (quota.ts). The claim an
 * entry is credited with (merge.ts, Claims) is fixed here, on first sight.
 * Every refusal is dropped and counted (`drop.<reason>`); nothing throws.
 *
 * A local write refuses itself the same way, but loudly: LeaseHeldError,
 * QuotaExceededError (also when it would evict one of this node's own
 * entries), ValueTooLargeError. It signs first, then checks again, since a
 * version or a lease may have arrived while it signed.
 *
 * Tombstones and the horizon. A delete is a tombstone entry, kept for
 * `tombstoneHorizonMs` after its HLC wall time (and past any lease on it),
 * then collected (`collect`). A collected delete must not be undone by a
 * replica that still holds the deleted value, so:
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
 */
import { bytesEqual, utf8 } from '../bytes.ts'
import { LeaseHeldError, ValueTooLargeError } from '../errors.ts'
import { compareHlc, type HlcClock } from '../hlc.ts'
import { createIdCache } from '../identity/id-cache.ts'
import type { Keyring } from '../identity/keys.ts'
import { bump, type Counters } from '../protocol.ts'
import { type Entry, encodeBody, makeEntry, type ParsedBody, parseBody, signedBytes } from './entry.ts'
import { QuotaExceededError } from './errors.ts'
import type { AcceptSource, Events } from './events.ts'
import type { MergeRules } from './merge.ts'
import type { WireEntry } from './messages.ts'
import type { SyncConfig } from './options.ts'
import { planRoom, type QuotaLimit, type Victim } from './quota.ts'
import type { Table } from './table.ts'

/** Most public key → node id results remembered. */

export interface AcceptDeps {
  readonly id: string
  readonly keys: Keyring
  now(): number
}

export interface AcceptContext {
  deps: AcceptDeps
  opt: SyncConfig
  table: Table
  clock: HlcClock
  rules: MergeRules
  events: Events
  counters: Counters
}

export interface Acceptor {
  /** Check an entry from a peer, the mesh or a snapshot, and store it if it wins. True when accepted. */
  acceptWire(w: WireEntry, via: AcceptSource): Promise<boolean>
  /**
   * Write `key` (a value's encoding, or undefined to delete) with `leaseMs`
   * (undefined: keep our live lease, if any). Returns the signed entry to
   * broadcast, or undefined when a newer version arrived while we signed.
   */
  write(
    key: string,
    valueBytes: Uint8Array | undefined,
    leaseMs: number | undefined,
  ): Promise<WireEntry | undefined>
  /** Throws TypeError or ValueTooLargeError for a key no write may have. */
  checkKey(key: unknown): asserts key is string
  /** Forget tombstones past the horizon (and past any lease on them). */
  collect(now: number): void
}

export function createAcceptor(ctx: AcceptContext): Acceptor {
  const { deps, opt, table, clock, rules, events, counters } = ctx
  const authorOf = createIdCache(deps.keys)

  const drop = (reason: string): false => {
    bump(counters, `drop.${reason}`)
    return false
  }

  /**
   * The claim of a verified entry seen now: the one already credited when it
   * continues the tenure of the version held (same author, same `since`),
   * full credit for our own snapshot, else first sight − claimSkewMs at most.
   */
  function claimOf(p: ParsedBody, author: string, via: AcceptSource, now: number): number {
    const since = p.hlc[0] - p.heldMs
    if (via === 'import') return since
    const cur = table.get(p.key)
    if (cur && cur.author === author && cur.since === since) return cur.claim
    return rules.credit(since, now)
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

  /** Store `e` in place of `cur`, after removing what the quota plan evicts. */
  function store(
    e: Entry,
    cur: Entry | undefined,
    victims: Victim[],
    via: AcceptSource,
    now: number,
    preempted: boolean,
  ) {
    for (const { entry: v, reason } of victims) {
      table.remove(v.key)
      if (reason === 'quota') bump(counters, 'drop.quota')
      else {
        bump(counters, 'evicted')
        if (rules.leaseBinds(v, now)) bump(counters, 'evicted.leased')
      }
      events.evicted(v)
    }
    table.put(e)
    events.accepted(cur, e, via, now, preempted)
  }

  /** Apply a verified entry: merge rules, horizon and quotas, then store. Synchronous. */
  function apply(e: Entry, via: AcceptSource): boolean {
    const now = deps.now()
    const cur = table.get(e.key)
    const d = rules.decide(e, cur, now)
    if (d === 'duplicate') {
      bump(counters, 'duplicates')
      return false
    }
    if (d === 'stale') return drop('stale')
    // Even a refused version moves our clock, so our next write orders after it.
    clock.observe(e.hlc)
    if (d === 'leaseHeld' || d === 'lateClaim') return drop(d)
    const preempted = d === 'preempt'
    if (e.tombstone && e.hlc[0] + opt.tombstoneHorizonMs <= now && !rules.leaseBinds(e, now)) {
      // Rule 1 of the horizon: an expired delete deletes what it beats, and is not kept.
      if (!cur) return drop('expiredTombstone')
      table.remove(e.key)
      bump(counters, 'expiredTombstoneApplied')
      events.accepted(cur, e, via, now, preempted)
      return true
    }
    const room = planRoom(table, e, cur, opt, (x) => rules.leaseBinds(x, now))
    if (!room.ok) return drop(room.limit === 'entries' || room.limit === 'bytes' ? 'quota' : 'tableFull')
    store(e, cur, room.victims, via, now, preempted)
    return true
  }

  function assertFree(key: string, now: number): Entry | undefined {
    const cur = table.get(key)
    if (cur && cur.author !== deps.id && cur.expires !== undefined && rules.leaseBinds(cur, now))
      throw new LeaseHeldError(key, cur.author, cur.expires)
    return cur
  }

  return {
    async acceptWire([body, pk, sig], via) {
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
          const may = rules.mayPreempt(p, cur, now)
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
      return apply(makeEntry(p, author, body, pk, sig, claimOf(p, author, via, deps.now())), via)
    },

    async write(key, valueBytes, leaseOpt) {
      const cur = assertFree(key, deps.now())
      const hlc = clock.now()
      // Our own lease, live by our clock: our writes keep it (and its acquisition time) unless told otherwise.
      const held =
        cur && cur.author === deps.id && cur.expires !== undefined && cur.expires > hlc[0] ? cur : undefined
      const leaseMs = leaseOpt ?? (held?.expires !== undefined ? held.expires - hlc[0] : 0)
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
      const room = planRoom(table, e, cur2, opt, (x) => rules.leaseBinds(x, now))
      if (!room.ok) throw quotaError(room.limit)
      // Our own entries are never evicted for our own write: the application hears of the bound instead.
      const own = room.victims.find((v) => v.entry.author === deps.id)
      if (own) throw quotaError(own.limit)
      const d = rules.decide(e, cur2, now)
      if (d !== 'accept' && d !== 'preempt') {
        // A newer version arrived while we signed; ours would lose everywhere.
        bump(counters, 'localSuperseded')
        return undefined
      }
      store(e, cur2, room.victims, 'local', now, d === 'preempt')
      return [body, deps.keys.publicKey, sig]
    },

    checkKey(key: unknown): asserts key is string {
      if (typeof key !== 'string') throw new TypeError('sync: a key must be a string')
      const n = utf8(key).length
      if (n > opt.maxKeyBytes) throw new ValueTooLargeError(n, opt.maxKeyBytes, 'key')
    },

    collect(now) {
      for (const k of table.tombstones()) {
        const e = table.get(k)
        if (e && e.hlc[0] + opt.tombstoneHorizonMs <= now && !rules.leaseBinds(e, now)) {
          table.remove(k)
          bump(counters, 'collected')
        }
      }
    },
  }
}
