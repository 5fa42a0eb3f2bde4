/**
 * End-to-end tests: every peer is its own browser context (contexts do not
 * share IndexedDB), in Debian's Chromium (Playwright cannot download its own
 * browser here; see PLATFORM.md): its headless shell when it is installed
 * (Chromium's headless build, the one Playwright itself runs headless tests
 * in; a tab costs about half the CPU of the full browser's), else the full
 * browser; CHROMIUM_PATH names another. Each test file starts its own signal
 * server on a free port (e2e/fixtures.ts), or each worker (the testing kit,
 * weft/testing/playwright, which adds its flags to these).
 */
import { existsSync } from 'node:fs'
import { defineConfig } from '@playwright/test'
import { SYSTEM_CHROMIUMS } from './testing/playwright/chromium.ts'

// The kit's order of system browsers: the headless shell first.
const installed = SYSTEM_CHROMIUMS.find((p) => existsSync(p))
const chromium = process.env.CHROMIUM_PATH || (installed ?? '/usr/bin/chromium-headless-shell')
if (!existsSync(chromium))
  throw new Error(
    `Chromium not found at ${chromium}: run apt-get install -y chromium-headless-shell (or set CHROMIUM_PATH)`,
  )

export default defineConfig({
  testDir: '.',
  // weft's own end-to-end tests, and the examples' tests (which use weft/testing/playwright as apps do).
  testMatch: ['e2e/**/*.spec.ts', 'examples/**/*.spec.ts'],
  timeout: 180_000,
  expect: { timeout: 30_000 },
  workers: 1,
  retries: 0,
  reporter: 'list',
  use: {
    browserName: 'chromium',
    launchOptions: {
      executablePath: chromium,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-features=WebRtcHideLocalIpsWithMdns',
      ],
    },
  },
})
