import { describe, expect, it } from 'vitest'
import { mulberry32 } from '../sim/prng.ts'
import { Bitfield } from './bitfield.ts'
import { pickPiece } from './picker.ts'

function setup(n: number, haveIdx: number[], theirsIdx: number[]) {
  const have = new Bitfield(n)
  for (const i of haveIdx) have.set(i)
  const theirs = new Bitfield(n)
  for (const i of theirsIdx) theirs.set(i)
  return { have, theirs, avail: new Uint16Array(n), requested: new Uint8Array(n) }
}

describe('pickPiece', () => {
  it('picks the rarest piece we lack that the peer has and nobody was asked for', () => {
    const s = setup(6, [0], [0, 1, 2, 3, 4])
    s.avail.set([5, 3, 1, 1, 2, 0])
    s.requested[2] = 1
    const pick = pickPiece({ ...s, skip: () => false, endgame: false, endgameMax: 3, random: mulberry32(1) })
    expect(pick).toBe(3) // 2 is rarer-equal but requested; 5 is rarest but the peer lacks it; 0 we have
  })

  it('breaks ties at random, each tie about equally often', () => {
    const s = setup(4, [], [0, 1, 2, 3])
    s.avail.set([2, 2, 2, 9])
    const rnd = mulberry32(7)
    const counts = [0, 0, 0, 0]
    for (let k = 0; k < 3000; k++)
      (counts[pickPiece({ ...s, skip: () => false, endgame: false, endgameMax: 3, random: rnd })] as number)++
    expect(counts[3]).toBe(0)
    for (const c of counts.slice(0, 3)) expect(c).toBeGreaterThan(850)
  })

  it('honours skip, and returns -1 when nothing fits outside the endgame', () => {
    const s = setup(3, [], [0, 1, 2])
    s.requested.set([1, 1, 0])
    expect(
      pickPiece({ ...s, skip: (i) => i === 2, endgame: false, endgameMax: 3, random: Math.random }),
    ).toBe(-1)
  })

  it('in the endgame asks again for the piece asked of the fewest peers, up to endgameMax', () => {
    const s = setup(4, [0], [0, 1, 2, 3])
    s.requested.set([0, 2, 1, 3])
    const input = { ...s, endgame: true, endgameMax: 3, random: mulberry32(3) }
    expect(pickPiece({ ...input, skip: () => false })).toBe(2)
    expect(pickPiece({ ...input, skip: (i) => i === 2 })).toBe(1)
    expect(pickPiece({ ...input, skip: (i) => i === 2 || i === 1 })).toBe(-1) // 3 is at endgameMax
  })
})
