import { describe, expect, it } from 'vitest'
import {
  bitsOf,
  flush,
  fullBits,
  type SwarmStub,
  swarmStub,
  testFile,
  X,
  Y,
  Z,
} from '../../test/swarm-stub.ts'
import type { SwarmOptions } from './options.ts'
import { createMemoryStore, type PieceStore } from './store.ts'

const W = '44'.repeat(20)

/** A stub node that added a file of `pieces` pieces; the peers in `join` said hello with an empty have-map. */
async function seeder(
  pieces: number,
  join: string[],
  opts: SwarmOptions = {},
  hold = false,
  store?: PieceStore,
) {
  const f = await testFile(pieces)
  const s = swarmStub(opts, store ? { store } : {}, undefined, { holdPieces: hold })
  const info = await s.swarm.add(f.data, { name: 'test.bin' })
  expect(info).toMatchObject({ id: f.id, uri: f.uri, size: f.data.length, name: 'test.bin' })
  for (const p of join) await s.recv(p, { t: 'hello', file: f.id, bits: bitsOf(pieces, []) })
  return { f, s }
}

const pieceTo = (s: SwarmStub, to: string) => s.take('piece', to).map(([, m]) => m.index)

describe('swarm seeding', () => {
  it('answers a hello with its have-map and pex, serves pieces and the manifest to peers', async () => {
    const { f, s } = await seeder(4, [X, Y])
    expect(s.take('hello', X)[0]?.[1].bits).toEqual(fullBits(4))
    expect(s.take('pex', Y)[0]?.[1].peers).toEqual([X])
    expect(s.provided).toEqual([f.id]) // add announces it
    await s.recv(X, { t: 'meta-req', file: f.id })
    expect(s.take('meta', X)[0]?.[1].manifest).toEqual(f.bytes)
    await s.recv(X, { t: 'req', file: f.id, index: 2 })
    const got = s.take('piece', X)
    expect(got.map(([, m]) => [m.index, m.data])).toEqual([[2, f.piece(2)]])
    expect(s.swarm.counters['swarm.piece.out']).toBe(1)
  })

  it('answers a hello for a file it lacks with none, and refuses peers past maxPeers with bye full', async () => {
    const { f, s } = await seeder(2, [X, Y], { maxPeers: 2 })
    await s.recv(Z, { t: 'hello', file: f.id })
    expect(s.take('bye', Z).map(([, m]) => m.reason)).toEqual(['full'])
    await s.recv(Z, { t: 'hello', file: 'ee'.repeat(32) })
    expect(s.take('none', Z)).toHaveLength(1)
  })

  it('a hello with a have-map of the wrong length gets the peer banned from the file', async () => {
    const { f, s } = await seeder(10, [])
    await s.recv(X, { t: 'hello', file: f.id, bits: new Uint8Array(5) })
    expect(s.swarm.counters['drop.swarm.bits']).toBe(1)
    expect(s.swarm.counters['swarm.peer.banned']).toBe(1)
    await s.recv(X, { t: 'hello', file: f.id, bits: new Uint8Array(2) })
    expect(s.swarm.counters['drop.swarm.banned']).toBe(1)
  })

  it('serves no one who has not joined, and answers none for a piece it lacks', async () => {
    const { f, s } = await seeder(2, [X])
    await s.recv(Y, { t: 'req', file: f.id, index: 0 })
    expect(s.swarm.counters['drop.swarm.not-member']).toBe(1)
    expect(s.take('piece', Y)).toEqual([])
    await s.recv(X, { t: 'req', file: f.id, index: 1 })
    await s.recv(X, { t: 'req', file: f.id, index: 5 })
    expect(s.swarm.counters['drop.swarm.index']).toBe(1)
    await s.recv(Y, { t: 'req', file: 'ee'.repeat(32), index: 0 })
    expect(s.swarm.counters['drop.swarm.unknown-file']).toBe(1)
  })

  it('upload slots: at most uploadSlots pieces leave at once; past them, busy at once; a slot frees when its piece has left', async () => {
    const { f, s } = await seeder(8, [X, Y, Z, W], { uploadSlots: 2 }, true)
    await s.recv(X, { t: 'req', file: f.id, index: 0 })
    await s.recv(Y, { t: 'req', file: f.id, index: 1 })
    await s.recv(Z, { t: 'req', file: f.id, index: 2 })
    expect(s.take('piece').map(([to]) => to)).toEqual([X, Y])
    expect(s.take('busy', Z).map(([, m]) => m.index)).toEqual([2])
    expect(s.swarm.sizes().uploads).toBe(2)
    await s.release(1)
    await s.recv(Z, { t: 'req', file: f.id, index: 2 })
    expect(pieceTo(s, Z)).toEqual([2])
    expect(s.swarm.counters['swarm.busy.sent']).toBe(1)
  })

  it('fair share: with slots to spare for two requesters, neither holds more than half', async () => {
    const { f, s } = await seeder(8, [X, Y], { uploadSlots: 4 }, true)
    for (const round of [0, 4]) {
      for (let i = round; i < round + 4; i++) await s.recv(X, { t: 'req', file: f.id, index: i })
      expect(pieceTo(s, X)).toHaveLength(4) // alone, it may use every slot
      await s.release()
    }
    await s.recv(Y, { t: 'req', file: f.id, index: 0 })
    for (let i = 0; i < 4; i++) await s.recv(X, { t: 'req', file: f.id, index: i })
    expect(pieceTo(s, Y)).toEqual([0])
    expect(pieceTo(s, X)).toHaveLength(2) // Y asked lately: X gets its half (4 / 2)
    expect(s.take('busy', X)).toHaveLength(2)
  })

  it('a send that never settles frees its slot after uploadTimeoutMs', async () => {
    const { f, s } = await seeder(4, [X, Y], { uploadSlots: 1, uploadTimeoutMs: 5000 }, true)
    await s.recv(X, { t: 'req', file: f.id, index: 0 })
    await s.recv(Y, { t: 'req', file: f.id, index: 1 })
    expect(s.take('busy', Y)).toHaveLength(1)
    await s.tick(5000)
    expect(s.swarm.counters['swarm.upload.timeout']).toBe(1)
    await s.recv(Y, { t: 'req', file: f.id, index: 1 })
    expect(pieceTo(s, Y)).toEqual([1])
  })

  it('a cancel that comes before the piece is read stops it', async () => {
    const f = await testFile(2)
    const base = createMemoryStore()
    let gate: () => void = () => {}
    const slow: PieceStore = {
      ...base,
      getPiece: async (id, i) => {
        await new Promise<void>((r) => {
          gate = r
        })
        return base.getPiece(id, i)
      },
    }
    const { s } = await seeder(2, [X], {}, false, slow)
    const serving = s.recv(X, { t: 'req', file: f.id, index: 0 })
    await flush()
    await s.recv(X, { t: 'cancel', file: f.id, index: 0 })
    gate()
    await serving
    expect(pieceTo(s, X)).toEqual([])
    expect(s.swarm.counters['swarm.upload.cancelled']).toBe(1)
  })

  it('hashes a piece again before serving it: a corrupted one is not sent, and forgotten', async () => {
    const f = await testFile(3)
    const base = createMemoryStore()
    const rotten: PieceStore = {
      ...base,
      getPiece: async (id, i) => {
        const d = await base.getPiece(id, i)
        if (d && i === 1) d[0] = (d[0] as number) ^ 0xff
        return d
      },
    }
    const { s } = await seeder(3, [X], {}, false, rotten)
    await s.recv(X, { t: 'req', file: f.id, index: 1 })
    expect(pieceTo(s, X)).toEqual([])
    expect(s.take('none', X).map(([, m]) => m.index)).toEqual([1])
    expect(s.swarm.counters['swarm.store.corrupt']).toBe(1)
    await s.recv(X, { t: 'req', file: f.id, index: 1 })
    expect(s.take('none', X)).toHaveLength(1) // it no longer claims the piece
  })

  it('sends one peer the manifest at most twice', async () => {
    const { f, s } = await seeder(2, [X])
    for (let k = 0; k < 5; k++) await s.recv(X, { t: 'meta-req', file: f.id })
    expect(s.take('meta', X)).toHaveLength(2)
    expect(s.swarm.counters['drop.swarm.meta-again']).toBe(3)
  })

  it('the first seed suggests pieces it never sent before sending any twice', async () => {
    const { f, s } = await seeder(4, [X, Y])
    await s.recv(X, { t: 'req', file: f.id, index: 0 })
    expect(pieceTo(s, X)).toEqual([0])
    await s.recv(Y, { t: 'req', file: f.id, index: 0 })
    const busy = s.take('busy', Y)
    expect(busy).toHaveLength(1)
    expect([1, 2, 3]).toContain(busy[0]?.[1].suggest)
    expect(s.swarm.counters['swarm.suggest.sent']).toBe(1)
  })

  it('request floods are bounded: past the budget dropped and counted; past floodLimit the peer is dropped and banned', async () => {
    const { f, s } = await seeder(4, [X], { peerMsgPerSec: 10, peerMsgBurst: 20, floodLimit: 50 }, true)
    for (let k = 0; k < 100; k++) await s.swarm.handle(X, { t: 'req', file: f.id, index: k % 4 })
    await flush()
    expect(s.swarm.counters['drop.swarm.flood']).toBe(100 - 19) // the hello took one token
    expect(s.swarm.counters['swarm.peer.flooder']).toBe(1)
    expect(s.take('bye', X).map(([, m]) => m.reason)).toEqual(['flood'])
    expect(s.swarm.sizes().uploads).toBeLessThanOrEqual(4) // whatever came in, at most the slots are busy
    const answers = s.take().filter(([to]) => to === X)
    expect(answers.length).toBeLessThan(25) // what it sent X is bounded by the budget, not the flood
  })

  it('two complete ends part with bye done', async () => {
    const { f, s } = await seeder(3, [])
    await s.recv(X, { t: 'hello', file: f.id, bits: fullBits(3) })
    expect(s.take('bye', X).map(([, m]) => m.reason)).toEqual(['done'])
    await s.recv(Y, { t: 'hello', file: f.id, bits: bitsOf(3, [0, 1]) })
    expect(s.take('bye', Y)).toEqual([])
    await s.recv(Y, { t: 'have', file: f.id, index: 2 })
    expect(s.take('bye', Y).map(([, m]) => m.reason)).toEqual(['done'])
  })
})
