/**
 * Anti-entropy: repairing, link by link, what broadcasts missed.
 *
 * Every local write is broadcast (`p`); anti-entropy repairs what broadcasts
 * missed. On link-up (the lower id starts at once), every `antiEntropyMs`,
 * and soon after a replica learns something through anti-entropy (at most
 * every `triggerGapMs` per link), a node sends each neighbour the 8-byte
 * root of its bucket hashes (`s`). On a mismatch the other answers with its
 * 64 bucket hashes (`b`); the first answers with its (key, HLC, fingerprint)
 * lists for the buckets that differ (`v`), and its whole entries for buckets
 * the other holds none of; the other answers with the entries it has newer
 * (`e`) and the keys it wants (`q`), which the first answers with entries.
 * A version whose lease binds goes across even when it is older, as it may
 * win as the earlier acquisition: the first flags such versions in its
 * lists, and the other sends its own when its lease binds and asks for a
 * flagged one while its own is within the contention window. One exchange
 * leaves both ends with the winner of every differing key; the news then
 * spreads link by link the same way, so a healed partition or a late joiner
 * converges without anyone flooding the table.
 *
 * Backing off (issue 14, idle cost): a summary to a neighbour that carries
 * the same root as the last one, with no exchange with it in between (we
 * were in sync then, and nothing changed here since), doubles that link's
 * period, up to `antiEntropyMaxMs`. Any exchange with the neighbour, a
 * summary from it that differs, or a change of our own table (a write, a
 * broadcast, an exchange with anyone) brings the period back to
 * `antiEntropyMs` at once. So a quiet table costs a summary a minute per
 * link, and one write is followed by rounds at the fast pace again.
 *
 * A node answers one exchange at a time and holds its own summaries
 * meanwhile, so a newcomer takes the table from one neighbour, not from all
 * of them at once. Entries received go through the acceptor like any other
 * (accept.ts), charged to the sender's budget (budgets.ts). A peer's state
 * here goes with its link. PROTOCOL-sync.md has the grammar.
 */
import { bytesEqual, utf8 } from '../bytes.ts'
import { compareHlc } from '../hlc.ts'
import { bump, type Counters } from '../protocol.ts'
import type { Acceptor } from './accept.ts'
import type { Budget, Budgets } from './budgets.ts'
import { BUCKETS, bucketOf, type Entry, FINGERPRINT_BYTES, readU32 } from './entry.ts'
import type { MergeRules } from './merge.ts'
import {
  type BucketsMsg,
  type EntriesMsg,
  type LinkMsg,
  MAX_ENTRIES_PER_MSG,
  type QueryMsg,
  type SummaryMsg,
  type SyncMsg,
  type VersionItem,
  type VersionsMsg,
  type WireEntry,
} from './messages.ts'
import type { SyncConfig } from './options.ts'
import type { Table } from './table.ts'

/** Most keys in one `q` message. */
const KEYS_PER_QUERY = 4_096
/** Most version items in one `v` message (whole buckets only, so one may exceed it). */
const ITEMS_PER_VERSIONS = 4_096

export interface AntiEntropyDeps {
  readonly id: string
  now(): number
  random(): number
  neighbours(): string[]
  send(to: string, msg: SyncMsg): void
}

export interface AntiEntropyContext {
  deps: AntiEntropyDeps
  opt: SyncConfig
  table: Table
  rules: MergeRules
  acceptor: Acceptor
  budgets: Budgets
  counters: Counters
}

export interface AntiEntropy {
  /** A link message from `from`, already parsed and charged to its sender's `budget`. */
  handle(from: string, m: LinkMsg, budget: Budget, now: number): Promise<void>
  /** Time passes: drop the state of links gone, send the summaries due. */
  tick(now: number): void
  linkUp(peer: string): void
  linkDown(peer: string): void
  /** This replica learned something the other neighbours may lack: summaries to them, soon. */
  announceNews(except: string | undefined): void
}

/** Anti-entropy state for a current neighbour; dropped with the link. */
interface Peer {
  /** When our next periodic summary to this neighbour is due. */
  nextRound: number
  lastSummary: number
  /** News arrived while the trigger gap was running: send a summary when it ends. */
  pending: boolean
  /** Back-off: this link's period is antiEntropyMs × 2^level (at most antiEntropyMaxMs). */
  level: number
  /** The root our last summary to it carried. */
  sentRoot: Uint8Array | null
  /** An exchange with it, or a differing summary from it, since our last summary. */
  stirred: boolean
}

/** The one exchange this node answers at a time (it sent `b` to `peer`). */
interface Inbound {
  peer: string
  /** Abandoned at this time unless the peer sends again. */
  until: number
  /** The peer's last `v` has not come yet. */
  awaitingV: boolean
  /** Our `q`s whose last `e` has not come yet. */
  queries: number
}

