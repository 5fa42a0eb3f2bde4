import { describe, expect, it } from 'vitest'
import { Outbox } from './outbox.ts'

const opts = { keepMs: 1000, maxDsts: 3, maxBytes: 10_000, maxPerDst: 4 }

describe('Outbox', () => {
  it('gives back what was kept for a destination, oldest first, once', () => {
    const o = new Outbox<string>(opts)
    o.keep('a', 'a1', 10, 0)
    o.keep('b', 'b1', 10, 0)
    o.keep('a', 'a2', 10, 1)
    expect(o.take('a', 2)).toEqual(['a1', 'a2'])
    expect(o.take('a', 2)).toEqual([])
    expect(o.size).toEqual({ dsts: 1, entries: 1, bytes: 10 + 64 })
  })

  it('forgets entries older than keepMs, and gives their bytes back', () => {
    const o = new Outbox<string>(opts)
    o.keep('a', 'old', 100, 0)
    o.keep('a', 'new', 100, 900)
    expect(o.take('a', 1500)).toEqual(['new'])
    o.keep('b', 'x', 100, 0)
    o.prune(1000)
    expect(o.size).toEqual({ dsts: 0, entries: 0, bytes: 0 })
  })

  it('stays within its bounds in destinations, entries per destination and bytes', () => {
    const o = new Outbox<number>(opts)
    // Per destination: the newest maxPerDst entries.
    for (let i = 0; i < 100; i++) o.keep(`d${i % 3}`, i, 500, i)
    expect(o.size).toEqual({ dsts: 3, entries: 12, bytes: 12 * 564 })
    expect(o.take('d1', 100)).toEqual([88, 91, 94, 97])
    // Destinations: the least recently used go first.
    for (const d of ['x', 'y', 'z', 'w']) o.keep(d, 0, 10, 100)
    expect(o.size.dsts).toBe(3)
    expect(o.take('x', 100)).toEqual([])
    expect(o.take('w', 100)).toEqual([0])
    // Bytes: big entries push the oldest out, whatever their destination.
    for (let i = 0; i < 10; i++) o.keep(`b${i}`, i, 3000, 100)
    expect(o.size.bytes).toBeLessThanOrEqual(10_000)
    expect(o.take('b9', 100)).toEqual([9])
    // Bytes are accounted exactly: everything taken leaves zero.
    for (const d of ['x', 'y', 'z', 'w', 'd0', 'd2', ...Array.from({ length: 10 }, (_, i) => `b${i}`)])
      o.take(d, 100)
    expect(o.size).toEqual({ dsts: 0, entries: 0, bytes: 0 })
  })

  it('gives back only the entries picked, and keeps the rest with their bytes', () => {
    const o = new Outbox<string>(opts)
    o.keep('a', 'a1', 10, 0)
    o.keep('a', 'a2', 20, 0)
    o.keep('a', 'a3', 30, 0)
    expect(o.take('a', 1, (x) => x === 'a2')).toEqual(['a2'])
    expect(o.size).toEqual({ dsts: 1, entries: 2, bytes: 10 + 30 + 2 * 64 })
    expect(o.take('a', 1, () => false)).toEqual([])
    expect(o.take('a', 1)).toEqual(['a1', 'a3'])
    expect(o.size).toEqual({ dsts: 0, entries: 0, bytes: 0 })
  })

  it('refuses an entry larger than the whole budget', () => {
    const o = new Outbox<string>(opts)
    o.keep('a', 'huge', 20_000, 0)
    expect(o.size.entries).toBe(0)
  })
})
