/**
 * Waiting in the kit: a condition is checked again and again (never a fixed
 * sleep) until it holds or time runs out, and a timeout says what was
 * awaited and what was last seen, so a failure reads as a diagnosis.
 */
import { isDeepStrictEqual } from 'node:util'

/** What a wait accepts for a value: the value itself (deep equality; a Uint8Array by its bytes), or a test of it. */
export type Expected<T> = T | ((value: T | undefined) => boolean)

/** Whether `value` is what was expected. Values of weft are never functions, so a function is a test. */
export function matches<T>(value: T | undefined, expected: Expected<T>): boolean {
  if (typeof expected === 'function') return (expected as (v: T | undefined) => boolean)(value)
  return isDeepStrictEqual(value, expected)
}

/** A short text of a value for messages (bytes as `Uint8Array(n)`, long texts cut). */
export function show(value: unknown): string {
  let text: string
  try {
    text =
      JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? `Uint8Array(${v.length})` : v)) ??
      String(value)
  } catch {
    text = String(value)
  }
  return text.length > 300 ? `${text.slice(0, 300)}…` : text
}

export interface Probe {
  /** The condition holds. */
  done: boolean
  /** What was seen, for the message if time runs out. */
  seen?: string
}

/** How often a condition is checked again. */
const INTERVAL_MS = 100

/** Check `probe` until it is done; after `timeoutMs`, throw naming `what` and the last thing seen. */
export async function waitFor(what: string, probe: () => Promise<Probe>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs
  let seen: string | undefined
  for (;;) {
    const p = await probe()
    if (p.done) return
    seen = p.seen ?? seen
    if (Date.now() >= end)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${seen ? `; last seen: ${seen}` : ''}`,
      )
    await new Promise((r) => setTimeout(r, INTERVAL_MS))
  }
}
