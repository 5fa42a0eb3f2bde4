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

describe('time is virtual', () => {
  let net: TestNetwork
  beforeAll(async () => {
    net = await createTestNetwork(4, { seed: 2, latencyMs: [2, 20], presence: { intervalMs: 1000 } })
    await net.linked()
  })
  afterAll(() => net?.close())

  it('a lease runs out on the virtual clock, and the key is free again', async () => {
    const [a, b] = net.nodes as [WeftNode, WeftNode]
    const t0 = net.clock.now()
    await a.sync.set('room/owner', 'a', { leaseMs: 5_000 })
    await net.run(() => b.sync.owner('room/owner') === a.id)
    await expect(b.sync.set('room/owner', 'b', { leaseMs: 5_000 })).rejects.toMatchObject({
      name: 'LeaseHeldError',
    })
    // Others may write from expires + leaseGraceMs (2 s, shared/sync/PROTOCOL-sync.md).
    await net.advance(t0 + 6_500 - net.clock.now())
    expect(b.sync.owner('room/owner')).toBe(a.id)
    await net.advance(1_000)
    expect(b.sync.owner('room/owner')).toBeUndefined()
    await b.sync.set('room/owner', 'b', { leaseMs: 5_000 })
    await net.run(() => a.sync.owner('room/owner') === b.id)
  })

  it('a crashed node is seen gone by presence after 3 intervals + 2 s of virtual time, in far less real time', async () => {
    const [a, b, c, d] = net.nodes as [WeftNode, WeftNode, WeftNode, WeftNode]
    await net.run(() => [a, b, c].every((n) => n.presence.get().size === 4))
    const gone = new Map<string, { at: number; reason: string | undefined }>()
    for (const n of [a, b, c])
      n.on('presence', (e) => {
        if (e.id === d.id && e.kind === 'leave') gone.set(n.id, { at: net.clock.now(), reason: e.reason })
      })
    const realStart = performance.now()
    const crashedAt = net.clock.now()
    net.crash(d)
    // Not before the bound: presence waits for 3 missed announcements (+ 2 s grace) after the last one
    // heard, which was at most an interval before the crash.
    await net.advance(3_000)
    expect(gone.size).toBe(0)
    await net.advance(2_500) // past 3 × 1000 + 2000 ms (and a tick)
    const virtual = net.clock.now() - crashedAt
    const real = performance.now() - realStart
    expect([...gone.values()].map((g) => g.reason)).toEqual(['expired', 'expired', 'expired'])
    for (const g of gone.values()) expect(g.at - crashedAt).toBeLessThanOrEqual(5_000 + 250)
    for (const n of [a, b, c]) expect(n.presence.get().has(d.id)).toBe(false)
    expect(real).toBeLessThan(virtual / 5)
    // The other three still form one network and ring without d.
    expect(net.live()).toEqual([a, b, c])
    await net.linked()
  })

  it('a request to a crashed node fails with TimeoutError after requestTimeoutMs of virtual time', async () => {
    const [a, , , d] = net.nodes as [WeftNode, WeftNode, WeftNode, WeftNode]
    const t0 = net.clock.now()
    const realStart = performance.now()
    await expect(net.run(a.request(d.id, 'anything', null, { timeoutMs: 8_000 }))).rejects.toMatchObject({
      name: expect.stringMatching(/^(TimeoutError|NoRouteError)$/),
    })
    expect(net.clock.now() - t0).toBeLessThanOrEqual(8_000 + 500)
    expect(performance.now() - realStart).toBeLessThan(2_000)
  })
})

describe('partitions', () => {
  it('the table converges after a partition heals; each side kept writing meanwhile', async () => {
    const net = await createTestNetwork(4, { seed: 3, latencyMs: [1, 30], loss: 0.02 })
    try {
      await net.linked()
      const [a, b, c, d] = net.nodes
      net.partition([a, b], [c, d])
      await net.settle()
      for (const n of [a, b]) expect(n.peers().map((p) => p.id)).not.toContain(c.id)
      expect(a.peers().map((p) => p.id)).not.toContain(d.id)
      expect(net.stats().cut).toBeGreaterThan(0)
      await a.sync.set('left', 1)
      await d.sync.set('right', 2)
      await net.advance(5_000)
      // Each side sees its own write only.
      expect(b.sync.get('left')).toBe(1)
      expect(b.sync.get('right')).toBeUndefined()
      expect(c.sync.get('right')).toBe(2)
      expect(c.sync.get('left')).toBeUndefined()
      expect(net.stats().refused).toBeGreaterThan(0) // they tried to link across, and could not
      net.heal()
      await net.run(() => net.nodes.every((n) => n.sync.get('left') === 1 && n.sync.get('right') === 2), {
        timeoutMs: 60_000,
      })
      await net.linked({ timeoutMs: 120_000 })
    } finally {
      await net.close()
    }
  })
})

