import { describe, expect, it } from 'vitest'
import { StorageFullError } from './errors.ts'
import { createMemoryStore } from './store.ts'

const A = 'aa'.repeat(32)
const B = 'bb'.repeat(32)

describe('memory store', () => {
  it('keeps manifests and pieces by file, as copies', async () => {
    const s = createMemoryStore()
    const piece = new Uint8Array([1, 2, 3])
    await s.putManifest(A, new Uint8Array([9]))
    await s.putPiece(A, 2, piece)
    piece[0] = 7
    const got = (await s.getPiece(A, 2)) as Uint8Array
    expect([...got]).toEqual([1, 2, 3])
    got[1] = 0
    expect([...((await s.getPiece(A, 2)) as Uint8Array)]).toEqual([1, 2, 3])
    expect(await s.has(A, 2)).toBe(true)
    expect(await s.has(A, 1)).toBe(false)
    expect(await s.pieces(A)).toEqual([2])
    expect(await s.pieces(B)).toEqual([])
    await s.putPiece(B, 0, new Uint8Array(5)) // pieces without a manifest: not listed as a file
    expect(await s.list()).toEqual([{ id: A, pieces: 1, bytes: 4 }])
    await s.remove(A)
    expect(await s.getManifest(A)).toBeUndefined()
    expect(await s.getPiece(A, 2)).toBeUndefined()
    expect((await s.usage()).used).toBe(5)
  })

  it('refuses to pass its limit with StorageFullError, and counts a replaced piece once', async () => {
    const s = createMemoryStore({ maxBytes: 10 })
    await s.putPiece(A, 0, new Uint8Array(6))
    await s.putPiece(A, 0, new Uint8Array(6))
    expect(await s.usage()).toEqual({ used: 6, limit: 10 })
    let err: unknown
    try {
      await s.putPiece(A, 1, new Uint8Array(5))
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(StorageFullError)
    expect(err).toMatchObject({ name: 'StorageFullError', needed: 5, used: 6, limit: 10 })
    expect(await s.has(A, 1)).toBe(false)
    await s.putPiece(A, 1, new Uint8Array(4))
    await s.remove(A)
    expect((await s.usage()).used).toBe(0)
  })
})
