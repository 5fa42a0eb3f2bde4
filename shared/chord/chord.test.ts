/**
 * Handler tests with stub deps, and small rings in the simulator: the API
 * contract, validation at the boundary, bounded tables, persistence.
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import type { Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import type { Chord, ChordOptions } from './chord.ts'
import {
  buildRing,
  type ChordNet,
  createChordNet,
  recordPos,
  runUntil,
  SIM_CHORD_OPTIONS,
  settle,
  settleAll,
  stubChord,
  trueOwners,
  trueSuccessor,
} from './harness.ts'
import type { ChordMsg, RecordWire } from './messages.ts'
import { signRecord } from './records.ts'
import { between } from './ring.ts'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const C = 'c'.repeat(40)
/** A position in (A, B]. */
const AB = 'b0'.repeat(20)
const flush = () => new Promise((r) => setTimeout(r, 0))

const stubNode = (id = A, options: ChordOptions = {}, start?: number) => stubChord(id, options, start)

async function rejectionName(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'resolved'
  } catch (e) {
    return (e as Error).name
  }
}

const pick = (net: ChordNet) => {
  const ids = net.live()
  return ids[Math.floor(net.sim.rng() * ids.length)] as string
}

describe('a ring of one', () => {
  it('answers every lookup itself, and stores, reads and deletes locally', async () => {
    const { chord } = stubNode()
    await chord.join(null)
    expect(await chord.lookup(B)).toEqual({ node: A, hops: 0 })
    expect(chord.successor()).toBe(A)
    expect(chord.predecessor()).toBeNull()
    await chord.put('k', { list: [1, 2], bytes: new Uint8Array([7]) })
    expect(await chord.get('k')).toEqual({ list: [1, 2], bytes: new Uint8Array([7]) })
    expect(chord.storedKeys()).toBe(1)
    await chord.put('k', 'second')
    expect(await chord.get('k')).toBe('second')
    await chord.delete('k')
    expect(await chord.get('k')).toBeUndefined()
    expect(chord.holds('k', A)).toBe(true) // the tombstone
    expect(await chord.get('never')).toBeUndefined()
    await chord.provide('svc')
    expect(await chord.findProviders('svc')).toEqual([A])
    expect(chord.nextHop(B)).toBeNull()
  })

  it('refuses values over 256 KiB and keys over maxKeyBytes with ValueTooLargeError', async () => {
    const { chord } = stubNode()
    await chord.join(null)
    expect(await rejectionName(chord.put('big', new Uint8Array(262_145)))).toBe('ValueTooLargeError')
    expect(await rejectionName(chord.put('k'.repeat(1025), 1))).toBe('ValueTooLargeError')
    expect(await rejectionName(chord.get('k'.repeat(1025)))).toBe('ValueTooLargeError')
    // Exactly at the limit is fine (the limit is on the encoded value).
    const atLimit = new Uint8Array(262_144 - 5) // MessagePack bin 32: 5 header bytes
    expect(encodeValue(atLimit).length).toBe(262_144)
    await chord.put('edge', atLimit)
    expect(await chord.get('edge')).toEqual(atLimit)
    const small = stubNode(B, { maxValueBytes: 10 })
    await small.chord.join(null)
    expect(await rejectionName(small.chord.put('k', 'x'.repeat(20)))).toBe('ValueTooLargeError')
  })
})

