/**
 * A node that has left the ring says so for itself: after `leave()` every
 * request it gets is answered `err left`, and a node that gets that answer
 * takes it as gone at once (it comes over the sender's own link, so it can
 * only speak for the sender), not after two timeouts.
 */
import { describe, expect, it } from 'vitest'
import { stubChord } from './harness.ts'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const C = 'c'.repeat(40)

describe('a node that has left', () => {
  it('answers every request err left and takes no ring state', async () => {
    const s = stubChord(A)
    await s.chord.join(null)
    await s.chord.handle(B, { t: 'notify' }) // B: our predecessor and successor
    await s.chord.leave()
    s.sent.length = 0
    await s.chord.handle(C, { t: 'ping', r: 7 })
    await s.chord.handle(C, { t: 'getPred', r: 8 })
    await s.chord.handle(C, { t: 'find', r: 9, k: C })
    await s.chord.handle(C, { t: 'notify' })
    await s.chord.handle(C, { t: 'store', r: 0, recs: [], provs: [] })
    expect(s.sent).toEqual([
      [C, { t: 'err', r: 7, code: 'left' }],
      [C, { t: 'err', r: 8, code: 'left' }],
      [C, { t: 'err', r: 9, code: 'left' }],
    ])
    expect(s.chord.counters['drop.left']).toBe(5)
    // Joining again ends it.
    await s.chord.join(null)
    s.sent.length = 0
    await s.chord.handle(C, { t: 'ping', r: 10 })
    expect(s.sent).toEqual([[C, { t: 'pong', r: 10 }]])
  })

  it('is gone at once for a node it answers err left', async () => {
    const s = stubChord(A)
    await s.chord.join(null)
    await s.chord.handle(B, { t: 'notify' })
    expect(s.chord.successors()).toEqual([B])
    expect(s.chord.predecessor()).toBe(B)
    await s.chord.handle(B, { t: 'err', r: 1, code: 'left' })
    expect(s.chord.counters['peer.left']).toBe(1)
    expect(s.chord.successors()).toEqual([])
    expect(s.chord.predecessor()).toBeNull()
    // Another code (busy) is no answer, not a departure.
    await s.chord.handle(C, { t: 'notify' })
    await s.chord.handle(C, { t: 'err', r: 2, code: 'busy' })
    expect(s.chord.predecessor()).toBe(C)
  })
})
