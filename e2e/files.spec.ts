/**
 * Files in real browsers (issue 13): `node.files` between tabs, each its own
 * browser context, pieces over WebRTC data channels, providers found in the
 * DHT. Bytes are compared by SHA-256 digest, computed in each page.
 */
import { expect, test } from '@playwright/test'
import { closePeer, openPeer, type Peer, serverAndPeers, until } from './fixtures.ts'

const env = serverAndPeers()
const peers = env.peers

type Progress = { have: number; total: number; peers: number; bytesPerSec: number }
type Dl = {
  on(e: 'piece', fn: (x: { index: number; from: string }) => void): () => void
  on(e: 'progress', fn: (p: Progress) => void): () => void
  progress(): Progress
  bits(): Uint8Array | undefined
  bytes(): Promise<Uint8Array>
  done(): Promise<unknown>
}
type W = {
  node: {
    id: string
    stats(): Record<string, number>
    files: {
      add(
        d: Uint8Array,
        o?: { name?: string; type?: string },
      ): Promise<{ id: string; uri: string; size: number }>
      get(ref: string): Dl
      list(): Promise<{ id: string; complete: boolean; have: number; total: number }[]>
    }
  }
  data: Uint8Array<ArrayBuffer>
  dl: Dl
  from: string[]
  result: string | { error: string }
}

/**
 * Bytes made in the page (window.data) and their SHA-256 in hex: random, or
 * with `seed` the same in every page (xorshift32, incompressible enough).
 */
function makeData(p: Peer, bytes: number, seed?: number): Promise<string> {
  return p.page.evaluate(
    async ({ n, seed }) => {
      const w = window as unknown as W
      w.data = new Uint8Array(n)
      if (seed === undefined)
        for (let i = 0; i < n; i += 65_536)
          crypto.getRandomValues(w.data.subarray(i, Math.min(n, i + 65_536)))
      else {
        const words = new Uint32Array(w.data.buffer)
        let x = seed
        for (let i = 0; i < words.length; i++) {
          x ^= x << 13
          x ^= x >>> 17
          x ^= x << 5
          words[i] = x >>> 0
        }
      }
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', w.data))
      return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('')
    },
    { n: bytes, seed },
  )
}

/** Start fetching `uri` in `p`: window.dl, window.from (the peer of each piece), window.result (digest or error). */
function fetchIn(p: Peer, uri: string): Promise<void> {
  return p.page.evaluate((uri) => {
    const w = window as unknown as W
    w.from = []
    w.dl = w.node.files.get(uri)
    w.dl.on('piece', ({ from }) => w.from.push(from))
    w.dl.bytes().then(
      async (b) => {
        const d = new Uint8Array(await crypto.subtle.digest('SHA-256', b as Uint8Array<ArrayBuffer>))
        w.result = Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('')
      },
      (e: Error) => {
        w.result = { error: `${e.name}: ${e.message}` }
      },
    )
  }, uri)
}

const resultOf = (p: Peer) => p.page.evaluate(() => (window as unknown as W).result)
const statsOf = (p: Peer) => p.page.evaluate(() => (window as unknown as W).node.stats())

