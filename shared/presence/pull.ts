/**
 * Learning who is present at once, on joining: pull and dump.
 *
 * A node that joins (its first link) or rejoins (a link after it had none)
 * sends `pull` to the first `pullPeers` links that come up within
 * `pullWindowMs`, and once more to one that has sent nothing back after
 * `pullRetryMs` (the pull or the answer was lost). A neighbour answers with its whole table (its own record
 * first, every entry with the time since it heard it) in `dump` messages of
 * about `maxDumpBytes`, the last without `m`. Each record is checked as a
 * broadcast one is (accept.ts), signature included, so a neighbour can only
 * pass on records their authors signed; what it says of their age only
 * decides how soon they expire, within the stale-time bound.
 *
 * Bounds: dumps are taken only from a neighbour we asked, until its last
 * part or `pullTimeoutMs`, and at most `maxNodes` records per answer
 * (`drop.unsolicited`, `drop.dumpTooLong`). A neighbour's pulls are answered
 * twice per `pullGapMs` (a pull and its retry; `drop.pullRate`), and at most `maxPullAnswers`
 * pulls per `pullGapMs` in all (`drop.pullBudget`), so neither one peer nor
 * a crowd of fresh ones can make us send our table without end.
 */
import { bump } from '../protocol.ts'
import type { Accept } from './accept.ts'
import type { Announce } from './announce.ts'
import type { PresenceContext } from './context.ts'
import { type DumpItem, type DumpMsg, MAX_DUMP_RECORDS } from './messages.ts'

/** Bytes a dump item costs beyond its body: key, signature, age and framing. */
const ITEM_OVERHEAD_BYTES = 32 + 64 + 16

export interface Pull {
  /** A link came up (`rejoined`: we had none before): ask it, if we still ask. */
  linkUp(peer: string, now: number, rejoined: boolean): void
  linkDown(peer: string): void
  /** A neighbour asks for our table. */
  onPull(from: string, now: number): void
  /** Part of an answer to our pull. */
  onDump(from: string, m: DumpMsg): Promise<void>
  tick(now: number): void
  /** Pulls waiting for an answer. */
  readonly waiting: number
}

export function createPull(ctx: PresenceContext, accept: Accept, announce: Announce): Pull {
  const { deps, cfg, counters, table } = ctx
  /** The pulls of the current (re)join: when it started and how many were sent. */
  let round: { start: number; sent: number } | null = null
  /** Neighbours we asked: until when an answer is taken, records taken so far, when to ask again (once) if nothing came. */
  const asked = new Map<string, { until: number; records: number; parts: number; retryAt: number | null }>()
  /** Pulls answered per neighbour in the current pullGapMs window (neighbours only; cleared on link down). */
  const answered = new Map<string, { at: number; count: number }>()
  /** When the pulls answered lately were, oldest first (at most maxPullAnswers). */
  const answerTimes: number[] = []

  function dumpItems(now: number): DumpItem[] {
    const items: DumpItem[] = []
    const own = announce.record()
    if (own) items.push([own[0], own[1], own[2], 0])
    for (const e of table.values()) {
      const [body, pk, sig] = e.record
      items.push([body, pk, sig, Math.max(0, Math.floor(now - e.heardAt))])
    }
    return items
  }

  function sendDump(to: string, items: DumpItem[]): void {
    let part: DumpItem[] = []
    let bytes = 0
    const flush = (more: boolean) => {
      deps.send(to, more ? { t: 'dump', r: part, m: true } : { t: 'dump', r: part })
      bump(counters, 'dumpSent')
      part = []
      bytes = 0
    }
    for (const item of items) {
      const size = item[0].length + ITEM_OVERHEAD_BYTES
      if (part.length > 0 && (bytes + size > cfg.maxDumpBytes || part.length >= MAX_DUMP_RECORDS)) flush(true)
      part.push(item)
      bytes += size
    }
    flush(false)
  }

  return {
    get waiting() {
      return asked.size
    },

    linkUp(peer, now, rejoined) {
      if (rejoined) round = { start: now, sent: 0 }
      if (!round || now - round.start > cfg.pullWindowMs || round.sent >= cfg.pullPeers) return
      if (asked.has(peer)) return
      round.sent += 1
      asked.set(peer, {
        until: now + cfg.pullTimeoutMs,
        records: 0,
        parts: 0,
        retryAt: now + cfg.pullRetryMs,
      })
      deps.send(peer, { t: 'pull' })
      bump(counters, 'pullSent')
    },

    linkDown(peer) {
      asked.delete(peer)
      answered.delete(peer)
    },

    onPull(from, now) {
      bump(counters, 'pullIn')
      if (!ctx.linked.has(from)) return void bump(counters, 'drop.notLinked')
      let mine = answered.get(from)
      if (mine && now - mine.at >= cfg.pullGapMs) mine = undefined
      // Twice per window: the pull, and its one retry (when the answer was lost).
      if (mine && mine.count >= 2) return void bump(counters, 'drop.pullRate')
      while (answerTimes.length > 0 && now - (answerTimes[0] as number) >= cfg.pullGapMs) answerTimes.shift()
      if (answerTimes.length >= cfg.maxPullAnswers) return void bump(counters, 'drop.pullBudget')
      answered.set(from, mine ? { at: mine.at, count: mine.count + 1 } : { at: now, count: 1 })
      answerTimes.push(now)
      bump(counters, 'pullAnswered')
      sendDump(from, dumpItems(now))
    },

    async onDump(from, m) {
      const a = asked.get(from)
      if (!a || deps.now() > a.until) return void bump(counters, 'drop.unsolicited')
      if (a.records + m.r.length > cfg.maxNodes) {
        asked.delete(from)
        return void bump(counters, 'drop.dumpTooLong')
      }
      a.records += m.r.length
      a.parts += 1
      if (!m.m) asked.delete(from)
      bump(counters, 'dumpIn')
      for (const [body, pk, sig, ageMs] of m.r) {
        bump(counters, 'dumpRecordsIn')
        await accept.record([body, pk, sig], { via: 'pull', from, ageMs })
      }
    },

    tick(now) {
      if (round && now - round.start > cfg.pullWindowMs) round = null
      for (const [peer, a] of asked) {
        if (now > a.until) {
          asked.delete(peer)
          bump(counters, 'pullTimedOut')
        } else if (a.retryAt !== null && now >= a.retryAt && a.parts === 0) {
          // Nothing came: the pull or the answer was lost. Ask once more.
          a.retryAt = null
          a.until = now + cfg.pullTimeoutMs
          deps.send(peer, { t: 'pull' })
          bump(counters, 'pullRetried')
        }
      }
      for (const [peer, w] of answered) if (now - w.at >= cfg.pullGapMs) answered.delete(peer)
    },
  }
}
