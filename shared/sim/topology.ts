/** Graph builders for simulations. */

import type { Rng } from './prng.ts'
import type { Sim } from './sim.ts'

/**
 * Link every node to about `degree` random others (a random graph where each
 * node opens `ceil(degree / 2)` links), then join components so the graph is
 * connected. Returns the number of links made.
 */
export async function randomGraph<M>(
  sim: Sim<M>,
  ids: string[],
  degree: number,
  rng: Rng = sim.rng,
): Promise<number> {
  let made = 0
  const per = Math.ceil(degree / 2)
  // For each node, every other node in an order shuffled by `rng` (the draws of shuffle() over
  // ids.filter(b => b !== a), so a seed gives the graph it always gave), in a reused index array.
  const order = new Int32Array(Math.max(0, ids.length - 1))
  for (let ai = 0; ai < ids.length; ai++) {
    const a = ids[ai] as string
    for (let i = 0, j = 0; i < ids.length; i++) if (i !== ai) order[j++] = i
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1))
      const t = order[i] as number
      order[i] = order[j] as number
      order[j] = t
    }
    let n = 0
    for (let k = 0; k < order.length && n < per; k++) {
      const b = ids[order[k] as number] as string
      if (b === a || sim.hasLink(a, b) || sim.linkCount(b) >= degree + 2) continue
      await sim.link(a, b)
      made++
      n++
    }
  }
  // Join any components left over, one link each.
  const comps = components(sim, ids)
  for (let i = 1; i < comps.length; i++) {
    await sim.link((comps[i - 1] as string[])[0] as string, (comps[i] as string[])[0] as string)
    made++
  }
  return made
}

/** Connected components of `ids` by topology links. */
export function components<M>(sim: Sim<M>, ids: string[]): string[][] {
  const seen = new Set<string>()
  const inSet = new Set(ids)
  const out: string[][] = []
  for (const start of ids) {
    if (seen.has(start)) continue
    const comp: string[] = []
    const stack = [start]
    seen.add(start)
    while (stack.length) {
      const x = stack.pop() as string
      comp.push(x)
      for (const y of sim.linksOf(x)) {
        if (inSet.has(y) && !seen.has(y)) {
          seen.add(y)
          stack.push(y)
        }
      }
    }
    out.push(comp)
  }
  return out
}
