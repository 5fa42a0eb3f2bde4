/**
 * sim-mesh: what a broadcast costs on a random graph, plain flooding against
 * the mesh (Plumtree), in the simulator.
 *
 * N = 256 nodes, degree 6, no loss. Broadcasts from random origins, one at
 * a time, each run to quiescence. The mesh first gets `WARMUP` broadcasts
 * while its tree forms (the first ones cost like a flood and PRUNE the
 * redundant links), then `MEASURED` more are measured.
 *
 * - coverage: nodes reached / N (mean over broadcasts)
 * - rmr: relative message redundancy, full-payload sends / (N − 1) − 1
 *   (0 = a spanning tree; flooding ≈ degree − 2). Control messages are not
 *   in it; they are reported apart, per broadcast.
 * - ldh: last delivery hop, the hop count of the last node reached.
 *
 *   npm run bench -- sim-mesh
 */
import type { MeshOptions } from '../shared/mesh/mesh.ts'
import { createMeshNet, type MeshNet } from '../shared/mesh/sim-net.ts'
import { createFlood, createSim, type FloodMsg, type FloodNode, randomGraph } from '../shared/sim/index.ts'
import { isMain, report } from './report.ts'

const N = 256
const DEGREE = 6
const WARMUP = 30
const MEASURED = 100
const SEED = 2024
/** Concurrent broadcasts per round in the burst runs, and how many rounds are measured. */
const BURST = 8
const BURSTS = 12

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d

async function floodFigures() {
  const sim = createSim<FloodMsg>({ seed: SEED })
  const ids = Array.from({ length: N }, () => sim.randomId())
  for (const id of ids) sim.addNode(id, createFlood)
  await randomGraph(sim, ids, DEGREE)
  const coverage: number[] = []
  const rmr: number[] = []
  const ldh: number[] = []
  const sent = () => ids.reduce((s, id) => s + sim.node(id).counters.messagesOut, 0)
  for (let m = 0; m < MEASURED; m++) {
    const before = sent()
    const msg = `m${m}`
    sim.proto<FloodNode>(ids[Math.floor(sim.rng() * N)] as string).originate(msg)
    await sim.drain()
    let reached = 0
    let last = 0
    for (const id of ids) {
      const h = sim.proto<FloodNode>(id).received.get(msg)
      if (h === undefined) continue
      reached++
      last = Math.max(last, h)
    }
    coverage.push(reached / N)
    rmr.push((sent() - before) / (N - 1) - 1)
    ldh.push(last)
  }
  return { coverage: mean(coverage), rmr: mean(rmr), ldh: mean(ldh), ldhMax: Math.max(...ldh) }
}

const CONTROL = ['ihaveSent', 'ihaveIdsSent', 'graftSent', 'pruneSent', 'payloadSentGraft'] as const

/** `rounds` rounds of `burst` concurrent broadcasts from random origins, each round run to quiescence. */
async function meshRun(net: MeshNet, rounds: number, burst = 1) {
  const coverage: number[] = []
  const rmr: number[] = []
  const ldh: number[] = []
  let dupDeliveries = 0
  const control = Object.fromEntries(CONTROL.map((k) => [k, 0])) as Record<(typeof CONTROL)[number], number>
  for (let r = 0; r < rounds; r++) {
    const origins = Array.from({ length: burst }, () => net.ids[Math.floor(net.sim.rng() * N)] as string)
    const sentBefore = net.sum('payloadSent')
    const controlBefore = CONTROL.map((k) => net.sum(k))
    const ids = await Promise.all(
      origins.map((o, i) => net.broadcast(o, 'bench', { r, i, text: 'hello, mesh' })),
    )
    // Long enough for every announcement round and any GRAFT to finish.
    await net.sim.runFor(5_000)
    rmr.push((net.sum('payloadSent') - sentBefore) / (burst * (N - 1)) - 1)
    for (const id of ids) {
      coverage.push(net.reached(id) / N)
      let last = 0
      for (const h of net.deliveries.get(id)?.values() ?? []) last = Math.max(last, ...h)
      ldh.push(last)
      dupDeliveries += net.maxDeliveries(id) - 1
    }
    CONTROL.forEach((k, i) => {
      control[k] += net.sum(k) - (controlBefore[i] as number)
    })
  }
  const perBroadcast = (k: (typeof CONTROL)[number]) => round(control[k] / (rounds * burst), 1)
  return {
    coverage: round(mean(coverage)),
    coverageMin: round(Math.min(...coverage)),
    rmr: round(mean(rmr)),
    rmrMax: round(Math.max(...rmr)),
    ldh: round(mean(ldh), 2),
    ldhMax: Math.max(...ldh),
    duplicateDeliveries: dupDeliveries,
    ihaveMsgs: perBroadcast('ihaveSent'),
    ihaveIds: perBroadcast('ihaveIdsSent'),
    graftMsgs: perBroadcast('graftSent'),
    pruneMsgs: perBroadcast('pruneSent'),
    graftAnswers: perBroadcast('payloadSentGraft'),
  }
}

