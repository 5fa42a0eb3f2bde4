/**
 * The testing kit (weft/testing/playwright) tested through its public
 * surface: peers in contexts of their own on the worker's signal server, the
 * hook that points an app's joinOverlay at the test (server, network of the
 * test's own, relay mode), the wait helpers, and what a failing test leaves:
 * the server's output printed, no server process behind.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'weft/testing/playwright'
import { networkTag } from '../shared/crypto/network.ts'

const here = dirname(fileURLToPath(import.meta.url))

test('peers join the worker server in a network of the test, with the relay mode asked; linked waits for one network', async ({
  weft,
}) => {
  const [a, b, c] = await weft.peers(3, { relay: ['auto', 'auto', 'force'] })
  await weft.linked([a, b, c])
  for (const p of [a, b, c]) expect(p.id).toMatch(/^[0-9a-f]{40}$/)
  expect(new Set([a.id, b.id, c.id]).size).toBe(3) // a context each: an identity each
  expect(a.network).toBe(weft.network())
  expect(a.network).toMatch(/^t\d+\.default$/)
  // relay 'force': every link of c goes through the server.
  await expect.poll(async () => (await c.links()).length).toBeGreaterThan(0)
  for (const l of await c.links()) expect(l.transport).toBe('relay')
  const m = await weft.server.metrics()
  expect(m[`weft_peers{network="${networkTag(a.network)}"}`]).toBe(3)
  // evaluate runs against the page's node.
  expect(await b.evaluate((node, x) => `${node.id}:${x}`, 'arg')).toBe(`${b.id}:arg`)
})

test('network names are the test own; two names in one test stay two networks', async ({ weft }) => {
  const [a, b] = await weft.peers(2, { network: 'room-1' })
  const c = await weft.peer({ network: 'room-2' })
  expect(a.network).toBe(weft.network('room-1'))
  expect(c.network).toBe(weft.network('room-2'))
  expect(a.network).not.toBe(c.network)
  await weft.linked([a, b])
  const m = await weft.server.metrics()
  expect(m[`weft_peers{network="${networkTag(a.network)}"}`]).toBe(2)
  expect(m[`weft_peers{network="${networkTag(c.network)}"}`]).toBe(1)
  expect((await c.links()).map((l) => l.id)).toEqual([])
})

test('the wait helpers: a table key, a deletion, a DHT record by its author', async ({ weft }) => {
  const [a, b, c] = await weft.peers(3)
  await weft.linked([a, b, c])
  await a.evaluate((node) => node.sync.set('greeting', { text: 'hi', bytes: new Uint8Array([1, 2, 3]) }))
  await weft.synced([a, b, c], 'greeting', { text: 'hi', bytes: new Uint8Array([1, 2, 3]) })
  expect(await c.waitForKey('greeting')).toEqual({ text: 'hi', bytes: new Uint8Array([1, 2, 3]) })
  await b.evaluate((node) => node.sync.delete('greeting'))
  await weft.synced([a, b, c], 'greeting', (v) => v === undefined)
  await b.evaluate((node) => node.dht.put('profile', { name: 'b' }))
  await weft.stored([a, c], 'profile', { author: b, value: { name: 'b' } })
  expect(await b.waitForRecord('profile')).toEqual({ name: 'b' })
  // A wait that cannot be met says what it waited for and what it saw.
  const err = await a.waitForKey('greeting', 'never', { timeoutMs: 500 }).then(
    () => undefined,
    (e: Error) => e.message,
  )
  expect(err).toMatch(
    /timed out after 500 ms waiting for peer 0 \(\w{8}\)'s table to hold greeting = "never"; last seen: undefined/,
  )
})

test('present() waits on node.presence.get(): real nodes, a build without presence, and its timeout named', async ({
  weft,
}) => {
  const [a, b] = await weft.peers(2)
  // The nodes' own presence: each sees the other.
  await weft.present([a, b], { timeoutMs: 20_000 })
  for (const [p, other] of [
    [a, b],
    [b, a],
  ] as const)
    expect(await p.evaluate((node, id) => node.presence.get().has(id), other.id)).toBe(true)
  // A node without presence: said so.
  await a.evaluate((node) =>
    Object.defineProperty(node, 'presence', { value: undefined, configurable: true }),
  )
  const none = await a.waitForPresence([b], { timeoutMs: 1000 }).then(
    () => 'present',
    (e: Error) => e.message,
  )
  expect(none).toMatch(/this weft build has no node.presence/)
  // Stand-ins (for a timing the test controls) that list only their own node, and the other one half a second later.
  for (const [p, other] of [
    [a, b],
    [b, a],
  ] as const)
    await p.evaluate((node, other) => {
      const seen = new Map<string, { state: null; since: number }>([[node.id, { state: null, since: 0 }]])
      setTimeout(() => seen.set(other, { state: null, since: 1 }), 500)
      Object.defineProperty(node, 'presence', { value: { get: () => new Map(seen) }, configurable: true })
    }, other.id)
  const late = await weft.present([a, b], { timeoutMs: 200 }).then(
    () => 'present',
    (e: Error) => e.message,
  )
  expect(late).toMatch(
    /present: timed out after 200 ms waiting for peer \d \(\w{8}\) to see 1 peers present; last seen: missing \[\w{8}\]/,
  )
  await weft.present([a, b], { timeoutMs: 5000 })
})

test('reload, leave and rejoin keep the identity (the context keeps its storage)', async ({ weft }) => {
  const [a, b] = await weft.peers(2)
  const id = b.id
  expect(await b.reload()).toBe(id)
  await b.leave()
  await a.evaluate((node) => node.sync.set('while-away', 1))
  expect(await b.rejoin()).toBe(id)
  await b.waitForKey('while-away', 1)
})

test('a join that fails, and a page that never joins, are named with the reason', async ({ weft }) => {
  const bad = await weft.peer({ joinOptions: { maxPeers: -1 } }).then(
    () => 'joined',
    (e: Error) => e.message,
  )
  expect(bad).toMatch(/^peer 0: joinOverlay failed: .*TypeError: maxPeers/)
  // The server's embedding page loads the bundle and does not join.
  const silent = await weft.peer({ url: '/embed.html', timeoutMs: 2000 }).then(
    () => 'joined',
    (e: Error) => e.message,
  )
  expect(silent).toMatch(/did not join within 2000 ms: the page never called joinOverlay/)
})

/** A test of Playwright's JSON report, as far as this spec reads it. */
interface ReportTest {
  title: string
  results: { status: string; stdout: { text?: string }[]; attachments: { name: string; body?: string }[] }[]
}

