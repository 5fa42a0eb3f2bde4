/**
 * Shared by the end-to-end tests: start the built signal server on a free
 * port (and restart it on the same port), and open peers, each in its own
 * browser context.
 *
 * A peer page is the server's /embed.html (a secure context, like the demo)
 * that imports /weft.mjs, as an embedding site would, and keeps the node in
 * `window.node`.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Browser, type BrowserContext, type Page, test } from '@playwright/test'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

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

/** Start `dist/signal-server/main.js` on `port` (a free one by default). */
export async function startSignalServer(
  port?: number,
  env: Record<string, string> = {},
): Promise<SignalServerProcess> {
  const p = port ?? (await freePort())
  let child: ChildProcess | undefined
  const url = `http://localhost:${p}`
  const srv: SignalServerProcess = {
    url,
    port: p,
    async start() {
      child = spawn(process.execPath, [join(root, 'dist/signal-server/main.js')], {
        env: { ...process.env, PORT: String(p), HOST: '127.0.0.1', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let log = ''
      child.stdout?.on('data', (d) => {
        log += d
      })
      child.stderr?.on('data', (d) => {
        log += d
      })
      const deadline = Date.now() + 15_000
      for (;;) {
        if (child.exitCode !== null) throw new Error(`signal server exited: ${log}`)
        try {
          const r = await fetch(`${url}/healthz`)
          if (r.ok) return
        } catch {}
        if (Date.now() > deadline) throw new Error(`signal server did not start: ${log}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    },
    async stop() {
      const c = child
      child = undefined
      if (!c || c.exitCode !== null) return
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve())
        c.kill('SIGTERM')
        setTimeout(() => c.kill('SIGKILL'), 3000)
      })
    },
  }
  await srv.start()
  return srv
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
  const page = await blankPage(ctx, serverUrl)
  const id = await join_(page, serverUrl, opts)
  return { ctx, page, id }
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
    for (const p of env.peers.splice(0)) await closePeer(p)
    await env.server.stop()
  })
  return env
}