async function meshFigures(mesh: MeshOptions, burst: number, warmRounds: number, rounds: number) {
  const net = await createMeshNet({ seed: SEED, n: N, degree: DEGREE, mesh })
  await net.sim.runFor(1_000)
  const warm = await meshRun(net, warmRounds, burst)
  const measured = await meshRun(net, rounds, burst)
  const eagerLinks = net.ids.reduce((s, id) => s + net.mesh(id).eagerPeers().length, 0) / 2
  return { ...measured, warmupRmr: warm.rmr, warmupCoverage: warm.coverage, eagerLinks }
}

/** Plumtree as published: one announcement round, every duplicate prunes at once. */
const PAPER: MeshOptions = { announceRounds: 1, pruneDelayMs: 0, treeMemoryMs: 0 }

export async function run(): Promise<Record<string, unknown>> {
  const t0 = performance.now()
  const flood = await floodFigures()
  const mesh = await meshFigures({}, 1, WARMUP, MEASURED)
  const bursts = await meshFigures({}, BURST, 3, BURSTS)
  const paperBursts = await meshFigures(PAPER, BURST, 3, BURSTS)
  const figures = {
    nodes: N,
    degree: DEGREE,
    warmup: WARMUP,
    broadcasts: MEASURED,
    floodCoverage: round(flood.coverage),
    floodRmr: round(flood.rmr),
    floodLdh: round(flood.ldh, 2),
    floodLdhMax: flood.ldhMax,
    coverage: mesh.coverage,
    coverageMin: mesh.coverageMin,
    rmr: mesh.rmr,
    rmrMax: mesh.rmrMax,
    ldh: mesh.ldh,
    ldhMax: mesh.ldhMax,
    duplicateDeliveries: mesh.duplicateDeliveries,
    eagerLinks: mesh.eagerLinks,
    ihaveMsgsPerBroadcast: mesh.ihaveMsgs,
    ihaveIdsPerBroadcast: mesh.ihaveIds,
    graftMsgsPerBroadcast: mesh.graftMsgs,
    pruneMsgsPerBroadcast: mesh.pruneMsgs,
    warmupRmr: mesh.warmupRmr,
    warmupCoverage: mesh.warmupCoverage,
    burstSize: BURST,
    burstCoverage: bursts.coverage,
    burstRmr: bursts.rmr,
    burstLdh: bursts.ldh,
    burstGraftAnswersPerBroadcast: bursts.graftAnswers,
    burstEagerLinks: bursts.eagerLinks,
    paperBurstCoverage: paperBursts.coverage,
    paperBurstRmr: paperBursts.rmr,
    paperBurstLdh: paperBursts.ldh,
    paperBurstLdhMax: paperBursts.ldhMax,
    paperBurstGraftAnswersPerBroadcast: paperBursts.graftAnswers,
    paperBurstEagerLinks: paperBursts.eagerLinks,
    wallMs: Math.round(performance.now() - t0),
  }
  report('sim-mesh', figures)
  return figures
}

if (isMain(import.meta.url)) await run()
