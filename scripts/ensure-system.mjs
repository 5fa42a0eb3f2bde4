#!/usr/bin/env node
// Makes sure the system packages the tests need are present: Debian's Chromium
// headless shell (Playwright cannot download its own browser here; the shell is
// the build of Chromium Playwright itself runs headless tests in, and opens a
// tab in about half the CPU of the full browser) and redis-server (the
// multi-instance signal server test). Installs them with apt-get when running
// as root; otherwise stops with the command to run. With CHROMIUM_PATH set,
// that browser is the one needed. Without the shell but with the full
// Chromium, the tests run in the full Chromium (slower) after a note.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const SHELL = '/usr/bin/chromium-headless-shell'
const FULL = '/usr/bin/chromium'
const need = []
const named = process.env.CHROMIUM_PATH
if (named) {
  if (!existsSync(named)) {
    console.error(`CHROMIUM_PATH=${named}: no such file (unset it to use ${SHELL} or ${FULL})`)
    process.exit(1)
  }
} else if (!existsSync(SHELL)) need.push('chromium-headless-shell')
if (spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status !== 0)
  need.push('redis-server')

/** The browser can do without the shell when the full Chromium is there; redis cannot be done without. */
const canGoOn = () => need.every((p) => p === 'chromium-headless-shell') && existsSync(FULL)

if (need.length > 0) {
  const cmd = `apt-get update && apt-get install -y ${need.join(' ')}`
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  if (!isRoot) {
    if (canGoOn()) {
      console.error(`note: browser tests run in ${FULL}; for about 2× faster ones: sudo sh -c '${cmd}'`)
      process.exit(0)
    }
    console.error(`weft tests need: ${need.join(', ')}. Install with:\n  sudo sh -c '${cmd}'`)
    process.exit(1)
  }
  console.log(`installing ${need.join(', ')} (${cmd})`)
  try {
    execFileSync('sh', ['-c', `export DEBIAN_FRONTEND=noninteractive; (${cmd}) >/tmp/weft-apt.log 2>&1`], {
      stdio: 'inherit',
    })
  } catch {
    if (canGoOn()) {
      console.error(
        `note: could not install chromium-headless-shell (see /tmp/weft-apt.log); browser tests run in ${FULL}`,
      )
      process.exit(0)
    }
    console.error(`could not install ${need.join(', ')}; see /tmp/weft-apt.log. Run: ${cmd}`)
    process.exit(1)
  }
}
