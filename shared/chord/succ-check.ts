/**
 * Not taking a successor list on one node's word. Past our successor, the
 * list is what our successor says (stabilization, a `leave`), and a hostile
 * successor can name ids nobody holds (they never answer) or leave out the
 * live nodes that follow it. So:
 *
 *   - an entry is vouched for only once it has been heard from directly (any
 *     message from it; a node new to the list that we have not heard from
 *     lately is pinged once). Until then it is `unverified`: the table
 *     answers no `found` from it or past it, names it in no `closer`, and
 *     passes on (getPred, leave) only the list before it;
 *   - an adopted list is merged with ours, not put in its place: a node we
 *     listed that the new list passes over (it lies before the last node
 *     the list names) stays until it fails (it is pinged at once, again after
 *     a stabilize period, doubling to `recheckMs`; `stabilize.omitted`
 *     counts them). Until it answers it is a suspect: we answer nothing
 *     from it or past it, and pass the list on without it, so that our
 *     predecessors check it at once too rather than after it died here. Past the list's last
 *     node we knew ours are dropped, as before: only the list can say what
 *     joined there (a list naming none we knew, or a distrusted source's,
 *     cuts nothing);
 *   - one list brings at most MAX_FRESH entries new to us (unverified) at a
 *     time (`stabilize.refused` counts the rest), and a source whose new
 *     entries went dead unheard (`stabilize.silent`) SILENT_PER_SOURCE times
 *     is distrusted for `distrustMs` (`stabilize.distrusted`): its new
 *     entries are not taken at all meanwhile. A liar's made-up ids cost a
 *     few pings per distrust period, and never a lookup's timeout.
 */
import { bump } from '../protocol.ts'
import type { ChordContext } from './options.ts'
import { between, distance } from './ring.ts'

/** Entries new to us (not heard from lately) that one list may bring at a time. */
export const MAX_FRESH = 8
/** New entries of one source that go dead unheard before it is distrusted. */
export const SILENT_PER_SOURCE = 2
/** Nodes remembered as heard from lately (the oldest forgotten first). */
const MAX_HEARD = 1024
/** Sources remembered (charges, distrust). */
const MAX_SOURCES = 256
/** The longest distrust, in base periods (doubling from one). */
const MAX_DISTRUST = 64

export interface SuccessorCheck {
  /** `x` sent us something: it exists. */
  heard(x: string): void
  /** Is successor-list entry `x` not yet heard from? */
  unverified(x: string): boolean
  /** Is `x` an entry a list passed over, pinged and not heard from since? */
  suspect(x: string): boolean
  /** The successor list changed to `list`: ping what is new and unheard, forget what left it. */
  listChanged(list: readonly string[]): void
  /** `x` was marked dead: when it was an unverified entry, its source is charged. */
  dead(x: string): void
  /**
   * The list to take when `source` says `list` follows `head` (the nodes we
   * reached ourselves, in ring order; may be empty for a `leave`), merged
   * with `old`, our present list: in ring order from us, nothing at or
   * before head's last nor past us. At most `maxFresh` (MAX_FRESH) entries
   * new to us, less those of `source` still unverified. The caller sets it
   * (the table caps it).
   */
  merge(
    source: string,
    head: readonly string[],
    list: readonly string[],
    old: readonly string[],
    maxFresh?: number,
  ): string[]
}

