/**
 * The kit's pure parts, without a browser: the page hook (run here on a
 * stand-in global), the Chromium choice and flags, the one-network test,
 * the matching of waited-for values, the metrics parser.
 */
import { describe, expect, it } from 'vitest'
import { TEST_HOOK_GLOBAL } from '../../client/test-hook.ts'
import { chooseChromium, mergeChromiumArgs } from './chromium.ts'
import { components } from './graph.ts'
import { type HookConfig, type HookState, installHook, installHookScript } from './hook.ts'
import { parseMetrics } from './server.ts'
import { matches, waitFor } from './wait.ts'

type Hook = {
  state: HookState
  options(o: Record<string, unknown>): Record<string, unknown>
  joined(node: unknown): void
  failed(e: unknown): void
}

function hookIn(cfg: Partial<HookConfig> = {}): Hook {
  const scope: Record<string, unknown> = {}
  installHook(scope, { signal: 'http://localhost:9', prefix: 't1.', join: {}, ...cfg })
  return scope[TEST_HOOK_GLOBAL] as Hook
}

describe('the page hook', () => {
  it("points the app's join at the test's server, in the test's network, with the test's relay", () => {
    const hook = hookIn({ relay: 'force', join: { maxPeers: 3 } })
    const o = hook.options({ signal: 'https://prod.example', network: 'chat', relay: 'auto', maxPeers: 8 })
    expect(o).toEqual({ signal: 'http://localhost:9', network: 't1.chat', relay: 'force', maxPeers: 3 })
    expect(hook.state).toMatchObject({ calls: 1, network: 't1.chat' })
  })

  it("keeps the app's relay and names when the test sets none (isolate off: no prefix)", () => {
    const hook = hookIn({ prefix: '' })
    expect(hook.options({ signal: 'x', relay: 'never' })).toEqual({
      signal: 'http://localhost:9',
      relay: 'never',
      network: 'default',
    })
  })

  it('a name too long with the prefix is cut to 64 characters, distinct names staying distinct', () => {
    const hook = hookIn({ prefix: 't123.' })
    const long = (c: string) => `${'n'.repeat(62)}${c}`
    const a = hook.options({ network: long('a') }).network as string
    const b = hook.options({ network: long('b') }).network as string
    expect(a).toHaveLength(64)
    expect(a).toMatch(/^t123\.n+-[0-9a-f]{8}$/)
    expect(a).not.toBe(b)
    expect(hook.options({ network: 'short' }).network).toBe('t123.short')
  })

  it('records the node and a failure (with its name)', () => {
    const hook = hookIn()
    hook.failed(Object.assign(new Error('no server'), { name: 'SignalError' }))
    expect(hook.state.error).toBe('SignalError: no server')
    const node = { id: 'ab'.repeat(20) }
    hook.joined(node)
    expect(hook.state).toMatchObject({ id: 'ab'.repeat(20), node })
    expect(hook.state.error).toBeUndefined()
    hook.failed('plain')
    expect(hook.state.error).toBe('plain')
  })

  it('runs from its source text alone, as the page gets it', () => {
    const scope: Record<string, unknown> = {}
    const script = installHookScript({ signal: 'http://localhost:9', prefix: 't2.', join: {} })
    new Function('globalThis', script)(scope)
    expect((scope[TEST_HOOK_GLOBAL] as Hook).options({ network: 'x' }).network).toBe('t2.x')
  })
})

