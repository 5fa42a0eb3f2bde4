/**
 * One peer of a test: a browser context of its own (its own IndexedDB, so
 * its own identity), a page in it, and the node that page joined, reached
 * through the test hook (hook.ts) — the app needs no code for tests.
 */
import type { BrowserContext, JSHandle, Page } from '@playwright/test'
import type { Value, WeftNode } from '../../client/api.ts'
import { HOOK, type HookState, type JoinOverrides, type Relay } from './hook.ts'
import { type Expected, matches, show, waitFor } from './wait.ts'

/**
 * The page of a peer without an app: the signal server's /healthz (a JSON document). Any real page of
 * the loopback server does: it gives the page the server's origin (a secure context, whose IndexedDB
 * keeps the identity). A page the test makes up (page.route) would not do: Chromium's Local Network
 * Access checks then keep it from reaching the loopback server.
 */
export const KIT_PAGE_PATH = '/healthz'

/** An open link, as `node.peers()` lists it. */
export type Link = ReturnType<WeftNode['peers']>[number]

/** Lines of console output kept per peer. */
const CONSOLE_LINES = 200

/** A peer, as a test sees it. */
export interface WeftPeer {
  /** Its place in the test's peers, from 0. */
  readonly index: number
  /** `peer 2 (ab12cd34)`: how messages name it. */
  readonly name: string
  /** Its page (replaced by `rejoin()`). */
  readonly page: Page
  /** Its browser context: its own storage, so its own identity. */
  readonly context: BrowserContext
  /** The node's id (40 hex characters), once joined. */
  readonly id: string
  /** The network its node joined (the test's own name for the app's, see `isolate`). */
  readonly network: string
  /** The relay mode the test gave it, if any. */
  readonly relay: Relay | undefined
  /**
   * Run `fn(node, arg)` in the page, with its node (the one `joinOverlay`
   * returned there), and return the result. `fn` is sent to the page as
   * text: it sees only its arguments.
   * @example const owner = await a.evaluate((node, key) => node.sync.owner(key), 'door')
   */
  evaluate<R>(fn: (node: WeftNode) => R | Promise<R>): Promise<R>
  evaluate<R, A>(fn: (node: WeftNode, arg: A) => R | Promise<R>, arg: A): Promise<R>
  /** A handle to the node, for Playwright's own handle API. Dispose of it when done. */
  node(): Promise<JSHandle<WeftNode>>
  /** `node.peers()`: its open links. */
  links(): Promise<Link[]>
  /** `node.stats()`. */
  stats(): Promise<Record<string, number>>
  /** Wait until the page's node has joined (for pages that join later than load); resolves with its id. */
  joined(options?: { timeoutMs?: number }): Promise<string>
  /** Wait until it has an open link to `other`. */
  waitForLink(other: WeftPeer | string, options?: { timeoutMs?: number }): Promise<void>
  /**
   * Wait until its table holds `key` (any value), or the value `expected`
   * (deep equality), or a value `expected(value)` accepts (`(v) => v ===
   * undefined` waits for a deletion). Resolves with the value.
   */
  waitForKey<T extends Value = Value>(
    key: string,
    expected?: Expected<T>,
    options?: { timeoutMs?: number },
  ): Promise<T | undefined>
  /** Wait until `dht.get(key, { author })` finds the record (equal to `value`, if given). Resolves with it. */
  waitForRecord<T extends Value = Value>(
    key: string,
    options?: { author?: WeftPeer | string; value?: Expected<T>; timeoutMs?: number },
  ): Promise<T | undefined>
  /** Wait until `node.presence.get()` lists every one of `others`. */
  waitForPresence(others: readonly (WeftPeer | string)[], options?: { timeoutMs?: number }): Promise<void>
  /** Reload the page (its node goes, the page's app joins again, with the same identity); resolves with the id. */
  reload(options?: { timeoutMs?: number }): Promise<string>
  /** Close its node and its page, keeping the context (its storage): a tab closed, to come back with `rejoin()`. */
  leave(): Promise<void>
  /** A new page in its context (same storage, same identity), joined again; resolves with the id. */
  rejoin(options?: { timeoutMs?: number }): Promise<string>
  /** Close its node, page and context for good (the kit does it after each test). */
  close(): Promise<void>
}

