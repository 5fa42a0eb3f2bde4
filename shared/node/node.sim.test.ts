/**
 * Whole nodes (createNodeCore) in the simulator: routed requests between
 * any two nodes of a ring, under loss and churn.
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { settleAll } from '../sim/settle.ts'
import type { Value } from '../types.ts'
import { createNodeNet } from './sim-net.ts'

describe('node core in the simulator', () => {
  it('a small ring: requests between any two nodes are answered, over the ring when not linked', async () => {
    await withSeed(testSeed(7), async (seed) => {
      const net = await createNodeNet({ seed, n: 32, degree: 4 })
      await net.buildRing()
      for (const id of net.ids) net.core(id).router.serve('who', (_d, meta) => ({ me: id, you: meta.from }))
      const pairs = Array.from({ length: 100 }, () => {
        const a = net.ids[Math.floor(net.sim.rng() * 32)] as string
        const b = net.ids[Math.floor(net.sim.rng() * 32)] as string
        return [a, b] as const
      })
      const res = await settleAll(
        net.sim,
        pairs.map(([a, b]) => net.core(a).router.request(b, 'who', null)),
      )
      res.forEach((r, i) => {
        const [a, b] = pairs[i] as readonly [string, string]
        expect(r).toEqual({ status: 'fulfilled', value: { me: b, you: a } })
      })
      expect(net.sum('route.delivered')).toBeGreaterThan(0)
      expect(net.refused.count).toBe(0)
    })
  })
})

describe('node core in the simulator: routed requests at N = 256', () => {
  it('under 5 % loss and churn: at least 99.9 % answered, and no handler runs twice', async () => {
    await withSeed(testSeed(20_261_130), async (seed) => {
      const N = 256
      const net = await createNodeNet({ seed, n: N, degree: 6 })
      await net.buildRing()
      const rng = net.sim.rng
      const pick = <T>(xs: T[]): T => xs[Math.floor(rng() * xs.length)] as T
      // A quarter of the nodes stay up and ask each other; the rest come and go.
      const stable = net.ids.slice(0, N / 4)
      const churners = net.ids.slice(N / 4)
      const runs = new Map<number, number>()
      const serve = (id: string) =>
        net.core(id).router.serve('echo', (data) => {
          const tag = data as number
          runs.set(tag, (runs.get(tag) ?? 0) + 1)
          return tag
        })
      for (const id of stable) serve(id)
      net.sim.setLoss(0.05)

      const requests: Promise<Value>[] = []
      const down = new Map<string, number>()
      const joins: Promise<void>[] = []
      let crashes = 0
      for (let step = 0; step < 200; step++) {
        for (let i = 0; i < 10; i++) {
          const from = pick(stable)
          let to = pick(stable)
          while (to === from) to = pick(stable)
          requests.push(net.core(from).router.request(to, 'echo', requests.length))
        }
        // Every half second one node crashes; each comes back 5 s later and joins again.
        if (step % 5 === 0) {
          const up = churners.filter((id) => !down.has(id))
          const victim = pick(up)
          await net.crash(victim)
          down.set(victim, net.sim.now)
          crashes++
        }
        for (const [id, at] of down) {
          if (net.sim.now - at < 5000) continue
          down.delete(id)
          const { joined } = await net.restart(id)
          joins.push(joined.catch(() => {}))
        }
        await net.sim.runFor(100)
      }
      const results = await settleAll(net.sim, requests, 60_000)
      await settleAll(net.sim, joins, 60_000)
      const answered = results.filter((r, i) => r.status === 'fulfilled' && r.value === i).length
      const failures = new Map<string, number>()
      for (const r of results)
        if (r.status === 'rejected') {
          const name = (r.reason as Error).name
          failures.set(name, (failures.get(name) ?? 0) + 1)
        }
      const ratio = answered / requests.length
      const twice = [...runs.values()].filter((n) => n > 1).length
      console.log(
        `N=${N}: ${answered}/${requests.length} answered (${(100 * ratio).toFixed(2)} %), failures ${JSON.stringify(Object.fromEntries(failures))}, ` +
          `handler runs ${[...runs.values()].reduce((a, b) => a + b, 0)}, run twice ${twice}; crashes ${crashes}; ` +
          `lost messages ${net.sim.totals.lost}; retries ${net.sum('route.retry')}, answers resent ${net.sum('route.answer-resent')}, ` +
          `copies dropped ${net.sum('drop.route.again')}, noroute ${net.sum('route.noroute')}`,
      )
      expect(requests).toHaveLength(2000)
      expect(crashes).toBe(40)
      expect(net.sim.totals.lost).toBeGreaterThan(1000)
      expect(ratio).toBeGreaterThanOrEqual(0.999)
      expect(twice).toBe(0)
      expect(net.refused.count).toBe(0)
      // Loss was met and got over: requests went again, and copies were recognised, not run.
      expect(net.sum('route.retry')).toBeGreaterThan(0)
    })
  }, 240_000)
})
