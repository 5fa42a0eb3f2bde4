import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { arbValue, exactlyEqual, isPlainDeep } from '../../test/arbitraries.ts'
import { isValue, type Value } from '../types.ts'
import {
  decodeValue,
  decodeValueOrWhy,
  decodeValueResult,
  encodeValue,
  MAX_VALUE_DEPTH,
  MAX_VALUE_ITEMS,
  SCAN_MALFORMED,
  SCAN_TOO_MANY_ITEMS,
  scanMsgpack,
  scanMsgpackItems,
} from './value.ts'

const hex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (h) => Number.parseInt(h, 16))
const utf8 = (s: string) => new TextEncoder().encode(s)

/** The decoded Value, or undefined when refused (a decoded null stays null). */
function roundTrip(v: Value): Value | undefined {
  return decodeValueResult(encodeValue(v))?.value
}

function nested(depth: number): Value {
  let v: Value = 1
  for (let i = 0; i < depth; i++) v = i % 2 ? { k: v } : [v]
  return v
}

describe('encodeValue / decodeValue', () => {
  it('round-trips any Value exactly, with plain objects and plain Uint8Arrays', () => {
    fc.assert(
      fc.property(arbValue, (v) => {
        const out = roundTrip(v)
        expect(out).not.toBeUndefined()
        expect(exactlyEqual(v, out as Value)).toBe(true)
        expect(isPlainDeep(out as Value)).toBe(true)
      }),
      { numRuns: 1000 },
    )
  })

  it('keeps -0, large integers, floats and unicode', () => {
    const cases: Value[] = [
      -0,
      [0, -0, { z: -0 }],
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      2 ** 53,
      2 ** 64,
      -(2 ** 63),
      1e300,
      -1e-300,
      Number.MIN_VALUE,
      0.1 + 0.2,
      1.5,
      'héllo wörld — 日本語 — 🧵🪡 — \u0000',
      { '🔑': 'ключ', '': '' },
      {},
      [],
      '',
      new Uint8Array(0),
      [[], {}, [[]], { a: {} }],
    ]
    for (const v of cases) expect(exactlyEqual(v, roundTrip(v) as Value), String(v)).toBe(true)
  })

  it('keeps integers compact, and -0 costs only the message that holds it', () => {
    expect(encodeValue(5)).toEqual(hex('05'))
    expect(encodeValue([1, 2])).toEqual(hex('920102'))
    expect(encodeValue(-0)).toEqual(hex('cb8000000000000000'))
    expect(Object.is((decodeValue(encodeValue([1, -0])) as number[])[1], -0)).toBe(true)
  })

  it('returns Uint8Arrays that are plain copies, even from a Buffer, anywhere in the value', () => {
    const v = { a: [new Uint8Array([1, 2, 3])], b: Buffer.from([4, 5]) }
    const bytes = encodeValue(v)
    const fromBuffer = Buffer.from(bytes)
    const out = decodeValue(fromBuffer) as { a: Uint8Array[]; b: Uint8Array }
    expect(isPlainDeep(out)).toBe(true)
    expect(out.b).toEqual(new Uint8Array([4, 5]))
    expect(Object.getPrototypeOf(decodeValue(encodeValue(Buffer.from([9]))))).toBe(Uint8Array.prototype)
    // no aliasing of the input buffer
    fromBuffer.fill(0)
    expect(Array.from(out.a[0] as Uint8Array)).toEqual([1, 2, 3])
  })

  it('decodes from a view into a larger buffer', () => {
    const inner = encodeValue({ x: new Uint8Array([7, 8]) })
    const big = new Uint8Array(inner.length + 10)
    big.set(inner, 5)
    const out = decodeValue(big.subarray(5, 5 + inner.length))
    expect(exactlyEqual(out as Value, { x: new Uint8Array([7, 8]) })).toBe(true)
  })

  it('refuses to encode what is not a Value or would not come back equal', () => {
    const bad: unknown[] = [
      undefined,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      new Date(0),
      new Map(),
      () => 1,
      new Float32Array(2),
      { a: undefined },
      [1, 2n],
      'lone \uD800 surrogate',
      { '\uDC00': 1 },
      JSON.parse('{"__proto__": 1}'),
      nested(MAX_VALUE_DEPTH + 1),
    ]
    for (const v of bad) expect(() => encodeValue(v as Value), String(v)).toThrow(TypeError)
  })

  it('allows nesting to depth 64 and refuses deeper', () => {
    expect(exactlyEqual(roundTrip(nested(MAX_VALUE_DEPTH)) as Value, nested(MAX_VALUE_DEPTH))).toBe(true)
    // hand-built: 65 one-element arrays around an int
    const deep = new Uint8Array(MAX_VALUE_DEPTH + 2).fill(0x91)
    deep[MAX_VALUE_DEPTH + 1] = 0x01
    expect(decodeValueResult(deep)).toBeNull()
    expect(scanMsgpack(deep, MAX_VALUE_DEPTH)).toBe(false) // refused before the library builds anything
    expect(scanMsgpack(deep.subarray(1), MAX_VALUE_DEPTH)).toBe(true)
    expect(decodeValueResult(deep.subarray(1))).not.toBeNull()
  })

  it('rejects extension types, 0xc1, non-string keys, __proto__ keys, non-finite numbers, bad lengths', () => {
    const bad = [
      '', // empty
      'c1', // never used
      'd6ff00000000', // timestamp extension
      'd40100', // fixext 1
      'c7010501', // ext 8
      '91d6ff00000000', // extension inside an array
      '810101', // {1: 1}
      '81c0c0', // {nil: nil}
      '8191a0c0', // {[""]: nil}
      '81c40161c0', // bin key
      `81a9${Array.from(utf8('__proto__'), (b) => b.toString(16)).join('')}80`, // {__proto__: {}}
      'cb7ff8000000000000', // NaN
      'cb7ff0000000000000', // Infinity
      'ca7fc00000', // float32 NaN
      '0101', // trailing byte
      '9201', // array short of an item
      'ddffffffff', // array of 2^32-1 items, none present
      'dfffffffff', // map of 2^32-1 entries
      'c6ffffffff00', // bin of 4 GiB
      'dbffffffff61', // str of 4 GiB
      'a3eda080', // invalid UTF-8 that would decode to a lone surrogate
      '81a3eda080c0', // same, as a key
    ]
    for (const h of bad) expect(decodeValueResult(hex(h)), h).toBeNull()
    expect(decodeValueResult(hex('c0'))).toEqual({ value: null })
    expect(decodeValue(hex('c0'))).toBeNull()
  })

  it('gives plain objects, also for keys that shadow Object.prototype', () => {
    const v = { constructor: 1, toString: 'x', hasOwnProperty: null, valueOf: [] }
    const out = roundTrip(v) as Record<string, Value>
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype)
    expect(exactlyEqual(out, v)).toBe(true)
  })

  it('turns away a 4 MiB nesting bomb quickly, without building it', () => {
    // well-formed: 4 Mi - 1 one-element arrays around an int
    const bomb = new Uint8Array(4 * 1024 * 1024).fill(0x91)
    bomb[bomb.length - 1] = 0x01
    const t = performance.now()
    expect(decodeValueResult(bomb)).toBeNull()
    expect(performance.now() - t).toBeLessThan(500)
  })

  it('never throws on random bytes; whatever decodes is a Value that re-encodes to itself', () => {
    const check = (bytes: Uint8Array) => {
      const r = decodeValueResult(bytes)
      if (r === null) return
      const v = r.value
      expect(isValue(v)).toBe(true)
      expect(isPlainDeep(v)).toBe(true)
      expect(exactlyEqual(roundTrip(v) as Value, v)).toBe(true)
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), check), { numRuns: 2000 })
    // mutations of valid encodings reach deeper than random bytes do
    fc.assert(
      fc.property(
        arbValue,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat(),
        (v, edits, cut) => {
          const bytes = encodeValue(v)
          for (const [at, b] of edits) if (bytes.length > 0) bytes[at % bytes.length] = b
          check(bytes)
          check(bytes.subarray(0, cut % (bytes.length + 1)))
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('scanMsgpack accepts every encoded Value', () => {
    fc.assert(
      fc.property(arbValue, (v) => scanMsgpack(encodeValue(v), MAX_VALUE_DEPTH)),
      { numRuns: 300 },
    )
  })

  it('counts msgpack objects: every scalar, container and map key is one', () => {
    expect(scanMsgpackItems(encodeValue(1), MAX_VALUE_DEPTH, 10)).toBe(1)
    expect(scanMsgpackItems(encodeValue([1, 2, [3]]), MAX_VALUE_DEPTH, 10)).toBe(5)
    expect(scanMsgpackItems(encodeValue({ a: 1, b: { c: null } }), MAX_VALUE_DEPTH, 10)).toBe(7)
    expect(scanMsgpackItems(encodeValue({ a: 1, b: { c: null } }), MAX_VALUE_DEPTH, 6)).toBe(
      SCAN_TOO_MANY_ITEMS,
    )
    expect(scanMsgpackItems(hex('c1'), MAX_VALUE_DEPTH, 10)).toBe(SCAN_MALFORMED)
  })

  it('refuses, before building anything, a body of more objects than MAX_VALUE_ITEMS, and fast', () => {
    // The attack: 4 MiB of msgpack nils in one array, four million objects (it took seconds to decode).
    const n = 4 * 1024 * 1024 - 5
    const bomb = new Uint8Array(5 + n).fill(0xc0)
    bomb[0] = 0xdd
    new DataView(bomb.buffer).setUint32(1, n)
    const t0 = performance.now()
    expect(decodeValueOrWhy(bomb)).toBe(SCAN_TOO_MANY_ITEMS)
    expect(decodeValueResult(bomb)).toBeNull()
    // The scan stops at the limit: a few ms of work, whatever the size (generous bound for a loaded machine).
    expect(performance.now() - t0).toBeLessThan(200)
    // Exactly at the limit it decodes; one more is refused (the array itself counts one).
    const at = new Uint8Array(5 + MAX_VALUE_ITEMS - 1).fill(0xc0)
    at[0] = 0xdd
    new DataView(at.buffer).setUint32(1, MAX_VALUE_ITEMS - 1)
    expect(decodeValueResult(at)?.value).toHaveLength(MAX_VALUE_ITEMS - 1)
    const over = new Uint8Array(5 + MAX_VALUE_ITEMS).fill(0xc0)
    over[0] = 0xdd
    new DataView(over.buffer).setUint32(1, MAX_VALUE_ITEMS)
    expect(decodeValueResult(over)).toBeNull()
    expect(decodeValueResult(over, { maxItems: MAX_VALUE_ITEMS + 1 })).not.toBeNull()
  })

  it('refuses to encode a Value no receiver would decode: MessageTooLargeError', () => {
    expect(encodeValue(new Array(MAX_VALUE_ITEMS - 1).fill(0)).length).toBeGreaterThan(0)
    let err: unknown
    try {
      encodeValue(new Array(MAX_VALUE_ITEMS).fill(0))
    } catch (e) {
      err = e
    }
    expect((err as Error).name).toBe('MessageTooLargeError')
    // a map's keys count too
    const wide: Record<string, Value> = {}
    for (let i = 0; i < MAX_VALUE_ITEMS / 2; i++) wide[`k${i}`] = 0
    expect(() => encodeValue(wide)).toThrow(/items/)
  })

  it('decodes short ASCII and other strings alike', () => {
    for (const s of [
      '',
      'a',
      'abc',
      'x'.repeat(31),
      'x'.repeat(32),
      'x'.repeat(33),
      'é',
      'aé',
      '日本',
      '\u007f',
    ])
      expect(roundTrip({ [s]: s })).toEqual({ [s]: s })
  })
})