describe('a late joiner', () => {
  it('joins the ring, and sees the table and who is present at once', async () => {
    const net = await createTestNetwork(3, { seed: 4, presence: { intervalMs: 60_000 } })
    try {
      await net.linked()
      const [a] = net.nodes
      await a.sync.set('welcome', 'hello')
      // set() resolves once the announcement is out, which may wait for the update gap: on virtual time.
      await net.run(a.presence.set({ name: 'alice' }))
      await net.run(() => net.nodes.every((n) => n.sync.get('welcome') === 'hello'))
      const late = await net.add()
      expect(net.nodes).toHaveLength(4)
      await net.linked()
      // The table by anti-entropy, presence by the pull on joining: well before the next announcement (60 s).
      const t0 = net.clock.now()
      await net.run(() => late.sync.get('welcome') === 'hello' && late.presence.get().size === 4, {
        timeoutMs: 30_000,
      })
      expect(net.clock.now() - t0).toBeLessThan(30_000)
      expect(late.presence.get().get(a.id)?.state).toEqual({ name: 'alice' })
    } finally {
      await net.close()
    }
  })
})

describe("the network's randomness", () => {
  /** The fate of the first `count` frames of a fresh network with `seed`. */
  async function trace(seed: number, count: number): Promise<{ dropped: boolean[]; delays: number[] }> {
    const events: FrameEvent[] = []
    const net = await createTestNetwork(0, { seed, loss: 0.3, latencyMs: [5, 50] })
    net.onFrame((e) => events.push(e))
    try {
      for (let i = 0; i < 3; i++) await net.add()
      await net.run(() => events.filter((e) => e.kind !== 'control').length >= count, { timeoutMs: 120_000 })
    } finally {
      await net.close()
    }
    const frames = events.filter((e) => e.kind !== 'control').slice(0, count)
    return {
      dropped: frames.map((e) => e.dropped),
      delays: frames.filter((e) => !e.dropped).map((e) => e.delayMs),
    }
  }

  it('the same seed gives the same loss pattern (another seed, another one), at the rate asked', async () => {
    const one = await trace(11, 200)
    const again = await trace(11, 200)
    const other = await trace(12, 200)
    expect(again.dropped).toEqual(one.dropped)
    expect(other.dropped).not.toEqual(one.dropped)
    const rate = one.dropped.filter(Boolean).length / one.dropped.length
    expect(rate).toBeGreaterThan(0.15)
    expect(rate).toBeLessThan(0.45)
    // Delays within [5, 50] (a frame waits longer only behind an earlier one on its link).
    for (const d of one.delays) expect(d).toBeGreaterThanOrEqual(5)
  })
})

describe('net.run', () => {
  it('rejects, naming what it waited for, when virtual time runs out first', async () => {
    const net = await createTestNetwork(2)
    try {
      const t0 = net.clock.now()
      await expect(net.run(() => false, { timeoutMs: 3_000 })).rejects.toThrow(
        /condition did not hold within 3000 ms of virtual time/,
      )
      expect(net.clock.now() - t0).toBe(3_000)
      const never = new Promise<void>(() => {})
      await expect(net.run(never, { timeoutMs: 1_000 })).rejects.toThrow(/promise did not settle/)
      // One driver of time at a time: a second one is refused with a hint.
      const first = net.advance(1_000)
      await expect(net.run(() => true)).rejects.toThrow(/net.run while net.advance is under way/)
      await first
      // A rejection comes through as it is.
      const [a] = net.nodes
      await expect(net.run(a.request('f'.repeat(40), 'm', null, { timeoutMs: 2_000 }))).rejects.toMatchObject(
        {
          name: expect.stringMatching(/^(TimeoutError|NoRouteError)$/),
        },
      )
    } finally {
      await net.close()
    }
  })
})
