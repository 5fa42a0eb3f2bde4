import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  // Tests written as an app writes them import the testing kit by its package name; from source here.
  resolve: {
    alias: [
      {
        find: /^weft\/testing$/,
        replacement: fileURLToPath(new URL('./testing/node/index.ts', import.meta.url)),
      },
    ],
  },
  test: {
    include: [
      'shared/**/*.test.ts',
      'client/**/*.test.ts',
      'signal-server/**/*.test.ts',
      'testing/**/*.test.ts',
    ],
    // Vitest's default is one worker less than the cores: one worker on the 2-core CI machine, while most
    // files are CPU-bound simulations. Two workers use both cores.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
