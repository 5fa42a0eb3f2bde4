/**
 * The transport seam (transport.ts): whole nodes, the same as in production
 * (host, connection manager, entry, core, public API), over an in-memory
 * transport with no signal server, no WebRTC and no socket
 * (test/mem-transport.ts). Links are pairs of NodeLinks that pass each frame
 * through the wire encoding and the receiving node's validators, as a real
 * link does. (issue 16's
 * createTestNetwork builds on this seam with loss, latency, partitions and a
 * virtual clock.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateIdentity } from '../../shared/identity/keys.ts'
import { MemNet } from '../../test/mem-transport.ts'
import { until } from '../../test/until.ts'
import { OverlayNode } from '../overlay.ts'
import { type Clock, realClock } from './clock.ts'

const net = new MemNet()
const nodes: OverlayNode[] = []

beforeAll(async () => {
  for (let i = 0; i < 3; i++) {
    const identity = await generateIdentity({ puzzleBits: 0 })
    // No signal server: the `signal` option is not used with a transport of one's own.
    const node = new OverlayNode(
      { identity, transport: net.transport },
      { signal: [], network: 'mem', puzzleBits: 0 },
    )
    await node.start()
    nodes.push(node)
  }
  await until('a full mesh of three', () => nodes.every((n) => n.links.meshNeighbours().length === 2))
})

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()))
})

describe('a node over another transport (no signal server)', () => {
  it('broadcasts, requests, the table and the DHT work as over the signal server', async () => {
    const [a, b, c] = nodes as [OverlayNode, OverlayNode, OverlayNode]
    const got: string[] = []
    c.subscribe<string>('hi', (text, { from }) => got.push(`${from === a.id ? 'a' : '?'}:${text}`))
    await a.broadcast('hi', 'there')
    await until('the broadcast', () => got.length === 1)
    expect(got).toEqual(['a:there'])
    c.handle<{ x: number }, number>('double', ({ x }) => 2 * x)
    expect(await b.request<number>(c.id, 'double', { x: 21 })).toBe(42)
    await a.sync.set('k', 'v')
    await until('the table entry at c', () => c.sync.get('k') === 'v')
    await until('the ring of three', () => nodes.every((n) => n.inspect().ring.successors.length >= 2))
    await b.dht.put('rec', { n: 1 })
    expect(await c.dht.get('rec', { author: b.id })).toEqual({ n: 1 })
  })

  it("inspect() and stats() read the transport's state; nothing of a signal server is counted", () => {
    const [a] = nodes as [OverlayNode]
    expect(a.inspect().signal).toBe('registered')
    expect(a.inspect().links.map((l) => l.mesh)).toEqual([true, true])
    expect(Object.keys(a.stats()).filter((k) => k.startsWith('signal'))).toEqual([])
    expect(a.stats().messagesOut).toBeGreaterThan(0)
    expect(a.stats()['drop.mem.invalid'] ?? 0).toBe(0)
    expect(() => a.signalClient).toThrow(TypeError)
  })
})

describe('the first link', () => {
  it("is dialled as soon as the node is registered, not at the connection manager's first round (issue 14)", async () => {
    const mem = new MemNet()
    // Intervals never fire on this clock (no manager round, no tick); timeouts are real ones.
    const noRounds: Clock = { ...realClock, setInterval: () => ({}), clearInterval: () => {} }
    const mk = async () =>
      new OverlayNode(
        { identity: await generateIdentity({ puzzleBits: 0 }), transport: mem.transport },
        { signal: [], network: 'first', puzzleBits: 0 },
        noRounds,
      )
    const [a, b] = [await mk(), await mk()]
    try {
      await a.start()
      const t0 = Date.now()
      await b.start() // resolves at the first open link (or gives up after directTimeoutMs + 10 s)
      expect(b.links.openPeers()).toEqual([a.id])
      // At the link, not at the give-up timer (a link open before the wait began was missed).
      expect(Date.now() - t0).toBeLessThan(5000)
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })
})
