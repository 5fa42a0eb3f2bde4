/**
 * Topic multicast, one node at a time, with hostile input: the root's
 * placement (root.ts) and what a tree node does with PUB, ATTACH and JOIN
 * from peers that break the rules.
 */
import { describe, expect, it } from 'vitest'
import type { TopicMsg } from './messages.ts'
import { TopicTree } from './root.ts'
import { signedPub, world } from './test-world.ts'
import { INJECT_METHOD, JOIN_METHOD } from './topics.ts'
import { DEFAULTS } from './types.ts'

const id = (n: number) => n.toString(16).padStart(40, '0')
const ROOT = id(1)

describe('TopicTree (the root)', () => {
  it('places newcomers under the shallowest node with room, the root first', () => {
    const t = new TopicTree(ROOT, 2, 100)
    const parents = Array.from({ length: 6 }, (_, i) => t.join(id(10 + i), null, [], 0))
    expect(parents.slice(0, 2)).toEqual([ROOT, ROOT])
    // Then under the two depth-1 members, two each.
    expect(new Set(parents.slice(2))).toEqual(new Set([id(10), id(11)]))
    expect(Math.max(...Array.from({ length: 6 }, (_, i) => t.depth(id(10 + i))))).toBe(2)
  })

  it('keeps a refreshing member under its parent, but never under its own subtree (a loop)', () => {
    const t = new TopicTree(ROOT, 4, 100)
    t.join(id(10), null, [], 0) // under the root
    expect(t.join(id(11), id(10), [], 0)).toBe(id(10)) // a refresh naming 10: kept
    // 10 now claims 11 as its parent: 11 is under 10, so that is a loop; 10 gets a real place.
    const p = t.join(id(10), id(11), [], 1)
    expect(p).not.toBe(id(11))
    expect(t.depth(id(10))).toBeLessThan(Number.POSITIVE_INFINITY)
    expect(t.depth(id(11))).toBeLessThan(Number.POSITIVE_INFINITY)
  })

  it('avoids parents that refused, is bounded, and forgets members that stop refreshing', () => {
    const t = new TopicTree(ROOT, 4, 3)
    // Avoiding the root when nobody else is there: the root it is.
    expect(t.join(id(10), null, [ROOT], 0)).toBe(ROOT)
    t.join(id(11), null, [], 0)
    t.join(id(12), null, [], 5)
    expect(t.join(id(13), null, [], 5)).toBeNull() // full
    t.expire(1)
    expect(t.members.has(id(11))).toBe(false)
    expect(t.members.has(id(12))).toBe(true)
    expect(t.join(id(13), null, [], 6)).not.toBeNull()
  })
})

