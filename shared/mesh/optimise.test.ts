/**
 * The tree optimisation at one node (optimise.ts), fed by hand: a parent
 * link E that delivers broadcasts at 5 hops, and a lazy link L whose IHAVEs
 * say it had them at 1 hop. Honest broadcasts come from a real origin mesh;
 * the hop field is not signed, so a test may set it as a relay would.
 */
import { describe, expect, it } from 'vitest'
import type { MeshOptions } from './mesh.ts'
import type { MeshMsg } from './messages.ts'
import { oneNode, relayed } from './one-node.ts'

const ME = 'a1'.repeat(20)
const E = 'b2'.repeat(20) // the eager link (this node's parent for the origins below)
const L = 'c3'.repeat(20) // a lazy link, nearer to those origins
const O = 'd4'.repeat(20) // the origin
const X = 'f6'.repeat(20) // a lazy neighbour that lies about its hops

/** This node, with per-origin routes off: one origin over and over would take it off the shared tree (routes.ts). */
const node = (links: string[], options?: MeshOptions) => oneNode(ME, links, { routeOrigins: 0, ...options })

/** A genuine broadcast by O, as relayed to us at `hops`. */
const fromOrigin = (i: number, hops: number) => relayed(O, ME, i, hops)

/** Broadcast i comes eagerly over E at 5 hops, then L announces it at 1: one sample of gain 3. */
async function sampleOnce(mesh: ReturnType<typeof node>['mesh'], i: number): Promise<void> {
  const g = await fromOrigin(i, 5)
  await mesh.handle(E, g)
  await mesh.handle(L, { type: 'ihave', ids: [g.id], hops: [1] })
}

describe('the tree optimisation at one node', () => {
  it('swaps the eager link for a lazy one that was 3 hops sooner on 16 broadcasts: GRAFT it, PRUNE the other', async () => {
    const n = node([E, L], { optimiseSamples: 16, optimiseMargin: 1 })
    await n.mesh.handle(L, { type: 'prune' }) // L lazy
    expect(n.mesh.eagerPeers()).toEqual([E])
    let i = 0
    for (; i < 15; i++) {
      await sampleOnce(n.mesh, i)
    }
    expect(n.mesh.counters.optimiseSwaps).toBeUndefined() // fewer than 16 samples: no decision yet
    n.sent.length = 0
    // From the 16th on, the rule holds; the swap comes by chance (0.25 a sample), within a few.
    for (; i < 60 && !n.mesh.counters.optimiseSwaps; i++) {
      await sampleOnce(n.mesh, i)
    }
    expect(n.mesh.counters.optimiseSwaps).toBe(1)
    expect(n.mesh.eagerPeers()).toEqual([L])
    expect(n.mesh.lazyPeers()).toEqual([E])
    const control = n.sent.filter((s) => s.msg.type === 'graft' || s.msg.type === 'prune')
    expect(control).toEqual([
      { to: L, msg: { type: 'graft', ids: [] } },
      { to: E, msg: { type: 'prune' } }, // no id: always obeyed
    ])

    // A payload E sent before our PRUNE reached it is delivered, but E stays off the tree here.
    const late = await fromOrigin(100, 5)
    await n.mesh.handle(E, late)
    expect(n.mesh.counters.delivered).toBe(i + 1)
    expect(n.mesh.eagerPeers()).toEqual([L])
    // A duplicate over the link just grafted does not prune it during the transition.
    await n.mesh.handle(L, { ...late, hops: 2 })
    n.clock.t += 300
    n.mesh.tick(n.clock.t)
    expect(n.mesh.counters.pruneHeld).toBe(1)
    expect(n.mesh.eagerPeers()).toEqual([L])
  })

  it('by default decides on 8 broadcasts: none before the 8th, a swap soon after', async () => {
    const n = node([E, L])
    await n.mesh.handle(L, { type: 'prune' })
    let i = 0
    for (; i < 7; i++) {
      await sampleOnce(n.mesh, i)
    }
    expect(n.mesh.counters.optimiseSwaps).toBeUndefined()
    for (; i < 60 && !n.mesh.counters.optimiseSwaps; i++) {
      await sampleOnce(n.mesh, i)
    }
    expect(n.mesh.counters.optimiseSwaps).toBe(1)
    expect(n.mesh.eagerPeers()).toEqual([L])
  })

  it('does not swap on a margin below 1 hop, nor when the optimisation is off', async () => {
    for (const [options, lazyHops] of [
      [{}, 4], // gain 5 − (4 + 1) = 0
      [{ optimiseSamples: 0 }, 1],
    ] as const) {
      const n = node([E, L], options)
      await n.mesh.handle(L, { type: 'prune' })
      for (let i = 0; i < 40; i++) {
        const g = await fromOrigin(i, 5)
        await n.mesh.handle(E, g)
        await n.mesh.handle(L, { type: 'ihave', ids: [g.id], hops: [lazyHops] })
      }
      expect(n.mesh.counters.optimiseSwaps).toBeUndefined()
      expect(n.mesh.eagerPeers()).toEqual([E])
    }
  })

  it('an IHAVE claiming 0 hops from anyone but the origin is not believed: counted, never a swap', async () => {
    const n = node([E, X])
    await n.mesh.handle(X, { type: 'prune' })
    for (let i = 0; i < 40; i++) {
      const g = await fromOrigin(i, 5)
      // Before the payload (kept with the announcement) and after it (compared at once).
      if (i % 2 === 0) await n.mesh.handle(X, { type: 'ihave', ids: [g.id], hops: [0] })
      await n.mesh.handle(E, g)
      if (i % 2 === 1) await n.mesh.handle(X, { type: 'ihave', ids: [g.id], hops: [0] })
    }
    expect(n.mesh.counters['drop.badIHaveHops']).toBe(40)
    expect(n.mesh.counters.optimiseSwaps).toBeUndefined()
    expect(n.mesh.eagerPeers()).toEqual([E])
  })

  it('a neighbour lying that it is 1 hop away gets at most one swap per optimiseGapMs', async () => {
    // Two liars take turns: each lie wins a swap, but never more often than the gap allows.
    const Y = 'e5'.repeat(20)
    const n = node([E, X, Y])
    await n.mesh.handle(X, { type: 'prune' })
    await n.mesh.handle(Y, { type: 'prune' })
    const start = n.clock.t
    for (let i = 0; i < 400; i++) {
      n.clock.t += 50
      const g = await fromOrigin(i, 9)
      const [eager] = n.mesh.eagerPeers()
      await n.mesh.handle(eager ?? E, g)
      for (const liar of n.mesh.lazyPeers())
        await n.mesh.handle(liar, { type: 'ihave', ids: [g.id], hops: [1] })
    }
    const elapsed = n.clock.t - start
    const swaps = n.mesh.counters.optimiseSwaps ?? 0
    expect(swaps).toBeGreaterThan(0)
    expect(swaps).toBeLessThanOrEqual(Math.ceil(elapsed / 2_000))
    expect(n.mesh.eagerPeers()).toHaveLength(1) // still exactly one tree link
  })

  it('an IHAVE whose hops do not match its ids is malformed', async () => {
    const n = node([E])
    const id = 'ab'.repeat(20)
    for (const hops of [[], [1, 2], [-1], [1.5], [256], ['1'], 1]) {
      await n.mesh.handle(E, { type: 'ihave', ids: [id], hops } as unknown as MeshMsg)
    }
    expect(n.mesh.counters['drop.malformed']).toBe(7)
    expect(n.mesh.counters.ihaveIn).toBeUndefined()
  })
})
