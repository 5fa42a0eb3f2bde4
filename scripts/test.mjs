#!/usr/bin/env node
// npm test: typecheck, lint, unit + simulator tests (Vitest), end-to-end tests
// (Playwright with Debian's Chromium), the package test (npm pack, installed
// into an empty folder). Ends with one line of totals over all suites:
// "N passed, N failed" (typecheck, lint and the package test count as one check each).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = (name) => join(root, 'node_modules', '.bin', name)
const out = join(root, 'test-results')
mkdirSync(out, { recursive: true })

let passed = 0
let failed = 0
const lines = []

function step(name, cmd, args, env = {}) {
  console.log(`\n=== ${name}`)
  const t0 = Date.now()
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } })
  const s = ((Date.now() - t0) / 1000).toFixed(0)
  lines.push(`${name}: exit ${r.status} in ${s}s`)
  return r.status === 0
}

function check(name, cmd, args, env = {}) {
  if (step(name, cmd, args, env)) passed++
  else failed++
}

// Chromium and redis-server first: the Redis multi-instance test runs with the unit tests.
if (
  !step('system packages (chromium, redis-server)', process.execPath, [
    join(root, 'scripts/ensure-system.mjs'),
  ])
) {
  console.log('0 passed, 1 failed')
  process.exit(1)
}
check('typecheck', bin('tsc'), ['-p', 'tsconfig.json', '--noEmit'])
// shared/ alone, with no DOM and no Node types: purity compiled, not reviewed (ARCHITECTURE.md rule 1).
check('typecheck shared/ (pure)', bin('tsc'), ['-p', 'shared/tsconfig.json'])
check('lint', bin('biome'), ['check', '.'])

// Unit and simulator tests.
const vitestJson = join(out, 'vitest.json')
rmSync(vitestJson, { force: true })
const unitOk = step('unit + simulator tests', bin('vitest'), [
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${vitestJson}`,
])
if (existsSync(vitestJson)) {
  const r = JSON.parse(readFileSync(vitestJson, 'utf8'))
  passed += r.numPassedTests
  failed += r.numFailedTests
  if (!unitOk && r.numFailedTests === 0) failed++ // a suite failed to load
} else if (!unitOk) failed++

// End-to-end tests (builds, makes sure Chromium is there).
const pwJson = join(out, 'playwright.json')
rmSync(pwJson, { force: true })
const e2eOk = step('end-to-end tests', process.execPath, [join(root, 'scripts/e2e.mjs')], {
  PLAYWRIGHT_JSON_OUTPUT_NAME: pwJson,
  WEFT_E2E_REPORTERS: 'list,json',
})
if (existsSync(pwJson)) {
  const r = JSON.parse(readFileSync(pwJson, 'utf8'))
  const s = r.stats ?? {}
  passed += (s.expected ?? 0) + (s.flaky ?? 0)
  failed += s.unexpected ?? 0
  if (!e2eOk && !s.unexpected) failed++
} else if (!e2eOk) failed++

// The package as users get it: npm pack, installed into an empty folder (scripts/package-test.mjs).
// After the e2e step: when Playwright ran, the build before it succeeded and is not repeated.
check(
  'package: npm pack, install with --omit=dev into an empty folder, use it',
  process.execPath,
  [join(root, 'scripts/package-test.mjs')],
  { WEFT_SKIP_BUILD: existsSync(pwJson) ? '1' : '0' },
)

console.log(`\n${lines.join('\n')}`)
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed > 0 ? 1 : 0)
