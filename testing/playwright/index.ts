/**
 * weft/testing/playwright: Playwright fixtures for apps built on weft.
 *
 * ```ts
 * import { test, expect } from 'weft/testing/playwright'
 * test.use({ weftServer: { serve: 'public' } })       // your app's folder, served by the signal server
 * test('chat reaches everyone', async ({ weft }) => {
 *   const [a, b, c] = await weft.peers(3, { url: '/index.html', relay: ['auto', 'auto', 'force'] })
 *   await weft.linked([a, b, c])
 *   await a.page.fill('#msg', 'hi'); await a.page.click('#send')
 *   await expect(c.page.locator('.msg')).toHaveText('hi')
 * })
 * ```
 *
 * Each Playwright worker starts weft's signal server on a free port (a child
 * process, server.ts) and Chromium with the flags WebRTC between local pages
 * needs (chromium.ts). Each peer is a browser context of its own; the kit
 * puts a hook in its pages (hook.ts) through which the app's own
 * `joinOverlay` call joins the test's server, in a network of the test's own,
 * with the relay mode the test chose, and hands the kit its node: the app
 * needs no code for tests. After each test every peer is closed; when a test
 * fails, the server's output, its non-zero counters and the peers' console
 * errors are printed and attached to the report. When the worker ends, the
 * server process is stopped.
 */
import { existsSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { test as base } from '@playwright/test'
import type { Value } from '../../client/api.ts'
import { CHROMIUM_FLAGS, chooseChromium, mergeChromiumArgs, SYSTEM_CHROMIUMS } from './chromium.ts'
import { components } from './graph.ts'
import { installHookScript } from './hook.ts'
import type {
  PeerOptions,
  PeersOptions,
  WaitOptions,
  WeftBrowserOptions,
  WeftPeerDefaults,
  WeftServerOptions,
} from './options.ts'
import { joinOptionsFor, KIT_PAGE_PATH, Peer, type WeftPeer } from './peer.ts'
import { type ServerProcess, startServerProcess, type WeftSignalServer } from './server.ts'
import { type Expected, waitFor } from './wait.ts'

export { expect } from '@playwright/test'
export type {
  JoinOverrides,
  PeerOptions,
  PeersOptions,
  Relay,
  WaitOptions,
  WeftBrowserOptions,
  WeftPeerDefaults,
  WeftServerOptions,
} from './options.ts'
export type { Link, WeftPeer } from './peer.ts'
export type { WeftSignalServer } from './server.ts'
export type { Expected } from './wait.ts'

/** `n` peers: a tuple for a literal `n` (up to 64), else an array. */
export type Peers<N extends number, Acc extends WeftPeer[] = []> = number extends N
  ? WeftPeer[]
  : Acc['length'] extends N
    ? Acc
    : Acc['length'] extends 64
      ? WeftPeer[]
      : Peers<N, [...Acc, WeftPeer]>

/** The `weft` fixture: a test's peers and the worker's signal server. */
export interface WeftKit {
  /** The worker's signal server (restarted for the test if a previous one stopped it). */
  readonly server: WeftSignalServer
  /** The peers this test opened so far, in order. */
  readonly all: readonly WeftPeer[]
  /**
   * Open `n` peers, each in a browser context of its own; by default each has joined when this resolves.
   * For a literal `n` the result is a tuple of that length, so `const [a, b, c] = await weft.peers(3)`
   * needs no checks under `noUncheckedIndexedAccess`.
   */
  peers<N extends number>(n: N, options?: PeersOptions): Promise<Peers<N>>
  /** Open one peer. */
  peer(options?: PeerOptions): Promise<WeftPeer>
  /** The name the network `name` has in this test (see `isolate`): for participants the kit does not open. */
  network(name?: string): string
  /** Wait until `peers` form one network: their open links connect them all (directly or through each other). */
  linked(peers: readonly WeftPeer[], options?: WaitOptions): Promise<void>
  /** Wait until every one of `peers` holds `key` in its table (equal to `expected`, or accepted by it, if given). */
  synced<T extends Value = Value>(
    peers: readonly WeftPeer[],
    key: string,
    expected?: Expected<T>,
    options?: WaitOptions,
  ): Promise<void>
  /** Wait until every one of `peers` reads the DHT record `key` of `author` (equal to `value`, if given). */
  stored<T extends Value = Value>(
    peers: readonly WeftPeer[],
    key: string,
    options: { author: WeftPeer | string; value?: Expected<T> } & WaitOptions,
  ): Promise<void>
  /** Wait until every one of `peers` sees all the others in `node.presence.get()`. */
  present(peers: readonly WeftPeer[], options?: WaitOptions): Promise<void>
}

interface WorkerFixtures {
  weftServer: WeftServerOptions
  weftBrowser: WeftBrowserOptions
  weftSignalServer: ServerProcess
}

interface TestFixtures {
  weftPeers: WeftPeerDefaults
  weft: WeftKit
}

/** Tests run in this worker so far: the network prefix of the next (`t<n>.`). */
let testsInWorker = 0

export const test = base.extend<TestFixtures, WorkerFixtures>({
  weftServer: [{}, { scope: 'worker', option: true }],
  weftBrowser: [{}, { scope: 'worker', option: true }],
  weftPeers: [{}, { option: true }],

  weftSignalServer: [
    async ({ weftServer }, use, workerInfo) => {
      const configDir = workerInfo.config.configFile
        ? dirname(workerInfo.config.configFile)
        : workerInfo.config.rootDir
      const serve =
        weftServer.serve === undefined
          ? undefined
          : isAbsolute(weftServer.serve)
            ? weftServer.serve
            : resolve(configDir, weftServer.serve)
      if (serve !== undefined && !existsSync(serve))
        throw new Error(`weft/testing/playwright: weftServer.serve: no folder ${serve}`)
      const server = await startServerProcess({
        serve,
        env: weftServer.env ?? {},
        startTimeoutMs: weftServer.startTimeoutMs ?? 20_000,
        logLines: weftServer.logLines ?? 5000,
      })
      await use(server)
      await server.dispose()
    },
    { scope: 'worker', timeout: 60_000 },
  ],

  // The browser every page of the test file uses (the kit's peers and Playwright's own `page`).
  browser: [
    async ({ playwright, browserName, launchOptions, connectOptions, weftBrowser }, use) => {
      if (connectOptions)
        throw new Error(
          'weft/testing/playwright launches its browser itself: connectOptions are not supported',
        )
      const flags = browserName === 'chromium' && weftBrowser.flags !== false ? CHROMIUM_FLAGS : []
      const args = mergeChromiumArgs(launchOptions.args ?? [], flags)
      let choice =
        browserName === 'chromium'
          ? chooseChromium({
              option: weftBrowser.executablePath,
              env: process.env,
              launchOptions,
              playwrightHas: () => existsSync(playwright.chromium.executablePath()),
              exists: existsSync,
            })
          : { executablePath: launchOptions.executablePath, source: 'launchOptions' as const }
      const launch = () =>
        playwright[browserName].launch({
          args,
          ...(choice.executablePath === undefined ? {} : { executablePath: choice.executablePath }),
        })
      let browser: Awaited<ReturnType<typeof launch>>
      try {
        browser = await launch()
      } catch (err) {
        // Playwright's own Chromium half installed (e.g. without its headless shell): a system one will do.
        const system = SYSTEM_CHROMIUMS.find((p) => existsSync(p))
        if (choice.source !== 'playwright' || system === undefined) throw err
        choice = { executablePath: system, source: 'system' }
        browser = await launch()
      }
      await use(browser)
      await browser.close()
    },
    { scope: 'worker', timeout: 0 },
  ],

  weft: async ({ weftSignalServer: server, weftPeers, browser, baseURL }, use, testInfo) => {
    if (!server.running) await server.start()
    const mark = server.lineCount()
    const prefix = weftPeers.isolate === false ? '' : `t${++testsInWorker}.`
    const joinTimeoutMs = weftPeers.joinTimeoutMs ?? 60_000
    const waitTimeoutMs = weftPeers.waitTimeoutMs ?? 30_000
    const peers: Peer[] = []
    // A peer's index is its place in the order asked, also when peers open at once (`parallel`).
    let asked = 0

    const pageUrl = (url: string | undefined): { url: string; bare: boolean } => {
      if (url === undefined) return { url: `${server.url}${KIT_PAGE_PATH}`, bare: true }
      if (/^[a-z][a-z0-9+.-]*:/i.test(url)) return { url, bare: false }
      // Relative: to the signal server when it serves the app (or nothing else is set), else to baseURL.
      const onServer = server.serving !== undefined || baseURL === undefined
      return { url: new URL(url, onServer ? server.url : baseURL).href, bare: false }
    }

    const openPeer = async (o: PeerOptions, wait: boolean): Promise<Peer> => {
      const { url, bare } = pageUrl(o.url ?? weftPeers.url)
      const index = asked++
      const context = await browser.newContext()
      const hook = {
        signal: server.url,
        prefix,
        join: o.joinOptions ?? {},
        ...(o.relay === undefined ? {} : { relay: o.relay }),
        ...(o.network === undefined ? {} : { network: o.network }),
      }
      await context.addInitScript({ content: installHookScript(hook) })
      const peer = new Peer({
        index,
        context,
        url,
        bare,
        relay: o.relay,
        signal: server.url,
        joinTimeoutMs,
        waitTimeoutMs,
      })
      peers.push(peer)
      // (In the order asked, also when peers open at once: `all` and the failure report follow it.)
      peers.sort((x, y) => x.index - y.index)
      await peer.open(wait, o.timeoutMs)
      return peer
    }

    const each = async (ps: readonly WeftPeer[], what: string, check: (p: WeftPeer) => Promise<void>) => {
      if (ps.length === 0) return
      await Promise.all(ps.map(check)).catch((err: Error) => {
        throw new Error(`${what}: ${err.message}`)
      })
    }

    const kit: WeftKit = {
      server,
      get all() {
        return [...peers]
      },
      async peers(n, o = {}) {
        const one = (i: number): PeerOptions => {
          const relay = Array.isArray(o.relay) ? o.relay[i] : (o.relay as PeerOptions['relay'])
          const p: PeerOptions = { joinOptions: joinOptionsFor(o.joinOptions, i) }
          if (o.url !== undefined) p.url = o.url
          if (relay !== undefined) p.relay = relay
          if (o.network !== undefined) p.network = o.network
          if (o.timeoutMs !== undefined) p.timeoutMs = o.timeoutMs
          return p
        }
        const wait = o.join !== false
        if (!Number.isInteger(n) || n < 0)
          throw new TypeError(`weft.peers(n): n must be a whole number (got ${n})`)
        let out: Peer[] = []
        if (o.parallel) out = await Promise.all(Array.from({ length: n }, (_, i) => openPeer(one(i), wait)))
        else for (let i = 0; i < n; i++) out.push(await openPeer(one(i), wait))
        // n peers, as Peers<N> says (the type cannot follow the loop).
        return out as WeftPeer[] as Peers<typeof n>
      },
      peer: (o = {}) => openPeer(o, o.join !== false),
      network: (name = 'default') => `${prefix}${name}`,
      async linked(ps, o = {}) {
        const ids = ps.map((p) => p.id)
        await waitFor(
          `${ps.length} peers to form one network`,
          async () => {
            const links = await Promise.all(ps.map((p) => p.links()))
            const groups = components(
              ids,
              new Map(ids.map((id, i) => [id, (links[i] ?? []).map((l) => l.id)])),
            )
            const name = (id: string) => ps.find((p) => p.id === id)?.name ?? id
            return {
              done: groups.length <= 1,
              seen: `${groups.length} groups: ${groups.map((g) => `[${g.map(name).join(', ')}]`).join(' ')}`,
            }
          },
          o.timeoutMs ?? waitTimeoutMs,
        )
      },
      synced: (ps, key, expected, o = {}) =>
        each(ps, `synced(${key})`, async (p) => {
          await p.waitForKey(key, expected, o)
        }),
      stored: (ps, key, o) =>
        each(ps, `stored(${key})`, async (p) => {
          const opts: Parameters<WeftPeer['waitForRecord']>[1] = { author: o.author }
          if (o.value !== undefined) opts.value = o.value as Expected<Value>
          if (o.timeoutMs !== undefined) opts.timeoutMs = o.timeoutMs
          await p.waitForRecord(key, opts)
        }),
      present: (ps, o = {}) =>
        each(ps, 'present', (p) =>
          p.waitForPresence(
            ps.filter((q) => q !== p),
            o,
          ),
        ),
    }

    await use(kit)

    // A failure is described while the peers still live (their links, the server's counters), then printed.
    const failed = testInfo.status !== testInfo.expectedStatus
    const text =
      failed && weftPeers.printOnFailure !== false ? await describe(server, mark, peers) : undefined
    await Promise.all(peers.map((p) => p.close()))
    if (text !== undefined) {
      console.log(text)
      await testInfo.attach('weft-signal.log', { body: text, contentType: 'text/plain' })
    }
  },
})

/** A failed test: what the server printed (its start, and during the test), its counters, and each peer. */
async function describe(server: ServerProcess, mark: number, peers: Peer[]): Promise<string> {
  const start = server.lastStart()
  const lines =
    start.from >= mark
      ? server.linesSince(mark)
      : [
          ...server.linesSince(start.from).slice(0, start.ready - start.from),
          ...(mark > start.ready ? ['…'] : []),
          ...server.linesSince(Math.max(mark, start.ready)),
        ]
  const out = [
    `--- weft-signal ${server.url} (pid ${server.pid ?? 'not running'}): its output (its start, then during the test) ---`,
    ...lines,
  ]
  if (server.running) {
    try {
      const counters = Object.entries(await server.metrics()).filter(
        ([k, v]) => k.startsWith('weft_') && v !== 0,
      )
      out.push(
        '--- weft-signal /metrics: non-zero weft_ counters ---',
        ...counters.map(([k, v]) => `${k} ${v}`),
      )
    } catch (err) {
      out.push(`(/metrics unreadable: ${(err as Error).message})`)
    }
  }
  if (peers.length > 0) {
    out.push('--- peers ---')
    for (const p of peers) out.push(await p.describe())
  }
  const consoles = peers.flatMap((p) => p.console)
  if (consoles.length) out.push('--- peers: console errors and warnings ---', ...consoles)
  return out.join('\n')
}
