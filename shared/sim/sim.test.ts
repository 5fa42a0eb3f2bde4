import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import type { ProtocolNode } from '../protocol.ts'
import { createFakeKeyring } from './fake-keys.ts'
import { createFlood, type FloodMsg, type FloodNode } from './flood.ts'
import { createSim, type Sim } from './sim.ts'
import { components, randomGraph } from './topology.ts'

async function floodNet(
  seed: number,
  n: number,
  degree: number,
  opts: { loss?: number; trace?: boolean } = {},
) {
  const sim = createSim<FloodMsg>({ seed, ...opts })
  const ids = Array.from({ length: n }, () => sim.randomId())
  for (const id of ids) sim.addNode(id, createFlood)
  await randomGraph(sim, ids, degree)
  return { sim, ids }
}

function reached(sim: Sim<FloodMsg>, msgId: string): number {
  let n = 0
  for (const id of sim.upIds()) if (sim.proto<FloodNode>(id).received.has(msgId)) n++
  return n
}

describe('simulator', () => {
  it('a flood reaches every node of a connected 1,000-node graph', async () => {
    const seed = testSeed(1)
    await withSeed(seed, async () => {
      const { sim, ids } = await floodNet(seed, 1000, 6)
      expect(components(sim, ids)).toHaveLength(1)
      sim.proto<FloodNode>(ids[0] as string).originate('m1')
      await sim.drain()
      expect(reached(sim, 'm1')).toBe(1000)
      // Every node receives once per incoming link except the first: duplicates = sends - (N - 1).
      expect(sim.totals.delivered).toBeGreaterThan(999)
      expect(sim.totals.undeliverable).toBe(0)
    })
  })

  it('is deterministic: same seed, same trace; another seed, another trace', async () => {
    const run = async (seed: number) => {
      const { sim, ids } = await floodNet(seed, 200, 5, { trace: true, loss: 0.05 })
      sim.proto<FloodNode>(ids[3] as string).originate('x')
      await sim.runFor(2000)
      return { hash: sim.traceHash(), n: sim.traceLog.length, reached: reached(sim, 'x') }
    }
    const a = await run(42)
    const b = await run(42)
    const c = await run(43)
    expect(a).toEqual(b)
    expect(a.n).toBeGreaterThan(200)
    expect(c.hash).not.toBe(a.hash)
  })

  it('loss drops messages and counts them', async () => {
    const { sim, ids } = await floodNet(7, 300, 6, { loss: 0.3 })
    sim.proto<FloodNode>(ids[0] as string).originate('l')
    await sim.drain()
    expect(sim.totals.lost).toBeGreaterThan(0)
    const sent = sim.ids().reduce((s, id) => s + sim.node(id).counters.messagesOut, 0)
    expect(sim.totals.delivered + sim.totals.lost + sim.totals.undeliverable).toBe(sent)
  })

  it('partitions stop traffic between groups, and healing restores it', async () => {
    const { sim, ids } = await floodNet(11, 100, 6)
    const left = ids.slice(0, 50)
    const right = ids.slice(50)
    await sim.partition([left, right])
    sim.proto<FloodNode>(left[0] as string).originate('p')
    await sim.drain()
    for (const id of right) expect(sim.proto<FloodNode>(id).received.has('p')).toBe(false)
    expect(left.filter((id) => sim.proto<FloodNode>(id).received.has('p')).length).toBeGreaterThan(0)
    await sim.heal()
    sim.proto<FloodNode>(left[0] as string).originate('q')
    await sim.drain()
    expect(reached(sim, 'q')).toBe(100)
  })

  it('link events follow partitions, crashes and restarts', async () => {
    const sim = createSim<string>({ seed: 5 })
    const events: string[] = []
    const mk =
      (tag: string) =>
      (deps: { id: string }): ProtocolNode<string> => ({
        handle() {},
        tick() {},
        linkUp: (p) => void events.push(`${tag}:${deps.id}+${p}`),
        linkDown: (p) => void events.push(`${tag}:${deps.id}-${p}`),
      })
    sim.addNode('a', mk('v1'))
    sim.addNode('b', mk('v1'))
    await sim.link('a', 'b')
    expect(events).toEqual(['v1:a+b', 'v1:b+a'])
    events.length = 0
    await sim.partition([['a'], ['b']])
    await sim.heal()
    expect(events).toEqual(['v1:a-b', 'v1:b-a', 'v1:a+b', 'v1:b+a'])
    events.length = 0
    await sim.crash('b')
    expect(events).toEqual(['v1:a-b'])
    expect(sim.liveNeighbours('a')).toEqual([])
    events.length = 0
    await sim.restart('b', mk('v2'))
    expect(events).toEqual(['v2:b+a', 'v1:a+b'])
  })

  it('a crashed node loses its state and its in-flight messages; a restart starts fresh', async () => {
    const { sim, ids } = await floodNet(3, 50, 4)
    const victim = ids[10] as string
    sim.proto<FloodNode>(ids[0] as string).originate('before')
    await sim.drain()
    expect(sim.proto<FloodNode>(victim).received.has('before')).toBe(true)
    await sim.crash(victim)
    sim.proto<FloodNode>(ids[0] as string).originate('during')
    await sim.drain()
    expect(sim.proto<FloodNode>(victim).received.has('during')).toBe(false)
    await sim.restart(victim)
    expect(sim.proto<FloodNode>(victim).received.size).toBe(0)
    sim.proto<FloodNode>(ids[0] as string).originate('after')
    await sim.drain()
    expect(sim.proto<FloodNode>(victim).received.has('after')).toBe(true)
  })

  it('ticks every node on its own phase, driven by virtual time', async () => {
    const sim = createSim<never>({ seed: 9, tickMs: 100 })
    const ticks = new Map<string, number[]>()
    for (const id of ['a', 'b', 'c'])
      sim.addNode(id, () => ({
        handle() {},
        tick: (now) => void ticks.set(id, [...(ticks.get(id) ?? []), now]),
      }))
    await sim.runUntil(1000)
    for (const t of ticks.values()) {
      expect(t.length).toBeGreaterThanOrEqual(10)
      for (let i = 1; i < t.length; i++) expect((t[i] as number) - (t[i - 1] as number)).toBe(100)
    }
  })

  it('keeps per-link FIFO order, like an ordered data channel', async () => {
    const sim = createSim<number>({ seed: 2, latency: { min: 1, max: 100 } })
    const got: number[] = []
    sim.addNode('s', () => ({ handle() {}, tick() {} }))
    sim.addNode('r', () => ({ handle: (_f, m) => void got.push(m), tick() {} }))
    await sim.link('s', 'r')
    const send = (sim as unknown as { send: (f: string, e: number, t: string, m: number) => void }).send.bind(
      sim,
    )
    for (let i = 0; i < 50; i++) send('s', 1, 'r', i)
    await sim.drain()
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => i))
  })

  it("with an uplink model, a node's messages leave one after another at its rate, and send resolves when one has left", async () => {
    // 1,000-byte messages through a 10 bytes/ms uplink: 100 ms each, then 20 ms of latency.
    const sim = createSim<number>({
      seed: 4,
      latency: { min: 20, max: 20 },
      uplinkBytesPerMs: 10,
      sizeOf: () => 1000,
    })
    const arrivals: number[] = []
    const left: number[] = []
    let send: ((to: string, m: number) => void | Promise<void>) | undefined
    sim.addNode('s', (deps) => {
      send = deps.send
      return { handle() {}, tick() {} }
    })
    sim.addNode('r', () => ({ handle: () => void arrivals.push(sim.now), tick() {} }))
    await sim.link('s', 'r')
    for (let i = 0; i < 3; i++) {
      const p = send?.('r', i)
      expect(p).toBeInstanceOf(Promise)
      void p?.then(() => left.push(sim.now))
    }
    await sim.runFor(1000)
    expect(left).toEqual([100, 200, 300])
    expect(arrivals).toEqual([120, 220, 320])
  })

  it('fake keys sign and verify; tampering fails', async () => {
    const k = createFakeKeyring('ab'.repeat(20))
    const data = new Uint8Array([1, 2, 3])
    const sig = await k.sign(data)
    expect(await k.verify(k.publicKey, data, sig)).toBe(true)
    expect(await k.verify(k.publicKey, new Uint8Array([1, 2, 4]), sig)).toBe(false)
    expect(await k.idOf(k.publicKey)).toBe('ab'.repeat(20))
  })
})
