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
 * Active origins (`active*`): 16 origins broadcasting in turn after the
 * warm-up, with per-origin routes (routes.ts) and with the shared tree
 * alone; `activeEccentricity` is what a shortest-hop tree per origin gives.
 *
 * At scale (SIM_MESH_N=10000): the same graph model at N nodes, flooding
 * against the mesh, and what 20 % of the nodes crashing at once does (the
 * `scale` figures; only those are run then):
 *
 * - hops: mean and p99 over every delivery, and the last delivery hop;
 * - each broadcast runs until every node has it (or 10 s of virtual time),
 *   then 1.5 s more for its PRUNEs and GRAFTs: `msPerBroadcast` is wall time;
 * - repair: the first broadcasts after the crash, against the survivors'
 *   component: coverage, virtual ms until the last survivor had it, RMR;
 * - heapMB / rssMB: the process's peak.
 *
 * The mesh's warm-up is long enough for the tree optimisation (optimise.ts)
 * to settle; `unoptimisedLdh` is the same run with it off (the first
 * broadcast's tree, as Plumtree builds it).
 *
 * Bounds, computed on the same graph (hop counts only, every origin):
 * `graphEccentricityLdh`, the mean eccentricity, is what per-origin
 * shortest-path trees would give; `bestTreeLdh` is the best any one shared
 * tree of breadth-first shape gives (the best root's BFS tree; the tree's
 * own eccentricity from each origin), `centreTreeLdh` the mean over the
 * graph's centres, `randomRootTreeLdh` over all roots. A shared tree has
 * one path between two nodes, so its LDH is its eccentricity whatever the
 * latencies; with redundant links the first copy follows the lowest
 * latency, which is what flooding's `floodLdh` shows.
 *
 *   npm run bench -- sim-mesh                       (N = 256, one to two minutes)
 *   SIM_MESH_N=10000 npm run bench -- sim-mesh      (the scale run alone; SIM_MESH_WARMUP=20 broadcasts first)
 */
import type { MeshOptions } from '../shared/mesh/mesh.ts'
import { createMeshNet, type MeshNet } from '../shared/mesh/sim-net.ts'
import { createFlood, createSim, type FloodMsg, type FloodNode, randomGraph } from '../shared/sim/index.ts'
import { isMain, quantile, report } from './report.ts'

const N = 256
const DEGREE = 6
const WARMUP = 60
const MEASURED = 100
const SEED = 2024
/** Concurrent broadcasts per round in the burst runs, and how many rounds are measured. */
const BURST = 8
const BURSTS = 12
/** Broadcasts before the scale run measures (the tree optimisation needs 8 per link pair). */
const SCALE_WARMUP = Number(process.env.SIM_MESH_WARMUP ?? 20)

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

const CONTROL = [
  'ihaveSent',
  'ihaveIdsSent',
  'graftSent',
  'pruneSent',
  'payloadSentGraft',
  'optimiseSwaps',
] as const

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
    swaps: perBroadcast('optimiseSwaps'),
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

/** Breadth-first distances from `root` over `adj` (index lists). */
function bfs(adj: number[][], root: number): Int32Array {
  const d = new Int32Array(adj.length).fill(-1)
  d[root] = 0
  const q = [root]
  for (let i = 0; i < q.length; i++) {
    const u = q[i] as number
    for (const v of adj[u] as number[])
      if (d[v] === -1) {
        d[v] = (d[u] as number) + 1
        q.push(v)
      }
  }
  return d
}

const eccentricity = (adj: number[][], o: number) => Math.max(...bfs(adj, o))

/** The LDH bounds above, on the bench's graph. */
async function treeBounds() {
  const sim = createSim<FloodMsg>({ seed: SEED })
  const ids = Array.from({ length: N }, () => sim.randomId())
  for (const id of ids) sim.addNode(id, createFlood)
  await randomGraph(sim, ids, DEGREE)
  const index = new Map(ids.map((id, i) => [id, i]))
  const adj = ids.map((id) => sim.linksOf(id).map((y) => index.get(y) as number))
  const graphEcc = ids.map((_, o) => eccentricity(adj, o))
  const radius = Math.min(...graphEcc)
  const perRoot = ids.map((_, r) => {
    // The BFS tree from r (each node's first-found parent), then its eccentricity from every origin.
    const d = bfs(adj, r)
    const tree: number[][] = ids.map(() => [])
    for (let v = 0; v < N; v++) {
      if (v === r) continue
      const p = (adj[v] as number[]).find((u) => d[u] === (d[v] as number) - 1) as number
      tree[v]?.push(p)
      tree[p]?.push(v)
    }
    return mean(ids.map((_, o) => eccentricity(tree, o)))
  })
  return {
    graphEccentricityLdh: round(mean(graphEcc), 2),
    bestTreeLdh: round(Math.min(...perRoot), 2),
    centreTreeLdh: round(mean(perRoot.filter((_, r) => graphEcc[r] === radius)), 2),
    randomRootTreeLdh: round(mean(perRoot), 2),
  }
}

/** Origins that broadcast again and again (routes.ts), out of `N`, and the rounds before and while measuring. */
const ACTIVE = 16
const ACTIVE_WARM = 5
const ACTIVE_MEASURED = 3

/**
 * `ACTIVE` origins broadcasting in turn, after the shared tree has settled on
 * `WARMUP` one-off origins: per-origin routes (or the shared tree alone, with
 * `routeOrigins: 0`). Also the graph's eccentricity from those origins, the
 * bound a shortest-hop tree per origin reaches.
 */
async function activeFigures(mesh: MeshOptions) {
  const net = await createMeshNet({ seed: SEED, n: N, degree: DEGREE, mesh })
  await net.sim.runFor(1_000)
  await meshRun(net, WARMUP)
  const pick = () => net.ids[Math.floor(net.sim.rng() * N)] as string
  const active = [...new Set(Array.from({ length: ACTIVE * 2 }, pick))].slice(0, ACTIVE)
  const rounds = async (count: number) => {
    const ldh: number[] = []
    const rmr: number[] = []
    const coverage: number[] = []
    const graftsBefore = net.sum('payloadSentGraft')
    for (let r = 0; r < count; r++)
      for (const origin of active) {
        const before = net.sum('payloadSent')
        const id = await net.broadcast(origin, 'bench', { r })
        await net.sim.runFor(5_000)
        rmr.push((net.sum('payloadSent') - before) / (N - 1) - 1)
        coverage.push(net.reached(id) / N)
        let last = 0
        for (const h of net.deliveries.get(id)?.values() ?? []) last = Math.max(last, ...h)
        ldh.push(last)
      }
    return {
      ldh: round(mean(ldh), 2),
      rmr: round(mean(rmr)),
      coverage: round(Math.min(...coverage)),
      graftAnswersPerBroadcast: round(
        (net.sum('payloadSentGraft') - graftsBefore) / (count * active.length),
        2,
      ),
    }
  }
  const firstRounds = await rounds(ACTIVE_WARM)
  const measured = await rounds(ACTIVE_MEASURED)
  const index = new Map(net.ids.map((id, i) => [id, i]))
  const adj = net.ids.map((id) => net.sim.linksOf(id).map((y) => index.get(y) as number))
  const bound = mean(active.map((o) => eccentricity(adj, index.get(o) as number)))
  return { ...measured, firstRoundsLdh: firstRounds.ldh, eccentricity: round(bound, 2) }
}

/** Plumtree as published (without its tree optimisation): one announcement round, every duplicate prunes at once. */
const PAPER: MeshOptions = { announceRounds: 1, pruneDelayMs: 0, treeMemoryMs: 0, optimiseSamples: 0 }

export async function run(): Promise<Record<string, unknown>> {
  const scaleN = Number(process.env.SIM_MESH_N ?? 0)
  if (scaleN > 0) {
    const figures = await scaleFigures(scaleN)
    report('sim-mesh-scale', figures)
    return figures
  }
  const t0 = performance.now()
  const flood = await floodFigures()
  const bounds = await treeBounds()
  const mesh = await meshFigures({}, 1, WARMUP, MEASURED)
  const unoptimised = await meshFigures({ optimiseSamples: 0 }, 1, 10, 30)
  const bursts = await meshFigures({}, BURST, 3, BURSTS)
  const paperBursts = await meshFigures(PAPER, BURST, 3, BURSTS)
  const active = await activeFigures({})
  const activeShared = await activeFigures({ routeOrigins: 0 })
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
    unoptimisedLdh: unoptimised.ldh,
    unoptimisedLdhMax: unoptimised.ldhMax,
    ...bounds,
    optimiseSwapsPerBroadcast: mesh.swaps,
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
    activeOrigins: ACTIVE,
    activeLdh: active.ldh,
    activeRmr: active.rmr,
    activeCoverage: active.coverage,
    activeGraftAnswersPerBroadcast: active.graftAnswersPerBroadcast,
    activeFirstRoundsLdh: active.firstRoundsLdh,
    activeSharedTreeLdh: activeShared.ldh,
    activeSharedTreeRmr: activeShared.rmr,
    activeEccentricity: active.eccentricity,
    wallMs: Math.round(performance.now() - t0),
  }
  report('sim-mesh', figures)
  return figures
}