/** What a peer needs from the kit. */
export interface PeerSetup {
  index: number
  context: BrowserContext
  /** Absolute URL of its page. */
  url: string
  /** True for a peer without an app: the kit calls joinOverlay in its page. */
  bare: boolean
  relay: Relay | undefined
  signal: string
  joinTimeoutMs: number
  waitTimeoutMs: number
}

/** Read the hook's state in a page (the global's name is an argument: the function runs there). */
function readState(page: Page): Promise<HookState | undefined> {
  return page.evaluate((name) => {
    const s: HookState | undefined = Reflect.get(globalThis, name)?.state
    return s ? { calls: s.calls, network: s.network, id: s.id, error: s.error } : undefined
  }, HOOK)
}

const idOf = (p: WeftPeer | string) => (typeof p === 'string' ? p : p.id)

export class Peer implements WeftPeer {
  readonly index: number
  readonly context: BrowserContext
  readonly relay: Relay | undefined
  page!: Page
  private nodeId = ''
  private net = ''
  private closed = false
  /** Console errors and warnings, page errors, crashes: printed when the test fails. */
  readonly console: string[] = []

  constructor(private readonly setup: PeerSetup) {
    this.index = setup.index
    this.context = setup.context
    this.relay = setup.relay
  }

  get id(): string {
    if (this.nodeId === '') throw new Error(`${this.name} has not joined (yet): await peer.joined()`)
    return this.nodeId
  }

  get network(): string {
    return this.net
  }

  get name(): string {
    return `peer ${this.index}${this.nodeId ? ` (${this.nodeId.slice(0, 8)})` : ''}`
  }

  /** Open its page; join (no app) or wait for the app to join, as told. */
  async open(wait: boolean, timeoutMs = this.setup.joinTimeoutMs): Promise<void> {
    const page = await this.context.newPage()
    this.page = page
    this.listen(page)
    await page.goto(this.setup.url)
    if (this.setup.bare) await this.joinFromKitPage(timeoutMs)
    else if (wait) await this.joined({ timeoutMs })
  }

