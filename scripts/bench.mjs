#!/usr/bin/env node
// npm run bench            runs every benchmark in bench/*.ts
// npm run bench -- NAME    runs one (bench/NAME.ts); each writes bench/results/NAME.json
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const benchDir = join(root, 'bench')
const all = readdirSync(benchDir)
  .filter((f) => f.endsWith('.ts') && f !== 'report.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort()
const wanted = process.argv.slice(2)
for (const name of wanted) {
  if (!existsSync(join(benchDir, `${name}.ts`))) {
    console.error(`no benchmark named ${name}; there are: ${all.join(', ')}`)
    process.exit(2)
  }
}
let failed = 0
for (const name of wanted.length ? wanted : all) {
  console.log(`\n=== bench ${name}`)
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(benchDir, `${name}.ts`)], {
    cwd: root,
    stdio: 'inherit',
  })
  if (r.status !== 0) {
    failed++
    console.error(`bench ${name} failed (exit ${r.status})`)
  }
}
process.exit(failed ? 1 : 0)
