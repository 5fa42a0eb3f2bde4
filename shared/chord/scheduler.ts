/**
 * The node's periodic work, driven by `tick(now)` (shared/ has no timers):
 * stabilize, check the predecessor, fix one finger, republish to the
 * replicas, refresh our provider records, collect garbage. Each job runs at
 * its interval with ±25 % jitter (so a thousand nodes do not fall into
 * step), never twice at once, and its failure is counted, not thrown.
 * `stabilizeSoon` and `republishSoon` bring a job forward to the next tick.
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
}

type Name = 'stabilize' | 'fix' | 'checkPred' | 'republish' | 'provide'

export function createScheduler(ctx: ChordContext, jobs: Jobs): Scheduler {
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
  let firstTick = true
  const gcEvery = Math.min(o.republishMs, 30_000)

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
      if (now >= due.stabilize && !busy.stabilize) {
        due.stabilize = now + jitter(o.stabilizeMs)
        run('stabilize', jobs.stabilize)
      }
      if (now >= due.checkPred && !busy.checkPred) {
        due.checkPred = now + jitter(o.checkPredecessorMs)
        run('checkPred', jobs.checkPredecessor)
      }
      if (now >= due.fix && !busy.fix) {
        due.fix = now + jitter(o.fixFingersMs)
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
    },
    republishSoon() {
      republishSoon = true
    },
  }
}
