/**
 * The tree optimisation in the simulator (optimise.ts): on a 256-node graph
 * of degree 6, broadcasts from random origins one after another. With the
 * optimisation, slow tree links are swapped for faster lazy ones and the
 * last delivery hop falls well below the first broadcast's tree, while the
 * tree stays a tree (RMR ~0) and every broadcast reaches every node once;
 * and it stays there after 10 % of the nodes crash and come back.
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { shuffle } from '../sim/prng.ts'
import type { MeshOptions } from './mesh.ts'
import { createMeshNet, type MeshNet } from './sim-net.ts'

const N = 256

interface Figures {
  /** Mean over broadcasts of the last delivery hop. */
  ldh: number
  rmr: number
  /** Of the nodes the origin can reach over live links (with 10 % down, a survivor may have none: seed 28). */
  minCoverage: number
  maxDeliveries: number
}

/** Nodes reachable from `from` over live links now. */
function component(net: MeshNet, from: string): Set<string> {
  const seen = new Set([from])
  const stack = [from]
  for (let x = stack.pop(); x !== undefined; x = stack.pop())
    for (const y of net.sim.liveNeighbours(x))
      if (!seen.has(y)) {
        seen.add(y)
        stack.push(y)
      }
  return seen
}

/** `count` broadcasts from random live origins, one at a time, each given 1.5 s. */
async function broadcasts(net: MeshNet, count: number): Promise<Figures> {
  let ldh = 0
  let rmr = 0
  let minCoverage = 1
  let maxDeliveries = 0
  for (let i = 0; i < count; i++) {
    const up = net.sim.upIds()
    const origin = up[Math.floor(net.sim.rng() * up.length)] as string
    const before = net.sum('payloadSent')
    const reachable = component(net, origin)
    const id = await net.broadcast(origin, 'opt', { i })
    await net.sim.runFor(1_500)
    rmr += (net.sum('payloadSent') - before) / (up.length - 1) - 1
    let last = 0
    for (const h of net.deliveries.get(id)?.values() ?? []) last = Math.max(last, ...h)
    ldh += last
    const reached = [...(net.deliveries.get(id)?.keys() ?? [])].filter((n) => reachable.has(n)).length
    minCoverage = Math.min(minCoverage, reached / reachable.size)
    maxDeliveries = Math.max(maxDeliveries, net.maxDeliveries(id))
  }
  return { ldh: ldh / count, rmr: rmr / count, minCoverage, maxDeliveries }
}

async function network(seed: number, mesh: MeshOptions = {}): Promise<MeshNet> {
  // Ticks every 200 ms (not 100): half the simulator's work, the same protocol.
  const net = await createMeshNet({ seed, n: N, degree: 6, mesh, sim: { tickMs: 200 } })
  await net.sim.runFor(500)
  return net
}

describe('the tree optimisation in the simulator', () => {
  it('N = 256, degree 6: the last delivery hop falls ~3 below the unoptimised tree, RMR stays ~0, coverage 1.0, also after 10 % churn', async () => {
    const seed = testSeed(505)
    await withSeed(seed, async () => {
      const plain = await network(seed, { optimiseSamples: 0 })
      await broadcasts(plain, 5)
      const before = await broadcasts(plain, 15)
      expect(plain.sum('optimiseSwaps')).toBe(0)

      const net = await network(seed)
      await broadcasts(net, 60) // 16 samples per pair, then swaps spread out by chance
      const settled = await broadcasts(net, 15)
      expect(net.sum('optimiseSwaps')).toBeGreaterThan(50)
      for (const f of [before, settled]) expect(f).toMatchObject({ minCoverage: 1, maxDeliveries: 1 })

      // 10 % churn: crash 26 nodes (tree links break under everyone below them), then restart them.
      const victims = shuffle(net.sim.rng, [...net.ids]).slice(0, N / 10)
      for (const v of victims) await net.sim.crash(v)
      await net.sim.runFor(1_000)
      const during = await broadcasts(net, 5)
      for (const v of victims) await net.sim.restart(v)
      await net.sim.runFor(1_000)
      await broadcasts(net, 40) // the restarted nodes' links all start eager: the tree forms again around them
      const after = await broadcasts(net, 15)
      for (const f of [during, after]) expect(f).toMatchObject({ minCoverage: 1, maxDeliveries: 1 })
      // Measured over seeds 1-40 (min / median / max): the unoptimised tree's LDH (`before`, a
      // property of the graph and of the first broadcast's origin) 9.93 / 11.40 / 13.73; settled
      // 7.20 / 8.23 / 9.07, its gain on `before` 1.80 / 3.40 / 5.46; after churn 7.13 / 8.27 / 9.80,
      // gain 1.13 / 3.27 / 5.53. RMR settled <= 0.001, after churn <= 0.032. The bounds sit just
      // outside those ranges: the optimisation off, or undone by churn, leaves no gain and fails them.
      expect(settled.rmr).toBeLessThan(0.1)
      expect(settled.ldh).toBeLessThanOrEqual(before.ldh - 1.5)
      expect(settled.ldh).toBeLessThanOrEqual(9.25)
      expect(after.rmr).toBeLessThanOrEqual(0.5)
      expect(after.ldh).toBeLessThanOrEqual(before.ldh - 1)
      expect(after.ldh).toBeLessThanOrEqual(10)
    })
  }, 120_000) // seconds on an idle machine; the margin is for a loaded one
})
