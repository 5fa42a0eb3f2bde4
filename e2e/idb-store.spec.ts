/**
 * The IndexedDB piece store (client/files/idb-store.ts) in Chromium: pieces
 * written, the page reloaded, the pieces read back; the limit; two tabs on
 * one database; and one write and read of 16 MiB in 64 pieces in IndexedDB
 * and in OPFS, for the figures behind the choice of IndexedDB.
 *
 * The store is not in weft.mjs yet (the swarm loads it), so this spec bundles
 * it here with Vite and serves it to the page at a path of the signal
 * server's origin (a Playwright route): the page, the origin and its
 * IndexedDB are the real ones, and nothing test-only ships in the bundle.
 */
import { join } from 'node:path'
import { type BrowserContext, expect, type Page, test } from '@playwright/test'
import { build, type Rolldown } from 'vite'
import { blankPage, type SignalServerProcess, startSignalServer } from './fixtures.ts'

const STORE_PATH = '/__test__/idb-store.mjs'
const ID = 'ab'.repeat(32)
const OTHER = 'cd'.repeat(32)

let server: SignalServerProcess
let storeModule = ''

test.beforeAll(async () => {
  server = await startSignalServer()
  const out = await build({
    configFile: false,
    logLevel: 'silent',
    build: {
      write: false,
      minify: false,
      lib: { entry: join(import.meta.dirname, '../client/files/idb-store.ts'), formats: ['es'] },
    },
  })
  const outputs = (Array.isArray(out) ? out : [out]) as Rolldown.RolldownOutput[]
  storeModule = outputs[0]?.output[0]?.code ?? ''
  expect(storeModule).toContain('idbPieceStore')
})
test.afterAll(async () => {
  await server?.stop()
})

/** A page of the server's origin that can import the store from STORE_PATH. */
async function storePage(ctx: BrowserContext): Promise<Page> {
  await ctx.route(`**${STORE_PATH}`, (route) =>
    route.fulfill({ contentType: 'text/javascript', body: storeModule }),
  )
  return blankPage(ctx, server.url)
}

test('pieces and the manifest survive a reload, with usage; a removal too', async ({ browser }) => {
  const ctx = await browser.newContext()
  const page = await storePage(ctx)
  const written = await page.evaluate(
    async ({ path, id, other }) => {
      const { idbPieceStore } = await import(path)
      // Piece i: a pattern of i, so the reloaded page can check what it reads.
      const make = (i: number, size: number) => new Uint8Array(size).map((_, j) => (i * 31 + j * 7) & 255)
      const s = await idbPieceStore({ name: 'e2e', maxBytes: 10 * 2 ** 20 })
      await s.putManifest(id, make(999, 300))
      await Promise.all(Array.from({ length: 64 }, (_, i) => s.putPiece(id, i, make(i, 16_384))))
      await s.putManifest(other, make(5, 10))
      await s.putPiece(other, 3, make(3, 100))
      return s.usage()
    },
    { path: STORE_PATH, id: ID, other: OTHER },
  )
  expect(written.used).toBe(300 + 64 * 16_384 + 110)

  await page.reload()
  const after = await page.evaluate(
    async ({ path, id, other }) => {
      const { idbPieceStore } = await import(path)
      // Piece i: a pattern of i, so the reloaded page can check what it reads.
      const make = (i: number, size: number) => new Uint8Array(size).map((_, j) => (i * 31 + j * 7) & 255)
      const same = (a: Uint8Array | undefined, b: Uint8Array) =>
        a !== undefined && a.length === b.length && a.every((x, k) => x === b[k])
      const s = await idbPieceStore({ name: 'e2e', maxBytes: 10 * 2 ** 20 })
      const usage = await s.usage()
      const pieces = ((await s.pieces(id)) as number[]).sort((a, b) => a - b)
      let equal = same(await s.getManifest(id), make(999, 300))
      for (let i = 0; i < 64; i++) equal &&= same(await s.getPiece(id, i), make(i, 16_384))
      const list = await s.list()
      await s.remove(other)
      return { usage, pieces, equal, list }
    },
    { path: STORE_PATH, id: ID, other: OTHER },
  )
  expect(after.usage).toEqual(written)
  expect(after.pieces).toEqual(Array.from({ length: 64 }, (_, i) => i))
  expect(after.equal).toBe(true)
  expect(after.list.sort((a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id))).toEqual([
    { id: ID, pieces: 64, bytes: 300 + 64 * 16_384 },
    { id: OTHER, pieces: 1, bytes: 110 },
  ])

  await page.reload()
  const removed = await page.evaluate(
    async ({ path, other }) => {
      const { idbPieceStore } = await import(path)
      const s = await idbPieceStore({ name: 'e2e', maxBytes: 10 * 2 ** 20 })
      return { usage: await s.usage(), manifest: await s.getManifest(other), pieces: await s.pieces(other) }
    },
    { path: STORE_PATH, other: OTHER },
  )
  expect(removed).toEqual({ usage: { used: 300 + 64 * 16_384, limit: 10 * 2 ** 20 }, pieces: [] })
  await ctx.close()
})

