/**
 * Seeds for simulator tests: a failing run names its seed, and WEFT_SEED
 * replays it (README, "Replaying a simulation"). Test-only: reads the
 * environment, which shared/ never does.
 */
/** Run `fn(seed)`; when it throws, say which seed replays the failure. */
export async function withSeed<T>(seed: number, fn: (seed: number) => Promise<T>): Promise<T> {
  try {
    return await fn(seed)
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err))
    e.message = `${e.message}\n  (simulation seed ${seed}: rerun with WEFT_SEED=${seed} to replay)`
    throw e
  }
}

/** The seed for a test: WEFT_SEED from the environment when set, else `fallback`. */
export function testSeed(fallback: number): number {
  const env = process.env.WEFT_SEED
  const n = env === undefined ? Number.NaN : Number(env)
  return Number.isFinite(n) ? n >>> 0 : fallback
}