const wire = (e: Entry): WireEntry => [e.body, e.publicKey, e.sig]

function bucketEmpty(b: Uint8Array, i: number): boolean {
  for (let j = i * 8; j < i * 8 + 8; j++) if (b[j] !== 0) return false
  return true
}

export function createAntiEntropy(ctx: AntiEntropyContext): AntiEntropy {
  const { deps, opt, table, rules, acceptor, budgets, counters } = ctx
  const peers = new Map<string, Peer>()
  /**
   * Other neighbours' summaries wait while this runs, so a newcomer takes the
   * table from one neighbour rather than from all of them at once, and then
   * finds itself in sync with the rest. It ends when the peer's last `v` has
   * come and every `q` we sent has its last `e`, or after
   * `exchangeTimeoutMs` without a message from the peer.
   */
  let inbound: Inbound | undefined

  function peer(id: string): Peer {
    let st = peers.get(id)
    if (!st) {
      st = {
        nextRound: deps.now() + Math.floor(deps.random() * opt.antiEntropyMs),
        lastSummary: Number.NEGATIVE_INFINITY,
        pending: false,
        level: 0,
        sentRoot: null,
        stirred: false,
      }
      peers.set(id, st)
    }
    return st
  }

  function send(to: string, msg: SyncMsg): void {
    deps.send(to, msg)
    bump(counters, `out.${msg.t}`)
  }

  /**
   * This link's period now. Backed off, it is spread by up to 10 % less, so
   * the two ends of a link fall out of step and one summary serves both.
   */
  function period(st: Peer): number {
    if (st.level === 0) return opt.antiEntropyMs
    const p = Math.min(opt.antiEntropyMs * 2 ** st.level, Math.max(opt.antiEntropyMs, opt.antiEntropyMaxMs))
    return Math.floor(p * (1 - 0.1 * deps.random()))
  }

  function sendSummary(to: string, st: Peer, now: number): void {
    const root = table.rootBytes()
    // The same root as last time and no exchange since: we are in sync and quiet; slow down.
    if (st.sentRoot && !st.stirred && bytesEqual(root, st.sentRoot)) {
      if (opt.antiEntropyMs * 2 ** st.level < opt.antiEntropyMaxMs) st.level++
    } else st.level = 0
    st.stirred = false
    st.sentRoot = root
    send(to, { t: 's', r: root })
    st.lastSummary = now
    st.nextRound = now + period(st)
    st.pending = false
  }

  /** Back to the base period with `st` (something happened on that link). */
  function stir(st: Peer): void {
    st.stirred = true
    st.level = 0
  }

  /** Our root when the tick last looked: a change brings every link back to the base period. */
  let lastRoot: Uint8Array = table.rootBytes()

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

  function announceNews(except: string | undefined): void {
    for (const n of deps.neighbours()) if (n !== except && n !== deps.id) peer(n).pending = true
    flushPending(deps.now())
  }

  /**
   * Entries in batches of about maxBatchBytes; every batch but the last says more follow (and the last
   * too when `more`). Each is charged to the peer's budget: past it the rest is not sent (budgets.ts).
   */
  function sendEntries(to: string, list: Entry[], more: boolean, budget: Budget): void {
    const batches: WireEntry[][] = []
    let batch: WireEntry[] = []
    let bytes = 0
    let sent = 0
    for (const e of list) {
      if (!budgets.takeSend(budget, e.size)) {
        bump(counters, 'drop.sendBudget', list.length - sent)
        break
      }
      sent++
      const size = e.size + 16
      if (batch.length > 0 && (bytes + size > opt.maxBatchBytes || batch.length >= MAX_ENTRIES_PER_MSG)) {
        batches.push(batch)
        batch = []
        bytes = 0
      }
      batch.push(wire(e))
      bytes += size
    }
    batches.push(batch)
    batches.forEach((e, i) => {
      send(to, more || i < batches.length - 1 ? { t: 'e', e, m: true } : { t: 'e', e })
    })
    bump(counters, 'ae.entriesSent', sent)
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

  function onSummary(from: string, m: SummaryMsg, now: number): void {
    const st = peer(from)
    const root = table.rootBytes()
    if (bytesEqual(m.r, root)) {
      // In sync: a quiet round for this link on our side too (so the two ends slow down together and
      // the link costs one summary a period, whichever end sends it).
      if (st.sentRoot && !st.stirred && bytesEqual(root, st.sentRoot)) {
        if (opt.antiEntropyMs * 2 ** st.level < opt.antiEntropyMaxMs) st.level++
      } else st.level = 0
      st.stirred = false
      st.sentRoot = root
      st.nextRound = Math.max(st.nextRound, now + period(st))
      return void bump(counters, 'ae.inSync')
    }
    stir(st)
    // The neighbour runs this round; ours can wait a period.
    st.nextRound = Math.max(st.nextRound, now + period(st))
    if (busy(now) && inbound?.peer !== from) {
      st.pending = true
      return void bump(counters, 'ae.deferred')
    }
    inbound = { peer: from, until: now + opt.exchangeTimeoutMs, awaitingV: true, queries: 0 }
    bump(counters, 'ae.rounds')
    send(from, { t: 'b', b: table.bucketBytes() })
  }

  /** We started this exchange: send what they lack outright, then version lists; the last `v` ends our part. */
  function onBuckets(from: string, m: BucketsMsg, now: number, budget: Budget): void {
    const mine = table.bucketBytes()
    const theirs = m.b
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
        cur.v.push(
          rules.leaseBinds(e, now) ? [e.key, e.hlc[0], e.hlc[1], fp, 1] : [e.key, e.hlc[0], e.hlc[1], fp],
        )
      }
    }
    lists.push(cur)
    if (direct.length > 0) sendEntries(from, direct, true, budget)
    lists.forEach((l, n) => {
      send(from, n < lists.length - 1 ? { t: 'v', ...l, m: true } : { t: 'v', ...l })
    })
  }

  function onVersions(from: string, m: VersionsMsg, now: number, budget: Budget): void {
    const wanted = new Set(m.i)
    const theirs = new Map<string, VersionItem>()
    for (const it of m.v) {
      const key = it[0]
      if (!theirs.has(key) && wanted.has(bucketOf(key))) theirs.set(key, it)
    }
    const give: Entry[] = []
    const ask: string[] = []
    for (const b of m.i) {
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
        if (c >= 0 || rules.leaseBinds(e, now)) give.push(e)
        if (c <= 0 || (t[4] === 1 && now < e.since + opt.contentionWindowMs)) ask.push(e.key)
      }
    }
    for (const key of theirs.keys()) if (utf8(key).length <= opt.maxKeyBytes) ask.push(key)
    if (give.length > 0) sendEntries(from, give, false, budget)
    const queries = ask.length > 0 ? sendQuery(from, ask) : 0
    if (inbound?.peer === from) {
      inbound.until = now + opt.exchangeTimeoutMs
      inbound.queries += queries
      if (m.m !== true) inbound.awaitingV = false
      maybeFinish()
    }
  }

  function onQuery(from: string, m: QueryMsg, budget: Budget): void {
    const out: Entry[] = []
    // Each key once, however often it is named.
    for (const k of new Set(m.k)) {
      const e = table.get(k)
      if (e) out.push(e)
    }
    // Always answer, even with nothing: the asker counts answers to know the exchange is over.
    sendEntries(from, out, false, budget)
  }

  async function onEntries(from: string, m: EntriesMsg, b: Budget): Promise<void> {
    let news = 0
    for (let i = 0; i < m.e.length; i++) {
      const w = m.e[i]
      if (!w) continue
      if (!budgets.takeEntry(b)) {
        bump(counters, 'drop.rateLimited', m.e.length - i)
        break
      }
      if (await acceptor.acceptWire(w, 'anti-entropy')) news++
    }
    if (news > 0) announceNews(from)
    if (inbound?.peer === from) {
      inbound.until = deps.now() + opt.exchangeTimeoutMs
      if (m.m !== true && !inbound.awaitingV && inbound.queries > 0) inbound.queries--
      maybeFinish()
    }
  }

  return {
    async handle(from, m, budget, now) {
      // An exchange under way: this link is not quiet.
      if (m.t !== 's') {
        const st = peers.get(from)
        if (st) stir(st)
      }
      switch (m.t) {
        case 's':
          return onSummary(from, m, now)
        case 'b':
          return onBuckets(from, m, deps.now(), budget)
        case 'v':
          return onVersions(from, m, now, budget)
        case 'q':
          return onQuery(from, m, budget)
        case 'e':
          return onEntries(from, m, budget)
      }
    },

    tick(now) {
      const nbrs = deps.neighbours()
      const live = new Set(nbrs)
      // Anti-entropy state goes with the link; budgets stay until their windows end (budgets.ts).
      for (const p of peers.keys()) if (!live.has(p)) peers.delete(p)
      if (inbound && !live.has(inbound.peer)) inbound = undefined
      const root = table.rootBytes()
      if (!bytesEqual(root, lastRoot)) {
        // Our table changed: every link back to the base period, the next round within one.
        lastRoot = root
        for (const st of peers.values()) {
          if (st.level > 0) bump(counters, 'ae.woken')
          st.level = 0
          st.stirred = true
          st.nextRound = Math.min(st.nextRound, now + opt.antiEntropyMs)
        }
      }
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

    announceNews,
  }
}
