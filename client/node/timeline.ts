/**
 * Join phases as User Timing marks (`weft:<phase>`), for benchmarks and
 * developer tools: `npm run bench -- browser` reports the time from the
 * joinOverlay call to each (joinPhases). Each phase is marked the first
 * time only, so a page holds at most one mark per phase name (bounded,
 * however long the node runs); a second node in the same page marks
 * nothing new. No-op where User Timing is missing.
 */

type Marks = Pick<Performance, 'mark' | 'getEntriesByName'>

/** Mark `phase` (once per page). */
export function markPhase(phase: string): void {
  const p = (globalThis as { performance?: Partial<Marks> }).performance
  if (typeof p?.mark !== 'function' || typeof p.getEntriesByName !== 'function') return
  const name = `weft:${phase}`
  try {
    if (p.getEntriesByName(name, 'mark').length === 0) p.mark(name)
  } catch {}
}
