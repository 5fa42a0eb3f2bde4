/**
 * Two rings that formed apart (two groups started at once, each finding no
 * member to join through) merge into one through the nodes' other links
 * (`consider` and its probe, maintenance.ts). Seeded simulator runs: the links are a fixed
 * random graph over all nodes, as the node's mesh links would be.
 */
import { describe, expect, it } from 'vitest'
import { type ChordNet, createChordNet, ringCorrect, ringStable, runUntil, settleAll } from './harness.ts'

/** `n` nodes that make a ring of their own: the first creates it, the rest join through it. */
async function ringOf(net: ChordNet, n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, () => net.add())
  const [first, ...rest] = ids as [string, ...string[]]
  await settleAll(net.sim, [net.node(first).join(null)])
  for (const id of rest) await settleAll(net.sim, [net.node(id).join(first)])
  return ids
}

/** A fixed random graph of `degree` links per node (both ends know the link). */
function links(net: ChordNet, ids: string[], degree: number): Map<string, Set<string>> {
  const out = new Map(ids.map((id) => [id, new Set<string>()]))
  for (const id of ids)
    while ((out.get(id) as Set<string>).size < degree) {
      const other = ids[Math.floor(net.sim.rng() * ids.length)] as string
      if (other === id) continue
      out.get(id)?.add(other)
      out.get(other)?.add(id)
    }
  return out
}

/** Run, offering each node its links on every step (as the node's tick does). */
function considerEvery(net: ChordNet, graph: Map<string, Set<string>>): () => boolean {
  return () => {
    for (const [id, peers] of graph) net.node(id).consider(peers)
    return ringStable(net)
  }
}

function counter(net: ChordNet, ids: string[], name: string): number {
  return ids.reduce((n, id) => n + (net.node(id).counters[name] ?? 0), 0)
}

describe('two rings merge through the nodes links', () => {
  for (const [seed, a, b, degree] of [
    [1, 13, 4, 4],
    [2, 30, 30, 3],
    [3, 60, 2, 3],
    [4, 8, 8, 2],
    // No link lies between ring neighbours here: only the probe (a lookup through a link) finds the other ring.
    [106, 21, 6, 2],
    [9, 20, 10, 1],
  ] as const)
    it(`seed ${seed}: rings of ${a} and ${b}, ${degree} links a node: one correct ring`, async () => {
      const net = createChordNet(seed)
      const ra = await ringOf(net, a)
      const rb = await ringOf(net, b)
      const all = [...ra, ...rb]
      // Each group settles into its own ring first: the state the 16-tab browser test met.
      await runUntil(net, () => false, 20_000)
      for (const id of all) net.member(id)
      expect(ringCorrect(net)).toBe(false)
      for (const id of ra)
        expect(
          net
            .node(id)
            .successors()
            .some((s) => rb.includes(s)),
        ).toBe(false)
      const graph = links(net, all, degree)
      const merged = await runUntil(net, considerEvery(net, graph), 120_000)
      expect(merged).toBe(true)
      expect(counter(net, all, 'ring.merge.adopted') + counter(net, all, 'ring.merge.told')).toBeGreaterThan(
        0,
      )
    })

  it('on one correct ring, the check sends nothing: no link lies between ring neighbours', async () => {
    const net = createChordNet(7)
    const ids = await ringOf(net, 20)
    for (const id of ids) net.member(id)
    expect(await runUntil(net, () => ringStable(net), 60_000)).toBe(true)
    const graph = links(net, ids, 4)
    const sent = net.sim.totals.delivered
    const check = considerEvery(net, graph)
    await runUntil(
      net,
      () => {
        check()
        return false
      },
      10_000,
    )
    expect(counter(net, ids, 'ring.merge.adopted') + counter(net, ids, 'ring.merge.told')).toBe(0)
    // The probes ran (a lookup now and then) and found no other ring.
    expect(counter(net, ids, 'ring.merge.probe')).toBeGreaterThan(0)
    expect(counter(net, ids, 'ring.merge.found')).toBe(0)
    expect(ringStable(net)).toBe(true)
    expect(net.sim.totals.delivered).toBeGreaterThan(sent) // maintenance ran meanwhile
  })
})