test('past the limit a put rejects with StorageFullError and keeps nothing, before and after a reload', async ({
  browser,
}) => {
  const ctx = await browser.newContext()
  const page = await storePage(ctx)
  const run = () =>
    page.evaluate(
      async ({ path, id }) => {
        const { idbPieceStore } = await import(path)
        const s = await idbPieceStore({ name: 'limit', maxBytes: 100_000 })
        const kept: number[] = []
        let error: { name: string; needed: number; used: number; limit: number } | undefined
        for (let i = 0; i < 10 && !error; i++) {
          try {
            if (!(await s.has(id, i))) await s.putPiece(id, i, new Uint8Array(16_384).fill(i))
            kept.push(i)
          } catch (e) {
            const { name, needed, used, limit } = e as {
              name: string
              needed: number
              used: number
              limit: number
            }
            error = { name, needed, used, limit }
          }
        }
        return { kept, error, usage: await s.usage(), has6: await s.has(id, 6) }
      },
      { path: STORE_PATH, id: ID },
    )
  const first = await run()
  expect(first.kept).toEqual([0, 1, 2, 3, 4, 5])
  expect(first.error).toEqual({ name: 'StorageFullError', needed: 16_384, used: 98_304, limit: 100_000 })
  expect(first.usage).toEqual({ used: 98_304, limit: 100_000 })
  expect(first.has6).toBe(false)
  await page.reload()
  expect(await run()).toEqual(first)

  // Without maxBytes: 1 GiB, or half the origin's quota when that is less.
  const limits = await page.evaluate(async (path) => {
    const { idbPieceStore } = await import(path)
    const { quota } = await navigator.storage.estimate()
    return { limit: (await (await idbPieceStore({ name: 'default' })).usage()).limit, quota: quota ?? 0 }
  }, STORE_PATH)
  expect(limits.limit).toBe(Math.min(2 ** 30, Math.floor(limits.quota / 2)))
  await ctx.close()
})

test('two tabs of one origin write one file at once: every piece once, counts right in both', async ({
  browser,
}) => {
  const ctx = await browser.newContext()
  const [a, b] = [await storePage(ctx), await storePage(ctx)]
  const write = (page: Page, order: 'up' | 'down') =>
    page.evaluate(
      async ({ path, id, order }) => {
        const { idbPieceStore } = await import(path)
        const s = await idbPieceStore({ name: 'tabs' })
        const idx = Array.from({ length: 48 }, (_, i) => (order === 'up' ? i : 47 - i))
        await Promise.all(idx.map((i) => s.putPiece(id, i, new Uint8Array(8192).fill(i))))
        await s.putManifest(id, new Uint8Array(64))
      },
      { path: STORE_PATH, id: ID, order },
    )
  await Promise.all([write(a, 'up'), write(b, 'down')])
  for (const page of [a, b]) {
    const seen = await page.evaluate(
      async ({ path, id }) => {
        const { idbPieceStore } = await import(path)
        const s = await idbPieceStore({ name: 'tabs' })
        return { usage: await s.usage(), list: await s.list(), last: [...(await s.getPiece(id, 47))].at(-1) }
      },
      { path: STORE_PATH, id: ID },
    )
    expect(seen.usage.used).toBe(48 * 8192 + 64)
    expect(seen.list).toEqual([{ id: ID, pieces: 48, bytes: 48 * 8192 + 64 }])
    expect(seen.last).toBe(47)
  }
  await ctx.close()
})

test('16 MiB in 64 pieces: one write and one read, IndexedDB store and OPFS (figures)', async ({
  browser,
}) => {
  const ctx = await browser.newContext()
  const page = await storePage(ctx)
  const r = await page.evaluate(
    async ({ path, id }) => {
      const { idbPieceStore } = await import(path)
      const SIZE = 256 * 1024
      const pieces = Array.from({ length: 64 }, (_, i) => {
        const b = new Uint8Array(SIZE)
        for (let o = 0; o < SIZE; o += 65_536) crypto.getRandomValues(b.subarray(o, o + 65_536))
        b[0] = i
        return b
      })
      const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, k) => x === b[k])
      const s = await idbPieceStore({ name: 'bench' })
      let t = performance.now()
      await Promise.all(pieces.map((p, i) => s.putPiece(id, i, p)))
      const idbWrite = performance.now() - t
      t = performance.now()
      const idbBack = await Promise.all(pieces.map((_, i) => s.getPiece(id, i)))
      const idbRead = performance.now() - t

      const root = await navigator.storage.getDirectory()
      const dir = await root.getDirectoryHandle(id, { create: true })
      t = performance.now()
      await Promise.all(
        pieces.map(async (p, i) => {
          const w = await (await dir.getFileHandle(String(i), { create: true })).createWritable()
          await w.write(p)
          await w.close()
        }),
      )
      const opfsWrite = performance.now() - t
      t = performance.now()
      const opfsBack = await Promise.all(
        pieces.map(
          async (_, i) =>
            new Uint8Array(await (await (await dir.getFileHandle(String(i))).getFile()).arrayBuffer()),
        ),
      )
      const opfsRead = performance.now() - t
      return {
        idbWrite,
        idbRead,
        opfsWrite,
        opfsRead,
        idbEqual: idbBack.every((b, i) => b !== undefined && same(b, pieces[i] as Uint8Array)),
        opfsEqual: opfsBack.every((b, i) => same(b, pieces[i] as Uint8Array)),
      }
    },
    { path: STORE_PATH, id: ID },
  )
  expect(r.idbEqual).toBe(true)
  expect(r.opfsEqual).toBe(true)
  const ms = (x: number) => `${x.toFixed(0)} ms (${(16.777_216e3 / x).toFixed(0)} MB/s)`
  console.log(
    `16 MiB in 64 pieces: IndexedDB store write ${ms(r.idbWrite)}, read ${ms(r.idbRead)}; ` +
      `OPFS (createWritable per piece) write ${ms(r.opfsWrite)}, read ${ms(r.opfsRead)}`,
  )
  await ctx.close()
})
