#!/usr/bin/env node
// npm run build: the Node build (tsc → dist/) and the browser bundles and demo page (Vite → dist/web/),
// then a gzip and a brotli copy of every text file of dist/web, which the signal server sends to
// browsers that accept them (signal-server/http.ts).
import { spawnSync } from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = (name) => join(root, 'node_modules', '.bin', name)

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } })
  if (r.status !== 0) {
    console.error(`build step failed: ${cmd} ${args.join(' ')}`)
    process.exit(r.status ?? 1)
  }
}

/**
 * Text files worth compressing; smaller ones are sent as they are. Not source maps: only developer
 * tools fetch them, and their compressed copies would add a megabyte to the package.
 */
const COMPRESS = new Set(['.js', '.mjs', '.css', '.html', '.json', '.svg', '.txt'])
const MIN_BYTES = 1024

function precompress(dir) {
  let files = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      files += precompress(path)
      continue
    }
    if (!COMPRESS.has(extname(entry.name))) continue
    const body = readFileSync(path)
    if (body.length < MIN_BYTES) continue
    writeFileSync(`${path}.gz`, gzipSync(body, { level: 9 }))
    writeFileSync(
      `${path}.br`,
      brotliCompressSync(body, {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
          [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
        },
      }),
    )
    files++
  }
  return files
}

rmSync(join(root, 'dist'), { recursive: true, force: true })
run(bin('tsc'), ['-p', 'tsconfig.build.json'])
run(bin('vite'), ['build', '--logLevel', 'warn'], { WEFT_BUILD: 'lib' })
run(bin('vite'), ['build', '--logLevel', 'warn'], { WEFT_BUILD: 'lib-iife' })
run(bin('vite'), ['build', '--logLevel', 'warn'], { WEFT_BUILD: 'files-all' })
if (existsSync(join(root, 'client/demo/index.html')))
  run(bin('vite'), ['build', '--logLevel', 'warn'], { WEFT_BUILD: 'demo' })
copyFileSync(join(root, 'client/embed.html'), join(root, 'dist/web/embed.html'))
const compressed = precompress(join(root, 'dist/web'))
for (const f of ['dist/signal-server/main.js', 'dist/client/peer-main.js'])
  if (existsSync(join(root, f))) chmodSync(join(root, f), 0o755)
console.log(
  `built dist/ (Node) and dist/web/ (weft.js, weft.mjs, demo page; ${compressed} files also as .gz and .br)`,
)
