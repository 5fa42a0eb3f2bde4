/**
 * What becomes of a message in flight when its ends or its link change
 * before it lands: the checks a send and a delivery make (sim.ts), each
 * end looked up once.
 */
import { describe, expect, it } from 'vitest'
import type { ProtocolNode } from '../protocol.ts'
import { createSim, type SimDeps } from './sim.ts'

type Rec = ProtocolNode<string> & { got: string[]; deps: SimDeps<string> }

function recorder(deps: SimDeps<string>): Rec {
  const got: string[] = []
  return { got, deps, handle: (from, m) => void got.push(`${from}:${m}`), tick: () => {} }
}

async function pair(opts: { connectOnSend?: boolean } = {}) {
  // Latency fixed at 10 ms: a message sent at t lands at t + 10.
  const sim = createSim<string>({ seed: 1, latency: { min: 10, max: 10 }, ...opts })
  sim.addNode('a', recorder)
  sim.addNode('b', recorder)
  sim.addNode('c', recorder)
  if (!opts.connectOnSend) await sim.link('a', 'b')
  const p = (id: string) => sim.proto<Rec>(id)
  return { sim, p }
}

describe('simulator: messages in flight', () => {
  it('land after the link latency when nothing changes, and count as delivered', async () => {
    const { sim, p } = await pair()
    p('a').deps.send('b', 'm')
    await sim.runFor(9)
    expect(p('b').got).toEqual([])
    await sim.runFor(1)
    expect(p('b').got).toEqual(['a:m'])
    expect(sim.totals.delivered).toBe(1)
    expect(sim.node('a').counters.messagesOut).toBe(1)
    expect(sim.node('b').counters.messagesIn).toBe(1)
  })

  it("are lost when the sender crashes before they land; a crashed instance's late send is dropped", async () => {
    const { sim, p } = await pair()
    const old = p('a')
    old.deps.send('b', 'm1')
    await sim.crash('a')
    await sim.runFor(20)
    expect(p('b').got).toEqual([])
    await sim.restart('a')
    old.deps.send('b', 'late') // the old instance: dropped, not counted
    p('a').deps.send('b', 'm2')
    await sim.runFor(20)
    expect(p('b').got).toEqual(['a:m2'])
    expect(sim.node('a').counters.messagesOut).toBe(1)
  })

  it('are lost when the receiver crashes or restarts before they land', async () => {
    const { sim, p } = await pair()
    p('a').deps.send('b', 'm1')
    await sim.restart('b')
    await sim.runFor(20)
    expect(p('b').got).toEqual([])
    p('a').deps.send('b', 'm2')
    await sim.crash('b')
    await sim.runFor(20)
    expect(sim.totals.delivered).toBe(0)
    expect(sim.totals.undeliverable).toBe(2)
  })

  it('are lost when their link goes away or a partition cuts it before they land', async () => {
    const { sim, p } = await pair()
    p('a').deps.send('b', 'm1')
    await sim.unlink('a', 'b')
    await sim.runFor(20)
    await sim.link('a', 'b')
    p('a').deps.send('b', 'm2')
    await sim.partition([['a'], ['b']])
    await sim.runFor(20)
    expect(p('b').got).toEqual([])
    p('a').deps.send('b', 'm3') // across the partition: not sent at all
    expect(sim.node('a').counters.messagesOut).toBe(2)
    await sim.heal()
    p('a').deps.send('b', 'm4')
    await sim.runFor(20)
    expect(p('b').got).toEqual(['a:m4'])
  })

  it('with connectOnSend, open a link on the first send; a send to a crashed or unknown node is undeliverable', async () => {
    const { sim, p } = await pair({ connectOnSend: true })
    p('a').deps.send('c', 'hi')
    expect(sim.hasLink('a', 'c')).toBe(true)
    await sim.crash('b')
    p('a').deps.send('b', 'x')
    p('a').deps.send('nobody', 'x')
    expect(sim.hasLink('a', 'nobody')).toBe(false)
    await sim.runFor(20)
    expect(p('c').got).toEqual(['a:hi'])
    expect(sim.totals.undeliverable).toBe(2)
  })
})
