/**
 * The node composition: what it adds to its protocols (the puzzle on every
 * key, one parse at the boundary, the topics, the next hop), on stub links
 * and in the simulator.
 */
import { describe, expect, it } from 'vitest'
import { concatBytes, utf8 } from '../bytes.ts'
import { between } from '../chord/ring.ts'
import { puzzleBits } from '../identity/puzzle.ts'
import { createFakeKeyring, fakePublicKey } from '../sim/fake-keys.ts'
import { mulberry32, randomId } from '../sim/prng.ts'
import { settle } from '../sim/settle.ts'
import type { Value } from '../types.ts'
import { Kind } from '../wire/frame.ts'
import { createNodeCore } from './core.ts'
import type { NodeMsg } from './messages.ts'
import { createNodeNet } from './sim-net.ts'
import { SYNC_TOPIC } from './topics.ts'

const rng = mulberry32(42)

/** A fresh id whose fake key has at least (`atLeast`) or fewer than (`!atLeast`) `bits` puzzle bits. */
function idWithPuzzle(bits: number, atLeast: boolean): string {
  for (;;) {
    const id = randomId(rng)
    if (puzzleBits(fakePublicKey(id)) >= bits === atLeast) return id
  }
}

/** A core on stub links: what it sends is recorded; `mesh` lists the peers whose link carries the mesh. */
function stubCore(id: string, puzzle = 0, mesh: string[] = [], network = '') {
  const sent: { to: string; m: NodeMsg }[] = []
  const blamed: { peer: string; what: string }[] = []
  const core = createNodeCore(
    {
      id,
      keys: createFakeKeyring(id),
      now: () => 1_000_000,
      random: rng,
      send: (to, m) => void sent.push({ to, m }),
      sendVia: (to, m) => void sent.push({ to, m }),
      connect: async () => {},
      linked: () => mesh,
      isLinked: (p) => mesh.includes(p),
      meshNeighbours: () => mesh,
      misbehaved: (peer, what) => void blamed.push({ peer, what }),
    },
    { puzzleBits: puzzle, network },
  )
  return { core, sent, blamed }
}

describe('node core: keys', () => {
  it('refuses every signature by a key below the network puzzle, before checking it (drop.identity.puzzle)', async () => {
    const { core } = stubCore(idWithPuzzle(6, true), 6)
    const good = idWithPuzzle(6, true)
    const weak = idWithPuzzle(6, false)
    const data = new Uint8Array([1, 2, 3])
    // Signed as a node of the same network signs (in its scope), by each key.
    const signed = async (id: string) =>
      createFakeKeyring(id).sign(concatBytes(utf8('weft-scope/1\n\n'), data))
    expect(await core.keys.verify(fakePublicKey(good), data, await signed(good))).toBe(true)
    expect(await core.keys.verify(fakePublicKey(weak), data, await signed(weak))).toBe(false)
    expect(core.stats()['drop.identity.puzzle']).toBe(1)
  })

  it("a signature made in one network is refused in another: every signature is scoped to the network's name", async () => {
    const mate = randomId(rng)
    const author = stubCore(randomId(rng), 0, [mate], 'alpha')
    const member = stubCore(randomId(rng), 0, [mate], 'alpha').core
    const other = stubCore(randomId(rng), 0, [mate], 'beta').core
    const data = new Uint8Array([1, 2, 3])
    const sig = await author.core.keys.sign(data)
    expect(await member.keys.verify(author.core.keys.publicKey, data, sig)).toBe(true)
    expect(await other.keys.verify(author.core.keys.publicKey, data, sig)).toBe(false)
    // A table entry the author made in alpha, handed to a node of beta (as one in both could): refused.
    await author.core.sync.set('k', 'alpha only')
    await author.core.handle(mate, { kind: Kind.Sync, msg: { t: 'q', k: ['k'] } })
    const answer = author.sent.find((s) => s.m.kind === Kind.Sync && s.m.msg.t === 'e')?.m
    if (!answer) throw new Error('no entries sent')
    await member.handle(mate, answer)
    await other.handle(mate, answer)
    expect(member.sync.get('k')).toBe('alpha only')
    expect(other.sync.get('k')).toBeUndefined()
    expect(other.stats()['sync.drop.badSignature']).toBe(1)
  })

  it('an identity below the puzzle cannot make a node', () => {
    expect(() => stubCore(idWithPuzzle(6, false), 6)).toThrow(/puzzle/)
  })
})

