/**
 * The cases every PieceStore passes (shared/swarm/store.ts), run against a
 * factory: the memory store, the folder store (Node) and the IndexedDB
 * store (fake-indexeddb here, Chromium in e2e/idb-store.spec.ts) answer
 * them alike. A store that outlives its process also gets `reopen`, which
 * opens the same storage afresh, as a reload or a restart would.
 *
 * A test-only module (excluded from the build in tsconfig.build.json).
 */
import { describe, expect, it } from 'vitest'
import { StorageFullError } from '../../shared/swarm/errors.ts'
import type { PieceStore } from '../../shared/swarm/store.ts'

export interface StoreUnderTest {
  store: PieceStore
  /** The same storage opened again (a reload, a restart), with the same options. */
  reopen?: () => Promise<PieceStore>
}

/** Make a fresh, empty store with these options. */
export type StoreFactory = (opts: { maxBytes?: number }) => Promise<StoreUnderTest>

export const A = 'aa'.repeat(32)
export const B = 'bb'.repeat(32)

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill)

/** The error a call threw or rejected with (a store may answer synchronously). */
async function failure(call: () => unknown): Promise<unknown> {
  try {
    await call()
  } catch (err) {
    return err
  }
  throw new Error('expected the call to fail')
}

/** Run the cases; `persistent` adds the ones for a store that outlives its process (the factory gives `reopen`). */
export function storeConformance(name: string, make: StoreFactory, { persistent = false } = {}): void {
  describe(`${name}: PieceStore conformance`, () => {
    it('keeps manifests and pieces by file, and hands out copies', async () => {
      const { store: s } = await make({})
      const manifest = bytes(40, 9)
      const piece = new Uint8Array([1, 2, 3])
      await s.putManifest(A, manifest)
      await s.putPiece(A, 2, piece)
      manifest[0] = 0
      piece[0] = 7
      expect(await s.getManifest(A)).toEqual(bytes(40, 9))
      const got = (await s.getPiece(A, 2)) as Uint8Array
      expect(got).toEqual(new Uint8Array([1, 2, 3]))
      got[1] = 0
      expect(await s.getPiece(A, 2)).toEqual(new Uint8Array([1, 2, 3]))
      expect(await s.getManifest(B)).toBeUndefined()
      expect(await s.getPiece(A, 0)).toBeUndefined()
      expect(await s.getPiece(B, 2)).toBeUndefined()
    })

    it('keeps only the bytes of a view, not the buffer behind it', async () => {
      const { store: s } = await make({ maxBytes: 100 })
      const big = bytes(1000, 5)
      await s.putPiece(A, 0, big.subarray(10, 14))
      expect(await s.getPiece(A, 0)).toEqual(bytes(4, 5))
      expect((await s.usage()).used).toBe(4)
    })

    it('answers has and pieces per file', async () => {
      const { store: s } = await make({})
      for (const i of [0, 3, 7]) await s.putPiece(A, i, bytes(4, i))
      await s.putPiece(B, 1, bytes(4, 1))
      expect(await s.has(A, 3)).toBe(true)
      expect(await s.has(A, 1)).toBe(false)
      expect(await s.has(B, 3)).toBe(false)
      expect([...(await s.pieces(A))].sort((x, y) => x - y)).toEqual([0, 3, 7])
      expect(await s.pieces(B)).toEqual([1])
      expect(await s.pieces('cc'.repeat(32))).toEqual([])
    })

    it('lists files with a manifest, with their pieces and bytes', async () => {
      const { store: s } = await make({})
      await s.putManifest(A, bytes(10, 1))
      await s.putPiece(A, 0, bytes(100, 2))
      await s.putPiece(A, 1, bytes(50, 3))
      await s.putPiece(B, 0, bytes(7, 4)) // pieces without a manifest: held and counted, not a file
      expect(await s.list()).toEqual([{ id: A, pieces: 2, bytes: 160 }])
      expect((await s.usage()).used).toBe(167)
      await s.putManifest(B, bytes(3, 5))
      const listed = [...(await s.list())].sort((x, y) => x.id.localeCompare(y.id))
      expect(listed).toEqual([
        { id: A, pieces: 2, bytes: 160 },
        { id: B, pieces: 1, bytes: 10 },
      ])
    })

    it('counts a replaced piece or manifest once', async () => {
      const { store: s } = await make({ maxBytes: 100 })
      await s.putManifest(A, bytes(10, 1))
      await s.putManifest(A, bytes(10, 1))
      await s.putPiece(A, 0, bytes(30, 2))
      await s.putPiece(A, 0, bytes(30, 2))
      expect(await s.usage()).toEqual({ used: 40, limit: 100 })
      await s.putPiece(A, 0, bytes(20, 3)) // smaller: frees the difference
      expect(await s.getPiece(A, 0)).toEqual(bytes(20, 3))
      expect(await s.list()).toEqual([{ id: A, pieces: 1, bytes: 30 }])
      expect((await s.usage()).used).toBe(30)
    })

    it('refuses to pass its limit with StorageFullError and keeps nothing of the refused put', async () => {
      const { store: s } = await make({ maxBytes: 100 })
      await s.putManifest(A, bytes(10, 1))
      await s.putPiece(A, 0, bytes(60, 2))
      const err = await failure(() => s.putPiece(A, 1, bytes(31, 3)))
      expect(err).toBeInstanceOf(StorageFullError)
      expect(err).toMatchObject({ name: 'StorageFullError', needed: 31, used: 70, limit: 100 })
      expect(await s.has(A, 1)).toBe(false)
      expect(await s.getPiece(A, 1)).toBeUndefined()
      expect(await s.pieces(A)).toEqual([0])
      expect(await s.usage()).toEqual({ used: 70, limit: 100 })
      expect(await s.list()).toEqual([{ id: A, pieces: 1, bytes: 70 }])
      // A manifest past the limit is refused alike.
      expect(await failure(() => s.putManifest(B, bytes(31, 4)))).toBeInstanceOf(StorageFullError)
      expect(await s.getManifest(B)).toBeUndefined()
      // A piece growing past the limit is refused and the old one stays.
      expect(await failure(() => s.putPiece(A, 0, bytes(91, 5)))).toBeInstanceOf(StorageFullError)
      expect(await s.getPiece(A, 0)).toEqual(bytes(60, 2))
      // Exactly up to the limit is allowed.
      await s.putPiece(A, 1, bytes(30, 3))
      expect(await s.usage()).toEqual({ used: 100, limit: 100 })
    })

    it('admits as many of many puts at once as fit, no more', async () => {
      const { store: s } = await make({ maxBytes: 100 })
      const results = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) => Promise.resolve().then(() => s.putPiece(A, i, bytes(10, i)))),
      )
      const kept = results.filter((r) => r.status === 'fulfilled').length
      expect(kept).toBe(10)
      for (const r of results)
        if (r.status === 'rejected') expect((r.reason as Error).name).toBe('StorageFullError')
      expect(await s.pieces(A)).toHaveLength(10)
      expect(await s.usage()).toEqual({ used: 100, limit: 100 })
    })

    it('removes a file: its manifest, every piece and their bytes', async () => {
      const { store: s } = await make({ maxBytes: 1000 })
      await s.putManifest(A, bytes(10, 1))
      for (let i = 0; i < 5; i++) await s.putPiece(A, i, bytes(20, i))
      await s.putManifest(B, bytes(10, 2))
      await s.putPiece(B, 0, bytes(20, 9))
      await s.remove(A)
      expect(await s.getManifest(A)).toBeUndefined()
      for (let i = 0; i < 5; i++) expect(await s.has(A, i)).toBe(false)
      expect(await s.pieces(A)).toEqual([])
      expect(await s.list()).toEqual([{ id: B, pieces: 1, bytes: 30 }])
      expect(await s.usage()).toEqual({ used: 30, limit: 1000 })
      await s.remove(A) // twice, and an unknown file: nothing happens
      await s.remove('cc'.repeat(32))
      expect((await s.usage()).used).toBe(30)
      // The file can come back.
      await s.putPiece(A, 4, bytes(20, 4))
      expect(await s.pieces(A)).toEqual([4])
      expect((await s.usage()).used).toBe(50)
    })

    if (!persistent) return
    it('keeps everything, and its usage, when opened again', async () => {
      const first = await make({ maxBytes: 300 })
      if (!first.reopen) throw new Error(`${name}: a persistent store's factory must give reopen`)
      const s = first.store
      await s.putManifest(A, bytes(10, 1))
      for (let i = 0; i < 4; i++) await s.putPiece(A, i, bytes(50, i + 1))
      await s.putPiece(B, 2, bytes(20, 7))
      await s.remove(B)
      await s.putPiece(B, 1, bytes(25, 8))
      const t = await first.reopen()
      expect(await t.usage()).toEqual({ used: 235, limit: 300 })
      expect(await t.getManifest(A)).toEqual(bytes(10, 1))
      for (let i = 0; i < 4; i++) expect(await t.getPiece(A, i)).toEqual(bytes(50, i + 1))
      expect([...(await t.pieces(A))].sort()).toEqual([0, 1, 2, 3])
      expect(await t.pieces(B)).toEqual([1])
      expect(await t.has(B, 2)).toBe(false)
      expect(await t.list()).toEqual([{ id: A, pieces: 4, bytes: 210 }])
      // The limit counts what was there before the reopen.
      expect(await failure(() => t.putPiece(A, 4, bytes(66, 1)))).toMatchObject({
        name: 'StorageFullError',
        used: 235,
      })
      await t.putPiece(A, 4, bytes(65, 1))
      await t.remove(A)
      const u = await first.reopen()
      expect(await u.usage()).toEqual({ used: 25, limit: 300 })
      expect(await u.list()).toEqual([])
      expect(await u.getPiece(A, 4)).toBeUndefined()
    })
  })
}
