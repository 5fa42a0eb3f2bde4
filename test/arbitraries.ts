/**
 * fast-check arbitraries for wire tests, shared by every module's tests.
 * Test-only: imports fast-check, so nothing outside *.test.ts may import it.
 */
import fc from 'fast-check'
import type { Value } from '../shared/types.ts'

/** Numbers a Value may hold, with the awkward ones (-0, 2^53 and beyond, tiny and huge floats) made likely. */
export const arbNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(
    0,
    -0,
    2 ** 31,
    -(2 ** 31) - 1,
    2 ** 32,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    2 ** 53,
    2 ** 64,
    -(2 ** 63) - 4096,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    -Number.EPSILON,
    0.1,
  ),
)

/** Well-formed Unicode strings (astral characters included); lone surrogates cannot travel. */
export const arbString: fc.Arbitrary<string> = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }))

/** Object keys: any well-formed string but `__proto__`, which the decoder refuses. */
export const arbKey: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constantFrom('constructor', 'toString', 'hasOwnProperty', '0', '1', ''),
)

/** Plain Uint8Arrays, sometimes views into a larger buffer. */
export const arbBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.nat(16))
    .map(([b, off]) => b.subarray(Math.min(off, b.length))),
)

export const arbLeaf: fc.Arbitrary<Value> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  arbNumber,
  arbString,
  arbBytes,
)

/** Any Value: JSON-ish data and Uint8Arrays, nested (empty arrays and objects included). */
export const arbValue: fc.Arbitrary<Value> = fc.letrec<{
  value: Value
  array: Value[]
  object: Record<string, Value>
}>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, arbLeaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 6 }),
  object: fc
    .array(fc.tuple(arbKey, tie('value')), { maxLength: 6 })
    .map((entries) => Object.fromEntries(entries.filter(([k]) => k !== '__proto__'))),
})).value

/** Values with a large, compressible part (repeated text and bytes), for compression and chunking tests. */
export const arbLargeValue = (minBytes: number): fc.Arbitrary<Value> =>
  fc
    .tuple(arbValue, fc.string({ minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 255 }))
    .map(([v, word, byte]) => ({
      v,
      text: word.repeat(Math.ceil(minBytes / word.length / 2) + 1),
      bytes: new Uint8Array(Math.ceil(minBytes / 2)).fill(byte),
    }))

/**
 * Exact equality of Values, stricter than toEqual: -0 differs from 0, a
 * Uint8Array equals only a Uint8Array with the same bytes, and key order counts.
 */
export function exactlyEqual(a: Value, b: Value): boolean {
  if (typeof a === 'number' || typeof b === 'number') return Object.is(a, b)
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
    return true
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!(Array.isArray(a) && Array.isArray(b)) || a.length !== b.length) return false
    return a.every((x, i) => exactlyEqual(x, b[i] as Value))
  }
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.length !== kb.length) return false
  return ka.every((k, i) => k === kb[i] && exactlyEqual(a[k] as Value, b[k] as Value))
}

/** Is every object in `v` a plain object and every byte array exactly a Uint8Array (no Buffer, no subclass)? */
export function isPlainDeep(v: Value): boolean {
  if (v === null || typeof v !== 'object') return true
  if (v instanceof Uint8Array) return Object.getPrototypeOf(v) === Uint8Array.prototype
  if (Array.isArray(v)) return v.every(isPlainDeep)
  return Object.getPrototypeOf(v) === Object.prototype && Object.values(v).every(isPlainDeep)
}
