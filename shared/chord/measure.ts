/**
 * Measuring Chord rings in the simulator, for the tests and the sim-chord
 * benchmark: lookups checked against the truth, Poisson churn, mass
 * crashes, and the statistics reported.
 */
import { shuffle } from '../sim/prng.ts'
import { type ChordNet, settleAll, trueSuccessor } from './harness.ts'
import { successorIndex } from './ring.ts'

export interface LookupStats {
  /** Lookups that returned the true successor. */
  ok: number
  /** Lookups that returned another node. */
  wrong: number
  /** Lookups that failed (rejected or unsettled). */
  failed: number
  /** Hop counts of the lookups that returned. */
  hops: number[]
  /** Virtual ms each lookup that returned took, from its call to its answer. */
  ms: number[]
}

/**
 * Start `count` lookups of random positions from random members, all at
 * once, each checked against the truth when it returns. The caller drives
 * the simulator and settles `jobs`; `stats` fills in as they end.
 */
export function launchLookups(net: ChordNet, count: number): { jobs: Promise<void>[]; stats: LookupStats } {
  const ids = net.live()
  return launchLookupsOf(net, count, () => {
    const target = net.sim.randomId()
    return [ids[Math.floor(net.sim.rng() * ids.length)] as string, target]
  })
}

/** As launchLookups, the i-th lookup asked by and for what `pick(i)` says ([asker, position]), when it starts. */
export function launchLookupsOf(
  net: ChordNet,
  count: number,
  pick: (i: number) => [from: string, target: string],
): { jobs: Promise<void>[]; stats: LookupStats } {
  const stats: LookupStats = { ok: 0, wrong: 0, failed: 0, hops: [], ms: [] }
  const jobs = Array.from({ length: count }, (_, i) => {
    const [from, target] = pick(i)
    const t0 = net.sim.now
    return net
      .node(from)
      .lookup(target)
      .then(
        (r) => {
          stats.hops.push(r.hops)
          stats.ms.push(net.sim.now - t0)
          if (r.node === trueSuccessor(net, target)) stats.ok++
          else stats.wrong++
        },
        () => {
          stats.failed++
        },
      )
  })
  return { jobs, stats }
}

/** `count` lookups of random positions from random members, all at once; checked against the truth when each returns. */
export async function measureLookups(net: ChordNet, count: number, maxMs = 60_000): Promise<LookupStats> {
  const { jobs, stats } = launchLookups(net, count)
  const res = await settleAll(net.sim, jobs, maxMs)
  // Unsettled after maxMs: failed too.
  stats.failed += res.filter((r) => r.status === 'rejected').length
  return stats
}

export interface ChurnOptions {
  /** Mean node lifetime: joins and failures each arrive at rate N / lifetimeMs (Poisson). */
  lifetimeMs: number
  /** Virtual time the churn lasts. */
  durationMs: number
  /** Lookups per second of virtual time, from random members to random positions. */
  lookupsPerSec: number
}

export interface ChurnStats extends LookupStats {
  joins: number
  failures: number
}

/**
 * Poisson churn: joins (through a random member) and crashes, each at rate
 * N / lifetime, while members look up random positions. A lookup succeeds
 * when it returns the true successor among the members (live nodes whose
 * join has completed) at the moment it returns; lookups whose querier
 * crashed meanwhile are not counted.
 */
