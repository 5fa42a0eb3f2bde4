// An app's unit test with weft/testing, as testing/README.md shows it (readme.test.ts keeps the two equal).
import { expect, it, onTestFinished } from 'vitest'
import { createTestNetwork, type WeftNode } from 'weft/testing'

// The app's logic, written against weft's public API (an app imports it from its own module).
function chatRoom(node: WeftNode) {
  const lines: string[] = []
  node.subscribe<{ text: string }>('chat', ({ text }) => lines.push(text))
  return {
    lines,
    say: (text: string) => node.broadcast('chat', { text }),
    setTopic: (topic: string) => node.sync.set('topic', topic),
    topic: () => node.sync.get<string>('topic'),
  }
}

it('a message reaches everyone', async () => {
  const net = await createTestNetwork(3, { seed: 1, loss: 0.05, latencyMs: [5, 50] })
  onTestFinished(() => net.close())
  await net.linked() // one network, one ring
  const [a, ...others] = net.nodes
  await chatRoom(a).say('hi')
  const rooms = others.map(chatRoom)
  await net.run(() => rooms.every((room) => room.lines.includes('hi')))
})

it('a topic set during a partition reaches the other side once it heals', async () => {
  const net = await createTestNetwork(4, { seed: 2 })
  onTestFinished(() => net.close())
  await net.linked()
  const [a, b, c, d] = net.nodes
  const roomD = chatRoom(d)
  net.partition([a, b], [c, d])
  await chatRoom(a).setTopic('weekend plans')
  await net.advance(10_000) // ten seconds of virtual time, in milliseconds
  expect(roomD.topic()).toBeUndefined()
  net.heal()
  await net.run(() => roomD.topic() === 'weekend plans')
})