describe('the boundary', () => {
  it('drops malformed messages and strangers, counts them, never throws', async () => {
    const { chord } = stubNode()
    await chord.join(null)
    const garbage: unknown[] = [
      null,
      1,
      'x',
      [],
      {},
      { t: 'find' },
      { t: 'store', r: 1, recs: 'x', provs: [] },
    ]
    for (const g of garbage) await chord.handle(B, g as ChordMsg)
    expect(chord.counters['drop.malformed']).toBe(garbage.length)
    await chord.handle('not-an-id', { t: 'ping', r: 1 })
    await chord.handle(A, { t: 'ping', r: 1 }) // from ourselves
    expect(chord.counters['drop.from']).toBe(2)
    // Replies nobody asked for.
    await chord.handle(B, { t: 'pong', r: 12345 })
    await chord.handle(B, { t: 'found', r: 1, p: B, s: [B] })
    expect(chord.counters['drop.unexpectedReply']).toBe(2)
  })

  it('accepts a reply only from the node that was asked', async () => {
    const s = stubNode()
    await s.chord.join(null)
    await s.chord.handle(B, { t: 'notify' }) // B becomes our predecessor, and successor
    const lookup = s.chord.lookup(AB) // AB is in (A, B]: we know the answer is B, then confirm with B
    await flush()
    const ask = s.sent.find(([, m]) => m.t === 'getPred')
    expect(ask?.[0]).toBe(B)
    const r = (ask?.[1] as { r: number } | undefined)?.r ?? 0
    await s.chord.handle(C, { t: 'pred', r, p: A, s: [] }) // an impostor's answer
    expect(s.chord.counters['drop.unexpectedReply']).toBe(1)
    await s.chord.handle(B, { t: 'pred', r, p: A, s: [] })
    expect(await lookup).toEqual({ node: B, hops: 0 })
  })

  it('drops forged and oversized records, counts each reason, stores the good one', async () => {
    const s = stubNode()
    await s.chord.join(null)
    const v1 = { seq: 1, time: 1000 }
    const good = await signRecord(createFakeKeyring(B), B, 'k1', encodeValue('fine'), false, v1)
    const forgedValue: RecordWire = { ...good, k: 'k2', vb: encodeValue('evil') }
    const wrongKey = await signRecord(createFakeKeyring(C), B, 'k3', encodeValue(1), false, v1)
    const tooBig = await signRecord(
      createFakeKeyring(B),
      B,
      'k4',
      encodeValue(new Uint8Array(300_000)),
      false,
      v1,
    )
    const future = await signRecord(createFakeKeyring(B), B, 'k5', encodeValue(1), false, {
      seq: 1,
      time: s.now + 3_600_000,
    })
    await s.chord.handle(B, {
      t: 'store',
      r: 9,
      recs: [good, forgedValue, wrongKey, tooBig, future],
      provs: [],
    })
    expect(s.chord.storedKeys()).toBe(1)
    expect(s.chord.holds('k1', B)).toBe(true)
    expect(s.chord.counters['drop.record.signature']).toBe(1)
    expect(s.chord.counters['drop.record.author']).toBe(1)
    expect(s.chord.counters['drop.record.valueTooLarge']).toBe(1)
    expect(s.chord.counters['drop.record.future']).toBe(1)
    const reply = s.sent.find(([, m]) => m.t === 'stored')?.[1]
    expect(reply).toEqual({ t: 'stored', r: 9, ok: 1, err: 'signature', q: null })
    expect(await s.chord.get('k1', B)).toBe('fine')
    // Our own namespace has no k1.
    expect(await s.chord.get('k1')).toBeUndefined()
  })

  it('bounds the requests in flight and fails the rest at once', async () => {
    const s = stubNode(A, { maxPending: 4, requestTimeoutMs: 1000 })
    await s.chord.join(null)
    await s.chord.handle(B, { t: 'notify' })
    // B never answers: every lookup waits on it.
    const lookups = Array.from({ length: 10 }, () => s.chord.lookup(AB).catch((e: Error) => e.name))
    await flush()
    expect(s.sent.filter(([, m]) => m.t === 'getPred').length).toBeLessThanOrEqual(4)
    expect(s.chord.counters['drop.pendingFull']).toBeGreaterThan(0)
    for (let i = 0; i < 5; i++) await s.advance(1000)
    const names = await Promise.all(lookups)
    // Each either failed, or (once B was found dead and we were alone again) answered itself.
    for (const n of names) expect(n === 'NoRouteError' || (n as { node: string }).node === A).toBe(true)
    expect(s.chord.counters['rpc.timeout']).toBeGreaterThan(0)
    // B is marked dead: it left our tables.
    expect(s.chord.successors()).not.toContain(B)
  })
})

