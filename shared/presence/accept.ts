/**
 * Accepting other nodes' records, and forgetting nodes not heard from.
 *
 * A record, from a mesh broadcast or inside a neighbour's dump, is checked
 * cheapest first: size (before any decoding), the body's grammar, the
 * author (`idOf(publicKey)`; for a broadcast it must be the mesh's checked
 * origin, so nobody re-broadcasts another's record), its time (not ahead of
 * our clock by more than the skew, not older than its ttl plus the skew),
 * its order against what we hold of the author (entry or tombstone), and
 * then the signature. A leave removes the author and leaves a tombstone; a
 * present record adds the author (a join, if the table has room) or
 * replaces its entry (an update event only when the state's bytes change),
 * within the author's update budget. Whatever fails is dropped and counted
 * (`drop.<reason>`); nothing throws.
 *
 * Expiry: an entry not heard from within `presenceTtl(its interval)`, or
 * reported lost and silent until its `deadline` (lost.ts), is removed with
 * a leave event (`expired`). A record from a dump counts as
 * heard `ageMs` ago (the sender's word, capped at the ttl), so a dump
 * cannot make anyone present for longer than a stale-time check allows.
 */
import { bytesEqual } from '../bytes.ts'
import { createIdCache } from '../identity/id-cache.ts'
import { isPublicKey } from '../identity/keys.ts'
import { bump } from '../protocol.ts'
import { TokenBucket } from '../token-bucket.ts'
import { decodeValue } from '../wire/value.ts'
import type { PresenceContext } from './context.ts'
import { presenceTtl } from './options.ts'
import {
  compareVersion,
  MAX_PREFIX_BYTES,
  parseBody,
  type RecordBody,
  signedBytes,
  type WireRecord,
} from './record.ts'
import type { Entry } from './table.ts'

/** Where a record came from: a mesh broadcast (with its checked origin), or a neighbour's dump. */
export type RecordSource = { via: 'mesh'; origin: string } | { via: 'pull'; from: string; ageMs: number }

/** Most node ids remembered per public key (idOf is a hash; the cache spares it). */
const ID_CACHE_MAX = 4_096

export interface Accept {
  /** Check a record and apply it. Never throws; whatever is refused is counted. */
  record(rec: WireRecord, src: RecordSource): Promise<void>
  /** Remove the nodes not heard from within their ttl. */
  expire(now: number): void
}

export function createAccept(ctx: PresenceContext): Accept {
  const { deps, cfg, counters, table } = ctx
  const authorOf = createIdCache(deps.keys, ID_CACHE_MAX)
  const drop = (reason: string) => void bump(counters, `drop.${reason}`)

  /** Is `b` newer than what we hold of `author`? */
  /** A new entry's update budget: the record that made it spent one token. */
  function firstUpdate(now: number): TokenBucket {
    const b = TokenBucket.perGap(cfg.updateGapMs, cfg.updateBurst, now)
    b.take(1, now)
    return b
  }

  function isNewer(author: string, b: RecordBody): boolean {
    const have = table.version(author)
    return have === undefined || compareVersion(b, have) > 0
  }

  /** Make room for a new node: none when full, unless it is linked to us (then the stalest unlinked node goes). */
  function admit(author: string): boolean {
    if (table.size + 1 < cfg.maxNodes) return true // + 1: our own place
    if (!ctx.linked.has(author)) return false
    const victim = table.stalest((e) => !ctx.linked.has(e.id))
    if (!victim) return false
    table.evict(victim.id)
    bump(counters, 'evicted')
    ctx.emit({ id: victim.id, kind: 'leave', reason: 'evicted' })
    return true
  }

  async function record(rec: WireRecord, src: RecordSource): Promise<void> {
    if (ctx.closed()) return drop('closed')
    const [body, pk, sig] = rec
    if (body.length > cfg.maxStateBytes + MAX_PREFIX_BYTES) return drop('tooLarge')
    const b = parseBody(body)
    if (!b) return drop('malformed')
    if (b.state !== undefined && b.state.length > cfg.maxStateBytes) return drop('tooLarge')
    if (!isPublicKey(pk)) return drop('malformed')
    let author: string
    try {
      author = await authorOf(pk)
    } catch {
      return drop('malformed')
    }
    if (src.via === 'mesh' && author !== src.origin) return drop('originMismatch')
    if (author === deps.id) return void bump(counters, 'ownRecord')
    let now = deps.now()
    if (b.time > now + cfg.maxSkewMs || b.session > now + cfg.maxSkewMs) return drop('future')
    if (b.session > b.time) return drop('malformed')
    const ttl = presenceTtl(cfg, b.interval)
    if (now - b.time > ttl + cfg.maxSkewMs) return drop('stale')
    if (!isNewer(author, b)) return void bump(counters, 'outdated')
    try {
      if (!(await deps.keys.verify(pk, signedBytes(body), sig))) return drop('badSignature')
    } catch {
      return drop('badSignature')
    }
    // The check awaited: the node may have left, or a newer record come in meanwhile.
    if (ctx.closed()) return drop('closed')
    if (!isNewer(author, b)) return void bump(counters, 'outdated')
    now = deps.now()
    const heardAt = src.via === 'mesh' ? now : now - Math.min(src.ageMs, ttl)

    if (b.state === undefined) {
      const gone = table.remove(author, b, now)
      bump(counters, 'left')
      if (gone) ctx.emit({ id: author, kind: 'leave', reason: 'left' })
      return
    }
    const state = b.state
    const have = table.get(author)
    if (have) {
      if (!have.updates.take(1, now)) return drop('rate')
      const changed = !bytesEqual(have.state, state)
      Object.assign(have, {
        session: b.session,
        seq: b.seq,
        time: b.time,
        interval: b.interval,
        since: have.session === b.session ? have.since : Math.min(b.session, now),
        heardAt: Math.max(have.heardAt, heardAt),
        state,
        record: rec,
        // A newer record of its own answers a report that it was lost.
        deadline: Number.POSITIVE_INFINITY,
      })
      bump(counters, 'refreshed')
      if (changed) {
        bump(counters, 'updated')
        ctx.emit({ id: author, kind: 'update', state: decodeValue(state) })
      }
      return
    }
    if (!admit(author)) return drop('full')
    table.set({
      id: author,
      session: b.session,
      seq: b.seq,
      time: b.time,
      interval: b.interval,
      since: Math.min(b.session, now),
      heardAt,
      state,
      record: rec,
      updates: firstUpdate(now),
      deadline: Number.POSITIVE_INFINITY,
      reports: TokenBucket.perGap(cfg.lostGapMs, cfg.lostBurst, now),
    })
    bump(counters, 'joined')
    ctx.emit({ id: author, kind: 'join', state: decodeValue(state) })
  }

  function expire(now: number): void {
    const gone: Entry[] = []
    for (const e of table.values())
      if (now - e.heardAt > presenceTtl(cfg, e.interval) || now >= e.deadline) gone.push(e)
    for (const e of gone) {
      table.remove(e.id, e, now)
      bump(counters, 'expired')
      ctx.emit({ id: e.id, kind: 'leave', reason: 'expired' })
    }
    table.expireTombstones(now)
  }

  return { record, expire }
}