/** Peak memory seen so far (sampled after each broadcast). */
const peak = { heap: 0, rss: 0 }
function sampleMemory(): void {
  const m = process.memoryUsage()
  peak.heap = Math.max(peak.heap, m.heapUsed)
  peak.rss = Math.max(peak.rss, m.rss)
}

/** Hops of every delivery of `msgIds` (first deliveries), and the last delivery hop of each. */
function hopFigures(perMsg: number[][]) {
  const all = perMsg.flat()
  return {
    meanHops: round(mean(all), 2),
    p99Hops: quantile(all, 0.99),
    ldh: round(mean(perMsg.map((h) => Math.max(...h))), 2),
    ldhMax: Math.max(...perMsg.map((h) => Math.max(...h))),
  }
}

async function scaleFlood(n: number, broadcasts: number) {
  const sim = createSim<FloodMsg>({ seed: SEED })
  const ids = Array.from({ length: n }, () => sim.randomId())
  for (const id of ids) sim.addNode(id, createFlood)
  await randomGraph(sim, ids, DEGREE)
  const sent = () => ids.reduce((s, id) => s + sim.node(id).counters.messagesOut, 0)
  const perMsg: number[][] = []
  const rmr: number[] = []
  for (let m = 0; m < broadcasts; m++) {
    const before = sent()
    sim.proto<FloodNode>(ids[Math.floor(sim.rng() * n)] as string).originate(`m${m}`)
    await sim.drain()
    perMsg.push(
      ids.flatMap((id) => sim.proto<FloodNode>(id).received.get(`m${m}`) ?? []).filter((h) => h > 0),
    )
    rmr.push((sent() - before) / (n - 1) - 1)
  }
  sampleMemory()
  return { rmr: round(mean(rmr)), ...hopFigures(perMsg) }
}

