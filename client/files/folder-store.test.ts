import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createMemoryStore } from '../../shared/swarm/store.ts'
import { DEFAULT_FOLDER_MAX_BYTES, folderPieceStore, peerPieceStore } from './folder-store.ts'
import { A, B, storeConformance } from './store-conformance.ts'

const dirs: string[] = []
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'weft-folder-store-'))
  dirs.push(d)
  return d
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

storeConformance('memory store', async (opts) => ({ store: createMemoryStore(opts) }))

storeConformance(
  'folder store',
  async (opts) => {
    const dir = tempDir()
    return { store: await folderPieceStore(dir, opts), reopen: () => folderPieceStore(dir, opts) }
  },
  { persistent: true },
)

describe('folder store', () => {
  it('lays files out as <dir>/<id>/manifest and <dir>/<id>/<index>, with no temporary files left', async () => {
    const dir = tempDir()
    const s = await folderPieceStore(dir)
    await s.putManifest(A, new Uint8Array([1, 2]))
    await s.putPiece(A, 0, new Uint8Array([3]))
    await s.putPiece(A, 12, new Uint8Array([4, 5, 6]))
    expect(readdirSync(dir)).toEqual([A])
    expect(readdirSync(join(dir, A)).sort()).toEqual(['0', '12', 'manifest'])
    expect([...readFileSync(join(dir, A, '12'))]).toEqual([4, 5, 6])
    await s.remove(A)
    expect(readdirSync(dir)).toEqual([])
    expect(await s.usage()).toEqual({ used: 0, limit: DEFAULT_FOLDER_MAX_BYTES })
  })

  it('at open, counts what is on disk, deletes cut-short writes and ignores what is not its own', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, A))
    writeFileSync(join(dir, A, 'manifest'), new Uint8Array(10))
    writeFileSync(join(dir, A, '3'), new Uint8Array(100))
    writeFileSync(join(dir, A, '4.tmp'), new Uint8Array(1000)) // a crash mid-write
    writeFileSync(join(dir, A, '007'), new Uint8Array(1000)) // not a name the store writes
    writeFileSync(join(dir, A, 'notes.txt'), new Uint8Array(1000))
    mkdirSync(join(dir, 'not-a-file-id'))
    writeFileSync(join(dir, 'not-a-file-id', '0'), new Uint8Array(1000))
    writeFileSync(join(dir, 'README'), 'hello')
    const s = await folderPieceStore(dir, { maxBytes: 500 })
    expect(await s.usage()).toEqual({ used: 110, limit: 500 })
    expect(await s.list()).toEqual([{ id: A, pieces: 1, bytes: 110 }])
    expect(await s.pieces(A)).toEqual([3])
    expect(existsSync(join(dir, A, '4.tmp'))).toBe(false)
    expect(existsSync(join(dir, A, 'notes.txt'))).toBe(true)
  })

  it('refuses a hostile id or index: a put rejects and writes nothing, a read finds nothing', async () => {
    const root = tempDir()
    const dir = join(root, 'files')
    const s = await folderPieceStore(dir)
    const hostile = [
      '..',
      '../outside',
      `../${A}`,
      `${A}/../../outside`,
      '/etc',
      A.toUpperCase(), // a second name for the same file on a case-insensitive disk
      `${A}0`,
      '',
    ]
    for (const id of hostile) {
      await expect(s.putManifest(id, new Uint8Array([1]))).rejects.toThrow(TypeError)
      await expect(s.putPiece(id, 0, new Uint8Array([1]))).rejects.toThrow(TypeError)
      expect(await s.getManifest(id)).toBeUndefined()
      expect(await s.getPiece(id, 0)).toBeUndefined()
      expect(await s.has(id, 0)).toBe(false)
      expect(await s.pieces(id)).toEqual([])
      await s.remove(id)
    }
    for (const index of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])
      await expect(s.putPiece(A, index, new Uint8Array([1]))).rejects.toThrow(TypeError)
    expect(readdirSync(root)).toEqual(['files'])
    expect(readdirSync(dir)).toEqual([])
    expect(await s.usage()).toMatchObject({ used: 0 })
  })

  it('a removal queued after writes waits for them, and a write after it lands', async () => {
    const dir = tempDir()
    const s = await folderPieceStore(dir)
    const writes = Array.from({ length: 20 }, (_, i) => s.putPiece(B, i, new Uint8Array(64).fill(i)))
    const removal = s.remove(B)
    const after = s.putPiece(B, 99, new Uint8Array(8))
    await Promise.all([...writes, removal, after])
    expect(await s.pieces(B)).toEqual([99])
    expect(readdirSync(join(dir, B))).toEqual(['99'])
    expect((await s.usage()).used).toBe(8)
  })

  it("weft-peer's store is <data>/files", async () => {
    const data = tempDir()
    const s = await peerPieceStore(data, 1234)
    await s.putPiece(A, 0, new Uint8Array(4))
    expect(existsSync(join(data, 'files', A, '0'))).toBe(true)
    expect(await s.usage()).toEqual({ used: 4, limit: 1234 })
  })
})
