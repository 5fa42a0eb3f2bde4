import { describe, expect, it, vi } from 'vitest'
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
import { Bitfield } from './bitfield.ts'
import type { Download, Progress, SwarmOptions } from './options.ts'
import { createMemoryStore } from './store.ts'

type Peer = { id: string; bits: Uint8Array }

/** A download at a stub node whose DHT names `peers`; each answers hello with its have-map; the first sends the manifest. */
async function connected(
  pieces: number,
  peers: Peer[],
  opts: SwarmOptions = {},
  s: SwarmStub = swarmStub(opts),
) {
  const f = await testFile(pieces)
  s.providers.push(...peers.map((p) => p.id))
  const dl = s.swarm.get(f.uri)
  await flush()
  const hellos = s.take('hello')
  expect(hellos.map(([to]) => to).sort()).toEqual(peers.map((p) => p.id).sort())
  for (const [, m] of hellos) expect(m.bits).toBeUndefined() // no manifest yet, so no have-map
  for (const p of peers) await s.recv(p.id, { t: 'hello', file: f.id, bits: p.bits })
  const asks = s.take('meta-req')
  expect(asks).toHaveLength(1)
  await s.recv(asks[0]?.[0] as string, { t: 'meta', file: f.id, manifest: f.bytes })
  return { f, s, dl }
}

const reqsTo = (s: SwarmStub, to: string) => s.take('req', to).map(([, m]) => m.index)

