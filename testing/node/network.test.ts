/**
 * createTestNetwork (network.ts): whole weft nodes (the WeftNode that
 * joinOverlay returns) on the in-memory network with seeded loss, latency,
 * partitions, crashes and one virtual clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { WeftNode } from '../../client/weft-node.ts'
import type { FrameEvent } from './mem-transport.ts'
import { createTestNetwork, type TestNetwork } from './network.ts'

describe('a test network of three', () => {
  let net: TestNetwork
  beforeAll(async () => {
    net = await createTestNetwork(3, {
      seed: 1,
      loss: 0.05,
      latencyMs: [5, 50],
      presence: { intervalMs: 2000 },
    })
    await net.linked()
  })
  afterAll(() => net?.close())

  it('a broadcast reaches every other node', async () => {
    const [a, b, c] = net.nodes as [WeftNode, WeftNode, WeftNode]
    const got: string[] = []
    for (const n of [b, c])
      n.subscribe<string>('chat', (text, { from }) => got.push(`${n.id}:${from}:${text}`))
    const t0 = net.clock.now()
    await a.broadcast('chat', 'hi')
    await net.run(() => got.length === 2, { timeoutMs: 10_000 })
    expect(got.sort()).toEqual([`${b.id}:${a.id}:hi`, `${c.id}:${a.id}:hi`].sort())
    expect(net.clock.now() - t0).toBeGreaterThanOrEqual(5) // at least one hop of latency
  })

  it('a request gets its answer', async () => {
    const [a, , c] = net.nodes as [WeftNode, WeftNode, WeftNode]
    c.handle<{ x: number }, number>('double', ({ x }) => 2 * x)
    expect(await net.run(a.request<number>(c.id, 'double', { x: 21 }))).toBe(42)
  })

  it('a DHT record put by one node is read by another', async () => {
    const [a, b] = net.nodes as [WeftNode, WeftNode]
    await net.run(b.dht.put('score', { n: 7 }))
    expect(await net.run(a.dht.get('score', { author: b.id }))).toEqual({ n: 7 })
  })
})
