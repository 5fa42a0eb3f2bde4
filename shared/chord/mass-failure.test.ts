/**
 * A node that has lost every successor knows nothing past its own range: it
 * must say so (a `closer` answer, counted as `find.noSuccessor`), not claim
 * the position. Before this, such a node answered "found: me" for any key
 * until the ring repaired itself, and lookups through it returned a wrong
 * node (issue 15, item 5). The whole ring under a simultaneous crash with
 * its maintenance frozen is measured in chord-sim.test.ts and sim-chord.
 */
import { describe, expect, it } from 'vitest'
import { stubChord } from './harness.ts'
import type { ChordMsg } from './messages.ts'
import { createRoutingTable } from './routing-table.ts'

const id = (b: number) => b.toString(16).padStart(2, '0').repeat(20)
const SELF = id(0x40)
const OPTS = { successors: 4, maxSuccessors: 32, replicas: 3 }

function table(dead: Set<string>) {
  return createRoutingTable(SELF, OPTS, {
    isDead: (x) => dead.has(x),
    onPredecessorJoined: () => {},
    onReplicaSetChanged: () => {},
  })
}

describe('a node whose successors all died', () => {
  it('answers only for its own range, and routes on rather than claiming any other position', () => {
    const dead = new Set<string>()
    const t = table(dead)
    // Alone in a ring it created: it owns every position.
    expect(t.answerFor(id(0x90))?.s).toEqual([SELF])
    t.setPredecessor(id(0x20))
    t.setSuccessors([id(0x50), id(0x60), id(0x70), id(0x80)])
    t.setFinger(150, id(0xc0))
    expect(t.answerFor(id(0x55))?.s[0]).toBe(id(0x60))
    for (const x of t.successors()) {
      dead.add(x)
      t.forget(x)
    }
    expect(t.successors()).toEqual([])
    // Its own range (pred, self] is still its own.
    expect(t.answerFor(id(0x30))).toEqual({ p: id(0x20), s: [SELF] })
    // Past itself it does not know: no answer, where it used to be "found: me".
    expect(t.answerFor(id(0x55))).toBeNull()
    expect(t.answerFor(id(0x90))).toBeNull()
    // Routing by node id goes on through a finger instead of stopping here.
    expect(t.nextHop(id(0xd0))).toBe(id(0xc0))
    expect(t.nextHop(id(0x30))).toBeNull()
  })

  it('answers a find past its range with `closer`, and counts it', async () => {
    const s = stubChord(SELF, { successors: 4, requestTimeoutMs: 100 })
    const peer = id(0x50)
    await s.chord.join(null)
    // A node notifies us and becomes our successor and predecessor (a ring of two).
    await s.chord.handle(peer, { t: 'notify' })
    expect(s.chord.successors()).toEqual([peer])
    // It crashes. With our upkeep paused (it would find us alone and start a ring of our own), a
    // lookup's two unanswered requests mark it dead.
    s.chord.pauseMaintenance(true)
    const lookup = s.chord.lookup(id(0x45)).catch(() => undefined)
    for (let k = 0; k < 40; k++) await s.advance(50)
    await lookup
    expect(s.chord.successors()).toEqual([])
    s.sent.length = 0
    await s.chord.handle(id(0x10), { t: 'find', r: 7, k: id(0x45) } as ChordMsg)
    const answer = s.sent.find(([to]) => to === id(0x10))?.[1]
    expect(answer?.t).toBe('closer')
    expect(s.chord.counters['find.noSuccessor']).toBe(1)
  })
})