test('16 MiB from one seeder to three tabs at once; the seeder leaves mid-way and the rest finish from each other', async ({
  browser,
}) => {
  test.setTimeout(120_000)
  const seeder = await openPeer(browser, env.server.url, { network: 'files' })
  peers.push(seeder)
  const fetchers: Peer[] = []
  for (let i = 0; i < 3; i++) {
    const p = await openPeer(browser, env.server.url, { network: 'files' })
    peers.push(p)
    fetchers.push(p)
  }
  const digest = await makeData(seeder, 16 * 1024 * 1024)
  const file = await seeder.page.evaluate(async () => {
    const w = window as unknown as W
    return w.node.files.add(w.data, { name: 'noise.bin', type: 'application/octet-stream' })
  })
  expect(file.size).toBe(16 * 1024 * 1024)
  expect(file.uri).toBe(`weft:?xt=urn:weft:${file.id}&dn=noise.bin&xl=${16 * 1024 * 1024}`)
  // The seeder leaves the swarm (removes the file: it serves nothing more) as soon as 64 pieces have left
  // it: the first copy of each, as it sends every piece once before any twice (PROTOCOL-swarm.md,
  // "Uploads"). Watched in its page, so no poll from here can be too late. Its tab stays open until
  // the fetchers have finished (what it sent may still sit in its send buffers), then closes.
  const left = seeder.page.evaluate(
    (id) =>
      new Promise<number>((resolve) => {
        const w = window as unknown as W & { node: { files: { remove(id: string): Promise<void> } } }
        const t = setInterval(async () => {
          if ((w.node.stats()['swarm.piece.out'] ?? 0) < 64) return
          clearInterval(t)
          await w.node.files.remove(id)
          resolve(w.node.stats()['swarm.piece.out'] ?? 0)
        }, 5)
      }),
    file.id,
  )
  await Promise.all(fetchers.map((p) => fetchIn(p, file.uri)))
  const sentBySeeder = await left
  // Mid-way: the seeder sent far fewer pieces than the three fetchers needed.
  expect(sentBySeeder).toBeLessThan(2 * 64)
  try {
    await until(
      async () => (await Promise.all(fetchers.map(resultOf))).every((r) => r !== undefined),
      60_000,
      'every fetcher done',
    )
  } catch (e) {
    const swarmStats = (x: Record<string, number>) =>
      JSON.stringify(Object.fromEntries(Object.entries(x).filter(([k]) => k.includes('swarm'))))
    console.log('DIAG seeder', sentBySeeder, swarmStats(await statsOf(seeder)))
    for (const p of fetchers) {
      const d = await p.page.evaluate(() => {
        const w = window as unknown as W
        return { bits: Array.from(w.dl.bits() ?? []), progress: w.dl.progress(), result: w.result }
      })
      console.log('DIAG fetcher', JSON.stringify(d), swarmStats(await statsOf(p)))
    }
    throw e
  }
  await closePeer(seeder)
  peers.splice(peers.indexOf(seeder), 1)
  for (const p of fetchers) expect(await resultOf(p)).toBe(digest)
  // Each fetcher kept 64 pieces; at most what the seeder sent came from it, the rest from other fetchers.
  const ids = new Set(fetchers.map((p) => p.id))
  let fromFetchers = 0
  for (const p of fetchers) {
    const from = await p.page.evaluate(() => (window as unknown as W).from)
    expect(from.length).toBe(64)
    fromFetchers += from.filter((f) => ids.has(f)).length
  }
  expect(fromFetchers).toBeGreaterThanOrEqual(3 * 64 - sentBySeeder)
  const listed = await fetchers[0]?.page.evaluate(() => (window as unknown as W).node.files.list())
  expect(listed).toEqual([{ ...file, complete: true, have: 64, total: 64 }])
})

test('a lying tab is found out: the fetcher bans it and still completes from the honest seeder', async ({
  browser,
}) => {
  const honest = await openPeer(browser, env.server.url, { network: 'liar' })
  peers.push(honest)
  // The liar's page has the test hook (client/test-hook.ts) before weft loads: it flips a byte of every piece it serves.
  const ctx = await browser.newContext()
  await ctx.addInitScript(() => {
    ;(globalThis as unknown as { __weftTestHook__: unknown }).__weftTestHook__ = { lieAboutFiles: () => true }
  })
  const page = await ctx.newPage()
  await page.goto(`${env.server.url}/embed.html`)
  const liarId = await page.evaluate(async (signal) => {
    const weft = await import(/* @vite-ignore */ `${signal}/weft.mjs`)
    const node = await weft.joinOverlay({ signal, network: 'liar' })
    ;(window as unknown as { node: unknown }).node = node
    return node.id as string
  }, env.server.url)
  const liar: Peer = { ctx, page, id: liarId }
  peers.push(liar)
  const fetcher = await openPeer(browser, env.server.url, { network: 'liar' })
  peers.push(fetcher)
  // Both hold the same 4 MiB (16 pieces): the same id.
  const digest = await makeData(honest, 4 * 1024 * 1024, 0x5eed)
  expect(await makeData(liar, 4 * 1024 * 1024, 0x5eed)).toBe(digest)
  const add = (p: Peer) =>
    p.page.evaluate(async () => {
      const w = window as unknown as W
      return w.node.files.add(w.data, { name: 'four.bin' })
    })
  const [a, b] = await Promise.all([add(honest), add(liar)])
  expect(b.id).toBe(a.id)
  await fetchIn(fetcher, a.uri)
  await until(async () => (await resultOf(fetcher)) !== undefined, 60_000, 'the download')
  expect(await resultOf(fetcher)).toBe(digest)
  const s = await statsOf(fetcher)
  // The liar was asked for pieces: what it sent failed the hash, and it was banned from the file.
  expect(s['drop.swarm.bad-piece-hash'] ?? 0).toBeGreaterThanOrEqual(1)
  expect(s['swarm.peer.banned'] ?? 0).toBeGreaterThanOrEqual(1)
  const from = await fetcher.page.evaluate(() => (window as unknown as W).from)
  expect(from.length).toBeGreaterThanOrEqual(16)
  expect(from.every((f) => f === honest.id)).toBe(true)
})

