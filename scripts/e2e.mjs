#!/usr/bin/env node
// npm run test:e2e: make sure Chromium is installed, build the bundles and the
// demo page, then run the Playwright tests (one browser context per peer).
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const run = (cmd, args, env = {}) =>
  spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } }).status ?? 1

let rc = run(process.execPath, [join(root, 'scripts/ensure-system.mjs')])
if (rc !== 0) process.exit(rc)
rc = run(process.execPath, [join(root, 'scripts/build.mjs')])
if (rc !== 0) process.exit(rc)
const reporter = process.env.WEFT_E2E_REPORTERS ?? 'list'
rc = run(join(root, 'node_modules/.bin/playwright'), [
  'test',
  `--reporter=${reporter}`,
  ...process.argv.slice(2),
])
process.exit(rc)
