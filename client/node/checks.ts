/**
 * The checks the public API makes on its arguments: a mistake is the
 * caller's, thrown at once as a TypeError that says what is expected.
 */
import { isNodeId } from '../../shared/bytes.ts'
import { isValue, type Value } from '../../shared/types.ts'

export function checkTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > 256 || topic.charCodeAt(0) === 0)
    throw new TypeError('a topic or method is a string of 1 to 256 characters, not starting with NUL')
}

export function checkNodeId(to: unknown): asserts to is string {
  if (typeof to !== 'string' || !/^[0-9a-f]{40}$/.test(to))
    throw new TypeError(
      `not a node id: ${JSON.stringify(to)}; a node id is 40 lowercase hex characters, as node.id and peers() give it`,
    )
}

/** A subscriber or handler. */
export function checkFunction(fn: unknown, what: string): void {
  if (typeof fn !== 'function') throw new TypeError(`${what}: a function (got ${typeof fn})`)
}

/** `request`'s `{ timeoutMs }`: milliseconds, above 0 (as joinOverlay's timeouts). */
export function checkRequestOptions(opts: unknown): void {
  if (opts === undefined) return
  if (typeof opts !== 'object' || opts === null)
    throw new TypeError('request: options are an object such as { timeoutMs: 5000 }')
  const ms = (opts as { timeoutMs?: unknown }).timeoutMs
  if (ms !== undefined && !(typeof ms === 'number' && Number.isFinite(ms) && ms > 0))
    throw new TypeError(
      `request: timeoutMs: milliseconds, a number above 0 (got ${typeof ms === 'string' ? JSON.stringify(ms) : String(ms)})`,
    )
}

export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new TypeError('a key is a non-empty string')
}

/** The `author` option of a DHT read: a node id, or (when absent) ours. */
export function authorOf(opts: { author?: string } | undefined, self: string): string {
  const a: unknown = opts?.author
  if (a === undefined) return self
  if (!isNodeId(a)) throw new TypeError('author is a node id: 40 lowercase hex characters')
  return a
}

export function checkValue(v: unknown): asserts v is Value {
  if (!isValue(v)) throw new TypeError('data must be a Value: JSON-compatible data or Uint8Array, nested')
}
