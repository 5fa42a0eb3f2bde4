/** Shared by every benchmark: print a table and write bench/results/NAME.json. */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** bench/results, or BENCH_RESULTS_DIR (a benchmark run from a bundle elsewhere: sim-chord.ts). */
export const RESULTS_DIR =
  process.env.BENCH_RESULTS_DIR ?? join(dirname(fileURLToPath(import.meta.url)), 'results')

export function report(name: string, figures: Record<string, unknown>): void {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const out = {
    name,
    date: new Date().toISOString(),
    node: process.version,
    cpus:
      (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? null,
    ...figures,
  }
  writeFileSync(join(RESULTS_DIR, `${name}.json`), `${JSON.stringify(out, null, 2)}\n`)
  console.log(`\n${name}`)
  console.table(
    Object.fromEntries(
      Object.entries(figures).map(([k, v]) => [
        k,
        typeof v === 'object' ? JSON.stringify(v) : (v as unknown),
      ]),
    ),
  )
  console.log(`wrote bench/results/${name}.json`)
}

export function median(xs: number[]): number {
  return quantile(xs, 0.5)
}

export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))
  return s[i] as number
}

/** True when the module at `url` is the script node was started with. */
export function isMain(url: string): boolean {
  return process.argv[1] !== undefined && fileURLToPath(url) === process.argv[1]
}
