/**
 * sim-core: the simulator's own throughput. 1,000 nodes on a random graph of
 * degree 6; floods from random origins; delivered messages per second of
 * wall time, median of several runs: with every event an async step (the
 * default) and with `yieldEachEvent: false` (as the mesh's runs use).
 *
 *   npm run bench -- sim-core
 */
import { createFlood, createSim, type FloodMsg, type FloodNode, randomGraph } from '../shared/sim/index.ts'
import { isMain, median, report } from './report.ts'

async function rate(yieldEachEvent: boolean): Promise<{ delivered: number; perSec: number }> {
  const N = 1000
  const rates: number[] = []
  let delivered = 0
  for (let r = 0; r < 5; r++) {
    const sim = createSim<FloodMsg>({ seed: 100 + r, yieldEachEvent })
    const ids = Array.from({ length: N }, () => sim.randomId())
    for (const id of ids) sim.addNode(id, createFlood)
    await randomGraph(sim, ids, 6)
    const t0 = performance.now()
    for (let m = 0; m < 20; m++) {
      sim.proto<FloodNode>(ids[Math.floor(sim.rng() * N)] as string).originate(`m${m}`)
      await sim.drain()
    }
    const ms = performance.now() - t0
    delivered = sim.totals.delivered
    rates.push(delivered / (ms / 1000))
  }
  return { delivered, perSec: Math.round(median(rates)) }
}

export async function run(): Promise<Record<string, number>> {
  const yielding = await rate(true)
  const direct = await rate(false)
  const figures = {
    nodes: 1000,
    degree: 6,
    deliveredPerRun: yielding.delivered,
    deliveredPerSec: yielding.perSec,
    deliveredPerSecNoYield: direct.perSec,
  }
  report('sim-core', figures)
  return figures
}

if (isMain(import.meta.url)) await run()