export async function runChurn(net: ChordNet, opts: ChurnOptions): Promise<ChurnStats> {
  const rng = net.sim.rng
  const n = net.live().length
  const start = net.sim.now
  const events: { t: number; kind: 'join' | 'fail' | 'lookup' }[] = []
  const streams: ['join' | 'fail' | 'lookup', number][] = [
    ['join', n / opts.lifetimeMs],
    ['fail', n / opts.lifetimeMs],
    ['lookup', opts.lookupsPerSec / 1000],
  ]
  for (const [kind, rate] of streams) {
    if (rate <= 0) continue
    for (let t = start; ; ) {
      t += -Math.log(1 - rng()) / rate
      if (t > start + opts.durationMs) break
      events.push({ t, kind })
    }
  }
  events.sort((a, b) => a.t - b.t)
  const stats: ChurnStats = { ok: 0, wrong: 0, failed: 0, hops: [], ms: [], joins: 0, failures: 0 }
  const jobs: Promise<void>[] = []
  for (const ev of events) {
    await net.sim.runUntil(ev.t)
    const ids = net.live()
    const member = () => ids[Math.floor(rng() * ids.length)] as string
    if (ev.kind === 'join') {
      const id = net.add()
      stats.joins++
      jobs.push(
        net
          .node(id)
          .join(member())
          .then(
            () => net.member(id),
            () => undefined,
          ),
      )
    } else if (ev.kind === 'fail') {
      if (ids.length <= 2) continue
      stats.failures++
      await net.kill(member())
    } else {
      const from = member()
      const target = net.sim.randomId()
      const t0 = net.sim.now
      jobs.push(
        net
          .node(from)
          .lookup(target)
          .then(
            (r) => {
              if (!net.sim.node(from).up) return
              stats.hops.push(r.hops)
              stats.ms.push(net.sim.now - t0)
              if (r.node === trueSuccessor(net, target)) stats.ok++
              else stats.wrong++
            },
            () => {
              if (net.sim.node(from).up) stats.failed++
            },
          ),
      )
    }
  }
  await settleAll(net.sim, jobs, 30_000)
  return stats
}

/** Crash round(fraction × members) members chosen at random, at once (at least one survives). Returns them. */
export async function killFraction(net: ChordNet, fraction: number): Promise<string[]> {
  const ids = shuffle(net.sim.rng, [...net.live()])
  const killed = ids.slice(0, Math.min(ids.length - 1, Math.round(fraction * ids.length)))
  for (const id of killed) await net.kill(id)
  return killed
}

export function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN
}

/** The q-quantile (nearest rank) of xs. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number
}

export interface MassFailureStats extends LookupStats {
  /** The members crashed. */
  killed: string[]
  /** Lookups of a position whose `replicas` owners before the crash all died (about fraction^replicas of them). */
  ownersDead: number
  /** Those of them that failed. */
  failedOwnersDead: number
  /** Wrong answers, each as [querier, target, answer, truth]. */
  wrongAnswers: [string, string, string, string][]
}

/**
 * A simultaneous crash of `fraction` of the members, then `count` lookups of
 * random positions from random survivors, launched at once. With `frozen`,
 * the survivors' periodic upkeep (stabilize, fix fingers, check
 * predecessor, republish) is paused from the moment of the crash, so the
 * lookups see the ring as the crash left it; timeouts still mark nodes
 * dead. Maintenance resumes afterwards.
 */
export async function measureMassFailure(
  net: ChordNet,
  fraction: number,
  opts: { count: number; frozen: boolean; replicas?: number; maxMs?: number },
): Promise<MassFailureStats> {
  const before = net.live()
  const replicas = opts.replicas ?? 3
  const crashed = await killFraction(net, fraction)
  const killed = new Set(crashed)
  const live = net.live()
  if (opts.frozen) for (const id of live) net.node(id).pauseMaintenance(true)
  const stats: MassFailureStats = {
    ok: 0,
    wrong: 0,
    failed: 0,
    hops: [],
    ms: [],
    killed: crashed,
    ownersDead: 0,
    failedOwnersDead: 0,
    wrongAnswers: [],
  }
  const ownersDead = (target: string) => {
    const i = successorIndex(before, target)
    for (let j = 0; j < Math.min(replicas, before.length); j++)
      if (!killed.has(before[(i + j) % before.length] as string)) return false
    return true
  }
  const jobs = Array.from({ length: opts.count }, () => {
    const target = net.sim.randomId()
    const from = live[Math.floor(net.sim.rng() * live.length)] as string
    const dead = ownersDead(target)
    if (dead) stats.ownersDead++
    const t0 = net.sim.now
    return net
      .node(from)
      .lookup(target)
      .then(
        (r) => {
          stats.hops.push(r.hops)
          stats.ms.push(net.sim.now - t0)
          const truth = trueSuccessor(net, target)
          if (r.node === truth) stats.ok++
          else {
            stats.wrong++
            stats.wrongAnswers.push([from, target, r.node, truth])
          }
        },
        () => {
          stats.failed++
          if (dead) stats.failedOwnersDead++
        },
      )
  })
  const res = await settleAll(net.sim, jobs, opts.maxMs ?? 120_000)
  stats.failed += res.filter((r) => r.status === 'rejected').length
  if (opts.frozen) for (const id of live) net.node(id).pauseMaintenance(false)
  return stats
}
