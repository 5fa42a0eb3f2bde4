/**
 * Whether a group of peers forms one network: the graph whose vertices are
 * the group and whose edges are their open links (a link counts when either
 * end lists it; links to nodes outside the group are not edges) is connected.
 */

/** The connected components of `ids` under `links` (id -> the ids it is linked to), each sorted as `ids`. */
export function components(
  ids: readonly string[],
  links: ReadonlyMap<string, readonly string[]>,
): string[][] {
  const index = new Map(ids.map((id, i) => [id, i]))
  const parent = ids.map((_, i) => i)
  const find = (i: number): number => {
    let r = i
    while (parent[r] !== r) r = parent[r] as number
    while (parent[i] !== r) {
      const next = parent[i] as number
      parent[i] = r
      i = next
    }
    return r
  }
  for (const [from, tos] of links) {
    const a = index.get(from)
    if (a === undefined) continue
    for (const to of tos) {
      const b = index.get(to)
      if (b !== undefined) parent[find(a)] = find(b)
    }
  }
  const groups = new Map<number, string[]>()
  ids.forEach((id, i) => {
    const r = find(i)
    const g = groups.get(r)
    if (g) g.push(id)
    else groups.set(r, [id])
  })
  return [...groups.values()]
}
