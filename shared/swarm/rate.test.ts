import { describe, expect, it } from 'vitest'
import { TokenBucket } from '../token-bucket.ts'
import { RateMeter } from './rate.ts'

describe('rate helpers', () => {
  it('a token bucket allows a burst, then perSec, refilled by the clock it is given', () => {
    const b = new TokenBucket(10, 5, 0)
    let ok = 0
    for (let i = 0; i < 20; i++) if (b.take(1, 0)) ok++
    expect(ok).toBe(5)
    expect(b.take(1, 50)).toBe(false)
    expect(b.take(1, 100)).toBe(true)
    expect(b.full(100)).toBe(false)
    expect(b.full(10_000)).toBe(true)
  })

  it('a rate meter gives bytes per second over its window', () => {
    const m = new RateMeter(5_000, 0)
    for (let t = 0; t < 10_000; t += 100) m.add(t, 1_000) // 10 kB/s
    expect(m.rate(10_000)).toBeGreaterThan(8_000)
    expect(m.rate(10_000)).toBeLessThanOrEqual(10_000)
    expect(m.rate(30_000)).toBe(0)
    const early = new RateMeter(5_000, 0)
    early.add(500, 5_000)
    expect(early.rate(1_000)).toBe(5_000) // 5 kB in the first second
  })
})