describe('Chromium', () => {
  const base = { env: {}, launchOptions: {}, playwrightHas: () => false, exists: () => true }
  it('takes the option, then CHROMIUM_PATH, then launchOptions, then a channel, then Playwright, then the system', () => {
    expect(chooseChromium({ ...base, option: '/a', env: { CHROMIUM_PATH: '/b' } })).toEqual({
      executablePath: '/a',
      source: 'option',
    })
    expect(
      chooseChromium({
        ...base,
        option: undefined,
        env: { CHROMIUM_PATH: '/b' },
        launchOptions: { executablePath: '/c' },
      }),
    ).toEqual({ executablePath: '/b', source: 'CHROMIUM_PATH' })
    expect(
      chooseChromium({ ...base, option: undefined, launchOptions: { executablePath: '/c' } }).source,
    ).toBe('launchOptions')
    expect(chooseChromium({ ...base, option: undefined, launchOptions: { channel: 'chrome' } })).toEqual({
      executablePath: undefined,
      source: 'channel',
    })
    expect(chooseChromium({ ...base, option: undefined, playwrightHas: () => true }).source).toBe(
      'playwright',
    )
    expect(
      chooseChromium({ ...base, option: undefined, exists: (p) => p === '/usr/bin/chromium-browser' }),
    ).toEqual({ executablePath: '/usr/bin/chromium-browser', source: 'system' })
  })

  it("prefers the system's headless shell to its full Chromium (the kit's browser is headless)", () => {
    const installed = ['/usr/bin/chromium', '/usr/bin/chromium-headless-shell']
    expect(chooseChromium({ ...base, option: undefined, exists: (p) => installed.includes(p) })).toEqual({
      executablePath: '/usr/bin/chromium-headless-shell',
      source: 'system',
    })
    expect(
      chooseChromium({ ...base, option: undefined, exists: (p) => p === '/usr/bin/chromium' }).executablePath,
    ).toBe('/usr/bin/chromium')
  })

  it('names what to do when there is none, or a named one is missing', () => {
    expect(() => chooseChromium({ ...base, option: undefined, exists: () => false })).toThrow(
      /no Chromium found.*npx playwright install chromium.*apt-get install -y chromium.*CHROMIUM_PATH/,
    )
    expect(() => chooseChromium({ ...base, option: '/nope', exists: () => false })).toThrow(
      /no Chromium at \/nope \(from the executablePath option\)/,
    )
  })

  it('adds the flags once and folds every --disable-features list into one (Chromium keeps only the last)', () => {
    expect(
      mergeChromiumArgs(
        ['--no-sandbox', '--disable-features=Foo,Bar', '--disable-gpu'],
        ['--disable-gpu', '--disable-features=WebRtcHideLocalIpsWithMdns,Foo'],
      ),
    ).toEqual(['--no-sandbox', '--disable-gpu', '--disable-features=Foo,Bar,WebRtcHideLocalIpsWithMdns'])
  })
})

describe('one network', () => {
  const ids = ['a', 'b', 'c', 'd']
  it('is connected through links either end lists, and only links within the group count', () => {
    expect(
      components(
        ids,
        new Map([
          ['a', ['b']],
          ['c', ['b', 'd']],
        ]),
      ),
    ).toEqual([['a', 'b', 'c', 'd']])
    expect(
      components(
        ids,
        new Map([
          ['a', ['b']],
          ['c', ['d', 'x']],
          ['x', ['a']],
        ]),
      ),
    ).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ])
    expect(components(['a'], new Map())).toEqual([['a']])
  })
})

describe('waiting', () => {
  it('matches values deeply (bytes by content) or by a test', () => {
    expect(matches({ a: [1, new Uint8Array([1, 2])] }, { a: [1, new Uint8Array([1, 2])] })).toBe(true)
    expect(matches({ a: new Uint8Array([1, 2]) }, { a: new Uint8Array([1, 3]) })).toBe(false)
    expect(matches<number>(undefined, (v) => v === undefined)).toBe(true)
    expect(matches<number>(3, (v) => (v ?? 0) > 2)).toBe(true)
  })

  it('times out naming what it waited for and the last thing seen', async () => {
    let n = 0
    await expect(
      waitFor('the answer', async () => ({ done: false, seen: `try ${++n}` }), 250),
    ).rejects.toThrow(/^timed out after 250 ms waiting for the answer; last seen: try \d+$/)
    let k = 0
    await waitFor('the third try', async () => ({ done: ++k === 3 }), 5000)
    expect(k).toBe(3)
  })
})

describe('metrics', () => {
  it('parses Prometheus text, labels kept in the key', () => {
    expect(
      parseMetrics(
        '# HELP weft_peers peers\n# TYPE weft_peers gauge\nweft_peers{network="t1.chat"} 3\nweft_signals_total 12\nbad line here\nprocess_resident_memory_bytes 1.5e7\n',
      ),
    ).toEqual({
      'weft_peers{network="t1.chat"}': 3,
      weft_signals_total: 12,
      process_resident_memory_bytes: 15_000_000,
    })
  })
})
