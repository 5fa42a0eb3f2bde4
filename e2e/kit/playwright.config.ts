/**
 * Run by e2e/kit.spec.ts, not by the suite's own configuration: two tests
 * through the kit, one of which fails on purpose, to see what the kit prints
 * and what it leaves behind. No browser settings: the kit finds Chromium.
 */
import { defineConfig } from '@playwright/test'

export default defineConfig({
  testDir: '.',
  testMatch: '*.inner.ts',
  timeout: 60_000,
  workers: 1,
  retries: 0,
  reporter: 'list',
})
