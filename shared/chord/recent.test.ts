import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { RecentIds } from './recent.ts'

/** What RecentIds stands for: a Set moving an id to its end on each touch, dropping its first past the cap. */
function reference(cap: number) {
  const s = new Set<string>()
  return {
    s,
    touch(x: string) {
      s.delete(x)
      s.add(x)
      if (s.size > cap) s.delete(s.keys().next().value as string)
    },
  }
}

describe('RecentIds', () => {
  it('holds what a Set moved on each touch and capped holds', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        // Few distinct ids, so that touches repeat, collide in the index and evict.
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 300 }),
        (cap, ops) => {
          const r = new RecentIds(cap)
          const ref = reference(cap)
          const ids = Array.from({ length: 41 }, (_, i) => `id${i}`)
          for (const k of ops) {
            r.touch(ids[k] as string)
            ref.touch(ids[k] as string)
            expect(r.size).toBe(ref.s.size)
          }
          for (const x of ids) expect(r.has(x)).toBe(ref.s.has(x))
        },
      ),
    )
  })

  it('keeps the last 1,024 of many node ids', () => {
    const r = new RecentIds(1024)
    const ref = reference(1024)
    let seed = 1
    const rand = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed
    }
    const ids = Array.from({ length: 3000 }, (_, i) => i.toString(16).padStart(40, '0'))
    for (let i = 0; i < 50_000; i++) {
      // Mostly a few hundred hot ids, now and then any of them.
      const x = ids[rand() % (i % 7 === 0 ? 3000 : 300)] as string
      r.touch(x)
      ref.touch(x)
    }
    expect(r.size).toBe(1024)
    for (const x of ids) expect(r.has(x)).toBe(ref.s.has(x))
  })
})
