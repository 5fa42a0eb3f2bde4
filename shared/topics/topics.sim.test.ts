/**
 * Topic multicast among whole nodes (createNodeCore) in the simulator:
 * publications reach every subscriber, and few others, before and after
 * 10 % of the nodes crash; those published as the trees form, and as the
 * nodes crash while newcomers join, reach every subscriber that stays (the
 * repair, repair.ts). The N = 1,000 run with 50 topics is in
 * `npm run bench -- sim-topics`.
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { type TopicsRun, topicsRun } from './measure.ts'

describe('topic multicast in the simulator', () => {
  it('N = 128, 8 topics of 20: every subscriber gets every publication, at about one message each, also those published as trees form and as 10 % crash', async () => {
    await withSeed(testSeed(20_261_130), async (seed) => {
      const r: TopicsRun = await topicsRun({
        seed,
        n: 128,
        topics: 8,
        subscribers: 20,
        publishes: 2,
        repairMs: 15_000,
        // Quiet from 5 s after the last publication (its digest rounds still running), for 10 s.
        quietAfterMs: 0,
        quietMs: 10_000,
      })
      console.log(JSON.stringify(r))
      // Published as the topics were subscribed (trees forming), as the nodes crashed and newcomers joined:
      // the repair brings each to every subscriber that stays, within the run's repair time.
      expect(r.early.coverage).toBe(1)
      expect(r.before.coverage).toBe(1)
      expect(r.churn.coverage).toBe(1)
      expect(r.churn.lastMs).toBeLessThanOrEqual(15_000)
      expect(r.after.coverage).toBe(1)
      // An intact tree needs no repair; a quiet network sends none.
      expect(r.before.repairPerNode).toBe(0)
      expect(r.quietRepairPerNode).toBe(0)
      expect(r.crashed).toBe(13)
      // Tree messages per publication: one per subscriber, plus the root's copy when it does not subscribe.
      expect(r.before.perSubscriber).toBeLessThanOrEqual(1.2)
      expect(r.after.perSubscriber).toBeLessThanOrEqual(2)
      // Non-subscribers carry little: the roots, and nobody else.
      expect(r.before.nonSubscriberShare).toBeLessThan(0.1)
      expect(r.depth).toBeLessThanOrEqual(4)
      expect(r.refused).toBe(0)
    })
  }, 120_000)
})
