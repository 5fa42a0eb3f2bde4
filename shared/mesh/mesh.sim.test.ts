/**
 * The mesh in the simulator: hundreds of nodes on random graphs of degree
 * about 6, with loss, crashes and restarts, partitions and healing, and
 * relays that tamper. Every run prints its seed on failure (WEFT_SEED=…
 * replays it).
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { shuffle } from '../sim/prng.ts'
import type { SimDeps } from '../sim/sim.ts'
import type { Value } from '../types.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import { createMesh, type MeshDelivery } from './mesh.ts'
import type { MeshMsg } from './messages.ts'
import { createMeshNet, type MeshNet } from './sim-net.ts'

/** Nodes reachable from `from` over live links now. */
function component(net: MeshNet, from: string): Set<string> {
  const seen = new Set([from])
  const stack = [from]
  while (stack.length > 0) {
    const x = stack.pop() as string
    for (const y of net.sim.liveNeighbours(x)) {
      if (!seen.has(y)) {
        seen.add(y)
        stack.push(y)
      }
    }
  }
  return seen
}

interface Outcome {
  id: string
  /** Delivered at every node of the origin's component, and nowhere else. */
  coverage: number
  outside: number
  maxDeliveries: number
}

/** Broadcast from `count` random live origins at once, run `settleMs`, and measure each against its component. */
async function round(
  net: MeshNet,
  count: number,
  settleMs: number,
  pool = net.sim.upIds(),
): Promise<Outcome[]> {
  const origins = shuffle(net.sim.rng, [...pool]).slice(0, count)
  const comps = origins.map((o) => component(net, o))
  const ids = await Promise.all(origins.map((o, i) => net.broadcast(o, 'sim', { i, from: o })))
  await net.sim.runFor(settleMs)
  return ids.map((id, i) => {
    const comp = comps[i] as Set<string>
    const at = [...(net.deliveries.get(id)?.keys() ?? [])]
    const inside = at.filter((n) => comp.has(n)).length
    return {
      id,
      coverage: inside / comp.size,
      outside: at.length - inside,
      maxDeliveries: net.maxDeliveries(id),
    }
  })
}

function expectFull(outcomes: Outcome[]): void {
  for (const o of outcomes) expect(o).toMatchObject({ coverage: 1, outside: 0, maxDeliveries: 1 })
}

/** What plain flooding would send per broadcast on this graph: every node to all its links but one. */
function floodRmr(net: MeshNet): number {
  const n = net.ids.length
  const degreeSum = net.ids.reduce((s, id) => s + net.sim.linksOf(id).length, 0)
  return (degreeSum - n + 1) / (n - 1) - 1
}

