import { describe, expect, it } from 'vitest'
import { sha256 } from '../bytes.ts'
import { generateIdentity } from './keys.ts'
import { checkPuzzleBits, DEFAULT_PUZZLE_BITS, MAX_PUZZLE_BITS, meetsPuzzle, puzzleBits } from './puzzle.ts'

describe('identity puzzle', () => {
  it('counts the leading zero bits of the domain-separated hash (same as WebCrypto SHA-256)', async () => {
    for (let i = 0; i < 64; i++) {
      const pk = crypto.getRandomValues(new Uint8Array(32))
      const h = await sha256(new Uint8Array([...new TextEncoder().encode('weft-id-puzzle/1'), ...pk]))
      const bits = [...h].map((b) => b.toString(2).padStart(8, '0')).join('')
      expect(puzzleBits(pk)).toBe(bits.indexOf('1') === -1 ? 256 : bits.indexOf('1'))
    }
  })

  it('new identities meet the default difficulty, and what was asked for', async () => {
    const a = await generateIdentity()
    expect(puzzleBits(a.publicKey)).toBeGreaterThanOrEqual(DEFAULT_PUZZLE_BITS)
    const b = await generateIdentity({ puzzleBits: 4 })
    expect(meetsPuzzle(b.publicKey, 4)).toBe(true)
  })

  it('refuses keys below the difficulty; 0 accepts every key', () => {
    // About half of random keys have a 1 as their first puzzle bit: find one, and one with 0.
    let weak: Uint8Array | undefined
    for (let i = 0; !weak && i < 1000; i++) {
      const pk = crypto.getRandomValues(new Uint8Array(32))
      if (puzzleBits(pk) === 0) weak = pk
    }
    if (!weak) throw new Error('no key with 0 puzzle bits in 1,000 random ones')
    expect(meetsPuzzle(weak, 1)).toBe(false)
    expect(meetsPuzzle(weak, DEFAULT_PUZZLE_BITS)).toBe(false)
    expect(meetsPuzzle(weak, 0)).toBe(true)
  })

  it('puzzle positions are not ring positions: ids of puzzle keys stay spread', async () => {
    const ids = await Promise.all(Array.from({ length: 16 }, () => generateIdentity({ puzzleBits: 6 })))
    const firstNibbles = new Set(ids.map((i) => i.id[0]))
    expect(firstNibbles.size).toBeGreaterThan(4)
  })

  it('checks option values', () => {
    expect(checkPuzzleBits(0)).toBe(0)
    expect(checkPuzzleBits(MAX_PUZZLE_BITS)).toBe(MAX_PUZZLE_BITS)
    for (const bad of [-1, 1.5, MAX_PUZZLE_BITS + 1, '10', null])
      expect(() => checkPuzzleBits(bad)).toThrow(TypeError)
  })
})