describe('topic tree nodes', () => {
  it('builds a tree and delivers to members only; a PUB from a node outside the tree is dropped', async () => {
    const w = world(4, { owner: ROOT })
    for (const k of [id(2), id(3)]) w.node(k).join('room')
    await w.tickAll()
    await w.flush()
    expect(w.node(id(2)).info()[0]?.state).toBe('attached')
    expect(w.node(id(3)).info()[0]?.state).toBe('attached')
    await w.node(id(2)).publish('room', 'hello')
    await w.flush()
    expect(w.delivered.get(id(3))).toEqual(['hello'])
    expect(w.delivered.get(id(1))).toEqual([]) // the root forwards; it does not subscribe
    // Node 4 is nobody's tree neighbour: its PUB (even a genuine one) is not taken.
    await w.node(id(4)).publish('room', 'from outside') // goes to the root as INJECT: accepted
    await w.flush()
    expect(w.delivered.get(id(3))).toEqual(['hello', 'from outside'])
    expect(w.node(ROOT).counters.injected).toBe(1)
    await w.node(id(3)).handle(id(4), await signedPub(id(4), 'room', 'sneaky', w.now()))
    expect(w.node(id(3)).counters['drop.not-tree']).toBe(1)
    expect(w.delivered.get(id(3))).toHaveLength(2)
  })

  it('drops a forged, replayed or cross-protocol PUB from its own parent, and does not forward it', async () => {
    const w = world(3, { owner: ROOT })
    w.node(id(2)).join('room')
    w.node(id(3)).join('room')
    await w.tickAll()
    await w.flush()
    const parentOf3 = w.node(id(3)).info()[0]?.parent as string
    const t3 = w.node(id(3))
    const genuine = await signedPub(id(1), 'room', 'real', w.now())
    if (genuine.type !== 'pub') throw new Error('unreachable')
    // Altered payload, same signature.
    const forged = { ...genuine, payload: genuine.payload.slice() }
    const last = forged.payload.length - 1
    forged.payload[last] = (forged.payload[last] as number) ^ 1
    await t3.handle(parentOf3, forged)
    expect((t3.counters['drop.badSignature'] ?? 0) + (t3.counters['drop.badPayload'] ?? 0)).toBe(1)
    expect(w.delivered.get(id(3))).toEqual([])
    await t3.handle(parentOf3, genuine)
    await t3.handle(parentOf3, genuine)
    expect(w.delivered.get(id(3))).toEqual(['real'])
    expect(t3.counters.duplicate).toBe(1)
    // A mesh broadcast's body (topic without the publication mark) is not a publication.
    await t3.handle(parentOf3, await signedPub(id(1), 'room', 'x', w.now(), 'room'))
    expect(t3.counters['drop.wrongTopic']).toBe(1)
    // Too old for the replay window.
    await t3.handle(parentOf3, await signedPub(id(1), 'room', 'old', w.now() - 200_000))
    expect(t3.counters['drop.tooOld']).toBe(1)
    expect(w.delivered.get(id(3))).toEqual(['real'])
  })

  it('bounds ATTACH: refused outside the tree and past its room; a JOIN to a node that is not the root fails', async () => {
    const w = world(2, { owner: ROOT })
    const member = w.node(id(2))
    // Not in the tree of 'room': every ATTACH is refused.
    await member.handle(id(50), { type: 'attach', topic: 'room' })
    expect(w.queue.pop()?.[2]).toEqual({ type: 'attached', topic: 'room', ok: false })
    // The root adopts at most fanout + 2 children per topic.
    const root = w.node(ROOT)
    for (let i = 0; i < 20; i++) await root.handle(id(100 + i), { type: 'attach', topic: 'room' })
    const oks = w.queue.filter(([, , m]) => m.type === 'attached' && m.ok).length
    expect(oks).toBe(6)
    expect(root.counters['attach.refused']).toBe(14)
    // JOIN at a node that does not own the key.
    const join = w.handlers.get(id(2))?.get(JOIN_METHOD)
    await expect(join?.({ t: 'room', p: null, a: [] }, { from: id(9) })).rejects.toThrow(/not the root/)
    const rootJoin = w.handlers.get(ROOT)?.get(JOIN_METHOD)
    await expect(rootJoin?.({ t: 5, p: null, a: [] }, { from: id(9) })).rejects.toThrow(/malformed/)
    const inject = w.handlers.get(ROOT)?.get(INJECT_METHOD)
    await expect(
      inject?.({ t: 'room', p: new Uint8Array(3), s: new Uint8Array(64) }, { from: id(9) }),
    ).rejects.toThrow()
  })

  it('a tree the root keeps for nobody is let go: junk topics cannot hold the rooted bound for good', async () => {
    const w = world(1, { owner: ROOT, options: { maxRooted: 4 } })
    const join = w.handlers.get(ROOT)?.get(JOIN_METHOD)
    // One peer JOINs four topics it made up (the first one ATTACHes too, then goes), and never refreshes.
    for (let i = 0; i < 4; i++) await join?.({ t: `junk-${i}`, p: null, a: [] }, { from: id(9) })
    await w.node(ROOT).handle(id(9), { type: 'attach', topic: 'junk-0' })
    await expect(join?.({ t: 'real', p: null, a: [] }, { from: id(10) })).rejects.toThrow(/too many topics/)
    w.node(ROOT).linkDown(id(9))
    // Its entries expire after three missed refreshes; then the trees hold nothing.
    w.advance(3 * 30_000 + 1)
    await w.tickAll()
    expect(w.node(ROOT).info()).toEqual([])
    await expect(join?.({ t: 'real', p: null, a: [] }, { from: id(10) })).resolves.toMatchObject({ p: ROOT })
  })

  it('one peer holds at most maxChildTopics of our child slots: its ATTACHes past that are refused, others still get in', async () => {
    const w = world(1, { owner: ROOT })
    const root = w.node(ROOT)
    const max = DEFAULTS.maxChildTopics
    for (let i = 0; i < max + 8; i++) await root.handle(id(9), { type: 'attach', topic: `junk-${i}` })
    const answers = w.queue.splice(0).map(([, , m]) => m.type === 'attached' && m.ok)
    expect(answers.filter((ok) => ok)).toHaveLength(max)
    expect(root.counters['attach.refused']).toBe(8)
    await root.handle(id(10), { type: 'attach', topic: 'junk-0' })
    expect(w.queue.pop()?.[2]).toEqual({ type: 'attached', topic: 'junk-0', ok: true })
  })

  it('a newcomer gets what the topic carried in the last seconds (a subscribe then an immediate publish is not lost), once', async () => {
    const w = world(4, { owner: ROOT })
    w.node(id(2)).join('room')
    await w.tickAll()
    await w.flush()
    await w.node(id(2)).publish('room', 'early')
    await w.flush()
    w.node(id(3)).join('room')
    await w.tickAll()
    await w.flush()
    expect(w.delivered.get(id(3))).toEqual(['early'])
    // Thirty-one seconds on, a newcomer is not handed it any more.
    w.advance(31_000)
    w.node(id(4)).join('room')
    await w.tickAll()
    await w.flush()
    expect(w.delivered.get(id(4))).toEqual([])
    expect(w.delivered.get(id(3))).toEqual(['early'])
  })

  it('a parent sends a child it adopts its digest at once (what crossed the tree between its JOIN and its ATTACH), and the publication when pulled', async () => {
    const w = world(3, { owner: ROOT })
    w.node(id(2)).join('room')
    await w.tickAll()
    await w.flush()
    await w.node(ROOT).publish('room', 'crossed')
    await w.flush()
    expect(w.delivered.get(id(2))).toEqual(['crossed'])
    // A child (already placed by the root) attaches to node 2 now: 'attached', then the digest.
    await w.node(id(2)).handle(id(9), { type: 'attach', topic: 'room' })
    const toChild = w.queue.filter(([, to]) => to === id(9)).map(([, , m]) => m)
    expect(toChild.map((m) => m.type)).toEqual(['attached', 'ihave'])
    const digest = toChild[1] as TopicMsg & { type: 'ihave' }
    expect(digest.ids.length).toBe(20)
    // It pulls: node 2 answers with the publication.
    w.queue.length = 0
    await w.node(id(2)).handle(id(9), { type: 'iwant', topic: 'room', ids: digest.ids })
    expect(w.queue.filter(([, to]) => to === id(9)).map(([, , m]) => m.type)).toEqual(['pub'])
    // Thirty-one seconds on, a new child gets only the answer.
    w.queue.length = 0
    w.advance(31_000)
    await w.node(id(2)).handle(id(8), { type: 'attach', topic: 'room' })
    expect(w.queue.filter(([, to]) => to === id(8)).map(([, , m]) => m.type)).toEqual(['attached'])
  })

  it('a child whose parent link closes joins again and is placed anew', async () => {
    const w = world(4, { owner: ROOT })
    for (const k of [id(2), id(3), id(4)]) w.node(k).join('room')
    await w.tickAll()
    await w.flush()
    const child = w.node(id(3))
    const parent = child.info()[0]?.parent as string
    child.linkDown(parent)
    expect(child.info()[0]?.state).toBe('joining')
    await w.tickAll()
    await w.flush()
    expect(child.info()[0]?.state).toBe('attached')
    expect(child.counters['parent.lost']).toBe(1)
  })
})
