/**
 * node.publish through the public API, on whole nodes (createTestNetwork:
 * the real host, connection manager and protocols over an in-memory
 * network): a publication reaches the topic's subscribers and, on the wire,
 * few others; in a private network it is sealed like a broadcast.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import { Kind } from '../shared/wire/frame.ts'
import { createTestNetwork } from '../testing/node/index.ts'
import type { WeftNode } from './weft-node.ts'

function inbox(node: WeftNode, topic: string): unknown[] {
  const got: unknown[] = []
  node.subscribe(topic, (data) => got.push(data))
  return got
}

describe('node.publish', () => {
  it("reaches the topic's subscribers, from inside the tree and from outside, and not every node", async () => {
    const net = await createTestNetwork(8, { seed: 11 })
    onTestFinished(() => net.close())
    await net.linked()
    const [a, b, c, d, e, f, g, h] = net.nodes
    const subs = [b, d, f]
    const boxes = subs.map((n) => inbox(n, 'room'))
    // Every subscriber in its tree: its parent answered its ATTACH (or it is the root).
    await net.run(() =>
      subs.every(
        (n) => (n.stats()['topics.attached'] ?? 0) >= 1 || (n.stats()['topics.join.served'] ?? 0) > 0,
      ),
    )
    await net.advance(1_000)
    let pubFrames = 0
    net.onFrame((fr) => {
      if (fr.kind === Kind.Topic) pubFrames++
    })
    // From a subscriber, and from a node outside the tree (it goes to the root first).
    await net.run(b.publish('room', { n: 1 }))
    await net.run(h.publish('room', { n: 2 }))
    await net.run(() => boxes.every((box) => box.length === 2))
    // Each exactly once; order is not promised (two publications take different paths).
    for (const box of boxes) expect(box).toHaveLength(2)
    for (const box of boxes) expect(box).toEqual(expect.arrayContaining([{ n: 1 }, { n: 2 }]))
    // Nobody else handed it to an application: the others did not subscribe.
    for (const n of [a, c, e, g, h]) expect(n.stats()['topics.delivered'] ?? 0).toBe(0)
    // On the wire: about one tree frame per subscriber per publication (2 × 3, plus the root's copies).
    expect(pubFrames).toBeGreaterThanOrEqual(4)
    expect(pubFrames).toBeLessThanOrEqual(10)
    // A broadcast of the same costs a frame to every node at least.
    expect(net.nodes.length - 1).toBeGreaterThan(subs.length)
  })

  it('after unsubscribing, a node gets no more publications; the others still do', async () => {
    const net = await createTestNetwork(5, { seed: 12 })
    onTestFinished(() => net.close())
    await net.linked()
    const [a, b, c, d] = net.nodes
    const gotB = inbox(b, 'news')
    const gotC: unknown[] = []
    const stopC = c.subscribe('news', (x) => gotC.push(x))
    const gotD = inbox(d, 'news')
    await net.advance(2_000)
    await net.run(a.publish('news', 1))
    await net.run(() => gotB.length === 1 && gotC.length === 1 && gotD.length === 1)
    stopC()
    await net.advance(2_000)
    await net.run(a.publish('news', 2))
    await net.run(() => gotB.length === 2 && gotD.length === 2)
    await net.advance(1_000)
    expect(gotC).toEqual([1])
  })

  it('in a private network (sealed like a broadcast), subscribers get the publication opened', async () => {
    const net = await createTestNetwork(4, { seed: 13, node: { secret: 'topic secret for tests' } })
    onTestFinished(() => net.close())
    await net.linked()
    const [a, b, c] = net.nodes
    const gotB = inbox(b, 'private-room')
    const gotC = inbox(c, 'private-room')
    await net.advance(2_000)
    await net.run(a.publish('private-room', { text: 'plain words here' }))
    await net.run(() => gotB.length === 1 && gotC.length === 1)
    expect(gotB).toEqual([{ text: 'plain words here' }])
    expect(gotC).toEqual([{ text: 'plain words here' }])
  })

  it('refuses a bad topic or value with a clear error', async () => {
    const net = await createTestNetwork(2, { seed: 14 })
    onTestFinished(() => net.close())
    await net.linked()
    const [a] = net.nodes
    await expect(a.publish('', 1)).rejects.toThrow(TypeError)
    await expect(a.publish('\u0000x', 1)).rejects.toThrow(TypeError)
    await expect(a.publish('ok', (() => 1) as unknown as number)).rejects.toThrow(TypeError)
  })
})
