/**
 * sim-topics: topic multicast (node.publish) among whole nodes in the
 * simulator: N = 1,000, 50 topics of 20 random subscribers, every topic
 * published twice by one of its subscribers, before and after 10 % of the
 * nodes crash (30 s of repair between).
 *
 * - coverage: live subscribers that got a publication / live subscribers.
 *   Goal 1.0, before and after the crash.
 * - perSubscriber: PUB messages received over links per publication,
 *   divided by the ideal (one per live subscriber other than the
 *   publisher). Goal ≤ 2. A network-wide broadcast costs N − 1 per
 *   publication (broadcastRatio = that over the ideal, for scale).
 * - nonSubscriberShare: share of those messages taken by nodes that do not
 *   subscribe to the topic (the topic's root, when it does not).
 * - meanHops / maxHops: hops from the publisher to each subscriber; depth:
 *   the deepest member below its root; formMs: simulated time from the
 *   subscriptions to every tree whole.
 * - the repair (shared/topics/repair.ts): coverageEarly, of publications
 *   made the moment the topics were subscribed (trees not formed yet);
 *   coverageDuringChurn, of publications made the moment 10 % crash while 2
 *   new subscribers per topic join, 30 s on, and lastMsDuringChurn, the
 *   latest such delivery after its publication; repair frames (IHAVE +
 *   IWANT) received per node in each phase (repairPerNode*: early, intact
 *   tree, churn) and over 30 s with no publication (quietRepairPerNode,
 *   from 31 s after the last one). Goal: coverage 1.0; 0 when quiet.
 *
 *   npm run bench -- sim-topics            (WEFT_TOPICS_N=256 for a smaller run)
 */
import { topicsRun } from '../shared/topics/measure.ts'
import { isMain, report } from './report.ts'

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d

export async function run(): Promise<Record<string, unknown>> {
  const n = Number(process.env.WEFT_TOPICS_N ?? 1_000)
  const topics = Number(process.env.WEFT_TOPICS_T ?? 50)
  const t0 = performance.now()
  const r = await topicsRun({ seed: 2026, n, topics, subscribers: 20, publishes: 2, repairMs: 30_000 })
  const figures = {
    n,
    topics,
    subscribers: 20,
    formMs: Math.round(r.formMs),
    depth: r.depth,
    coverage: round(r.before.coverage, 4),
    perSubscriber: round(r.before.perSubscriber),
    nonSubscriberShare: round(r.before.nonSubscriberShare),
    meanHops: round(r.before.meanHops, 2),
    maxHops: r.before.maxHops,
    crashed: r.crashed,
    coverageAfterCrash: round(r.after.coverage, 4),
    perSubscriberAfterCrash: round(r.after.perSubscriber),
    meanHopsAfterCrash: round(r.after.meanHops, 2),
    coverageEarly: round(r.early.coverage, 4),
    coverageDuringChurn: round(r.churn.coverage, 4),
    lastMsDuringChurn: r.churn.lastMs,
    repairPerNodeEarly: round(r.early.repairPerNode),
    repairPerNodeIntact: round(r.before.repairPerNode),
    repairPerNodeDuringChurn: round(r.churn.repairPerNode),
    quietRepairPerNode: round(r.quietRepairPerNode),
    broadcastRatio: round((n - 1) / 19, 1),
    refused: r.refused,
    wallMs: Math.round(performance.now() - t0),
    peakRssMB: Math.round(process.memoryUsage().rss / 2 ** 20),
  }
  report('sim-topics', figures)
  return figures
}

if (isMain(import.meta.url)) await run()