describe('mesh in the simulator', () => {
  it('500 nodes, no loss: every broadcast reaches every node exactly once; RMR falls to ~0 once the tree forms', async () => {
    const seed = testSeed(101)
    await withSeed(seed, async () => {
      const N = 500
      const net = await createMeshNet({ seed, n: N, degree: 6 })
      await net.sim.runFor(500)
      const rmrs: number[] = []
      for (let r = 0; r < 8; r++) {
        const before = net.sum('payloadSent')
        expectFull(await round(net, 5, 2_500))
        rmrs.push((net.sum('payloadSent') - before) / (5 * (N - 1)) - 1)
      }
      const flood = floodRmr(net)
      expect(flood).toBeGreaterThan(3.5)
      // The first batch floods and builds the tree (PRUNEs cut the redundant links); the rest ride it.
      // With the tree optimisation off, rounds 2-7 cost RMR 0.0000 (seeds 1-20). With it on, its
      // swaps (~50 a round) go on during these rounds, and a swap judged on samples from before a
      // neighbour's concurrent swap can cut the tree: the cut piece GRAFTs (often from several
      // nodes at once, closing cycles), and a cycle left after a round's last wave costs a duplicate
      // per broadcast in the next round until PRUNEd. Measured over seeds 1-100 (min / median / p90 /
      // max): mean RMR of rounds 2-7 0.005 / 0.019 / 0.030 / 0.133 (seed 57, where a cut of ~100
      // nodes was repaired by ~100 GRAFTs; next highest 0.043), worst round 0.012 / 0.039 / 0.073 /
      // 0.42 (next highest 0.10); eager links at the end N - 1 + (-1 / 1 / 6 / 31).
      expect(rmrs[0]).toBeLessThanOrEqual(flood + 1e-9)
      const later = rmrs.slice(2)
      expect(later.reduce((a, b) => a + b, 0) / later.length).toBeLessThan(0.05)
      for (const r of later) expect(r).toBeLessThan(0.5)
      const eagerLinks = net.ids.reduce((s, id) => s + net.mesh(id).eagerPeers().length, 0) / 2
      // A spanning tree, give or take a swap's cut or its repair's cycles not yet met by a broadcast.
      expect(eagerLinks).toBeGreaterThanOrEqual(N - 5)
      expect(eagerLinks).toBeLessThan(N + 40)
      expect(net.sum('drop.badSignature') + net.sum('drop.malformed')).toBe(0)
    })
  })

  it('300 nodes with 5% loss, 10% crashes and restarts, a partition and its healing: coverage stays 1.0', async () => {
    const seed = testSeed(202)
    await withSeed(seed, async () => {
      const N = 300
      const net = await createMeshNet({ seed, n: N, degree: 6 })
      await net.sim.runFor(500)
      for (let r = 0; r < 3; r++) expectFull(await round(net, 3, 2_000))

      net.sim.setLoss(0.05)
      const lossBefore = net.sum('payloadSent')
      const lossy = await round(net, 5, 5_000)
      expectFull(lossy)
      const lossRmr = (net.sum('payloadSent') - lossBefore) / (5 * (N - 1)) - 1
      expect(lossRmr).toBeLessThan(1)
      expect(net.sim.totals.lost).toBeGreaterThan(0)
      expect(net.sum('payloadSentGraft')).toBeGreaterThan(0) // repairs really happened

      // Churn: 10% crash (tree links break under everyone below them).
      const victims = shuffle(net.sim.rng, [...net.ids]).slice(0, N / 10)
      for (const v of victims) await net.sim.crash(v)
      await net.sim.runFor(1_000)
      for (let r = 0; r < 2; r++) expectFull(await round(net, 5, 5_000))
      for (const v of victims) await net.sim.restart(v)
      await net.sim.runFor(1_000)
      for (let r = 0; r < 2; r++) expectFull(await round(net, 5, 5_000))

      // A partition in two halves: each side is covered, nothing crosses; then it heals.
      const halves = [net.ids.slice(0, N / 2), net.ids.slice(N / 2)]
      await net.sim.partition(halves)
      await net.sim.runFor(1_000)
      for (const half of halves) expectFull(await round(net, 3, 5_000, half))
      await net.sim.heal()
      await net.sim.runFor(1_000)
      const healed = await round(net, 5, 5_000)
      expectFull(healed)
      for (const o of healed) expect(net.reached(o.id)).toBe(N)

      // Everything bounded: nothing left waiting once traffic stops.
      await net.sim.runFor(10_000)
      for (const id of net.sim.upIds()) expect(net.mesh(id).sizes()).toMatchObject({ missing: 0, pending: 0 })
    })
  })

  it('relays that tamper with payloads are routed around: honest nodes deliver only genuine data', async () => {
    const seed = testSeed(303)
    await withSeed(seed, async () => {
      const N = 256
      const hostile = new Set<string>()
      const delivered: MeshDelivery[] = []
      const net = await createMeshNet({
        seed,
        n: N,
        degree: 6,
        observe: (_node, d) => void delivered.push(d),
      })
      // Replace 5% of the nodes by tamperers: they check and deliver like anyone, but every payload
      // they relay carries other data (re-encoded, still a well-formed body, under the original signature).
      for (const id of shuffle(net.sim.rng, [...net.ids]).slice(0, 13)) {
        hostile.add(id)
        await net.sim.restart(id, (deps) =>
          createMesh({
            ...deps,
            keys: createFakeKeyring(id),
            send: (to, msg: MeshMsg) => {
              if (msg.type !== 'gossip') return deps.send(to, msg)
              const body = decodeValue(msg.payload) as Record<string, Value>
              deps.send(to, { ...msg, payload: encodeValue({ ...body, d: 'tampered' }) })
            },
          }),
        )
      }
      await net.sim.runFor(500)
      const honest = net.ids.filter((id) => !hostile.has(id))
      for (let r = 0; r < 6; r++) {
        for (const o of await round(net, 4, 4_000, honest)) {
          const reachedHonest = honest.filter((h) => net.deliveries.get(o.id)?.has(h)).length
          expect(reachedHonest).toBe(honest.length)
          expect(o.maxDeliveries).toBe(1)
        }
      }
      expect(net.sum('drop.badSignature')).toBeGreaterThan(50)
      // Every delivery anywhere carried the data its origin signed.
      expect(delivered.length).toBeGreaterThanOrEqual(24 * honest.length)
      for (const d of delivered) expect(d.data).toMatchObject({ from: d.origin })
    })
  })

  it('a relay that records broadcasts and replays them 130 s later (virtual time) gets nothing delivered twice, nothing re-flooded', async () => {
    const seed = testSeed(404)
    await withSeed(seed, async () => {
      const N = 120
      const net = await createMeshNet({ seed, n: N, degree: 6 })
      const spy = net.ids[0] as string
      const recorded: MeshMsg[] = []
      let spyDeps: SimDeps<MeshMsg> | undefined
      await net.sim.restart(spy, (deps) => {
        spyDeps = deps
        const mesh = createMesh({ ...deps, keys: createFakeKeyring(spy) })
        // An honest-looking relay that also keeps a copy of every payload it is sent.
        return {
          ...mesh,
          handle: (from: string, msg: MeshMsg) => {
            if (msg.type === 'gossip') recorded.push(msg)
            return mesh.handle(from, msg)
          },
        }
      })
      await net.sim.runFor(500)
      const honest = net.ids.filter((id) => id !== spy)
      const first = await round(net, 4, 3_000, honest)
      for (const o of first) {
        expect(honest.every((h) => net.deliveries.get(o.id)?.has(h))).toBe(true) // the spy's own are not recorded
        expect(o.maxDeliveries).toBe(1)
      }
      expect(recorded.length).toBeGreaterThanOrEqual(4)

      await net.sim.runFor(130_000)
      const sentBefore = net.sum('payloadSent')
      const deliveredBefore = net.sum('delivered')
      const send = spyDeps?.send as SimDeps<MeshMsg>['send']
      for (const m of recorded) for (const to of net.sim.liveNeighbours(spy)) send(to, m)
      await net.sim.runFor(3_000)

      for (const o of first) expect(net.maxDeliveries(o.id)).toBe(1)
      expect(net.sum('delivered')).toBe(deliveredBefore)
      expect(net.sum('payloadSent')).toBe(sentBefore) // not relayed by anyone
      expect(net.sum('drop.tooOld')).toBe(recorded.length * net.sim.liveNeighbours(spy).length)
    })
  })

  it('a thin graph after churn: a path of 48 nodes is covered end to end with the default hop limit', async () => {
    // A partition's half, or a large network after a crash, can leave trees 30+ hops deep (a
    // half of 150 nodes reached hop 33 at seed 58; N = 10,000 after a 20 % crash, LDH 27): the
    // default limit leaves room for them.
    const seed = testSeed(505)
    await withSeed(seed, async () => {
      const net = await createMeshNet({ seed, n: 48, degree: 0 })
      for (let i = 1; i < net.ids.length; i++)
        await net.sim.link(net.ids[i - 1] as string, net.ids[i] as string)
      const id = await net.broadcast(net.ids[0] as string, 'sim', 'end to end')
      await net.sim.runFor(5_000)
      expect(net.reached(id)).toBe(48)
      expect(net.deliveries.get(id)?.get(net.ids[47] as string)).toEqual([47])
      expect(net.sum('hopLimitReached')).toBe(0)
    })
  })

  it('is deterministic: the same seed gives the same counters', async () => {
    const run = async (seed: number) => {
      const net = await createMeshNet({ seed, n: 120, degree: 6, sim: { loss: 0.05 } })
      for (let r = 0; r < 3; r++) await round(net, 3, 2_000)
      return ['payloadSent', 'ihaveIdsSent', 'graftSent', 'pruneSent', 'delivered'].map((k) => net.sum(k))
    }
    const a = await run(7)
    expect(await run(7)).toEqual(a)
    expect(await run(8)).not.toEqual(a)
  })
})
