/**
 * Which piece to ask a peer for next.
 *
 * Rarest first: among the pieces we lack, that this peer has, and that no
 * one has been asked for, the one the fewest of our peers have; ties broken
 * at random (so peers starting together ask for different pieces). Pieces
 * spread evenly and no piece stays with one holder, which is what lets the
 * swarm outlive its seeder.
 *
 * Endgame: once every piece we lack is asked of someone, a peer with a free
 * request slot may ask again for one already asked of others for a while
 * (`ripe`: a second copy of a piece that will come anyway is waste), the
 * fewest asked first, at most `endgameMax` peers per piece, so the last
 * pieces do not wait on the slowest peer; the first copy to arrive cancels
 * the rest.
 */
import type { Bitfield } from './bitfield.ts'

export interface PickInput {
  /** Our have-map. */
  have: Bitfield
  /** The peer's have-map. */
  theirs: Bitfield
  /** Per piece: connected peers that have it. */
  avail: Uint16Array
  /** Per piece: peers it is requested from now. */
  requested: Uint8Array
  /** Pieces not to pick (asked of this peer already, being stored). */
  skip: (i: number) => boolean
  /** Every piece we lack is requested: duplicates allowed. */
  endgame: boolean
  /** Most peers one piece is asked of in the endgame. */
  endgameMax: number
  /** In the endgame: has this piece waited long enough to be asked again? @default always */
  ripe?: (i: number) => boolean
  random: () => number
}

/** The piece to request, or -1. */
export function pickPiece(p: PickInput): number {
  const { have, theirs, avail, requested } = p
  let best = -1
  let bestAvail = Number.POSITIVE_INFINITY
  let ties = 0
  const n = have.size
  for (let i = 0; i < n; i++) {
    if (requested[i] !== 0 || have.has(i) || !theirs.has(i) || p.skip(i)) continue
    const a = avail[i] as number
    if (a < bestAvail) {
      best = i
      bestAvail = a
      ties = 1
    } else if (a === bestAvail && p.random() * ++ties < 1) best = i // reservoir: each tie equally likely
  }
  if (best !== -1 || !p.endgame) return best
  let bestReq = Number.POSITIVE_INFINITY
  ties = 0
  for (let i = 0; i < n; i++) {
    const r = requested[i] as number
    if (r === 0 || r >= p.endgameMax || have.has(i) || !theirs.has(i) || p.skip(i)) continue
    if (p.ripe && !p.ripe(i)) continue
    if (r < bestReq) {
      best = i
      bestReq = r
      ties = 1
    } else if (r === bestReq && p.random() * ++ties < 1) best = i
  }
  return best
}