export function createSuccessorCheck(
  ctx: ChordContext,
  isDead: (x: string) => boolean,
  ping: (x: string) => Promise<unknown>,
): SuccessorCheck {
  const { self, counters, deps, o } = ctx
  const recheckMs = 5 * o.stabilizeMs + 2 * o.requestTimeoutMs
  const distrustMs = 2 * recheckMs
  /** Heard from lately (insertion order = age). */
  const recent = new Set<string>()
  /** Unverified entries of our list, and the source that named each (null: our own lookup). */
  const pending = new Map<string, string | null>()
  /** Entries a merge took as new, by source, until listChanged sees them. */
  const namedBy = new Map<string, string>()
  /** Per source: new entries gone dead unheard, until when it is distrusted, and for how long next time. */
  const sources = new Map<string, { silent: number; until: number; period: number }>()
  /** The list as listChanged last saw it. */
  let listed = new Set<string>()
  /** Passed-over entries pinged and not heard from since. */
  const suspects = new Set<string>()
  /** Passed-over entries we pinged: when we may again, and the interval. */
  const rechecked = new Map<string, { next: number; every: number }>()

  function remember<K, V>(m: Map<K, V> | Set<K>, max: number): void {
    if (m.size > max) {
      const oldest = m.keys().next().value as K
      m.delete(oldest)
    }
  }

  function distrusted(source: string): boolean {
    const s = sources.get(source)
    if (!s || s.until === 0) return false
    const now = deps.now()
    if (s.until <= now && now - s.until >= s.period) sources.delete(source) // quiet since: forgotten
    return s.until > now
  }

  /** Ping `x`, which a list passed over: at once, then after a stabilize period, doubling to recheckMs. */
  function recheck(x: string): void {
    const now = deps.now()
    const at = rechecked.get(x)
    if (at !== undefined && now < at.next) return
    const every = at === undefined ? o.stabilizeMs : Math.min(2 * at.every, recheckMs)
    rechecked.set(x, { next: now + every, every })
    suspects.add(x)
    void ping(x)
  }

  return {
    heard(x) {
      if (pending.size > 0 && pending.delete(x)) namedBy.delete(x)
      if (suspects.size > 0) suspects.delete(x)
      recent.delete(x)
      recent.add(x)
      remember(recent, MAX_HEARD)
    },
    unverified: (x) => pending.size > 0 && pending.has(x),
    suspect: (x) => suspects.size > 0 && suspects.has(x),
    listChanged(list) {
      const inList = new Set(list)
      for (const x of pending.keys()) if (!inList.has(x)) pending.delete(x)
      for (const x of rechecked.keys()) if (!inList.has(x)) rechecked.delete(x)
      for (const x of suspects) if (!inList.has(x)) suspects.delete(x)
      const before = listed
      listed = inList
      for (const x of list) {
        if (before.has(x) || recent.has(x)) continue
        // New to the list and not heard from lately: unverified until it answers.
        const by = namedBy.get(x) ?? null
        namedBy.delete(x)
        pending.set(x, by)
        void ping(x)
      }
      namedBy.clear()
    },
    dead(x) {
      if (!pending.has(x)) return
      const by = pending.get(x) ?? null
      pending.delete(x)
      if (by === null) return
      bump(counters, 'stabilize.silent')
      const s = sources.get(by) ?? { silent: 0, until: 0, period: distrustMs }
      s.silent++
      if (s.silent >= SILENT_PER_SOURCE) {
        // Distrusted; again soon after: twice as long (a source is forgotten after a quiet period).
        const now = deps.now()
        if (s.until <= now) bump(counters, 'stabilize.distrusted')
        if (s.until > 0 && now - s.until < s.period)
          s.period = Math.min(s.period * 2, MAX_DISTRUST * distrustMs)
        s.until = now + s.period
        s.silent = 0
      }
      sources.delete(by)
      sources.set(by, s)
      remember(sources, MAX_SOURCES)
    },
    merge(source, head, list, old, maxFresh = MAX_FRESH) {
      const last = head.length > 0 ? (head[head.length - 1] as string) : source
      const out = new Set<string>(head)
      const mine = new Set(old)
      const wary = distrusted(source)
      let fresh = 0
      for (const by of pending.values()) if (by === source) fresh++
      /** The farthest node the list names, and the farthest of those we knew already. */
      let named: string | null = null
      let reach: string | null = null
      const farther = (y: string | null, x: string) => y === null || between(y, last, x)
      for (const x of list) {
        if (x === self || !between(x, last, self) || isDead(x) || out.has(x)) continue
        if (farther(named, x)) named = x
        if (pending.has(x)) {
          if (mine.has(x)) out.add(x) // still unverified: kept, but it vouches for no cut
        } else if (mine.has(x) || recent.has(x)) {
          out.add(x)
          if (farther(reach, x)) reach = x
        } else if (!wary && fresh < maxFresh) {
          fresh++
          out.add(x)
          namedBy.set(x, source)
        } else bump(counters, 'stabilize.refused')
      }
      // Ours that the list passes over stay until they fail: check that they live. Past the farthest
      // node it names that we knew, ours are dropped, as before (only the list can say what joined
      // there); but a list that names none we knew, or a distrusted source's, cuts nothing.
      const upTo = wary || reach === null ? self : reach
      for (const x of old) {
        if (out.has(x) || isDead(x) || !(x === upTo || between(x, last, upTo))) continue
        out.add(x)
        if (pending.has(x)) continue
        if (named !== null && between(x, last, named)) bump(counters, 'stabilize.omitted')
        recheck(x)
      }
      return [...out]
        .map((x) => ({ x, d: distance(self, x) }))
        .sort((a, b) => (a.d < b.d ? -1 : a.d > b.d ? 1 : 0))
        .map((e) => e.x)
    },
  }
}
