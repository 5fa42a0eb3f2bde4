import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { arbValue } from '../../test/arbitraries.ts'
import { concatBytes } from '../bytes.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import { MAX_DUMP_RECORDS, parsePresenceMsg, parseRecord } from './messages.ts'
import { compareVersion, encodeBody, MAX_PREFIX_BYTES, parseBody } from './record.ts'

const pk = new Uint8Array(32).fill(7)
const sig = new Uint8Array(64).fill(9)

describe('presence record body', () => {
  it('round-trips a present body with any state, and a leave body; the state is the bytes after the prefix', () => {
    fc.assert(
      fc.property(
        fc.record({
          session: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
          seq: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
          time: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
          interval: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        }),
        arbValue,
        (prefix, state) => {
          const encoded = encodeValue(state)
          const body = encodeBody({ ...prefix, state: encoded })
          const parsed = parseBody(body)
          expect(parsed).toEqual({ ...prefix, state: encoded })
          expect(decodeValue(parsed?.state ?? new Uint8Array())).toEqual(state)
          expect(body.length - (parsed?.state?.length ?? 0)).toBeLessThanOrEqual(MAX_PREFIX_BYTES)
          expect(parseBody(encodeBody(prefix))).toEqual(prefix)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('refuses every other shape: wrong arity, non-integers, interval 0, a prefix not in its shortest form, trailing bytes, a state that is not one Value', () => {
    const ok = encodeBody({ session: 1, seq: 2, time: 3, interval: 4, state: encodeValue('x') })
    expect(parseBody(ok)).not.toBeNull()
    expect(parseBody(encodeValue([1, 2, 3]))).toBeNull()
    expect(parseBody(encodeValue([1, 2, 3, 4, 5, 6]))).toBeNull()
    expect(parseBody(encodeValue([1, 2.5, 3, 4]))).toBeNull()
    expect(parseBody(encodeValue([1, -2, 3, 4]))).toBeNull()
    expect(parseBody(encodeValue([1, 2, 3, 0]))).toBeNull()
    expect(parseBody(encodeValue(['1', 2, 3, 4]))).toBeNull()
    // 5 written as a uint8 (0xcc 0x05) instead of a fixint: a second encoding of the same record.
    expect(parseBody(Uint8Array.from([0x94, 0xcc, 0x05, 2, 3, 4]))).toBeNull()
    expect(parseBody(Uint8Array.from([0x94, 1, 2, 3, 4]))).toEqual({
      session: 1,
      seq: 2,
      time: 3,
      interval: 4,
    })
    expect(parseBody(Uint8Array.from([0x94, 1, 2, 3, 4, 0xc0]))).toBeNull() // a leave with trailing bytes
    expect(parseBody(concatBytes(ok, Uint8Array.from([0xc0])))).toBeNull() // two Values as the state
    expect(parseBody(Uint8Array.from([0x95, 1, 2, 3, 4]))).toBeNull() // present, without a state
    expect(parseBody(Uint8Array.from([0x95, 1, 2, 3, 4, 0xc1]))).toBeNull() // 0xc1 is never a Value
    expect(parseBody(Uint8Array.from([0x94, 1, 2, 3]))).toBeNull() // truncated
    expect(parseBody(Uint8Array.from([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toBeNull()
    // Beyond 2^53 cannot be told apart from its neighbours as a number: refused.
    expect(parseBody(Uint8Array.from([0x94, 0xcf, 0, 0x20, 0, 0, 0, 0, 0, 0, 2, 3, 4]))).toBeNull()
  })

  it('orders by session, then sequence', () => {
    expect(compareVersion({ session: 1, seq: 9 }, { session: 2, seq: 1 })).toBeLessThan(0)
    expect(compareVersion({ session: 2, seq: 2 }, { session: 2, seq: 1 })).toBeGreaterThan(0)
    expect(compareVersion({ session: 2, seq: 1 }, { session: 2, seq: 1 })).toBe(0)
  })
})

describe('presence messages', () => {
  it('parses a record, a pull and a dump, and returns fresh structures', () => {
    const body = encodeBody({ session: 1, seq: 1, time: 1, interval: 1 })
    expect(parseRecord([body, pk, sig])).toEqual([body, pk, sig])
    expect(parsePresenceMsg({ t: 'pull' })).toEqual({ t: 'pull' })
    expect(parsePresenceMsg({ t: 'dump', r: [[body, pk, sig, 5]] })).toEqual({
      t: 'dump',
      r: [[body, pk, sig, 5]],
    })
    expect(parsePresenceMsg({ t: 'dump', r: [], m: true })).toEqual({ t: 'dump', r: [], m: true })
  })

  it('refuses what breaks the grammar', () => {
    const body = encodeBody({ session: 1, seq: 1, time: 1, interval: 1 })
    for (const bad of [
      null,
      [body, pk],
      [body, pk, sig, 1],
      [new Uint8Array(), pk, sig],
      [body, pk.subarray(1), sig],
      [body, pk, sig.subarray(1)],
      ['body', pk, sig],
      [new Uint8Array(70_000), pk, sig],
    ])
      expect(parseRecord(bad)).toBeNull()
    for (const bad of [
      null,
      'pull',
      [],
      { t: 'push' },
      { t: 'dump' },
      { t: 'dump', r: {} },
      { t: 'dump', r: [], m: false },
      { t: 'dump', r: [[body, pk, sig]] },
      { t: 'dump', r: [[body, pk, sig, -1]] },
      { t: 'dump', r: [[body, pk, sig, 1.5]] },
      { t: 'dump', r: [[body, pk, new Uint8Array(63), 0]] },
      { t: 'dump', r: Array.from({ length: MAX_DUMP_RECORDS + 1 }, () => [body, pk, sig, 0]) },
      new (class {
        t = 'pull'
      })(),
    ])
      expect(parsePresenceMsg(bad)).toBeNull()
  })

  it('never throws, whatever it is given', () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), arbValue), (v) => {
        parsePresenceMsg(v)
        parseRecord(v)
        parsePresenceMsg({ t: 'dump', r: [v] })
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
        parseBody(b)
      }),
      { numRuns: 2_000 },
    )
  })
})
