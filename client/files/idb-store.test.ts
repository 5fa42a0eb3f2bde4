/**
 * The IndexedDB store against fake-indexeddb (an IndexedDB in memory, for
 * Node); e2e/idb-store.spec.ts runs it in Chromium.
 */
import 'fake-indexeddb/auto'
import { describe, expect, it } from 'vitest'
import { DEFAULT_IDB_MAX_BYTES, idbPieceStore } from './idb-store.ts'
import { A, B, storeConformance } from './store-conformance.ts'

let n = 0
const freshName = () => `weft-files-test-${++n}`

storeConformance(
  'IndexedDB store',
  async (opts) => {
    const name = freshName()
    return { store: await idbPieceStore({ name, ...opts }), reopen: () => idbPieceStore({ name, ...opts }) }
  },
  { persistent: true },
)

describe('IndexedDB store', () => {
  it('two tabs on one database: concurrent writes of the same and of different pieces keep the counts right', async () => {
    const name = freshName()
    const tab1 = await idbPieceStore({ name, maxBytes: 10_000 })
    const tab2 = await idbPieceStore({ name, maxBytes: 10_000 })
    const piece = (i: number) => new Uint8Array(100).fill(i)
    await Promise.all([
      tab1.putManifest(A, new Uint8Array(20)),
      tab2.putManifest(A, new Uint8Array(20)),
      ...Array.from({ length: 30 }, (_, i) => tab1.putPiece(A, i, piece(i))),
      ...Array.from({ length: 30 }, (_, i) => tab2.putPiece(A, 29 - i, piece(29 - i))),
      ...Array.from({ length: 10 }, (_, i) => tab2.putPiece(B, i, piece(i))),
    ])
    for (const s of [tab1, tab2]) {
      expect(await s.usage()).toEqual({ used: 20 + 3000 + 1000, limit: 10_000 })
      expect((await s.pieces(A)).length).toBe(30)
      expect(await s.list()).toEqual([{ id: A, pieces: 30, bytes: 3020 }])
    }
    expect(await tab1.getPiece(B, 7)).toEqual(piece(7))
    await tab1.remove(B)
    expect(await tab2.pieces(B)).toEqual([])
    expect((await tab2.usage()).used).toBe(3020)
    tab1.close()
    tab2.close()
  })

  it('two tabs share one limit: of puts from both at once, only what fits is kept', async () => {
    const name = freshName()
    const tab1 = await idbPieceStore({ name, maxBytes: 1000 })
    const tab2 = await idbPieceStore({ name, maxBytes: 1000 })
    const results = await Promise.allSettled(
      Array.from({ length: 16 }, (_, i) => (i % 2 ? tab1 : tab2).putPiece(A, i, new Uint8Array(100))),
    )
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10)
    expect(results.filter((r) => r.status === 'rejected').map((r) => r.reason.name)).toEqual(
      Array(6).fill('StorageFullError'),
    )
    expect(await tab1.usage()).toEqual({ used: 1000, limit: 1000 })
    expect(await tab2.pieces(A)).toHaveLength(10)
  })

  it('refuses a hostile id or index: a put rejects, a read finds nothing', async () => {
    const s = await idbPieceStore({ name: freshName() })
    for (const id of ['', '..', A.toUpperCase(), `${A}0`]) {
      await expect(s.putManifest(id, new Uint8Array(1))).rejects.toThrow(TypeError)
      await expect(s.putPiece(id, 0, new Uint8Array(1))).rejects.toThrow(TypeError)
      expect(await s.getManifest(id)).toBeUndefined()
      expect(await s.getPiece(id, 0)).toBeUndefined()
      expect(await s.has(id, 0)).toBe(false)
      expect(await s.pieces(id)).toEqual([])
    }
    for (const index of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY])
      await expect(s.putPiece(A, index, new Uint8Array(1))).rejects.toThrow(TypeError)
    expect((await s.usage()).used).toBe(0)
  })

  it('by default, 1 GiB or half the quota when that is less', async () => {
    expect((await (await idbPieceStore({ name: freshName() })).usage()).limit).toBe(
      Math.min(DEFAULT_IDB_MAX_BYTES, await halfQuota()),
    )
    const storage = { estimate: async () => ({ quota: 300_000_000, usage: 0 }) }
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'navigator')
    Object.defineProperty(globalThis, 'navigator', { value: { storage }, configurable: true })
    try {
      expect((await (await idbPieceStore({ name: freshName() })).usage()).limit).toBe(150_000_000)
    } finally {
      if (saved) Object.defineProperty(globalThis, 'navigator', saved)
      else Reflect.deleteProperty(globalThis, 'navigator')
    }
  })

  it('steps aside when another tab deletes the database, and opens it again on the next call', async () => {
    const name = freshName()
    const s = await idbPieceStore({ name })
    await s.putPiece(A, 0, new Uint8Array(5))
    await new Promise<void>((resolve, reject) => {
      const del = indexedDB.deleteDatabase(name)
      del.onsuccess = () => resolve()
      del.onerror = () => reject(del.error)
      del.onblocked = () => reject(new Error('blocked: the store did not close its connection'))
    })
    expect(await s.has(A, 0)).toBe(false)
    await s.putPiece(A, 1, new Uint8Array(5))
    expect(await s.usage()).toMatchObject({ used: 5 })
  })
})

async function halfQuota(): Promise<number> {
  const est = await globalThis.navigator?.storage?.estimate?.()
  return est?.quota ? Math.floor(est.quota / 2) : Number.POSITIVE_INFINITY
}

describe('IndexedDB store: the browser refusing for want of quota', () => {
  it('answers StorageFullError too, and keeps nothing', async () => {
    const s = await idbPieceStore({ name: freshName(), maxBytes: 1000 })
    await s.putPiece(A, 0, new Uint8Array(100))
    const put = IDBObjectStore.prototype.put
    IDBObjectStore.prototype.put = function (
      this: IDBObjectStore,
      ...args: Parameters<IDBObjectStore['put']>
    ) {
      if (this.name === 'pieces') throw new DOMException('the origin is out of quota', 'QuotaExceededError')
      return put.apply(this, args)
    }
    try {
      await expect(s.putPiece(A, 1, new Uint8Array(50))).rejects.toMatchObject({
        name: 'StorageFullError',
        needed: 50,
        used: 100,
        limit: 1000,
      })
    } finally {
      IDBObjectStore.prototype.put = put
    }
    expect(await s.pieces(A)).toEqual([0])
    expect(await s.usage()).toEqual({ used: 100, limit: 1000 })
  })
})
