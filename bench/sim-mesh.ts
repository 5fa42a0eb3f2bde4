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
import { createMeshNet, type MeshNet } from '../shared/mesh/sim-net.ts'
import { createFlood, createSim, type FloodMsg, type FloodNode, randomGraph } from '../shared/sim/index.ts'
import { isMain, median, report } from './report.ts'

const N = 256
const DEGREE = 6
const WARMUP = 30
const MEASURED = 100
const SEED = 2024

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

async function meshRun(net: MeshNet, count: number) {
  const coverage: number[] = []
  const rmr: number[] = []
  const ldh: number[] = []
  const dupDeliveries: number[] = []
  const control = Object.fromEntries(CONTROL.map((k) => [k, 0])) as Record<(typeof CONTROL)[number], number>
  for (let m = 0; m < count; m++) {
    const origin = net.ids[Math.floor(net.sim.rng() * N)] as string
    const sentBefore = net.sum('payloadSent')
    const controlBefore = CONTROL.map((k) => net.sum(k))
    const id = await net.broadcast(origin, 'bench', { m, text: 'hello, mesh' })
    // Long enough for every announcement round and any GRAFT to finish.
    await net.sim.runFor(3_000)
    coverage.push(net.reached(id) / N)
    rmr.push((net.sum('payloadSent') - sentBefore) / (N - 1) - 1)
    let last = 0
    for (const h of net.deliveries.get(id)?.values() ?? []) last = Math.max(last, ...h)
    ldh.push(last)
    dupDeliveries.push(net.maxDeliveries(id) - 1)
    CONTROL.forEach((k, i) => {
      control[k] += net.sum(k) - (controlBefore[i] as number)
    })
  }
  return {
    coverage: mean(coverage),
    coverageMin: Math.min(...coverage),
    rmr: mean(rmr),
    rmrMedian: median(rmr),
    rmrMax: Math.max(...rmr),
    ldh: mean(ldh),
    ldhMax: Math.max(...ldh),
    duplicateDeliveries: dupDeliveries.reduce((a, b) => a + b, 0),
    perBroadcast: Object.fromEntries(Object.entries(control).map(([k, v]) => [k, round(v / count, 1)])),
  }
}

async function meshFigures(announceRounds: number) {
  const net = await createMeshNet({ seed: SEED, n: N, degree: DEGREE, mesh: { announceRounds } })
  await net.sim.runFor(1_000)
  const warm = await meshRun(net, WARMUP)
  const measured = await meshRun(net, MEASURED)
  return {
    warm,
    measured,
    eagerLinks: net.ids.reduce((s, id) => s + net.mesh(id).eagerPeers().length, 0) / 2,
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const t0 = performance.now()
  const flood = await floodFigures()
  const mesh = await meshFigures(2)
  const plumtree = await meshFigures(1)
  const m = mesh.measured
  const figures = {
    nodes: N,
    degree: DEGREE,
    warmup: WARMUP,
    broadcasts: MEASURED,
    floodCoverage: round(flood.coverage),
    floodRmr: round(flood.rmr),
    floodLdh: round(flood.ldh, 2),
    floodLdhMax: flood.ldhMax,
    coverage: round(m.coverage),
    coverageMin: round(m.coverageMin),
    rmr: round(m.rmr),
    rmrMax: round(m.rmrMax),
    ldh: round(m.ldh, 2),
    ldhMax: m.ldhMax,
    duplicateDeliveries: m.duplicateDeliveries,
    eagerLinks: mesh.eagerLinks,
    ihaveMsgsPerBroadcast: m.perBroadcast.ihaveSent,
    ihaveIdsPerBroadcast: m.perBroadcast.ihaveIdsSent,
    graftMsgsPerBroadcast: m.perBroadcast.graftSent,
    pruneMsgsPerBroadcast: m.perBroadcast.pruneSent,
    warmupRmr: round(mesh.warm.rmr),
    warmupCoverage: round(mesh.warm.coverage),
    oneRoundRmr: round(plumtree.measured.rmr),
    oneRoundCoverage: round(plumtree.measured.coverage),
    oneRoundLdh: round(plumtree.measured.ldh, 2),
    oneRoundIhaveIdsPerBroadcast: plumtree.measured.perBroadcast.ihaveIdsSent,
    wallMs: Math.round(performance.now() - t0),
  }
  report('sim-mesh', figures)
  return figures
}

if (isMain(import.meta.url)) await run()
