import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { EventHeap } from './heap.ts'

describe('EventHeap', () => {
  it('pops in (time, seq) order, pushes and pops interleaved, past its first arrays', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 50 }), fc.constant(-1)), { maxLength: 3000 }),
        (ops) => {
          const h = new EventHeap<{ time: number; seq: number }>()
          const model: { time: number; seq: number }[] = []
          let seq = 0
          const order = (x: { time: number; seq: number }, y: { time: number; seq: number }) =>
            x.time - y.time || x.seq - y.seq
          for (const op of ops) {
            if (op < 0) {
              model.sort(order)
              expect(h.pop()).toBe(model.shift())
            } else {
              const e = { time: op / 4, seq: seq++ }
              h.push(e)
              model.push(e)
            }
            expect(h.size).toBe(model.length)
          }
          model.sort(order)
          for (const e of model) expect(h.pop()).toBe(e)
          expect(h.pop()).toBeUndefined()
        },
      ),
      { numRuns: 30 },
    )
  })
})
