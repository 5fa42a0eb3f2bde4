#!/usr/bin/env node
// npm run build: the Node build (tsc → dist/) and the browser bundles and demo page (Vite → dist/web/).
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = (name) => join(root, 'node_modules', '.bin', name)

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } })
  if (r.status !== 0) {
    console.error(`build step failed: ${cmd} ${args.join(' ')}`)
    process.exit(r.status ?? 1)
  }
}

rmSync(join(root, 'dist'), { recursive: true, force: true })
run(bin('tsc'), ['-p', 'tsconfig.build.json'])
run(bin('vite'), ['build', '--logLevel', 'warn'], { WEFT_BUILD: 'lib' })
if (existsSync(join(root, 'client/demo/index.html')))
  run(bin('vite'), ['build', '--logLevel', 'warn'], { WEFT_BUILD: 'demo' })
copyFileSync(join(root, 'client/embed.html'), join(root, 'dist/web/embed.html'))
for (const f of ['dist/signal-server/main.js', 'dist/client/peer-main.js'])
  if (existsSync(join(root, f))) chmodSync(join(root, f), 0o755)
console.log('built dist/ (Node) and dist/web/ (weft.js, weft.mjs, demo page)')
