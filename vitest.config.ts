import { availableParallelism } from 'node:os'
import { defineConfig } from 'vitest/config'

export default defineConfig({
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
