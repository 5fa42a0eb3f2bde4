/**
 * The node's periodic work, driven by `tick(now)` (shared/ has no timers):
 * stabilize, check the predecessor, fix one finger, republish to the
 * replicas, refresh our provider records, collect garbage. Each job runs at
 * its interval with ±25 % jitter (so a thousand nodes do not fall into
 * step), never twice at once, and its failure is counted, not thrown.
 * `stabilizeSoon` and `republishSoon` bring a job forward to the next tick.
 *
 * Backing off while nothing changes (issue 14, idle cost): a stabilization
 * that finds the routing table as the last one left it (same predecessor,
 * successor list and fingers: `version()` unchanged) doubles the periods of
 * stabilize, fix-fingers and check-predecessor, up to `idleMaxMs` each. Any
 * change of the table, a request that timed out (a strike), a link to a
 * ring neighbour that went down or a presence report that one crashed
 * (`wake`) snaps them back to their base periods at once. So a quiet ring
 * costs a few messages a minute, and a failure is still chased at the fast
 * pace from the moment anyone notices it.
 */
import { bump } from '../protocol.ts'
import type { ChordContext } from './options.ts'

export interface Jobs {
  stabilize(): Promise<void>
  checkPredecessor(): Promise<void>
  fixFingers(): Promise<void>
  /** `periodic`: the regular run (else one brought forward by a change of replicas). */
  republish(now: number, periodic: boolean): Promise<void>
  refreshProviders(): Promise<void>
  /** Whether there is anything to refresh. */
  providing(): boolean
  /** Collect expired entries (synchronous). */
  gc(now: number): void
}

export interface Scheduler {
  tick(now: number): void
  stabilizeSoon(): void
  republishSoon(): void
  /** Something changed or failed: back to the base periods, stabilize at the next tick. */
  wake(): void
  /** The stabilize period now (base × the back-off), for tests and stats. */
  stabilizePeriod(): number
}

/** The routing table's change counter (routing-table.ts `version`). */
export type TableVersion = () => number

type Name = 'stabilize' | 'fix' | 'checkPred' | 'republish' | 'provide'

export function createScheduler(ctx: ChordContext, jobs: Jobs, version: TableVersion): Scheduler {
  const { o, counters, jitter } = ctx
  const due = { stabilize: 0, fix: 0, checkPred: 0, republish: 0, provide: 0, gc: 0 }
  const busy: Record<Name, boolean> = {
    stabilize: false,
    fix: false,
    checkPred: false,
    republish: false,
    provide: false,
  }
  let republishSoon = false
  let wakeAsked = false
  let firstTick = true
  const gcEvery = Math.min(o.republishMs, 30_000)
  /** Back-off: the maintenance periods are multiplied by 2^level (each capped at idleMaxMs). */
  let level = 0
  /** The table's version when last looked at, and whether anything woke us since the last stabilization. */
  let seen = version()
  let stirred = true
  const period = (base: number) =>
    level === 0 ? base : Math.min(base * 2 ** level, Math.max(base, o.idleMaxMs))
  const maxLevel = Math.max(
    0,
    Math.ceil(
      Math.log2(Math.max(1, o.idleMaxMs / Math.min(o.stabilizeMs, o.fixFingersMs, o.checkPredecessorMs))),
    ),
  )

  /** Back to the base periods: every maintenance job comes within one base period. */
  function wake(now: number): void {
    stirred = true
    if (level === 0) return
    level = 0
    bump(counters, 'maintenance.woken')
    due.stabilize = Math.min(due.stabilize, now)
    due.fix = Math.min(due.fix, now + jitter(o.fixFingersMs))
    due.checkPred = Math.min(due.checkPred, now + jitter(o.checkPredecessorMs))
  }

  function run(name: Name, task: () => Promise<void>): void {
    busy[name] = true
    task()
      .catch(() => bump(counters, 'error.internal'))
      .finally(() => {
        busy[name] = false
      })
  }

  return {
    tick(now) {
      if (firstTick) {
        firstTick = false
        due.stabilize = now + jitter(o.stabilizeMs) / 4
        due.fix = now + jitter(o.fixFingersMs)
        due.checkPred = now + jitter(o.checkPredecessorMs)
        due.republish = now + jitter(o.republishMs)
        due.provide = now + jitter(o.provideRefreshMs)
        due.gc = now + jitter(gcEvery)
      }
      const v = version()
      if (v !== seen || wakeAsked) {
        seen = v
        wakeAsked = false
        wake(now)
      }
      if (now >= due.stabilize && !busy.stabilize) {
        // Nothing changed since the last stabilization: slow down (one step per quiet round).
        if (!stirred && level < maxLevel) level++
        stirred = false
        due.stabilize = now + jitter(period(o.stabilizeMs))
        run('stabilize', jobs.stabilize)
      }
      if (now >= due.checkPred && !busy.checkPred) {
        due.checkPred = now + jitter(period(o.checkPredecessorMs))
        run('checkPred', jobs.checkPredecessor)
      }
      if (now >= due.fix && !busy.fix) {
        due.fix = now + jitter(period(o.fixFingersMs))
        run('fix', jobs.fixFingers)
      }
      if ((republishSoon || now >= due.republish) && !busy.republish) {
        const periodic = now >= due.republish
        if (periodic) due.republish = now + jitter(o.republishMs)
        republishSoon = false
        run('republish', () => jobs.republish(now, periodic))
      }
      if (now >= due.provide && !busy.provide && jobs.providing()) {
        due.provide = now + jitter(o.provideRefreshMs)
        run('provide', jobs.refreshProviders)
      }
      if (now >= due.gc) {
        due.gc = now + jitter(gcEvery)
        jobs.gc(now)
      }
    },
    stabilizeSoon() {
      due.stabilize = 0
      wakeAsked = true
    },
    republishSoon() {
      republishSoon = true
    },
    wake() {
      // Applied at the next tick (we have no clock here): the dues are pulled in from there.
      wakeAsked = true
    },
    stabilizePeriod: () => period(o.stabilizeMs),
  }
}