describe('swarm download', () => {
  it('pieces gained while our hello was on its way reach that node: the join ends with our have-map again', async () => {
    // (Found in the browser suite: two fetchers never learnt that a third, complete, had one piece.)
    const f = await testFile(4)
    const s = swarmStub()
    s.providers.push(X, Y)
    const dl = s.swarm.get(f.uri)
    await flush()
    expect(
      s
        .take('hello')
        .map(([to]) => to)
        .sort(),
    ).toEqual([X, Y].sort())
    // X answers first, with every piece; the manifest and a piece come from it while Y's answer is on its way.
    await s.recv(X, { t: 'hello', file: f.id, bits: fullBits(4) })
    expect(s.take('meta-req', X)).toHaveLength(1)
    await s.recv(X, { t: 'meta', file: f.id, manifest: f.bytes })
    const i = s.take('req', X)[0]?.[1].index as number
    await s.recv(X, { t: 'piece', file: f.id, index: i, data: f.piece(i) })
    expect(s.take('have', Y)).toEqual([]) // Y is not a peer yet
    // Y's answer: Y gets our have-map again, with the piece.
    await s.recv(Y, { t: 'hello', file: f.id, bits: bitsOf(4, []) })
    const again = s.take('hello', Y)
    expect(again).toHaveLength(1)
    expect(again[0]?.[1].bits).toEqual(bitsOf(4, [i]))
    dl.abort()
  })

  it('finds providers in the DHT, says hello, fetches the manifest from one, then requests with a pipeline per peer', async () => {
    const { f, s } = await connected(12, [
      { id: X, bits: fullBits(12) },
      { id: Y, bits: fullBits(12) },
    ])
    expect(s.provided).toContain(f.id) // it announces the file once it has the manifest
    const sent = s.take('req')
    const byPeer = (p: string) => sent.filter(([to]) => to === p).map(([, m]) => m.index)
    expect(byPeer(X)).toHaveLength(4) // pipeline 4
    expect(byPeer(Y)).toHaveLength(4)
    expect(new Set([...byPeer(X), ...byPeer(Y)]).size).toBe(8) // no piece asked twice outside the endgame
    expect(await s.store.getManifest(f.id)).toEqual(f.bytes)
  })

  it('rarest first: asks the peer that alone has some pieces for those', async () => {
    const { s } = await connected(8, [
      { id: X, bits: fullBits(8) },
      { id: Y, bits: bitsOf(8, [0, 1, 2, 3]) },
    ])
    expect(reqsTo(s, X).sort()).toEqual([4, 5, 6, 7])
  })

  it('keeps a verified piece, tells the other peers, reports progress, and refills the pipeline', async () => {
    const { f, s, dl } = await connected(8, [
      { id: X, bits: fullBits(8) },
      { id: Y, bits: bitsOf(8, [0]) },
    ])
    const events: Progress[] = []
    dl.on('progress', (p) => events.push(p))
    const pieceEvents: { index: number; from: string }[] = []
    dl.on('piece', (e) => pieceEvents.push(e))
    const toX = reqsTo(s, X)
    const i = toX[0] as number
    await s.recv(X, { t: 'piece', file: f.id, index: i, data: f.piece(i) })
    expect(await s.store.has(f.id, i)).toBe(true)
    expect(s.take('have', Y).map(([, m]) => m.index)).toEqual([i])
    expect(s.take('have', X)).toEqual([]) // X has it: no need to say
    expect(pieceEvents).toEqual([{ index: i, from: X }])
    const last = events.at(-1) as Progress
    expect(last).toMatchObject({ have: 1, total: 8, peers: 2, bytes: 1024, size: 8 * 1024 })
    expect(last.bytesPerSec).toBeGreaterThan(0)
    expect(reqsTo(s, X)).toHaveLength(1) // the window refilled
    expect(s.swarm.counters['swarm.piece.in']).toBe(1)
  })

  it('a peer that sends a bad piece is banned from the swarm and the piece is asked of another', async () => {
    const { f, s } = await connected(
      2,
      [
        { id: X, bits: fullBits(2) },
        { id: Y, bits: bitsOf(2, [0]) },
      ],
      { pipeline: 1 },
    )
    expect(reqsTo(s, X)).toEqual([1]) // the rarer piece
    expect(reqsTo(s, Y)).toEqual([0])
    const bad = f.piece(0)
    bad[10] = (bad[10] as number) ^ 1
    await s.recv(Y, { t: 'piece', file: f.id, index: 0, data: bad })
    expect(await s.store.has(f.id, 0)).toBe(false)
    expect(s.swarm.counters['drop.swarm.bad-piece-hash']).toBe(1)
    expect(s.swarm.counters['swarm.peer.banned']).toBe(1)
    expect(s.take('bye', Y).map(([, m]) => m.reason)).toEqual(['bad-piece'])
    // X has room once its piece arrives: it is asked for the piece Y lied about.
    await s.recv(X, { t: 'piece', file: f.id, index: 1, data: f.piece(1) })
    expect(reqsTo(s, X)).toEqual([0])
    // Y is not taken back: its hello is ignored, and it is not dialled from pex or the DHT.
    await s.recv(Y, { t: 'hello', file: f.id, bits: fullBits(2) })
    expect(s.swarm.counters['drop.swarm.banned']).toBe(1)
    await s.recv(X, { t: 'pex', file: f.id, peers: [Y] })
    expect(s.take('hello', Y)).toEqual([])
  })

  it('a piece of the wrong length counts as a bad piece', async () => {
    const { f, s } = await connected(3, [{ id: X, bits: fullBits(3) }])
    const i = reqsTo(s, X)[0] as number
    await s.recv(X, { t: 'piece', file: f.id, index: i, data: new Uint8Array(1000) })
    expect(s.swarm.counters['drop.swarm.bad-piece-length']).toBe(1)
    expect(s.swarm.counters['swarm.peer.banned']).toBe(1)
  })

  it('a piece nobody asked that peer for is dropped unhashed, and the peer banned', async () => {
    const { f, s } = await connected(8, [{ id: X, bits: fullBits(8) }], { pipeline: 1 })
    const asked = reqsTo(s, X)[0] as number
    const other = (asked + 1) % 8
    const before = s.hashes.n
    await s.recv(X, { t: 'piece', file: f.id, index: other, data: f.piece(other) })
    expect(s.hashes.n).toBe(before)
    expect(s.swarm.counters['drop.swarm.unrequested']).toBe(1)
    expect(await s.store.has(f.id, other)).toBe(false)
    expect(s.swarm.counters['swarm.peer.banned']).toBe(1)
  })

  it('a request unanswered in time goes to another peer, and a late copy is still welcome', async () => {
    const { f, s } = await connected(2, [{ id: X, bits: fullBits(2) }], {
      pipeline: 1,
      requestTimeoutMs: 1000,
    })
    const a = reqsTo(s, X)[0] as number
    await s.tick(1001)
    expect(s.swarm.counters['swarm.timeout']).toBe(1)
    expect(reqsTo(s, X)).toEqual([1 - a]) // not the piece it let time out
    // Y joins (its own hello): the timed-out piece goes to it.
    await s.recv(Y, { t: 'hello', file: f.id, bits: fullBits(2) })
    expect(s.take('hello', Y)).toHaveLength(1) // the answer, with our have-map
    expect(reqsTo(s, Y)).toEqual([a])
    // X's copy arrives late, before Y's: kept, no penalty, Y's request cancelled.
    await s.recv(X, { t: 'piece', file: f.id, index: a, data: f.piece(a) })
    expect(await s.store.has(f.id, a)).toBe(true)
    expect(s.swarm.counters['swarm.peer.banned']).toBeUndefined()
    expect(s.take('cancel', Y).map(([, m]) => m.index)).toEqual([a])
  })

  it('a peer that times out maxTimeouts times in a row is dropped (not banned)', async () => {
    const { s } = await connected(8, [{ id: X, bits: fullBits(8) }], {
      pipeline: 2,
      requestTimeoutMs: 1000,
      maxTimeouts: 2,
    })
    await s.tick(1001)
    expect(s.swarm.counters['swarm.peer.slow']).toBe(1)
    expect(s.take('bye', X).map(([, m]) => m.reason)).toEqual(['timeouts'])
    expect(s.swarm.counters['swarm.peer.banned']).toBeUndefined()
  })

  it('endgame: a piece asked of one peer for endgameAfterMs is asked of a second too, and the first copy cancels the other', async () => {
    const { f, s } = await connected(
      2,
      [
        { id: X, bits: fullBits(2) },
        { id: Y, bits: fullBits(2) },
      ],
      { pipeline: 2, endgameAfterMs: 1000 },
    )
    expect(reqsTo(s, X).sort()).toEqual([0, 1])
    expect(reqsTo(s, Y)).toEqual([]) // every piece is asked of someone, but not for long yet
    await s.tick(999)
    expect(reqsTo(s, Y)).toEqual([])
    await s.tick(1)
    expect(reqsTo(s, Y).sort()).toEqual([0, 1])
    expect(s.swarm.counters['swarm.endgame.dup']).toBe(2)
    await s.recv(X, { t: 'piece', file: f.id, index: 0, data: f.piece(0) })
    expect(s.take('cancel', Y).map(([, m]) => m.index)).toEqual([0])
    // Y's copy was on its way: counted as a duplicate, no penalty.
    await s.recv(Y, { t: 'piece', file: f.id, index: 0, data: f.piece(0) })
    expect(s.swarm.counters['swarm.piece.dup']).toBe(1)
    expect(s.swarm.counters['swarm.peer.banned']).toBeUndefined()
  })

  it('busy: the piece goes to another peer, and the busy peer is left alone for a while', async () => {
    const { f, s } = await connected(
      2,
      [
        { id: X, bits: fullBits(2) },
        { id: Y, bits: fullBits(2) },
      ],
      { pipeline: 1, busyBackoffMs: 500, endgameAfterMs: 0 },
    )
    const a = reqsTo(s, X)[0] as number
    const b = reqsTo(s, Y)[0] as number
    await s.recv(X, { t: 'busy', file: f.id, index: a })
    expect(s.swarm.counters['swarm.busy.got']).toBe(1)
    // Y gets it as soon as it has room.
    await s.recv(Y, { t: 'piece', file: f.id, index: b, data: f.piece(b) })
    expect(reqsTo(s, Y)).toEqual([a])
    await s.tick(100)
    expect(reqsTo(s, X)).toEqual([]) // backing off, though the endgame would ask it
    await s.tick(500)
    expect(reqsTo(s, X)).toEqual([a])
  })

  it('busy with a suggestion: asks that peer for the suggested piece at once', async () => {
    const { f, s } = await connected(8, [{ id: X, bits: fullBits(8) }], { pipeline: 1 })
    const i = reqsTo(s, X)[0] as number
    const j = (i + 3) % 8
    await s.recv(X, { t: 'busy', file: f.id, index: i, suggest: j })
    expect(reqsTo(s, X)).toEqual([j])
    expect(s.swarm.counters['swarm.suggest.taken']).toBe(1)
  })

  it('a have from a peer makes it a source; none from it makes it not one', async () => {
    const { f, s } = await connected(4, [{ id: X, bits: bitsOf(4, [0]) }])
    expect(reqsTo(s, X)).toEqual([0])
    await s.recv(X, { t: 'have', file: f.id, index: 3 })
    expect(reqsTo(s, X)).toEqual([3])
    await s.recv(X, { t: 'none', file: f.id, index: 3 })
    await s.recv(X, { t: 'have', file: f.id, index: 99 })
    expect(s.swarm.counters['drop.swarm.index']).toBe(1)
  })

  it('a have that gives nothing new to ask for costs no scan of the pieces (haves are not budgeted)', async () => {
    const n = 2048
    const { f, s } = await connected(n, [
      { id: X, bits: fullBits(n) },
      { id: Y, bits: bitsOf(n, []) },
    ])
    const asked = reqsTo(s, X)[0] as number
    const scans = vi.spyOn(Bitfield.prototype, 'has')
    try {
      // Y announces a piece already asked of X, then the same piece again and again.
      for (let k = 0; k < 200; k++) await s.swarm.handle(Y, { t: 'have', file: f.id, index: asked })
      expect(scans.mock.calls.length).toBeLessThan(200 * 16) // was 200 × 2,048: a full scan per have
    } finally {
      scans.mockRestore()
    }
    expect(reqsTo(s, Y)).toEqual([])
    // A have for a piece nobody is asked for is still taken at once.
    await s.recv(Y, { t: 'have', file: f.id, index: n - 1 })
    expect(reqsTo(s, Y)).toEqual([n - 1])
  })

  it('a piece still being hashed when its file is removed is not written: nothing is left in the store', async () => {
    let gate: Promise<void> | undefined
    const sha256 = async (d: Uint8Array) => {
      if (gate) await gate
      return new Uint8Array(await crypto.subtle.digest('SHA-256', d as Uint8Array<ArrayBuffer>))
    }
    const { f, s } = await connected(4, [{ id: X, bits: fullBits(4) }], {}, swarmStub({}, { sha256 }))
    const i = reqsTo(s, X)[0] as number
    let open = () => {}
    gate = new Promise<void>((r) => {
      open = r
    }) // the piece's hash waits
    const arriving = s.swarm.handle(X, { t: 'piece', file: f.id, index: i, data: f.piece(i) })
    await flush()
    await s.swarm.remove(f.id)
    open()
    await arriving
    expect(await s.store.pieces(f.id)).toEqual([])
    expect(await s.store.usage()).toMatchObject({ used: 0 })
  })

  it('a manifest still being checked when its file is removed is not written: the file stays removed', async () => {
    let gate: Promise<void> | undefined
    const sha256 = async (d: Uint8Array) => {
      if (gate) await gate
      return new Uint8Array(await crypto.subtle.digest('SHA-256', d as Uint8Array<ArrayBuffer>))
    }
    const f = await testFile(4)
    const s = swarmStub({}, { sha256 })
    s.providers.push(X)
    s.swarm.get(f.uri)
    await flush()
    await s.recv(X, { t: 'hello', file: f.id, bits: fullBits(4) })
    expect(s.take('meta-req', X)).toHaveLength(1)
    let open = () => {}
    gate = new Promise<void>((r) => {
      open = r
    }) // the manifest's hash waits
    const arriving = s.swarm.handle(X, { t: 'meta', file: f.id, manifest: f.bytes })
    await flush()
    await s.swarm.remove(f.id)
    open()
    await arriving
    expect(await s.store.getManifest(f.id)).toBeUndefined()
    expect(await s.swarm.list()).toEqual([])
  })

  it('pieces arrive, bytes() gives the file, pieces() yields it in order', async () => {
    const { f, s, dl } = await connected(6, [{ id: X, bits: fullBits(6) }], {}, swarmStub())
    const streamed: Uint8Array[] = []
    const reading = (async () => {
      for await (const p of dl.pieces()) streamed.push(p)
    })()
    for (let round = 0; round < 4; round++)
      for (const i of reqsTo(s, X)) await s.recv(X, { t: 'piece', file: f.id, index: i, data: f.piece(i) })
    const info = await dl.done()
    expect(info).toMatchObject({ id: f.id, size: f.data.length, name: 'test.bin' })
    expect(await dl.bytes()).toEqual(f.data)
    await reading
    expect(streamed.map((p) => p.length)).toEqual([1024, 1024, 1024, 1024, 1024, 1024])
    expect(Buffer.concat(streamed)).toEqual(Buffer.from(f.data))
    expect(s.swarm.counters['swarm.download.complete']).toBe(1)
    expect(s.take('bye', X).map(([, m]) => m.reason)).toEqual(['done']) // both complete: they part
  })

  it('resumes: pieces already in the store are not asked for again', async () => {
    const f = await testFile(6)
    const store = createMemoryStore()
    await store.putManifest(f.id, f.bytes)
    for (const i of [0, 1, 2, 3]) await store.putPiece(f.id, i, f.piece(i))
    const s = swarmStub({}, { store })
    s.providers.push(X)
    const dl = s.swarm.get(f.id)
    await flush()
    expect(dl.progress()).toMatchObject({ have: 4, total: 6 })
    expect(s.take('hello')[0]?.[1].bits).toEqual(bitsOf(6, [0, 1, 2, 3]))
    await s.recv(X, { t: 'hello', file: f.id, bits: fullBits(6) })
    expect(s.take('meta-req')).toEqual([]) // the manifest was in the store
    expect(reqsTo(s, X).sort()).toEqual([4, 5])
  })
})