describe('node core: a node that left', () => {
  it("a ring request to a node the host cannot reach fails at once (the host's unreachable), not after the request timeout", async () => {
    const id = randomId(rng)
    const gone = randomId(rng)
    let failedDials = 0
    const core = createNodeCore(
      {
        id,
        keys: createFakeKeyring(id),
        // The clock never moves: only the host's word can end the request.
        now: () => 1_000_000,
        random: rng,
        send: () => {},
        sendVia: (_to, _m, unreachable) => {
          failedDials++
          unreachable?.()
        },
        connect: async () => {},
        linked: () => [],
        isLinked: () => false,
        meshNeighbours: () => [],
      },
      { puzzleBits: 0 },
    )
    // Joining through a node that is gone: each try's request fails as soon as the dial does.
    await core.chord.join(gone).catch(() => {})
    expect(failedDials).toBeGreaterThan(0)
    expect(core.chord.counters['rpc.unreachable']).toBe(failedDials)
    core.close()
  })
})

describe('node core: the boundary', () => {
  it('parses a body once into the typed message of its kind; null for a broken one or a kind it does not carry', () => {
    const { core } = stubCore(randomId(rng))
    expect(core.parse(Kind.Mesh, { type: 'prune' })).toEqual({ kind: Kind.Mesh, msg: { type: 'prune' } })
    expect(core.parse(Kind.Route, { t: 'msg', topic: 'x', data: 1 })).toEqual({
      kind: Kind.Route,
      msg: { t: 'msg', topic: 'x', data: 1 },
    })
    expect(core.parse(Kind.Sync, { t: 'q', k: ['a'] })).toEqual({
      kind: Kind.Sync,
      msg: { t: 'q', k: ['a'] },
    })
    expect(core.parse(Kind.Chord, { t: 'getPred', r: 1 })?.kind).toBe(Kind.Chord)
    for (const [kind, body] of [
      [Kind.Mesh, { type: 'gossip' }],
      [Kind.Route, { t: 'msg', topic: 'x' }],
      [Kind.Sync, { t: 'q', k: 'a' }],
      [Kind.Chord, { t: 'nothing' }],
      [Kind.Link, { t: 'ping', ts: 1 }],
      [9, {}],
    ] as [number, Value][])
      expect(core.parse(kind, body)).toBeNull()
  })

  it('a broadcast copy whose signature fails blames the neighbour that sent it; a replayed copy does not', async () => {
    const [a, b] = [randomId(rng), randomId(rng)]
    const origin = stubCore(a, 0, [b])
    const { core, blamed } = stubCore(b, 0, [a])
    await origin.core.meshUp(b)
    await core.meshUp(a)
    await origin.core.broadcast('news', 'hello')
    const copy = origin.sent.find((s) => s.m.kind === Kind.Mesh && s.m.msg.type === 'gossip')?.m
    if (copy?.kind !== Kind.Mesh || copy.msg.type !== 'gossip') throw new Error('no gossip sent')
    const sig = copy.msg.sig.slice()
    sig[0] = (sig[0] as number) ^ 1
    await core.handle(a, { kind: Kind.Mesh, msg: { ...copy.msg, sig } })
    expect(blamed).toEqual([{ peer: a, what: 'mesh.badSignature' }])
    expect(core.stats()['mesh.drop.badSignature']).toBe(1)
    // The genuine copy is taken, and its replay is a duplicate, nobody's fault.
    await core.handle(a, copy)
    await core.handle(a, copy)
    expect(blamed).toHaveLength(1)
  })

  it("takes the table's anti-entropy from mesh links only (drop.sync.not-mesh)", async () => {
    const mate = randomId(rng)
    const stranger = randomId(rng)
    const { core, sent } = stubCore(randomId(rng), 0, [mate])
    const q: NodeMsg = { kind: Kind.Sync, msg: { t: 'q', k: ['a'] } }
    await core.handle(stranger, q)
    expect(core.stats()['drop.sync.not-mesh']).toBe(1)
    expect(sent).toEqual([])
    // A query from a mesh neighbour is answered (with nothing: the table is empty).
    await core.handle(mate, q)
    expect(core.stats()['drop.sync.not-mesh']).toBe(1)
    expect(core.stats()['sync.in.q']).toBe(1)
    expect(sent).toEqual([{ to: mate, m: { kind: Kind.Sync, msg: { t: 'e', e: [] } } }])
  })
})

