/**
 * Two helpers many Node-level tests write out: waiting for a condition, and
 * closing what a test opened after it (newest first).
 */
import { afterEach } from 'vitest'

/** Poll `cond` every 20 ms until it holds; fail naming `what` after `ms`. */
export async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  ms = 20_000,
): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** A list the calling test file pushes closers to; after each test they run, newest first. */
export function useCleanup(): (() => Promise<unknown> | unknown)[] {
  const cleanup: (() => Promise<unknown> | unknown)[] = []
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f()
  })
  return cleanup
}