describe('swarm download: how it ends', () => {
  it('NotFoundError when nobody provides the file within findTimeoutMs', async () => {
    const f = await testFile(2)
    const s = swarmStub({ findTimeoutMs: 5000 })
    const dl = s.swarm.get(f.uri)
    await flush()
    for (let t = 0; t < 6; t++) await s.tick(1000)
    await expect(dl.done()).rejects.toMatchObject({ name: 'NotFoundError', file: f.id })
    expect(s.swarm.counters['swarm.lookup']).toBeGreaterThan(2) // it kept asking the DHT meanwhile
  })

  it('IntegrityError when the only provider sends a manifest that is not the id', async () => {
    const f = await testFile(2)
    const other = await testFile(2, 1024, 9)
    const s = swarmStub({ findTimeoutMs: 5000 })
    s.providers.push(X)
    const dl = s.swarm.get(f.id)
    await flush()
    await s.recv(X, { t: 'hello', file: f.id, bits: fullBits(2) })
    await s.recv(X, { t: 'meta', file: f.id, manifest: other.bytes })
    expect(s.swarm.counters['drop.swarm.bad-manifest-hash']).toBe(1)
    for (let t = 0; t < 6; t++) await s.tick(1000)
    await expect(dl.done()).rejects.toMatchObject({ name: 'IntegrityError' })
  })

  it('a manifest nobody asked for is dropped', async () => {
    const f = await testFile(2)
    const s = swarmStub()
    s.providers.push(X, Y)
    s.swarm.get(f.id)
    await flush()
    await s.recv(X, { t: 'hello', file: f.id, bits: fullBits(2) })
    await s.recv(Y, { t: 'hello', file: f.id, bits: fullBits(2) })
    const asked = s.take('meta-req')[0]?.[0]
    const other = asked === X ? Y : X
    await s.recv(other, { t: 'meta', file: f.id, manifest: f.bytes })
    expect(s.swarm.counters['drop.swarm.unasked-meta']).toBe(1)
  })

  it('IntegrityError when the only peer with the missing pieces lied; NotFoundError when it just left', async () => {
    for (const lie of [true, false]) {
      const { f, s, dl } = await connected(2, [{ id: X, bits: fullBits(2) }], {
        stallTimeoutMs: 3000,
        pipeline: 1,
      })
      const i = reqsTo(s, X)[0] as number
      if (lie) await s.recv(X, { t: 'piece', file: f.id, index: i, data: new Uint8Array(1024) })
      else s.swarm.linkDown(X)
      for (let t = 0; t < 4; t++) await s.tick(1000)
      await expect(dl.done()).rejects.toMatchObject({ name: lie ? 'IntegrityError' : 'NotFoundError' })
      expect(await s.store.getManifest(f.id)).toEqual(f.bytes) // what it has stays
    }
  })

  it('aborts through its AbortSignal: AbortError, requests cancelled, a second get resumes', async () => {
    const { f, s, dl } = await connected(4, [{ id: X, bits: fullBits(4) }], { pipeline: 2 })
    const asked = reqsTo(s, X)
    await s.recv(X, { t: 'piece', file: f.id, index: asked[0], data: f.piece(asked[0] as number) })
    const ac = new AbortController()
    const again = s.swarm.get(f.id, { signal: ac.signal })
    expect(again.id).toBe(dl.id)
    ac.abort()
    await expect(dl.done()).rejects.toMatchObject({ name: 'AbortError' })
    expect(s.take('cancel', X).length).toBeGreaterThan(0)
    const resumed: Download = s.swarm.get(f.id)
    await flush()
    expect(resumed.progress().have).toBe(1)
  })

  it('StorageFullError when the store is full', async () => {
    const store = createMemoryStore({ maxBytes: 2000 }) // the manifest and one piece
    const { f, s, dl } = await connected(4, [{ id: X, bits: fullBits(4) }], {}, swarmStub({}, { store }))
    for (const i of reqsTo(s, X)) await s.recv(X, { t: 'piece', file: f.id, index: i, data: f.piece(i) })
    await expect(dl.done()).rejects.toMatchObject({ name: 'StorageFullError' })
  })

  it('pex from a peer brings candidates, dialled while below targetPeers; a pex too soon is dropped', async () => {
    const { f, s } = await connected(4, [{ id: X, bits: fullBits(4) }], { pexIntervalMs: 10_000 })
    await s.recv(X, { t: 'pex', file: f.id, peers: [Y, Z] })
    expect(
      s
        .take('hello')
        .map(([to]) => to)
        .sort(),
    ).toEqual([Y, Z])
    await s.recv(X, { t: 'pex', file: f.id, peers: [Y] })
    expect(s.swarm.counters['drop.swarm.pex-early']).toBe(1)
  })
})
