import { describe, expect, it } from 'vitest'
import { compareHlc, compareVersion, createHlcClock, type Hlc } from './hlc.ts'

describe('hybrid logical clock', () => {
  it('is monotonic even when physical time stands still or goes back', () => {
    let t = 1000
    const c = createHlcClock(() => t)
    const a = c.now()
    const b = c.now()
    t = 900
    const d = c.now()
    expect(compareHlc(a, b)).toBe(-1)
    expect(compareHlc(b, d)).toBe(-1)
  })

  it('orders after an observed remote timestamp', () => {
    const c = createHlcClock(() => 1000)
    expect(c.observe([5000, 3])).toBe(true)
    const next = c.now()
    expect(compareHlc(next, [5000, 3])).toBe(1)
  })

  it('refuses remote timestamps beyond the skew tolerance', () => {
    const c = createHlcClock(() => 1000, 500)
    expect(c.observe([1600, 0])).toBe(false)
    expect(c.last()).toEqual([0, 0])
    expect(c.observe([1400, 0])).toBe(true)
    expect(c.observe([1, 2, 3] as unknown as Hlc)).toBe(false)
  })

  it('breaks ties by author id', () => {
    expect(compareVersion({ hlc: [1, 0], author: 'a' }, { hlc: [1, 0], author: 'b' })).toBe(-1)
    expect(compareVersion({ hlc: [2, 0], author: 'a' }, { hlc: [1, 9], author: 'b' })).toBe(1)
  })
})
