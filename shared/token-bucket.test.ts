import { describe, expect, it } from 'vitest'
import { TokenBucket } from './token-bucket.ts'

describe('TokenBucket', () => {
  it('holds at most burst, refills at rate per second, refuses what it lacks', () => {
    const b = new TokenBucket(2, 3, 0)
    expect([b.take(1, 0), b.take(1, 0), b.take(1, 0), b.take(1, 0)]).toEqual([true, true, true, false])
    expect(b.take(1, 499)).toBe(false) // 0.998 of a token
    expect(b.take(1, 500)).toBe(true)
    expect(b.available(60_000)).toBe(3) // never more than burst
    expect(b.take(4, 60_000)).toBe(false)
    expect(b.available(60_000)).toBe(3) // a refused take keeps what it had
  })

  it('perGap: one token per gap; a gap of 0 is no limit, also within one millisecond', () => {
    const b = TokenBucket.perGap(250, 2, 1000)
    expect([b.take(1, 1000), b.take(1, 1000), b.take(1, 1000)]).toEqual([true, true, false])
    expect(b.take(1, 1250)).toBe(true)
    const free = TokenBucket.perGap(0, 2, 1000)
    for (let i = 0; i < 10; i++) expect(free.take(1, 1000)).toBe(true)
  })
})