/** Broadcast from a random live node and run until `pool` has it (or 10 s), then 1.5 s more. */
async function scaleBroadcast(net: MeshNet, pool: string[], r: number) {
  const origin = pool[Math.floor(net.sim.rng() * pool.length)] as string
  const sentBefore = net.sum('payloadSent')
  const t0 = net.sim.now
  const id = await net.broadcast(origin, 'bench', { r })
  const got = () => net.deliveries.get(id)
  await net.sim.runUntilTrue(() => (got()?.size ?? 0) >= pool.length, 10_000)
  const fullMs = Math.round(net.sim.now - t0)
  await net.sim.runFor(1_500)
  sampleMemory()
  const hops = [...(got()?.entries() ?? [])].filter(([n]) => n !== origin).map(([, h]) => h[0] as number)
  return {
    coverage: (got()?.size ?? 0) / pool.length,
    fullMs,
    rmr: (net.sum('payloadSent') - sentBefore) / (pool.length - 1) - 1,
    hops,
  }
}

async function scaleFigures(n: number): Promise<Record<string, unknown>> {
  const t0 = performance.now()
  const flood = await scaleFlood(n, 5)
  const tBuild = performance.now()
  const net = await createMeshNet({ seed: SEED, n, degree: DEGREE })
  await net.sim.runFor(1_000)
  const buildMs = performance.now() - tBuild
  const warm: Awaited<ReturnType<typeof scaleBroadcast>>[] = []
  const tWarm = performance.now()
  for (let r = 0; r < SCALE_WARMUP; r++) warm.push(await scaleBroadcast(net, net.ids, r))
  const warmMs = performance.now() - tWarm
  const measured: typeof warm = []
  const tMeasure = performance.now()
  for (let r = 0; r < 5; r++) measured.push(await scaleBroadcast(net, net.ids, 100 + r))
  const measureMs = performance.now() - tMeasure
  // 20 % crash at once; the survivors' tree repairs itself through IHAVE and GRAFT.
  const victims = new Set(shuffleIds(net, n / 5))
  for (const v of victims) await net.sim.crash(v)
  const alive = net.ids.filter((id) => !victims.has(id))
  const reachable = largestComponent(net, alive)
  const after: typeof warm = []
  for (let r = 0; r < 5; r++) after.push(await scaleBroadcast(net, reachable, 200 + r))
  const pick = (xs: typeof warm) => ({
    coverage: round(mean(xs.map((x) => x.coverage))),
    rmr: round(mean(xs.map((x) => x.rmr))),
    ...hopFigures(xs.map((x) => x.hops)),
  })
  return {
    nodes: n,
    degree: DEGREE,
    flood,
    warmupRmr: round(mean(warm.map((x) => x.rmr))),
    mesh: pick(measured),
    crashed: victims.size,
    survivorsReachable: reachable.length,
    repairFirst: {
      coverage: round(after[0]?.coverage ?? 0),
      fullMs: after[0]?.fullMs,
      rmr: round(after[0]?.rmr ?? 0),
    },
    repairNext: pick(after.slice(1)),
    buildS: round(buildMs / 1000, 1),
    msPerBroadcastWarmup: Math.round(warmMs / warm.length),
    msPerBroadcast: Math.round(measureMs / measured.length),
    heapMB: Math.round(peak.heap / 2 ** 20),
    rssMB: Math.round(peak.rss / 2 ** 20),
    wallS: round((performance.now() - t0) / 1000, 1),
  }
}

function shuffleIds(net: MeshNet, k: number): string[] {
  const xs = [...net.ids]
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(net.sim.rng() * (i + 1))
    ;[xs[i], xs[j]] = [xs[j] as string, xs[i] as string]
  }
  return xs.slice(0, Math.floor(k))
}

/** The largest connected component of live nodes (broadcasts cannot reach past it). */
function largestComponent(net: MeshNet, alive: string[]): string[] {
  const seen = new Set<string>()
  let best: string[] = []
  for (const s of alive) {
    if (seen.has(s)) continue
    const comp = [s]
    seen.add(s)
    for (let i = 0; i < comp.length; i++)
      for (const y of net.sim.liveNeighbours(comp[i] as string))
        if (!seen.has(y)) {
          seen.add(y)
          comp.push(y)
        }
    if (comp.length > best.length) best = comp
  }
  return best
}

if (isMain(import.meta.url)) await run()