describe('node core: topics and hops, in the simulator', () => {
  async function ring(n: number) {
    const net = await createNodeNet({ seed: 11, n, degree: 3 })
    await net.buildRing()
    return net
  }

  it('a broadcast and a unicast message reach the subscribers of their topic; the table rides its own topic, unseen by them', async () => {
    const net = await ring(8)
    const [a, b] = net.ids as [string, string]
    const got: unknown[] = []
    const hidden: unknown[] = []
    net.core(b).subscribe('news', (data, meta) => got.push([data, meta.from]))
    net.core(b).subscribe(SYNC_TOPIC, (data) => hidden.push(data))
    await settle(net.sim, net.core(a).broadcast('news', 'to all'))
    await settle(net.sim, net.core(a).router.send(b, 'news', 'to you'))
    await settle(net.sim, net.core(a).sync.set('k', 'v'))
    await net.sim.runFor(2000)
    expect(got).toEqual([
      ['to all', a],
      ['to you', a],
    ])
    expect(net.core(b).sync.get('k')).toBe('v')
    expect(hidden).toEqual([])
    // Another reserved topic is nobody's: dropped, and counted.
    await settle(net.sim, net.core(a).broadcast('\u0000other', 1))
    await net.sim.runFor(2000)
    expect(net.core(b).stats()['drop.internal-topic']).toBe(1)
    expect(net.core(b).stats()['unicast.no-subscriber'] ?? 0).toBe(0)
    await settle(net.sim, net.core(a).router.send(b, 'nobody', 1))
    await net.sim.runFor(500)
    expect(net.core(b).stats()['unicast.no-subscriber']).toBe(1)
  })

  it('the next hop: a direct link, else the open link closest before the destination, else the ring', async () => {
    const net = await ring(16)
    const seen = { direct: 0, greedy: 0, ring: 0 }
    const check = (a: string) => {
      const linked = net.sim.liveNeighbours(a)
      for (const dst of net.ids) {
        if (dst === a) continue
        const hop = net.core(a).nextHop(dst)
        if (linked.includes(dst)) {
          expect(hop).toEqual({ via: dst, open: true })
          seen.direct++
          continue
        }
        const closer = linked.filter((p) => between(p, a, dst))
        if (closer.length > 0) {
          // The closest: no other open link lies between it and dst.
          expect(hop?.open).toBe(true)
          expect(closer).toContain(hop?.via)
          expect(closer.some((p) => between(p, hop?.via as string, dst))).toBe(false)
          seen.greedy++
        } else {
          const via = net.core(a).chord.nextHop(dst)
          expect(via).not.toBeNull()
          expect(hop).toEqual({ via, open: false })
          seen.ring++
        }
      }
    }
    for (const a of net.ids) check(a)
    // Ring links the simulator opened on demand are all open: close those of one node but its mesh links.
    const a = net.ids[0] as string
    const mesh = net.core(a).mesh.eagerPeers().concat(net.core(a).mesh.lazyPeers())
    for (const p of net.sim.liveNeighbours(a)) if (!mesh.includes(p)) await net.sim.unlink(a, p)
    check(a)
    expect(seen.direct).toBeGreaterThan(0)
    expect(seen.greedy).toBeGreaterThan(0)
    expect(seen.ring).toBeGreaterThan(0)
  })
})
