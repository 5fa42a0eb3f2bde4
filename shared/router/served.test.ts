import { describe, expect, it } from 'vitest'
import type { AnswerMsg } from './messages.ts'
import { ServedMemory, type ServedOptions } from './served.ts'

const opts: ServedOptions = {
  keepMs: 1000,
  maxEntries: 8,
  maxPerSource: 4,
  maxBytes: 1000,
  maxAnswerBytes: 400,
  resendGapMs: 100,
  maxResends: 3,
}
const res = (id: number): AnswerMsg => ({ t: 'res', id, data: id })

describe('ServedMemory', () => {
  it('remembers a request by source and id, and by its envelope signature for that source only', () => {
    const m = new ServedMemory(opts)
    const e = m.start('s1', 7, 'sig7', 0)
    expect(m.get('s1', 7)).toBe(e)
    expect(m.get('s2', 7)).toBeUndefined()
    expect(m.bySignature('s1', 'sig7')).toBe(e)
    // Another source naming the same signature (a copy with a changed src) finds nothing.
    expect(m.bySignature('s2', 'sig7')).toBeUndefined()
  })

  it('keeps an answer for resends: at most maxResends, resendGapMs apart', () => {
    const m = new ServedMemory(opts)
    const e = m.start('s', 1, undefined, 0)
    expect(m.mayResend(e, 0)).toBe(false) // still running
    m.finish(e, res(1), 10)
    expect(m.mayResend(e, 10)).toBe(true)
    expect(m.mayResend(e, 50)).toBe(false)
    expect(m.mayResend(e, 110)).toBe(true)
    expect(m.mayResend(e, 210)).toBe(true)
    expect(m.mayResend(e, 900)).toBe(false)
  })

  it('forgets after keepMs; a flooding source pushes out only its own; the whole stays within maxEntries', () => {
    const m = new ServedMemory(opts)
    m.start('honest', 1, undefined, 0)
    for (let i = 0; i < 100; i++) m.start('flood', i, `f${i}`, 1)
    expect(m.get('honest', 1)).toBeDefined()
    expect(m.size.entries).toBe(1 + opts.maxPerSource)
    expect(m.get('flood', 99)).toBeDefined()
    expect(m.get('flood', 95)).toBeUndefined()
    expect(m.bySignature('flood', 'f95')).toBeUndefined()
    for (let s = 0; s < 20; s++) m.start(`s${s}`, 0, undefined, 2)
    expect(m.size.entries).toBe(opts.maxEntries)
    m.prune(1002)
    expect(m.size).toEqual({ entries: 0, sources: 0, bytes: 0 })
  })

  it('keeps answers within maxBytes (the oldest answers go; their entries stay) and none over maxAnswerBytes', () => {
    const m = new ServedMemory(opts)
    const big = m.start('a', 1, undefined, 0)
    m.finish(big, res(1), 401)
    expect(big.done).toBe(true)
    expect(big.answer).toBeUndefined()
    const es = [2, 3, 4].map((i) => {
      const e = m.start(`b${i}`, i, undefined, 0)
      m.finish(e, res(i), 400)
      return e
    })
    expect(m.size.bytes).toBe(800)
    expect(es[0]?.answer).toBeUndefined()
    expect(es[0]?.done).toBe(true)
    expect(m.get('b2', 2)).toBe(es[0])
    expect(es[2]?.answer).toEqual(res(4))
  })
})
