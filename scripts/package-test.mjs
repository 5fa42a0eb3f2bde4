#!/usr/bin/env node
// npm run test:package: the package as a user gets it. Packs weft (npm pack), checks what the
// tarball holds (no test code, source maps with their sources, a minified weft.mjs, compressed
// copies of the bundles), installs it into an empty folder with --omit=dev (from npm's cache when
// it can) and checks what that pulls in: no signal server (socket.io, engine.io), no redis, no
// native WebRTC (@roamhq/wrtc, node-datachannel, werift). Then, in that folder, a Node script
// imports weft and joins a network through this checkout's signal server; `weft-signal` prints
// its usage and, without socket.io, names what to install; with socket.io added it serves the
// bundles compressed, with ETags, and a node joins it. weft/testing's createTestNetwork runs a
// two-node broadcast with neither server nor WebRTC installed. Last, an app's Playwright test with
// the installed weft/testing/playwright (and @playwright/test added): two tabs of a page served by the kit's server.
//
// Builds first, unless WEFT_SKIP_BUILD=1 (scripts/test.mjs runs it after the e2e step, which built).
// Prints one line per check and exits 1 if any failed.
import { spawn, spawnSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { get as httpGet } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { brotliDecompressSync } from 'node:zlib'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const work = mkdtempSync(join(tmpdir(), 'weft-package-'))
const app = join(work, 'app')
let failed = 0
const children = []

function check(name, ok, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`)
  if (!ok) failed++
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts })
  if (r.error) throw r.error
  return r
}

function mustRun(cmd, args, opts = {}) {
  const r = run(cmd, args, opts)
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`)
  return r
}

/** Every package folder under node_modules (scoped ones too), as name → folder. */
function installed(nodeModules) {
  const out = new Map()
  const walk = (dir) => {
    if (!existsSync(dir)) return
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue
      const p = join(dir, e.name)
      if (e.name.startsWith('@')) {
        walk(p)
        continue
      }
      if (existsSync(join(p, 'package.json'))) {
        const name = JSON.parse(readFileSync(join(p, 'package.json'), 'utf8')).name ?? e.name
        out.set(`${name}@${p}`, p)
        walk(join(p, 'node_modules'))
      }
    }
  }
  walk(nodeModules)
  return [...out.keys()].map((k) => k.slice(0, k.lastIndexOf('@/')))
}

function duBytes(dir) {
  let n = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) n += duBytes(p)
    else if (e.isFile()) n += statSync(p).size
  }
  return n
}

const mb = (n) => `${(n / 1024 / 1024).toFixed(1)} MB`

/** GET with these headers, the body as it came (not decoded). */
function get(url, headers) {
  return new Promise((resolve, reject) => {
    httpGet(url, { headers }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
      )
    }).on('error', reject)
  })
}