  private listen(page: Page): void {
    const note = (line: string) => {
      this.console.push(`[${this.name}] ${line}`)
      if (this.console.length > CONSOLE_LINES) this.console.splice(0, this.console.length - CONSOLE_LINES)
    }
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') note(`[${m.type()}] ${m.text()}`)
    })
    page.on('pageerror', (e) => note(`[page error] ${e.message}`))
    page.on('crash', () => note('[crash] the page crashed'))
  }

  /** No app: the kit joins in the page (the hook still sets server, network, relay). */
  private async joinFromKitPage(timeoutMs: number): Promise<void> {
    const joining = this.page.evaluate(async (signal) => {
      const weft = await import(`${signal}/weft.mjs`)
      Reflect.set(globalThis, 'weft', weft)
      await weft.joinOverlay({ signal })
    }, this.setup.signal)
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not join within ${timeoutMs} ms`)), timeoutMs)
    })
    try {
      await Promise.race([joining, late])
    } catch (err) {
      joining.catch(() => {})
      throw new Error(`${this.name}: joinOverlay failed: ${(err as Error).message}${this.consoleTail()}`)
    } finally {
      clearTimeout(timer)
    }
    if ((await readState(this.page))?.calls === 0)
      throw new Error(
        `${this.name}: ${this.setup.signal}/weft.mjs joined without the kit's hook: a weft build older than the kit?`,
      )
    await this.joined({ timeoutMs })
  }

  private consoleTail(): string {
    return this.console.length ? `\n${this.console.slice(-10).join('\n')}` : ''
  }

  async joined(options: { timeoutMs?: number } = {}): Promise<string> {
    const timeoutMs = options.timeoutMs ?? this.setup.joinTimeoutMs
    try {
      await this.page.waitForFunction(
        (name) => {
          const s: HookState | undefined = Reflect.get(globalThis, name)?.state
          return s !== undefined && (s.id !== undefined || s.error !== undefined)
        },
        HOOK,
        { timeout: timeoutMs, polling: 100 },
      )
    } catch (err) {
      const s = await readState(this.page).catch(() => undefined)
      const why =
        s === undefined
          ? "the kit's hook is missing from the page (was it opened by weft.peers()?)"
          : s.calls === 0
            ? 'the page never called joinOverlay (does it load weft, and join on load?)'
            : `joinOverlay was called (network ${s.network}) and has not resolved`
      throw new Error(
        `${this.name}: ${this.page.url()} did not join within ${timeoutMs} ms: ${why} (${(err as Error).message.split('\n')[0]})${this.consoleTail()}`,
      )
    }
    const s = await readState(this.page)
    if (s?.error !== undefined || s?.id === undefined)
      throw new Error(`${this.name}: joinOverlay failed: ${s?.error ?? 'no id'}${this.consoleTail()}`)
    this.nodeId = s.id
    this.net = s.network ?? ''
    return s.id
  }

  node(): Promise<JSHandle<WeftNode>> {
    return this.page.evaluateHandle((name) => {
      const node: WeftNode | undefined = Reflect.get(globalThis, name)?.state?.node
      if (node === undefined) throw new Error('this page has no weft node (it has not joined)')
      return node
    }, HOOK)
  }

  evaluate<R>(fn: (node: WeftNode) => R | Promise<R>): Promise<R>
  evaluate<R, A>(fn: (node: WeftNode, arg: A) => R | Promise<R>, arg: A): Promise<R>
  async evaluate<R, A>(fn: (node: WeftNode, arg: A) => R | Promise<R>, arg?: A): Promise<R> {
    const handle = await this.node()
    try {
      // Playwright types the argument as it arrives in the page (Unboxed<A>); ours goes as it is.
      return (await handle.evaluate(fn as (node: WeftNode, arg: unknown) => R | Promise<R>, arg)) as R
    } finally {
      await handle.dispose().catch(() => {})
    }
  }

  links(): Promise<Link[]> {
    return this.evaluate((node) => node.peers())
  }

  stats(): Promise<Record<string, number>> {
    return this.evaluate((node) => node.stats())
  }

  async waitForLink(other: WeftPeer | string, options: { timeoutMs?: number } = {}): Promise<void> {
    const to = idOf(other)
    let seen: string[] = []
    await waitFor(
      `${this.name} to link to ${to.slice(0, 8)}`,
      async () => {
        seen = (await this.links()).map((l) => l.id)
        return { done: seen.includes(to), seen: `links to [${seen.map((s) => s.slice(0, 8)).join(', ')}]` }
      },
      options.timeoutMs ?? this.setup.waitTimeoutMs,
    )
  }

  async waitForKey<T extends Value = Value>(
    key: string,
    expected?: Expected<T>,
    options: { timeoutMs?: number } = {},
  ): Promise<T | undefined> {
    const want: Expected<T> = expected ?? ((v: T | undefined) => v !== undefined)
    let value: T | undefined
    await waitFor(
      `${this.name}'s table to hold ${key}${expected === undefined || typeof expected === 'function' ? '' : ` = ${show(expected)}`}`,
      async () => {
        value = (await this.evaluate((node, k) => node.sync.get(k), key)) as T | undefined
        return { done: matches(value, want), seen: show(value) }
      },
      options.timeoutMs ?? this.setup.waitTimeoutMs,
    )
    return value
  }

  async waitForRecord<T extends Value = Value>(
    key: string,
    options: { author?: WeftPeer | string; value?: Expected<T>; timeoutMs?: number } = {},
  ): Promise<T | undefined> {
    const author = options.author === undefined ? this.id : idOf(options.author)
    const want: Expected<T> = options.value ?? ((v: T | undefined) => v !== undefined)
    let value: T | undefined
    await waitFor(
      `${this.name} to read the DHT record ${key} by ${author.slice(0, 8)}${options.value === undefined || typeof options.value === 'function' ? '' : ` = ${show(options.value)}`}`,
      async () => {
        value = (await this.evaluate((node, a) => node.dht.get(a.key, { author: a.author }), {
          key,
          author,
        })) as T | undefined
        return { done: matches(value, want), seen: show(value) }
      },
      options.timeoutMs ?? this.setup.waitTimeoutMs,
    )
    return value
  }

  async waitForPresence(others: readonly (WeftPeer | string)[], options: { timeoutMs?: number } = {}) {
    const want = others.map(idOf)
    await waitFor(
      `${this.name} to see ${want.length} peers present`,
      async () => {
        const present = await this.evaluate((node) => {
          // Presence is documented in API.md (node.presence.get()); a build without it says so.
          const p = (node as { presence?: { get(): Map<string, unknown> } }).presence
          if (p === undefined) throw new Error('this weft build has no node.presence')
          return [...p.get().keys()]
        })
        const missing = want.filter((id) => !present.includes(id))
        return {
          done: missing.length === 0,
          seen: `missing [${missing.map((m) => m.slice(0, 8)).join(', ')}]`,
        }
      },
      options.timeoutMs ?? this.setup.waitTimeoutMs,
    )
  }

  /** One line for a failure report: its page, network and links, as far as they can be read. */
  async describe(): Promise<string> {
    const head = `${this.name}: ${this.page?.url() ?? '(no page)'}, network ${this.net || '(not joined)'}`
    if (this.closed || this.nodeId === '' || this.page.isClosed())
      return `${head}${this.closed ? ', closed' : ''}`
    const links = await Promise.race([
      this.links().then(
        (ls) => `links [${ls.map((l) => `${l.id.slice(0, 8)} ${l.transport}`).join(', ')}]`,
        (e: Error) => `links unreadable (${e.message.split('\n')[0]})`,
      ),
      new Promise<string>((r) => setTimeout(() => r('links unreadable (no answer in 2 s)'), 2000)),
    ])
    return `${head}, ${links}`
  }

  /** Close the page's node, waiting at most a few seconds (a node that hangs must not hold the teardown). */
  private async closeNode(): Promise<void> {
    if (this.page === undefined || this.page.isClosed()) return
    const closing = this.page
      .evaluate((name) => {
        const node: { close?: () => Promise<void> } | undefined = Reflect.get(globalThis, name)?.state?.node
        return node?.close?.()
      }, HOOK)
      .catch(() => {})
    await Promise.race([closing, new Promise((r) => setTimeout(r, 5000))])
  }

  async reload(options: { timeoutMs?: number } = {}): Promise<string> {
    const timeoutMs = options.timeoutMs ?? this.setup.joinTimeoutMs
    await this.page.reload()
    if (this.setup.bare) await this.joinFromKitPage(timeoutMs)
    return this.joined({ timeoutMs })
  }

  async leave(): Promise<void> {
    await this.closeNode()
    await this.page.close()
  }

  async rejoin(options: { timeoutMs?: number } = {}): Promise<string> {
    if (!this.page.isClosed()) await this.leave()
    await this.open(true, options.timeoutMs)
    return this.id
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.closeNode()
    await this.context.close().catch(() => {})
  }
}

/** Join overrides of peer i from the peers() option. */
export function joinOptionsFor(
  o: JoinOverrides | ((index: number) => JoinOverrides) | undefined,
  i: number,
): JoinOverrides {
  return typeof o === 'function' ? o(i) : (o ?? {})
}
