/**
 * Learning who is present at once, on joining: pull and dump.
 *
 * A node that joins (its first link) or rejoins (a link after it had none)
 * sends `pull` to the first `pullPeers` links that come up within
 * `pullWindowMs`. A neighbour answers with its whole table (its own record
 * first, every entry with the time since it heard it) in `dump` messages of
 * about `maxDumpBytes`, the last without `m`. Each record is checked as a
 * broadcast one is (accept.ts), signature included, so a neighbour can only
 * pass on records their authors signed; what it says of their age only
 * decides how soon they expire, within the stale-time bound.
 *
 * Bounds: dumps are taken only from a neighbour we asked, until its last
 * part or `pullTimeoutMs`, and at most `maxNodes` records per answer
 * (`drop.unsolicited`, `drop.dumpTooLong`). A neighbour's pulls are answered
 * once per `pullGapMs` (`drop.pullRate`), and at most `maxPullAnswers`
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
  /** Neighbours we asked: until when an answer is taken, and records taken so far. */
  const asked = new Map<string, { until: number; records: number }>()
  /** When each neighbour's last pull was answered (neighbours only; cleared on link down). */
  const answered = new Map<string, number>()
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
      asked.set(peer, { until: now + cfg.pullTimeoutMs, records: 0 })
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
      const last = answered.get(from)
      if (last !== undefined && now - last < cfg.pullGapMs) return void bump(counters, 'drop.pullRate')
      while (answerTimes.length > 0 && now - (answerTimes[0] as number) >= cfg.pullGapMs) answerTimes.shift()
      if (answerTimes.length >= cfg.maxPullAnswers) return void bump(counters, 'drop.pullBudget')
      answered.set(from, now)
      answerTimes.push(now)
      bump(counters, 'pullAnswered')
      sendDump(from, dumpItems(now))
    },

    async onDump(from, m) {
      const a = asked.get(from)
      if (!a) return void bump(counters, 'drop.unsolicited')
      if (a.records + m.r.length > cfg.maxNodes) {
        asked.delete(from)
        return void bump(counters, 'drop.dumpTooLong')
      }
      a.records += m.r.length
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
        if (now <= a.until) continue
        asked.delete(peer)
        bump(counters, 'pullTimedOut')
      }
      for (const [peer, at] of answered) if (now - at >= cfg.pullGapMs) answered.delete(peer)
    },
  }
}
