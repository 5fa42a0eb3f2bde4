import { describe, expect, it } from 'vitest'
import { flush, fullBits, swarmStub, testFile, X, Y } from '../../test/swarm-stub.ts'
import { READ_AHEAD } from './download-handle.ts'
import { resolveSwarmOptions } from './options.ts'
import { createMemoryStore } from './store.ts'
import { fileUri } from './uri.ts'

const ids = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => `${tag}${i.toString(16).padStart(38, '0')}`)

describe('swarm: the files API', () => {
  it('add keeps a file and lists it complete; get of it resolves at once; remove forgets it and aborts a download', async () => {
    const f = await testFile(5, 300)
    const s = swarmStub()
    const info = await s.swarm.add(f.data, { name: 'test.bin', type: 'application/octet-stream' })
    expect(info.uri).toBe(fileUri(info.id, { name: 'test.bin', size: f.data.length }))
    expect(info).toMatchObject({ size: 4 * 1024 + 300, type: 'application/octet-stream' })
    expect(await s.swarm.list()).toEqual([{ ...info, complete: true, have: 5, total: 5 }])
    const dl = s.swarm.get(info.uri)
    await expect(dl.done()).resolves.toEqual(info)
    expect(await dl.bytes()).toEqual(f.data)
    await s.swarm.remove(info.id)
    expect(await s.swarm.list()).toEqual([])
    expect((await s.store.usage()).used).toBe(0)
    const other = await testFile(3, 1024, 5)
    s.providers.push(X)
    const pending = s.swarm.get(other.id)
    await flush()
    await s.swarm.remove(other.id)
    await expect(pending.done()).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('bytes() reads the pieces back a few at a time (READ_AHEAD at most), each to its place', async () => {
    const f = await testFile(11, 300)
    const mem = createMemoryStore()
    let reading = 0
    let most = 0
    const store = {
      ...mem,
      async getPiece(id: string, index: number) {
        reading++
        most = Math.max(most, reading)
        // A store that answers later, and out of order: a piece further on comes back first.
        await new Promise((r) => setTimeout(r, (11 - index) % 3))
        reading--
        return mem.getPiece(id, index)
      },
    }
    const s = swarmStub({}, { store })
    const info = await s.swarm.add(f.data, { name: 'test.bin' })
    expect(await s.swarm.get(info.id).bytes()).toEqual(f.data)
    expect(most).toBe(READ_AHEAD)
  })

  it('list shows a partial download as incomplete', async () => {
    const f = await testFile(4)
    const store = createMemoryStore()
    await store.putManifest(f.id, f.bytes)
    await store.putPiece(f.id, 1, f.piece(1))
    const s = swarmStub({}, { store })
    expect(await s.swarm.list()).toEqual([
      { id: f.id, uri: f.uri, size: f.data.length, name: 'test.bin', complete: false, have: 1, total: 4 },
    ])
  })

  it('get refuses a malformed link with a TypeError saying why', () => {
    const s = swarmStub()
    expect(() => s.swarm.get('weft:?dn=x')).toThrow(/xt=urn:weft/)
    expect(() => s.swarm.get('not a link')).toThrow(TypeError)
  })

  it('add fails, keeping nothing, when the source changes between its two reads, or the store is full', async () => {
    const f = await testFile(3)
    const s = swarmStub()
    let reads = 0
    const fickle = {
      size: f.data.length,
      read: (a: number, b: number) => {
        const d = f.data.slice(a, b)
        if (++reads > 3) d[0] = (d[0] as number) ^ 1 // the second pass sees other bytes
        return d
      },
    }
    await expect(s.swarm.add(fickle)).rejects.toThrow(/changed/)
    expect(await s.swarm.list()).toEqual([])
    const small = swarmStub({}, { store: createMemoryStore({ maxBytes: 2048 }) })
    await expect(small.swarm.add(f.data)).rejects.toMatchObject({ name: 'StorageFullError' })
    expect((await small.store.usage()).used).toBe(0)
  })

  it('provideAll announces every stored file', async () => {
    const s = swarmStub()
    const a = await s.swarm.add((await testFile(2)).data)
    const b = await s.swarm.add((await testFile(2, 1024, 3)).data)
    s.provided.length = 0
    await s.swarm.provideAll()
    expect(s.provided.sort()).toEqual([a.id, b.id].sort())
  })

  it('close ends every download with ClosedError and refuses later gets the same way', async () => {
    const f = await testFile(2)
    const s = swarmStub()
    const dl = s.swarm.get(f.id)
    await flush()
    s.swarm.close()
    await expect(dl.done()).rejects.toMatchObject({ name: 'ClosedError' })
    await expect(s.swarm.get(f.id).done()).rejects.toMatchObject({ name: 'ClosedError' })
  })
})

describe('swarm: what a stranger can make it hold is bounded', () => {
  it('hellos for many unknown files leave no state (answered none); known files live at most maxActiveFiles at once', async () => {
    const s = swarmStub({ maxActiveFiles: 3, peerMsgBurst: 10_000, peerMsgPerSec: 10_000 })
    for (const id of ids(200, 'ff').map((x) => x.padEnd(64, '0')))
      await s.swarm.handle(X, { t: 'hello', file: id })
    expect(s.swarm.sizes().files).toBe(0)
    expect(s.take('none', X)).toHaveLength(200)
    const added = []
    for (let k = 0; k < 6; k++) added.push(await s.swarm.add((await testFile(1, 1024, k)).data))
    for (const a of added) await s.recv(Y, { t: 'hello', file: a.id }) // each loaded from the store, Y stays a peer
    expect(s.swarm.sizes().files).toBe(3)
    expect(s.swarm.counters['swarm.files-full']).toBe(3)
    expect(s.take('bye', Y).map(([, m]) => m.reason)).toEqual(['busy', 'busy', 'busy'])
  })

  it('one peer cannot hold every file slot: past maxFilesPerPeer its hellos are answered bye busy, and others get in', async () => {
    const s = swarmStub({ maxActiveFiles: 4, maxFilesPerPeer: 2 })
    const added = []
    for (let k = 0; k < 4; k++) added.push(await s.swarm.add((await testFile(1, 1024, k)).data))
    for (const a of added) await s.recv(X, { t: 'hello', file: a.id }) // X never asks for anything, never leaves
    expect(s.take('bye', X).map(([, m]) => m.reason)).toEqual(['busy', 'busy'])
    expect(s.swarm.counters['swarm.peer.files-full']).toBe(2)
    for (const a of added.slice(2)) await s.recv(Y, { t: 'hello', file: a.id })
    expect(s.take('bye', Y)).toEqual([])
    expect(s.take('hello', Y)).toHaveLength(2)
  })

  it('candidates from pex and the DHT are bounded by maxCandidates; the peer table by maxPeers', async () => {
    const f = await testFile(4)
    const s = swarmStub({ maxCandidates: 50, targetPeers: 2, maxPeers: 5, pexIntervalMs: 1 })
    s.providers.push(...ids(300, 'aa'))
    s.swarm.get(f.id)
    await flush()
    expect(s.swarm.sizes().candidates).toBeLessThanOrEqual(50)
    for (const p of s.take('hello').map(([to]) => to))
      await s.recv(p, { t: 'hello', file: f.id, bits: fullBits(4) })
    await s.recv(s.take('meta-req')[0]?.[0] as string, { t: 'meta', file: f.id, manifest: f.bytes })
    for (const p of ids(20, 'bb')) await s.recv(p, { t: 'hello', file: f.id })
    expect(s.swarm.sizes().peers).toBe(5)
    expect(s.take('bye').filter(([, m]) => m.reason === 'full')).toHaveLength(17)
  })

  it('a store that fails is counted, never thrown into the host', async () => {
    const broken = createMemoryStore()
    broken.getManifest = () => Promise.reject(new Error('disk gone'))
    const s = swarmStub({}, { store: broken })
    await expect(s.swarm.handle(X, { t: 'hello', file: 'ab'.repeat(32) })).resolves.toBeUndefined()
    expect(s.swarm.counters['swarm.error']).toBe(1)
  })

  it('options are checked', () => {
    expect(() => resolveSwarmOptions({ pipeline: 0 })).toThrow(RangeError)
    expect(() => resolveSwarmOptions({ requestTimeoutMs: Number.NaN })).toThrow(RangeError)
    expect(resolveSwarmOptions({ endgameAfterMs: 0 }).endgameAfterMs).toBe(0)
  })

  it('refusals at the wire are counted by reason through parse', () => {
    const s = swarmStub()
    expect(s.swarm.parse({ t: 'req', file: 'x', index: 1 })).toBeNull()
    expect(
      s.swarm.parse({ t: 'piece', file: 'ab'.repeat(32), index: 1, data: new Uint8Array(2_000_000) }),
    ).toBeNull()
    expect(s.swarm.counters).toMatchObject({ 'drop.swarm.file': 1, 'drop.swarm.data': 1 })
  })

  it('per-peer budgets are forgotten once idle', async () => {
    const s = swarmStub()
    for (const p of ids(50, 'cc')) await s.swarm.handle(p, { t: 'hello', file: 'ab'.repeat(32) })
    expect(s.swarm.sizes().peerBudgets).toBe(50)
    await s.tick(10_000)
    expect(s.swarm.sizes().peerBudgets).toBe(0)
  })
})