test('a failing test prints the signal server output, counters and peers; the worker leaves no server process', async () => {
  test.setTimeout(150_000)
  const out = mkdtempSync(join(tmpdir(), 'weft-kit-'))
  try {
    // Playwright in Playwright: the inner run (e2e/kit/) has a test that passes and one that fails on purpose.
    const r = spawnSync(
      process.execPath,
      [
        join(here, '..', 'node_modules', '@playwright', 'test', 'cli.js'),
        'test',
        '-c',
        join(here, 'kit', 'playwright.config.ts'),
        '--reporter=json',
        '--output',
        join(out, 'results'),
      ],
      {
        encoding: 'utf8',
        // The report goes to a file of this test's own (npm test sets PLAYWRIGHT_JSON_OUTPUT_NAME for the outer run).
        env: { ...process.env, WEFT_KIT_OUT: out, PLAYWRIGHT_JSON_OUTPUT_NAME: join(out, 'report.json') },
        timeout: 140_000,
        maxBuffer: 64 << 20,
      },
    )
    expect(r.status, r.stderr).toBe(1)
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as {
      suites: { specs: { title: string; tests: ReportTest[] }[] }[]
    }
    const specs = report.suites.flatMap((s) => s.specs)
    const result = (title: string) => {
      const res = specs.find((s) => s.title.startsWith(title))?.tests[0]?.results[0]
      if (!res)
        throw new Error(`no result for ${title}: ${r.stdout.slice(0, 2000)}${r.stderr.slice(0, 2000)}`)
      return { ...res, printed: res.stdout.map((c) => c.text ?? '').join('') }
    }
    const passed = result('passes')
    expect(passed.status).toBe('passed')
    expect(passed.printed).not.toContain('weft-signal')
    expect(passed.attachments.map((a) => a.name)).not.toContain('weft-signal.log')

    const failed = result('fails on purpose')
    expect(failed.status).toBe('failed')
    const text = failed.printed
    expect(text).toMatch(
      /^--- weft-signal http:\/\/localhost:\d+ \(pid \d+\): its output \(its start, then during the test\) ---$/m,
    )
    expect(text).toMatch(/^\[\+\d+\.\d{3}s\] weft signal server listening on http:\/\/127\.0\.0\.1:\d+$/m)
    expect(text).toMatch(/^--- weft-signal \/metrics: non-zero weft_ counters ---$/m)
    // Read while the peers lived; the server knows a network by the hash of its name (networkTag).
    expect(text).toMatch(/^weft_peers\{network="[0-9a-f]{32}"\} 2$/m)
    expect(text).toMatch(
      /^peer 0 \(\w{8}\): http:\/\/localhost:\d+\/healthz, network t\d+\.default, links \[\w{8} webrtc\]$/m,
    )
    expect(text).toMatch(/^\[peer 1 \(\w{8}\)\] \[error\] a console error of the app$/m)
    expect(failed.attachments.map((a) => a.name)).toContain('weft-signal.log')

    // The worker's server process is gone.
    const pid = Number(readFileSync(join(out, 'server.pid'), 'utf8'))
    expect(pid).toBeGreaterThan(0)
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/)
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
})
