import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { EventHeap } from './heap.ts'

describe('EventHeap', () => {
  it('pops in (time, seq) order, pushes and pops interleaved, past its first arrays', () => {
    fc.assert(
      fc.property(
        // Four pushes to a pop, up to 3,000 operations (size 'max': fast-check's default stops at
        // 10), so the heap grows past its first 1,024 entries.
        fc.array(
          fc.oneof(
            { arbitrary: fc.integer({ min: 0, max: 50 }), weight: 4 },
            { arbitrary: fc.constant(-1), weight: 1 },
          ),
          { minLength: 2000, maxLength: 3000, size: 'max' },
        ),
        (ops) => {
          const h = new EventHeap<{ time: number; seq: number }>()
          // Kept in (time, seq) order: a push goes after every entry not later than it.
          const model: { time: number; seq: number }[] = []
          let seq = 0
          let most = 0
          for (const op of ops) {
            if (op < 0) expect(h.pop()).toBe(model.shift())
            else {
              const e = { time: op / 4, seq: seq++ }
              h.push(e)
              const at = model.findIndex((x) => x.time > e.time)
              model.splice(at < 0 ? model.length : at, 0, e)
            }
            expect(h.size).toBe(model.length)
            most = Math.max(most, model.length)
          }
          expect(most).toBeGreaterThan(1024)
          for (const e of model) expect(h.pop()).toBe(e)
          expect(h.pop()).toBeUndefined()
        },
      ),
      { numRuns: 10 },
    )
  })
})
