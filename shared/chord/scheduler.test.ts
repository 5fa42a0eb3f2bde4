/**
 * The maintenance scheduler's idle back-off: quiet rounds double the
 * periods up to idleMaxMs; a change of the routing table or a wake brings
 * them back to the base periods at once.
 */
import { describe, expect, it } from 'vitest'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { createContext } from './options.ts'
import { createScheduler } from './scheduler.ts'

const ID = 'aa'.repeat(20)

function setup(idleMaxMs: number) {
  let now = 0
  const ctx = createContext(
    { id: ID, keys: createFakeKeyring(ID), now: () => now, random: () => 0.5, send: () => {} },
    { stabilizeMs: 1_000, fixFingersMs: 500, checkPredecessorMs: 2_000, idleMaxMs },
  )
  const runs: number[] = []
  let version = 0
  const done = Promise.resolve()
  const sched = createScheduler(
    ctx,
    {
      stabilize: () => {
        runs.push(now)
        return done
      },
      checkPredecessor: () => done,
      fixFingers: () => done,
      republish: () => done,
      refreshProviders: () => done,
      providing: () => false,
      gc: () => {},
    },
    () => version,
  )
  return {
    runs,
    sched,
    bump: () => version++,
    /** Tick every 100 ms for `ms`, letting each job's promise settle. */
    async advance(ms: number) {
      for (let t = 0; t < ms; t += 100) {
        now += 100
        sched.tick(now)
        await done
      }
    },
    now: () => now,
  }
}

/** The gaps between stabilizations. */
const gaps = (runs: number[]) => runs.slice(1).map((t, i) => t - (runs[i] as number))

describe('Chord maintenance: idle back-off', () => {
  it('stabilization slows down while the table holds, up to idleMaxMs', async () => {
    const s = setup(16_000)
    await s.advance(60_000)
    // Jitter is fixed at its middle (random 0.5): the periods are exact, rounded up to a tick.
    expect(gaps(s.runs)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 16_000])
    expect(s.sched.stabilizePeriod()).toBe(16_000)
  })

  it('a change of the table, or a wake (a timeout, a ring neighbour gone), brings the base periods back at once', async () => {
    const s = setup(16_000)
    await s.advance(30_000)
    expect(s.sched.stabilizePeriod()).toBe(16_000)
    const before = s.runs.length
    s.bump()
    await s.advance(200)
    expect(s.runs.length).toBe(before + 1) // at the next tick, not 16 s later
    expect(s.sched.stabilizePeriod()).toBe(1_000)
    await s.advance(30_000)
    const n = s.runs.length
    s.sched.wake()
    await s.advance(200)
    expect(s.runs.length).toBe(n + 1)
    expect(s.sched.stabilizePeriod()).toBe(1_000)
  })

  it('idleMaxMs at or below the base periods: no back-off', async () => {
    const s = setup(0)
    await s.advance(20_000)
    expect(new Set(gaps(s.runs))).toEqual(new Set([1_000]))
  })
})
