/**
 * Who named which node, during one lookup, and how many of the nodes each
 * answerer named made us wait in vain.
 *
 * An answer (`closer`, `found`, `pred`, `routed`) can name any ids: a liar
 * can fill one with ids of nodes that never answer (its silent sybils, or
 * ids nobody holds), and each costs the lookup a timeout (two while
 * `resolve` confirms: silence once may be a lost message). Without a bound
 * one answer made a lookup wait on up to 24 of them in `resolve` (48
 * timeouts, and then the lookup was redone) or on up to 48 in the walk. So
 * a lookup keeps, for every node it may ask, the answerers that named it;
 * when a request to a node runs to its deadline and one answerer alone
 * named that node, the answerer is charged (once per node). An answerer
 * charged SILENT_PER_ANSWERER times is distrusted (`lookup.distrusted`):
 * it is asked nothing more, and the nodes named by distrusted answerers
 * alone are passed over while others are left (`discredited`; what lookup.ts
 * does when none are).
 *
 * Not charged: a node named by two answerers, or by us (our own tables,
 * named by `self`): it is corroborated, and its silence an honest mistake
 * (it died; after a mass failure the successor lists that answer a lookup
 * all name the same dead nodes); and a request the host could not deliver
 * (the node is not registered, `rpc.unreachable`), which fails at once and
 * costs no wait. A liar's made-up ids are named by nobody else. Colluding
 * answerers that name the same silent ids escape the charge; they are the
 * liar on every path that PROTOCOL-chord.md leaves open.
 */
import { bump, type Counters } from '../protocol.ts'

/** Silent nodes one answerer may name before the lookup stops believing its lists. */
export const SILENT_PER_ANSWERER = 2

export interface Blame {
  /** `by` (an answerer, or `self` for our own tables) named these nodes. */
  name(by: string, xs: Iterable<string>): void
  /** A request to `x` ran to its deadline: the answerer that alone named it is charged (once per node). */
  silent(x: string): void
  /** Has `x` named SILENT_PER_ANSWERER silent nodes? */
  distrusted(x: string): boolean
  /** Is `x` named only by distrusted answerers? (Not named at all: no.) */
  discredited(x: string): boolean
  /** Has any answerer been distrusted? */
  any(): boolean
}

export function createBlame(self: string, counters: Counters): Blame {
  /**
   * Who named each node: one answerer (nearly always), or a set once a
   * second names it. A lookup names every candidate it knows: a set for
   * each was most of what a lookup allocated.
   */
  const namers = new Map<string, string | Set<string>>()
  // Made at the first silent node (most lookups meet none).
  let strikes: Map<string, number> | undefined
  let charged: Set<string> | undefined
  const distrusted = new Set<string>()
  return {
    name(by, xs) {
      for (const x of xs) {
        const s = namers.get(x)
        if (s === undefined) namers.set(x, by)
        else if (typeof s !== 'string') s.add(by)
        else if (s !== by) namers.set(x, new Set([s, by]))
      }
    },
    silent(x) {
      const s = namers.get(x)
      // Named by two answerers (or by us): corroborated, an honest mistake (a node that died).
      if (typeof s !== 'string' || charged?.has(x)) return
      charged ??= new Set()
      charged.add(x)
      const by = s
      if (by === self || distrusted.has(by)) return
      strikes ??= new Map()
      const n = (strikes.get(by) ?? 0) + 1
      strikes.set(by, n)
      if (n >= SILENT_PER_ANSWERER) {
        distrusted.add(by)
        bump(counters, 'lookup.distrusted')
      }
    },
    distrusted: (x) => distrusted.has(x),
    discredited(x) {
      const s = namers.get(x)
      if (s === undefined || distrusted.size === 0) return false
      if (typeof s === 'string') return distrusted.has(s)
      for (const by of s) if (!distrusted.has(by)) return false
      return true
    },
    any: () => distrusted.size > 0,
  }
}