test('the swarm loads on first use: weft.mjs fetches weft-files.mjs, weft.js fetches weft-files-all.mjs, and they share a file', async ({
  browser,
}) => {
  const fetched = new Map<string, string[]>()
  const pageOf = async (name: string) => {
    const ctx = await browser.newContext()
    const page = await ctx.newPage()
    fetched.set(name, [])
    page.on('request', (r) => {
      const path = new URL(r.url()).pathname
      if (path.startsWith('/weft-files')) fetched.get(name)?.push(path)
    })
    await page.goto(`${env.server.url}/embed.html`)
    return { ctx, page }
  }
  // The module page: joinOverlay from weft.mjs.
  const esm = await pageOf('esm')
  const esmId = await esm.page.evaluate(async (signal) => {
    const weft = await import(/* @vite-ignore */ `${signal}/weft.mjs`)
    ;(window as unknown as { node: unknown }).node = await weft.joinOverlay({ signal, network: 'lazy' })
    return ((window as unknown as W).node as { id: string }).id
  }, env.server.url)
  peers.push({ ...esm, id: esmId })
  // The classic page: the IIFE's global Weft (embed.html loads /weft.js).
  const iife = await pageOf('iife')
  const iifeId = await iife.page.evaluate(async (signal) => {
    const weft = (window as unknown as { Weft: { joinOverlay(o: object): Promise<unknown> } }).Weft
    ;(window as unknown as { node: unknown }).node = await weft.joinOverlay({ signal, network: 'lazy' })
    return ((window as unknown as W).node as { id: string }).id
  }, env.server.url)
  peers.push({ ...iife, id: iifeId })
  // Joined, linked, nothing of files fetched yet.
  expect(fetched.get('esm')).toEqual([])
  expect(fetched.get('iife')).toEqual([])
  const digest = await makeData({ ...esm, id: esmId }, 300_000, 7)
  const file = await esm.page.evaluate(async () => {
    const w = window as unknown as W
    return w.node.files.add(w.data, { name: 'small.bin' })
  })
  expect(fetched.get('esm')).toEqual(['/weft-files.mjs'])
  await fetchIn({ ...iife, id: iifeId }, file.uri)
  await until(async () => (await resultOf({ ...iife, id: iifeId })) !== undefined, 30_000, 'the download')
  expect(await resultOf({ ...iife, id: iifeId })).toBe(digest)
  expect(fetched.get('iife')).toEqual(['/weft-files-all.mjs'])
})

test('a tab reloaded mid-download resumes from the pieces it kept (IndexedDB)', async ({ browser }) => {
  const seeder = await openPeer(browser, env.server.url, { network: 'resume' })
  peers.push(seeder)
  const fetcher = await openPeer(browser, env.server.url, { network: 'resume' })
  peers.push(fetcher)
  const digest = await makeData(seeder, 16 * 1024 * 1024, 99)
  const file = await seeder.page.evaluate(async () => {
    const w = window as unknown as W
    return w.node.files.add(w.data, { name: 'resume.bin' })
  })
  // The page reloads itself on its 16th piece (from the page, so no poll from here comes too late).
  const reloaded = fetcher.page.waitForEvent('load')
  await fetcher.page.evaluate((uri) => {
    const w = window as unknown as W
    let n = 0
    w.node.files.get(uri).on('piece', () => {
      if (++n === 16) location.reload()
    })
  }, file.uri)
  await reloaded
  // The same context: the same IndexedDB, and the tab's identity slot back.
  await fetcher.page.evaluate(async (signal) => {
    const weft = await import(/* @vite-ignore */ `${signal}/weft.mjs`)
    ;(window as unknown as { node: unknown }).node = await weft.joinOverlay({ signal, network: 'resume' })
  }, env.server.url)
  const kept = await fetcher.page.evaluate(() => (window as unknown as W).node.files.list())
  expect(kept).toHaveLength(1)
  expect(kept[0]).toMatchObject({ id: file.id, complete: false, total: 64 })
  const held = kept[0]?.have ?? 0
  expect(held).toBeGreaterThanOrEqual(16)
  expect(held).toBeLessThan(64)
  await fetchIn(fetcher, file.uri)
  try {
    await until(async () => (await resultOf(fetcher)) !== undefined, 60_000, 'the resumed download')
  } catch (err) {
    // (Seen once in a loaded fresh-clone run: the download neither finished nor failed. What each end saw.)
    const files = (st: Record<string, number>) =>
      Object.fromEntries(Object.entries(st).filter(([k]) => /^(files|swarm|link|dial|peers)/.test(k)))
    for (const [name, p] of [
      ['fetcher', fetcher],
      ['seeder', seeder],
    ] as const)
      console.log(
        `${name}: peers ${JSON.stringify(await p.page.evaluate(() => (window as unknown as { node: { peers(): unknown } }).node.peers()))}; pieces since the reload ${((await p.page.evaluate(() => (window as unknown as W).from)) ?? []).length}; ${JSON.stringify(files(await statsOf(p)))}`,
      )
    throw err
  }
  expect(await resultOf(fetcher)).toBe(digest)
  // Only what was missing came over the network again.
  const from = await fetcher.page.evaluate(() => (window as unknown as W).from)
  expect(from.length).toBe(64 - held)
})