/** Start a process and wait for a line matching `pattern` on stdout; resolves with the match. */
function startUntil(cmd, args, opts, pattern, ms = 30_000) {
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${pattern} within ${ms} ms: ${out}`)), ms)
    const on = (d) => {
      out += d
      const m = pattern.exec(out)
      if (m) {
        clearTimeout(t)
        resolve({ child, match: m })
      }
    }
    child.stdout.on('data', on)
    child.stderr.on('data', (d) => {
      out += d
    })
    child.once('exit', (code) => {
      clearTimeout(t)
      reject(new Error(`exited ${code} before ${pattern}: ${out}`))
    })
  })
}

/** A Node script run in the app folder that joins `signal` with the installed weft and prints its id. */
function joinFromApp(signal) {
  const script = join(app, 'join.mjs')
  writeFileSync(
    script,
    `import { joinOverlay, SignalError, UnsupportedError } from 'weft'
if (typeof SignalError !== 'function' || typeof UnsupportedError !== 'function') throw new Error('exports missing')
const node = await joinOverlay({ signal: process.argv[2], network: 'package-test', relay: 'force', timeoutMs: 20000 })
console.log('joined', node.id)
await node.close()
process.exit(0)
`,
  )
  return run(process.execPath, [script, signal], { cwd: app, timeout: 60_000 })
}

try {
  if (process.env.WEFT_SKIP_BUILD !== '1')
    mustRun(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root, stdio: 'inherit' })

  // ---------------------------------------------------------------- the tarball
  const packed = JSON.parse(
    mustRun(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root }).stdout,
  )[0]
  const files = packed.files.map((f) => f.path)
  const tarball = join(work, packed.filename)
  console.log(
    `packed ${packed.filename}: ${files.length} files, ${mb(packed.size)} packed, ${mb(packed.unpackedSize)} unpacked`,
  )
  const testCode = files.filter((f) =>
    /(\.test\.|(^|\/)test\/|test-kit|signal-kit|redis-kit|arbitraries|test-stub|sync-stub|harness|measure|sim-net)/.test(
      f,
    ),
  )
  check('no test code in the package', testCode.length === 0, testCode.slice(0, 5).join(', '))
  check(
    'only dist/ and package files',
    files.every(
      (f) => f.startsWith('dist/') || /^(package\.json|README\.md|LICENSE[^/]*|CHANGELOG\.md)$/.test(f),
    ),
  )
  // The testing kit (dist/testing/, weft/testing/playwright) is for apps' tests: it imports Playwright.
  const shippedJs = files.filter(
    (f) =>
      /\.(m?js)$/.test(f) &&
      f.startsWith('dist/') &&
      !f.startsWith('dist/web/') &&
      !f.startsWith('dist/testing/'),
  )
  const testImports = shippedJs.filter((f) =>
    /from ['"](fast-check|vitest|@playwright\/test)['"]/.test(readFileSync(join(root, f), 'utf8')),
  )
  check('no shipped module imports a test library', testImports.length === 0, testImports.join(', '))
  const maps = files.filter((f) => f.endsWith('.js.map') || f.endsWith('.mjs.map'))
  const sourceless = maps.filter((f) => {
    const m = JSON.parse(readFileSync(join(root, f), 'utf8'))
    return (
      !Array.isArray(m.sourcesContent) ||
      m.sourcesContent.length !== m.sources.length ||
      m.sourcesContent.some((c) => typeof c !== 'string')
    )
  })
  check(
    `source maps carry their sources (${maps.length} maps)`,
    maps.length > 0 && sourceless.length === 0,
    sourceless.slice(0, 3).join(', '),
  )
  const mjs = readFileSync(join(root, 'dist/web/weft.mjs'), 'utf8')
  const lines = mjs.split('\n').length
  check('weft.mjs is minified', lines < 20 && !/\n\t/.test(mjs), `${mjs.length} bytes in ${lines} lines`)
  for (const f of ['dist/web/weft.js', 'dist/web/weft.mjs'])
    check(`${f} ships .br and .gz copies`, files.includes(`${f}.br`) && files.includes(`${f}.gz`))

  // ---------------------------------------------------------------- a browser app installs it
  mustRun(process.execPath, ['-e', 'require("fs").mkdirSync(process.argv[1])', app])
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }),
  )
  const t0 = Date.now()
  mustRun(
    npm,
    ['install', tarball, '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'],
    { cwd: app },
  )
  const pkgs = installed(join(app, 'node_modules'))
  const size = duBytes(join(app, 'node_modules'))
  console.log(
    `installed in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${pkgs.length} packages, ${mb(size)}: ${pkgs.sort().join(' ')}`,
  )
  const forbidden = pkgs.filter((p) =>
    /^(socket\.io|engine\.io|socket\.io-adapter|redis|@redis\/.*|@roamhq\/.*|node-datachannel|werift|wrtc|accepts|cors)$/.test(
      p,
    ),
  )
  check('no server or native packages pulled in', forbidden.length === 0, forbidden.join(', '))
  const own = duBytes(join(app, 'node_modules/weft'))
  console.log(`of which weft itself ${mb(own)} (dist/web: demo, bundles, maps; dist/: modules, types, maps)`)
  check(
    'the install stays small',
    pkgs.length <= 30 && size - own < 4 * 1024 * 1024,
    `${pkgs.length} packages, ${mb(size - own)} besides weft`,
  )

  // ---------------------------------------------------------------- import { joinOverlay } from 'weft' in Node
  const repoServer = await startUntil(
    process.execPath,
    [join(root, 'dist/signal-server/main.js')],
    { cwd: root, env: { ...process.env, PORT: '0', HOST: '127.0.0.1' } },
    /listening on (http:\/\/127\.0\.0\.1:\d+)/,
  )
  const joined = joinFromApp(repoServer.match[1])
  check(
    "import { joinOverlay } from 'weft' joins a network from Node",
    joined.status === 0 && /^joined [0-9a-f]{40}$/m.test(joined.stdout),
    (joined.stdout + joined.stderr).trim().slice(0, 300),
  )
  repoServer.child.kill('SIGTERM')

  // ---------------------------------------------------------------- import { createTestNetwork } from 'weft/testing'
  writeFileSync(
    join(app, 'testnet.mjs'),
    `import { createTestNetwork } from 'weft/testing'
const net = await createTestNetwork(2, { seed: 1, loss: 0.05, latencyMs: [5, 50] })
await net.linked()
const [a, b] = net.nodes
const got = []
b.subscribe('chat', (text, { from }) => got.push(from === a.id ? text : '?'))
const t0 = performance.now()
const v0 = net.clock.now()
await a.broadcast('chat', 'hello')
await net.run(() => got.length === 1, { timeoutMs: 10000 })
console.log('delivered', JSON.stringify(got), 'virtual ms', net.clock.now() - v0, 'real ms', Math.round(performance.now() - t0))
await net.close()
`,
  )
  const testnet = run(process.execPath, [join(app, 'testnet.mjs')], { cwd: app, timeout: 60_000 })
  check(
    "import { createTestNetwork } from 'weft/testing': a two-node broadcast on the in-memory network",
    testnet.status === 0 && /^delivered \["hello"\]/m.test(testnet.stdout),
    (testnet.stdout + testnet.stderr).trim().slice(0, 300),
  )

  // ---------------------------------------------------------------- the server, from the installed package
  const bin = join(app, 'node_modules/.bin/weft-signal')
  const help = run(bin, ['--help'], { cwd: app })
  check(
    'weft-signal --help gives the installed usage',
    help.status === 0 && /^usage: weft-signal /m.test(help.stdout),
  )
  const noServer = run(bin, [], {
    cwd: app,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
    timeout: 30_000,
  })
  check(
    'weft-signal without socket.io names what to install',
    noServer.status === 1 &&
      noServer.stderr.includes('the package socket.io is not installed') &&
      noServer.stderr.includes('npm install socket.io@'),
    noServer.stderr.trim().slice(0, 300),
  )
  mustRun(
    npm,
    ['install', 'socket.io@4.8.4', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'],
    { cwd: app },
  )
  console.log(
    `with socket.io: ${installed(join(app, 'node_modules')).length} packages, ${mb(duBytes(join(app, 'node_modules')))}`,
  )
  const installedServer = await startUntil(
    bin,
    [],
    { cwd: app, env: { ...process.env, PORT: '0', HOST: '127.0.0.1' } },
    /listening on (http:\/\/127\.0\.0\.1:\d+)/,
  )
  const url = installedServer.match[1]
  const br = await get(`${url}/weft.mjs`, { 'accept-encoding': 'gzip, deflate, br' })
  const etag = br.headers.etag
  check(
    'the installed server sends weft.mjs brotli-compressed, with an ETag',
    br.status === 200 &&
      br.headers['content-encoding'] === 'br' &&
      !!etag &&
      brotliDecompressSync(br.body).toString() === mjs,
    `${br.status} ${br.headers['content-encoding']} ${etag}: ${br.body.length} bytes for ${mjs.length}`,
  )
  const again = await get(`${url}/weft.mjs`, {
    'accept-encoding': 'gzip, deflate, br',
    'if-none-match': etag ?? '',
  })
  check('... and 304 when the browser has it', again.status === 304)
  const page = await fetch(`${url}/`)
  check('... and the demo page', page.status === 200 && (await page.text()).includes('<title>'))
  const joined2 = joinFromApp(url)
  check(
    'a node joins the installed server',
    joined2.status === 0 && /^joined /m.test(joined2.stdout),
    joined2.stderr.trim().slice(0, 300),
  )
  installedServer.child.kill('SIGTERM')

  // ---------------------------------------------------------------- an app's test with weft/testing/playwright
  const noPlaywright = run(process.execPath, ['-e', "import('weft/testing/playwright')"], { cwd: app })
  check(
    'weft/testing/playwright without @playwright/test names it',
    noPlaywright.status !== 0 && noPlaywright.stderr.includes("'@playwright/test'"),
    noPlaywright.stderr.trim().slice(0, 300),
  )
  const playwrightVersion = JSON.parse(
    readFileSync(join(root, 'node_modules/@playwright/test/package.json'), 'utf8'),
  ).version
  mustRun(
    npm,
    [
      'install',
      `@playwright/test@${playwrightVersion}`,
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--ignore-scripts',
    ],
    { cwd: app },
  )
  mkdirSync(join(app, 'public'))
  writeFileSync(
    join(app, 'public/index.html'),
    `<!doctype html><meta charset="utf-8"><title>app</title>
<script type="module">
import { joinOverlay } from '/weft.mjs'
const node = await joinOverlay({ signal: 'https://signal.example.org', network: 'app' })
node.sync.on('change', ({ key, value }) => { document.title = key + '=' + value })
</script>
`,
  )
  writeFileSync(
    join(app, 'playwright.config.mjs'),
    "export default { testDir: '.', timeout: 90000, workers: 1 }\n",
  )
  writeFileSync(
    join(app, 'app.spec.mjs'),
    `import { expect, test } from 'weft/testing/playwright'
test.use({ weftServer: { serve: 'public' } })
test('two tabs of the app, one firewalled, share a table key', async ({ weft }) => {
  const [a, b] = await weft.peers(2, { url: '/', relay: ['auto', 'force'] })
  await weft.linked([a, b])
  expect(b.network).toBe(weft.network('app'))
  await a.evaluate((node) => node.sync.set('k', 'v'))
  await weft.synced([a, b], 'k', 'v')
  await expect(b.page).toHaveTitle('k=v')
  for (const link of await b.links()) expect(link.transport).toBe('relay')
})
`,
  )
  const kitRun = run(
    process.execPath,
    [
      join(app, 'node_modules/@playwright/test/cli.js'),
      'test',
      '-c',
      'playwright.config.mjs',
      '--reporter=line',
    ],
    { cwd: app, timeout: 180_000 },
  )
  check(
    "an app's Playwright test with the installed weft/testing/playwright passes (its page served by the kit's server)",
    kitRun.status === 0 && /1 passed/.test(kitRun.stdout),
    (kitRun.stdout + kitRun.stderr).trim().slice(-1500),
  )
} catch (err) {
  check('package test ran', false, err instanceof Error ? err.message : String(err))
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  rmSync(work, { recursive: true, force: true })
}
console.log(failed === 0 ? 'package: all checks passed' : `package: ${failed} check(s) failed`)
process.exit(failed === 0 ? 0 : 1)
