/**
 * Shared by the end-to-end tests written before the testing kit
 * (weft/testing/playwright, which e2e/sync.spec.ts and e2e/kit.spec.ts use):
 * start the built signal server on a free port (and restart it on the same
 * port), and open peers, each in its own browser context.
 *
 * A peer page is the server's /embed.html (a secure context, like the demo)
 * that imports /weft.mjs, as an embedding site would, and keeps the node in
 * `window.node`.
 */
import { createServer } from 'node:net'
import { type Browser, type BrowserContext, type Page, test } from '@playwright/test'
import { startServerProcess } from '../testing/playwright/server.ts'

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

export interface SignalServerProcess {
  url: string
  port: number
  stop(): Promise<void>
  start(): Promise<void>
}

/**
 * Start `dist/signal-server/main.js` on `port` (a free one by default), with the server's own
 * per-source limits: the testing kit's server process (testing/playwright/server.ts), which the
 * kit's fixtures use with those limits lifted.
 */
export async function startSignalServer(
  port?: number,
  env: Record<string, string> = {},
): Promise<SignalServerProcess> {
  const s = await startServerProcess({ port: port ?? 0, env, liftSourceLimits: false })
  return { url: s.url, port: s.port, stop: () => s.stop(), start: () => s.start() }
}

export interface Peer {
  ctx: BrowserContext
  page: Page
  id: string
}

export interface PeerOptions {
  network: string
  relay?: 'auto' | 'force' | 'never'
  maxPeers?: number
  targetPeers?: number
  maxLinks?: number
  presence?: { intervalMs?: number }
}

/**
 * The embedding example page of the server's origin (it loads the bundle and
 * does not join), in `ctx`. A real page from the loopback server: Chromium's
 * local-network-access checks block a page that did not come from there.
 */
export async function blankPage(ctx: BrowserContext, serverUrl: string): Promise<Page> {
  const page = await ctx.newPage()
  page.on('pageerror', (err) => console.log(`[page error] ${err.message}`))
  await page.goto(`${serverUrl}/embed.html`)
  return page
}

/** Join from a page: window.node = await joinOverlay(...). Returns the node id. */
export async function join_(page: Page, serverUrl: string, opts: PeerOptions): Promise<string> {
  return page.evaluate(
    async ({ signal, opts }) => {
      const weft = await import(/* @vite-ignore */ `${signal}/weft.mjs`)
      const node = await weft.joinOverlay({ signal, ...opts })
      ;(window as unknown as { node: unknown }).node = node
      ;(window as unknown as { weft: unknown }).weft = weft
      return node.id as string
    },
    { signal: serverUrl, opts },
  )
}

/** Open a peer in its own browser context. */
export async function openPeer(browser: Browser, serverUrl: string, opts: PeerOptions): Promise<Peer> {
  const ctx = await browser.newContext()
  try {
    const page = await blankPage(ctx, serverUrl)
    const id = await join_(page, serverUrl, opts)
    return { ctx, page, id }
  } catch (err) {
    await ctx.close()
    throw err
  }
}

/**
 * Open `n` peers at once, each in its own browser context, as a crowd arriving: they join
 * concurrently (the product must cope with that). Resolves in the order asked.
 */
export function openPeers(
  browser: Browser,
  serverUrl: string,
  n: number,
  opts: PeerOptions,
): Promise<Peer[]> {
  return allOrNone(
    Array.from({ length: n }, () => openPeer(browser, serverUrl, opts)),
    closePeer,
  )
}

/**
 * Wait for all of `starts`; if one fails, undo the ones that succeeded (a
 * tab's context, a server process: left behind, they would load the
 * machine for the tests after) and throw the first failure.
 */
export async function allOrNone<T>(starts: Promise<T>[], undo: (t: T) => Promise<unknown>): Promise<T[]> {
  const r = await Promise.allSettled(starts)
  const failed = r.find((x): x is PromiseRejectedResult => x.status === 'rejected')
  const ok = r.flatMap((x) => (x.status === 'fulfilled' ? [x.value] : []))
  if (!failed) return ok
  await Promise.all(ok.map((t) => undo(t).catch(() => {})))
  throw failed.reason
}

export async function closePeer(p: Peer): Promise<void> {
  await p.page
    .evaluate(() => (window as unknown as { node?: { close(): Promise<void> } }).node?.close())
    .catch(() => {})
  await p.ctx.close()
}

/** node.peers() of a peer. */
export function peersOf(p: Peer): Promise<{ id: string; transport: string }[]> {
  return p.page.evaluate(() =>
    (window as unknown as { node: { peers(): { id: string; transport: string }[] } }).node.peers(),
  )
}

/** Poll `fn` until it returns true or `ms` pass. */
export async function until(
  fn: () => Promise<boolean> | boolean,
  ms = 30_000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    if (await fn()) return
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

/**
 * For a spec file: a fresh signal server before each test, and after it every
 * peer the test opened (pushed to `peers`) closed and the server stopped.
 */
export function serverAndPeers(): { server: SignalServerProcess; peers: Peer[] } {
  const env = { server: undefined as unknown as SignalServerProcess, peers: [] as Peer[] }
  test.beforeEach(async () => {
    env.server = await startSignalServer()
  })
  test.afterEach(async () => {
    // All at once: each close() keeps its links about a second for its leave to spread.
    await Promise.all(env.peers.splice(0).map(closePeer))
    await env.server.stop()
  })
  return env
}
