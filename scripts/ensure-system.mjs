#!/usr/bin/env node
// Makes sure the system packages the tests need are present: Debian's Chromium
// (Playwright cannot download its own browser here) and redis-server (the
// multi-instance signal server test). Installs them with apt-get when running
// as root; otherwise stops with the command to run.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const need = []
const chromium = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
if (!existsSync(chromium)) need.push('chromium')
if (spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status !== 0)
  need.push('redis-server')

if (need.length > 0) {
  const cmd = `apt-get update && apt-get install -y ${need.join(' ')}`
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  if (!isRoot) {
    console.error(`weft tests need: ${need.join(', ')}. Install with:\n  sudo sh -c '${cmd}'`)
    process.exit(1)
  }
  console.log(`installing ${need.join(', ')} (${cmd})`)
  try {
    execFileSync('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${cmd} >/tmp/weft-apt.log 2>&1`], {
      stdio: 'inherit',
    })
  } catch {
    console.error(`could not install ${need.join(', ')}; see /tmp/weft-apt.log. Run: ${cmd}`)
    process.exit(1)
  }
}
