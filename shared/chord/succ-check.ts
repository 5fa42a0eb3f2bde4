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
 *     leaves it out of the list it passes on (getPred, leave);
 *   - what the list leaves out of ours is dropped, as before (a liar can
 *     shorten our list with real nodes), unless it names no node we knew:
 *     then it cuts nothing;
 *   - one list brings at most MAX_FRESH entries new to us (unverified) at a
 *     time (`stabilize.refused` counts the rest). Each new entry that goes
 *     dead unheard charges its source (`stabilize.silent`), each that
 *     answers takes a charge off (down to a credit of MAX_FRESH: an
 *     honest list after a crash names live and dead new nodes alike), and a
 *     source charged SILENT_PER_SOURCE times is distrusted for `distrustMs`
 *     (`stabilize.distrusted`): its new entries are not taken at all
 *     meanwhile. A liar's made-up ids cost a few pings per distrust period,
 *     and never a lookup's timeout. The first period is short (two
 *     stabilizations and a silent entry's two timeouts): an honest successor
 *     after a crash names dead nodes it has not yet found dead, and now and
 *     then more dead than live new ones; while it is distrusted, the new
 *     nodes it names are missing from our list and from our predecessors'
 *     (1,024 nodes, half crashed: 6 honest sources distrusted, the lists
 *     right again after 10.3 s with a first period of 10 stabilizations and
 *     4 timeouts, 7.1 s now). A liar's periods double as before (two more charges
 *     while distrusted double it, and a batch of 8 silent ids charges 8
 *     times), up to the same longest period.
 */
import { bump } from '../protocol.ts'
import type { ChordContext } from './options.ts'
import { RecentIds } from './recent.ts'
import { between, fromOrigin } from './ring.ts'

/** Entries new to us (not heard from lately) that one list may bring at a time. */
export const MAX_FRESH = 8
/** New entries of one source that go dead unheard before it is distrusted. */
export const SILENT_PER_SOURCE = 2
/** Nodes remembered as heard from lately (the oldest forgotten first). */
const MAX_HEARD = 1024
/** Sources remembered (charges, distrust). */
const MAX_SOURCES = 256
/** The longest distrust, in base periods (doubling from one): as long as 64 of the old base (10 stabilizations, 4 timeouts). */
const MAX_DISTRUST = 256

export interface SuccessorCheck {
  /** `x` sent us something: it exists. */
  heard(x: string): void
  /** Is successor-list entry `x` not yet heard from? */
  unverified(x: string): boolean
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
  /** How long a source is distrusted the first time (doubling while it goes on): two rounds and a silent entry's two timeouts. */
  const distrustMs = 2 * o.stabilizeMs + 2 * o.requestTimeoutMs
  /** Heard from lately (the least recent forgotten first). */
  const recent = new RecentIds(MAX_HEARD)
  /** Unverified entries of our list, and the source that named each (null: our own lookup). */
  const pending = new Map<string, string | null>()
  /** Entries a merge took as new, by source, until listChanged sees them. */
  const namedBy = new Map<string, string>()
  /** Per source: new entries gone dead unheard, until when it is distrusted, and for how long next time. */
  const sources = new Map<string, { silent: number; until: number; period: number }>()
  /** Ring order from us. */
  const byDistance = fromOrigin(self)
  /** The list as listChanged last saw it. */
  let listed = new Set<string>()

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

  return {
    heard(x) {
      if (pending.size > 0 && pending.has(x)) {
        // A new entry that answers takes a charge off its source (made-up ids never answer).
        const by = pending.get(x)
        if (by !== undefined && by !== null) {
          const c = sources.get(by) ?? { silent: 0, until: 0, period: distrustMs }
          c.silent = Math.max(c.silent - 1, -MAX_FRESH)
          if (!sources.has(by)) sources.set(by, c)
          remember(sources, MAX_SOURCES)
        }
        pending.delete(x)
        namedBy.delete(x)
      }
      recent.touch(x)
    },
    unverified: (x) => pending.size > 0 && pending.has(x),
    listChanged(list) {
      const inList = new Set(list)
      for (const x of pending.keys()) if (!inList.has(x)) pending.delete(x)
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
      /** The farthest node the list names that we knew (heard from): up to it, the list is taken as is. */
      let reach: string | null = null
      for (const x of list) {
        if (x === self || !between(x, last, self) || isDead(x) || out.has(x)) continue
        if (pending.has(x)) {
          if (mine.has(x)) out.add(x) // still unverified: kept, but it vouches for no cut
        } else if (mine.has(x) || recent.has(x)) {
          out.add(x)
          if (reach === null || between(reach, last, x)) reach = x
        } else if (!wary && fresh < maxFresh) {
          fresh++
          out.add(x)
          namedBy.set(x, source)
        } else bump(counters, 'stabilize.refused')
      }
      // What the list leaves out of ours is dropped, as before; but a list that names none we knew
      // (say, only made-up ids) cuts nothing.
      if (reach === null) for (const x of old) if (!isDead(x) && between(x, last, self)) out.add(x)
      return [...out].sort(byDistance)
    },
  }
}
