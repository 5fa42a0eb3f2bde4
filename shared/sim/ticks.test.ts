/** The tick FIFO (ticks.ts) pops in exactly the (time, seq) order a heap of the same ticks would. */
import { describe, expect, it } from 'vitest'
import { mulberry32 } from './prng.ts'
import { type TickEvent, TickQueue, tickBefore } from './ticks.ts'

describe('TickQueue', () => {
  it('with nodes ticking every tickMs, joining at random phases and leaving, pops in (time, seq) order', () => {
    const rng = mulberry32(42)
    const tickMs = 100
    const q = new TickQueue()
    let seq = 0
    let now = 0
    const live = new Set<string>()
    const join = (node: string) => {
      live.add(node)
      q.insert({ time: now + Math.floor(rng() * tickMs), seq: seq++, type: 'tick', node, epoch: 1 })
    }
    for (let i = 0; i < 50; i++) join(`n${i}`)
    let last: TickEvent | undefined
    let popped = 0
    for (let step = 0; step < 20_000; step++) {
      const e = q.shift()
      if (!e) break
      popped++
      if (last) expect(tickBefore(last, e)).toBe(true)
      expect(e.time).toBeGreaterThanOrEqual(now)
      now = e.time
      last = { ...e }
      if (!live.has(e.node)) continue // a crashed instance's tick: dropped, not scheduled again
      if (rng() < 0.002) {
        live.delete(e.node) // crash
        continue
      }
      e.time += tickMs
      e.seq = seq++
      q.append(e)
      if (rng() < 0.002) join(`n${seq}`) // a new instance, at a random phase
    }
    expect(popped).toBe(20_000)
    expect(q.size).toBe(live.size)
  })
})