describe('small rings', () => {
  it('stores on the owners of hash(author, key); two authors of one key keep two records; a tombstone hides only its author’s', async () => {
    const seed = testSeed(11)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 16)
      const [x, y] = [net.live()[3] as string, net.live()[9] as string]
      await settle(net.sim, net.node(x).put('shared', 'from x'))
      await net.sim.runFor(5)
      await settle(net.sim, net.node(y).put('shared', 'from y'))
      await net.sim.runFor(1000)
      for (const id of net.live()) {
        expect(await settle(net.sim, net.node(id).get('shared', x))).toBe('from x')
        expect(await settle(net.sim, net.node(id).get('shared', y))).toBe('from y')
      }
      // Each author's default namespace is its own.
      expect(await settle(net.sim, net.node(x).get('shared'))).toBe('from x')
      expect(await settle(net.sim, net.node(y).get('shared'))).toBe('from y')
      const owners = trueOwners(net, recordPos(x, 'shared'), 3)
      for (const o of owners) expect(net.node(o).holds('shared', x)).toBe(true)
      // x updates: the sequence goes up, every owner keeps the new version.
      await settle(net.sim, net.node(x).put('shared', 'x again'))
      await net.sim.runFor(1000)
      const seq = net.node(owners[0] as string).heldSeq('shared', x) as number
      for (const o of owners) expect(net.node(o).heldSeq('shared', x)).toBe(seq)
      expect(await settle(net.sim, net.node(y).get('shared', x))).toBe('x again')
      // x deletes its record: y's stays.
      await settle(net.sim, net.node(x).delete('shared'))
      await net.sim.runFor(1000)
      for (const id of net.live()) {
        expect(await settle(net.sim, net.node(id).get('shared', x))).toBeUndefined()
        expect(await settle(net.sim, net.node(id).get('shared', y))).toBe('from y')
      }
      const tomb = await settle(net.sim, net.node(y).getRecord('shared', x))
      expect(tomb?.deleted).toBe(true)
      expect(tomb?.seq).toBeGreaterThan(seq)
      // An older version of x's arriving after the delete does not bring the value back: refused as stale.
      const old = await signRecord(createFakeKeyring(x), x, 'shared', encodeValue('zombie'), false, {
        seq: 1,
        time: 1,
      })
      const staleBefore = owners.reduce((n, o) => n + (net.node(o).counters['store.stale'] ?? 0), 0)
      // Sent by a node that is none of the owners (an owner drops a message from itself).
      const z = net.live().find((id) => !owners.includes(id)) as string
      for (const o of owners) net.sim.node(o).proto.handle(z, { t: 'store', r: 0, recs: [old], provs: [] })
      await net.sim.runFor(1000)
      expect(await settle(net.sim, net.node(y).get('shared', x))).toBeUndefined()
      const staleAfter = owners.reduce((n, o) => n + (net.node(o).counters['store.stale'] ?? 0), 0)
      expect(staleAfter - staleBefore).toBe(owners.length)
    })
  })

  it('refuses over quota: put rejects with RemoteError', async () => {
    const seed = testSeed(12)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 4, { ...SIM_CHORD_OPTIONS, perAuthorQuota: 2 })
      const w = pick(net)
      await settle(net.sim, net.node(w).put('q1', 1))
      await settle(net.sim, net.node(w).put('q2', 2))
      // Each node stores at most 2 records of w's; with 4 nodes and 3 owners per key some refuse soon.
      const names: string[] = []
      for (let i = 3; i < 12; i++)
        names.push(await rejectionName(settle(net.sim, net.node(w).put(`q${i}`, i))))
      expect(names).toContain('RemoteError')
      const total = net.live().reduce((n, id) => n + (net.node(id).counters['store.quota'] ?? 0), 0)
      expect(total).toBeGreaterThan(0)
    })
  })

  it('a read asks again when one owner stayed silent and the others had nothing yet', async () => {
    // As when two owners joined a moment ago and have not received their share, while the one that
    // holds the record is slow to answer: their "nothing here" must not be taken as the answer.
    const seed = testSeed(21)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 16)
      const key = 'held-by-one'
      const author = net.live()[0] as string
      const owners = trueOwners(net, recordPos(author, key), 3)
      const holder = owners[2] as string
      const rec = await signRecord(createFakeKeyring(author), author, key, encodeValue('kept'), false, {
        seq: 1,
        time: 1000,
      })
      expect(await net.node(holder).importState({ v: 2, recs: [rec], provs: [], provided: [] })).toBe(1)
      const reader = net.live().find((id) => !owners.includes(id)) as string
      // Only the read's own requests meet the cut: a finger lookup of the reader's that asks the
      // holder meanwhile would be a second strike, and the holder dead to it, by timing alone.
      net.node(reader).pauseMaintenance(true)
      // The holder is cut off until the read's request to it has timed out (400 ms here), then heard
      // again. (A fixed 600 ms let the read's second round go out before the heal on some rings.)
      await net.sim.partition([net.live().filter((id) => id !== holder), [holder]])
      const read = net.node(reader).get(key, author)
      await runUntil(net, () => (net.node(reader).counters['rpc.timeout'] ?? 0) > 0, 2000, 10)
      await net.sim.heal()
      expect(await settle(net.sim, read)).toBe('kept')
      // And read repair gave the owners asked first their copy.
      await net.sim.runFor(200)
      expect(
        net.node(owners[0] as string).holds(key, author) && net.node(owners[1] as string).holds(key, author),
      ).toBe(true)
    })
  })

  it('routes node to node with nextHop, and keeps the links the ring needs', async () => {
    const seed = testSeed(13)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 32)
      const ids = net.live()
      for (const from of ids) {
        const c = net.node(from)
        expect(c.nextHop(from)).toBeNull()
        const need = c.neededLinks()
        expect(need.has(c.successor())).toBe(true)
        expect(need.has(c.predecessor() as string)).toBe(true)
        for (const f of c.fingers()) expect(need.has(f)).toBe(true)
        for (const s of c.successors()) expect(need.has(s)).toBe(true)
        // On a settled ring, of its members exactly the predecessor and the successor are neighbours.
        expect(ids.filter((x) => c.ringNeighbour(x)).sort()).toEqual(
          [c.predecessor() as string, c.successor()].sort(),
        )
        for (const to of ids) {
          // Follow next hops from `from` toward `to`: it arrives within log2(N) + 3 steps.
          let at = from
          let steps = 0
          while (at !== to && steps < 8) {
            const next = net.node(at).nextHop(to)
            if (next === null) break
            at = next
            steps++
          }
          expect(at).toBe(to)
        }
        // An id that is no node: every hop moves strictly closer clockwise (never past it), and
        // the walk ends in null at the node before it (or at once, on the node responsible for it),
        // well within log2(N) + 3 steps.
        for (let k = 0; k < 8; k++) {
          const ghost = net.sim.randomId()
          let at = from
          let steps = 0
          for (;;) {
            const next = net.node(at).nextHop(ghost)
            if (next === null) break
            expect(between(next, at, ghost)).toBe(true)
            at = next
            steps++
          }
          expect(steps).toBeLessThanOrEqual(8)
          const owner = trueSuccessor(net, ghost)
          if (at !== owner) expect(net.node(at).successor()).toBe(owner)
        }
      }
    })
  })

  it('recursive lookups (iterative: false) find the true successor too', async () => {
    const seed = testSeed(14)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 64, { ...SIM_CHORD_OPTIONS, iterative: false })
      const targets = Array.from({ length: 200 }, () => net.sim.randomId())
      const res = await settleAll(
        net.sim,
        targets.map((t) => net.node(pick(net)).lookup(t)),
      )
      res.forEach((r, i) => {
        expect(r.status).toBe('fulfilled')
        if (r.status === 'fulfilled') expect(r.value.node).toBe(trueSuccessor(net, targets[i] as string))
      })
      const fallbacks = net
        .live()
        .reduce((n, id) => n + (net.node(id).counters['lookup.recursiveFallback'] ?? 0), 0)
      expect(fallbacks).toBe(0)
    })
  })

  it('a join through a node that does not answer fails with NoRouteError', async () => {
    const net = createChordNet(testSeed(15))
    const a = net.add()
    const b = net.add()
    await settle(net.sim, net.node(a).join(null))
    await net.sim.crash(a)
    expect(await rejectionName(settle(net.sim, net.node(b).join(a)))).toBe('NoRouteError')
  })

  it('exports its records and imports them elsewhere, verifying each', async () => {
    const seed = testSeed(16)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 8)
      for (let i = 0; i < 40; i++) await settle(net.sim, net.node(pick(net)).put(`key${i}`, { i }))
      const holder = net
        .live()
        .reduce((a, b) => (net.node(a).storedKeys() >= net.node(b).storedKeys() ? a : b))
      const c = net.node(holder)
      await settle(net.sim, c.provide('svc'))
      const state = c.exportState() as { recs: RecordWire[]; provided: string[] }
      expect(state.recs.length).toBe(c.storedKeys())
      expect(state.provided).toEqual(['svc'])
      // The state survives the wire format.
      // Nodes whose clocks agree with the ring's (provider records expire by the clock).
      const fresh = stubNode(C, {}, net.sim.now)
      expect(await fresh.chord.importState(state as unknown as Value)).toBe(
        c.storedKeys() + c.storedProviders(),
      )
      expect(fresh.chord.storedKeys()).toBe(c.storedKeys())
      // A tampered record in the state is refused; the rest are taken.
      const tampered = {
        ...state,
        recs: state.recs.map((r, i) => (i === 0 ? { ...r, vb: encodeValue('x') } : r)),
      }
      const other = stubNode(B, {}, net.sim.now)
      expect(await other.chord.importState(tampered as unknown as Value)).toBe(
        c.storedKeys() - 1 + c.storedProviders(),
      )
      expect(other.chord.counters['drop.record.signature']).toBe(1)
      for (const junk of [null, 1, 'x', [], { v: 1 }, { v: 3 }, { v: 2, recs: 'x' }, { v: 2, recs: [1, {}] }])
        expect(await stubNode(B).chord.importState(junk as Value)).toBe(0)
    })
  })

  it('is deterministic: the same seed replays the same run', async () => {
    const run = async (seed: number) => {
      const net = await buildRing(seed, 24)
      await settle(net.sim, net.node(pick(net)).put('k', 1))
      return {
        now: net.sim.now,
        events: net.sim.totals.events,
        succ: net.live().map((id) => net.node(id).successor()),
      }
    }
    const a = await run(21)
    expect(await run(21)).toEqual(a)
    expect((await run(22)).events).not.toBe(a.events)
  })
})

describe('the stub harness itself', () => {
  it('chord state machines are independent: two in one process do not share state', async () => {
    const one = stubNode(A)
    const two = stubNode(B)
    await one.chord.join(null)
    await two.chord.join(null)
    await one.chord.put('k', 1)
    expect(await two.chord.get('k')).toBeUndefined()
    expect((one.chord as Chord).storedKeys()).toBe(1)
  })
})
