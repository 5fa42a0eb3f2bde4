/**
 * Topic repair (repair.ts): a tree node that missed a publication gets it by
 * digest and pull, at most once; a quiet topic, or an intact tree, sends no
 * repair frame; hostile digests and pulls are bounded and counted.
 */
import { describe, expect, it } from 'vitest'
import { fromHex } from '../bytes.ts'
import { ID_BYTES, MAX_DIGEST_IDS, type TopicMsg } from './messages.ts'
import { PULL_IDS_PER_S } from './repair.ts'
import { id, signedPub, world } from './test-world.ts'
import { JOIN_METHOD } from './topics.ts'

const ROOT = id(1)
const repairFrames = (q: [string, string, TopicMsg][]) =>
  q.filter(([, , m]) => m.type === 'ihave' || m.type === 'iwant').length

function randomIds(n: number): Uint8Array {
  const ids = new Uint8Array(n * ID_BYTES)
  for (let i = 0; i < ids.length; i++) ids[i] = Math.floor(Math.random() * 256)
  return ids
}

describe('topic repair', () => {
  it('a member that missed a publication while it rejoined gets it from its new parent by digest and pull, once', async () => {
    const w = world(4, { owner: ROOT })
    for (const k of [id(2), id(3), id(4)]) w.node(k).join('room')
    await w.tickAll()
    await w.flush()
    const t3 = w.node(id(3))
    // Node 3 loses its parent, joins again (the root answers), and its ATTACH is on its way...
    t3.linkDown(ROOT)
    w.node(ROOT).linkDown(id(3))
    await w.tickAll()
    expect(t3.info()[0]?.state).toBe('attaching')
    const attach = w.queue.splice(0)
    // ...when a publication crosses the tree: it does not reach node 3.
    const pid = await w.node(id(2)).publish('room', 'while away')
    await w.flush()
    expect(w.delivered.get(id(4))).toEqual(['while away'])
    expect(w.delivered.get(id(3))).toEqual([])
    w.queue.push(...attach)
    await w.flush()
    // The parent's digest came with its answer to the ATTACH; node 3 pulled the publication.
    expect(w.delivered.get(id(3))).toEqual(['while away'])
    expect(t3.counters['repair.pulled']).toBe(1)
    expect(w.node(ROOT).counters['repair.served']).toBe(1)
    // Later digests and pulls do not deliver it twice.
    await t3.handle(ROOT, { type: 'ihave', topic: 'room', ids: wireId(pid) })
    await w.flush()
    expect(w.delivered.get(id(3))).toEqual(['while away'])
  })

  it('a subtree cut off from the tree gets back what it missed, and gives the tree what it published meanwhile', async () => {
    // fanout 1: a chain root → a → b → c.
    const w = world(4, { owner: ROOT, options: { fanout: 1 } })
    for (const k of [id(2), id(3), id(4)]) {
      w.node(k).join('room')
      await w.tickAll()
      await w.flush()
    }
    const chain = [id(2), id(3), id(4)].map((k) => w.node(k).info()[0]?.parent)
    expect(new Set(chain).size).toBe(3)
    // The middle of the chain loses its parent: it and its child are cut off.
    const mid = [id(2), id(3), id(4)].find(
      (k) =>
        w.node(k).info()[0]?.parent !== ROOT &&
        w.node(k).info()[0]?.parent !== undefined &&
        w.node(w.node(k).info()[0]?.parent as string).info()[0]?.parent === ROOT,
    ) as string
    const top = w.node(mid).info()[0]?.parent as string
    const leaf = [id(2), id(3), id(4)].find((k) => w.node(k).info()[0]?.parent === mid) as string
    w.node(mid).linkDown(top)
    w.node(top).linkDown(mid)
    // Both sides publish while the tree is cut.
    await w.node(top).publish('room', 'from above')
    await w.node(leaf).publish('room', 'from below')
    await w.flush()
    expect(w.delivered.get(leaf)).toEqual(['from below'])
    expect(w.delivered.get(top)).toEqual(['from above'])
    // The middle joins again: when its JOIN and ATTACH are done, both sides have both, once.
    for (let i = 0; i < 5; i++) {
      await w.tickAll()
      await w.flush()
    }
    for (const k of [id(2), id(3), id(4)])
      expect([...(w.delivered.get(k) ?? [])].sort()).toEqual(['from above', 'from below'])
    expect(w.delivered.get(ROOT)).toEqual([]) // the root forwards; it does not subscribe
    const pulled = [ROOT, id(2), id(3), id(4)].reduce(
      (n, k) => n + (w.node(k).counters['repair.pulled'] ?? 0),
      0,
    )
    expect(pulled).toBe(1) // 'from below', by the middle's new parent
  })

  it('a subscriber whose JOIN takes longer than 10 s still gets what was published meanwhile (30 s of history)', async () => {
    const w = world(3, { owner: ROOT })
    w.node(id(2)).join('room')
    await w.tickAll()
    await w.flush()
    // The root does not answer JOINs for 15 s (a ring still forming).
    const serveJoin = w.handlers.get(ROOT)?.get(JOIN_METHOD)
    w.handlers.get(ROOT)?.delete(JOIN_METHOD)
    w.node(id(3)).join('room')
    await w.tickAll()
    await w.node(id(2)).publish('room', 'early')
    await w.flush()
    for (let s = 0; s < 15; s++) {
      w.advance(1_000)
      await w.tickAll()
      await w.flush()
    }
    expect(w.node(id(3)).counters['join.failed']).toBeGreaterThan(2)
    if (serveJoin) w.handlers.get(ROOT)?.set(JOIN_METHOD, serveJoin)
    for (let s = 0; s < 15 && w.node(id(3)).info()[0]?.state !== 'attached'; s++) {
      w.advance(1_000)
      await w.tickAll()
      await w.flush()
    }
    expect(w.node(id(3)).info()[0]?.state).toBe('attached')
    expect(w.delivered.get(id(3))).toEqual(['early'])
  })

  it('a quiet topic, and a busy topic on an intact tree, send no repair frame', async () => {
    const w = world(6, { owner: ROOT, options: { fanout: 2 } })
    for (const k of [id(2), id(3), id(4), id(5), id(6)]) w.node(k).join('room')
    await w.tickAll()
    await w.flush()
    w.queue.length = 0
    const sent: [string, string, TopicMsg][] = []
    const run = async (seconds: number) => {
      for (let s = 0; s < seconds; s++) {
        w.advance(1_000)
        await w.tickAll()
        sent.push(...w.queue)
        await w.flush()
      }
    }
    await run(60)
    expect(repairFrames(sent)).toBe(0)
    // Publications every second for 10 s, then quiet: every subscriber gets each, and no digest goes.
    for (let s = 0; s < 10; s++) {
      await w.node(id(2 + (s % 5))).publish('room', `m${s}`)
      sent.push(...w.queue)
      await w.flush()
      await run(1)
    }
    await run(60)
    for (const k of [id(2), id(3), id(4), id(5), id(6)]) expect(w.delivered.get(k)).toHaveLength(10)
    expect(repairFrames(sent)).toBe(0)
  })

  it('announces in a round, 1 s on, an id a tree neighbour is not known to have; then stops', async () => {
    const w = world(3, { owner: ROOT })
    for (const k of [id(2), id(3)]) w.node(k).join('room')
    await w.tickAll()
    await w.flush()
    // A publication at the hop limit is kept but not forwarded: node 3 does not have it.
    const pub = await signedPub(id(9), 'room', 'far', w.now())
    await w.node(ROOT).handle(id(2), { ...pub, hops: 255 })
    expect(w.queue).toHaveLength(0)
    w.advance(1_000)
    await w.node(ROOT).tick(w.now())
    const digests = w.queue.filter(([, , m]) => m.type === 'ihave').map(([, to]) => to)
    expect(digests).toEqual([id(3)]) // node 2 sent it: it has it
    await w.flush()
    expect(w.delivered.get(id(3))).toEqual(['far'])
    // Announced once: later rounds send nothing.
    for (let s = 0; s < 40; s++) {
      w.advance(1_000)
      await w.tickAll()
      expect(repairFrames(w.queue)).toBe(0)
      await w.flush()
    }
  })

  it('bounds hostile digests and pulls: from outside the tree, too many ids, a flood of ids, pulls for what it does not hold, a flood of pulls', async () => {
    const w = world(3, { owner: ROOT })
    for (const k of [id(2), id(3)]) w.node(k).join('room')
    await w.tickAll()
    await w.flush()
    const root = w.node(ROOT)
    // Not a tree neighbour.
    await root.handle(id(50), { type: 'ihave', topic: 'room', ids: randomIds(4) })
    await root.handle(id(50), { type: 'iwant', topic: 'room', ids: randomIds(4) })
    expect(root.counters['drop.not-tree']).toBe(2)
    // Past MAX_DIGEST_IDS, or not whole ids: malformed.
    await root.handle(id(2), { type: 'ihave', topic: 'room', ids: randomIds(MAX_DIGEST_IDS + 1) })
    await root.handle(id(2), { type: 'iwant', topic: 'room', ids: new Uint8Array(ID_BYTES + 1) })
    expect(root.counters['drop.malformed']).toBe(2)
    expect(w.queue).toHaveLength(0)
    // A child announces ids nobody published, fast: the root asks for a bounded number of them.
    for (let i = 0; i < 20; i++)
      await root.handle(id(2), { type: 'ihave', topic: 'room', ids: randomIds(MAX_DIGEST_IDS) })
    const asked = w.queue
      .filter(([, , m]) => m.type === 'iwant')
      .reduce((n, [, , m]) => n + (m.type === 'iwant' ? m.ids.length / ID_BYTES : 0), 0)
    expect(asked).toBe(2 * PULL_IDS_PER_S)
    expect(root.counters['repair.pull.limited']).toBe(20 * MAX_DIGEST_IDS - 2 * PULL_IDS_PER_S)
    w.queue.length = 0
    // Pulls for ids it does not hold: dropped, counted, nothing sent.
    await root.handle(id(3), { type: 'iwant', topic: 'room', ids: randomIds(8) })
    expect(root.counters['drop.pull-unknown']).toBe(8)
    expect(w.queue).toHaveLength(0)
    // A flood of pulls for one genuine publication: served within the budget, the rest dropped and counted.
    const ids = wireId(await w.node(id(2)).publish('room', 'x'))
    await w.flush()
    for (let i = 0; i < 200; i++) await root.handle(id(3), { type: 'iwant', topic: 'room', ids })
    const served = w.queue.filter(([, to, m]) => to === id(3) && m.type === 'pub').length
    expect(served).toBe(2 * PULL_IDS_PER_S)
    expect(root.counters['drop.pull-rate']).toBe(200 - 2 * PULL_IDS_PER_S)
    // A second later the budget has grown back by one second's worth, no more.
    w.queue.length = 0
    w.advance(1_000)
    for (let i = 0; i < 200; i++) await root.handle(id(3), { type: 'iwant', topic: 'room', ids })
    expect(w.queue.filter(([, , m]) => m.type === 'pub')).toHaveLength(PULL_IDS_PER_S)
    // Node 3 got the publication once, however many copies came.
    await w.flush()
    expect(w.delivered.get(id(3))).toEqual(['x'])
  })
})

/** A publication id (40 hex digits) as IHAVE / IWANT carry it. */
function wireId(hex: string): Uint8Array {
  const b = fromHex(hex)
  if (!b) throw new Error('not an id')
  return b
}
