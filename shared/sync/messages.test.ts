import { describe, expect, it } from 'vitest'
import type { Value } from '../types.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import { bucketOf, encodeBody, parseBody } from './entry.ts'
import { parseSnapshot, parseSyncMsg, type SyncMsg } from './messages.ts'

const LIMITS = { maxKeyBytes: 256, maxValueBytes: 65_536, maxLeaseMs: 600_000 }
const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill)
const entry = () => [encodeBody('k', [1_700_000_000_000, 0], 0, encodeValue('v')), bytes(32), bytes(64)]

describe('parseSyncMsg', () => {
  it('accepts every message of the grammar, unchanged through the codec', () => {
    const msgs: SyncMsg[] = [
      { t: 'p', e: entry() as never },
      { t: 's', r: bytes(8) },
      { t: 'b', b: bytes(512) },
      { t: 'v', i: [0, 63], v: [['k', 1, 0, bytes(8)]] },
      { t: 'v', i: [0], v: [['k', 1, 0, bytes(8), 1]] },
      { t: 'v', i: [], v: [], m: true },
      { t: 'q', k: ['a', 'b'] },
      { t: 'e', e: [entry() as never], m: true },
      { t: 'e', e: [] },
    ]
    for (const m of msgs) expect(parseSyncMsg(decodeValue(encodeValue(m)))).toEqual(m)
  })

  it('refuses anything off the grammar', () => {
    const bad: unknown[] = [
      null,
      [],
      'p',
      { t: 'x' },
      { t: 'p' },
      { t: 'p', e: [bytes(10), bytes(31), bytes(64)] },
      { t: 'p', e: [bytes(10), bytes(32), bytes(63)] },
      { t: 'p', e: [new Uint8Array(0), bytes(32), bytes(64)] },
      { t: 'p', e: ['body', bytes(32), bytes(64)] },
      { t: 'p', e: [bytes(10), bytes(32), bytes(64), 1] },
      { t: 's', r: bytes(7) },
      { t: 'b', b: bytes(511) },
      { t: 'v', i: [64], v: [] },
      { t: 'v', i: [1, 1], v: [] },
      { t: 'v', i: [-1], v: [] },
      { t: 'v', i: [0], v: [['k', 1, 0, bytes(7)]] },
      { t: 'v', i: [0], v: [['k', -1, 0, bytes(8)]] },
      { t: 'v', i: [0], v: [['k', 1.5, 0, bytes(8)]] },
      { t: 'v', i: [0], v: [['k', 1, 0, bytes(8), 2]] },
      { t: 'v', i: [0], v: [['k', 1, 0, bytes(8), true]] },
      { t: 'v', i: [0], v: [['k', 1, 0, bytes(8), 1, 1]] },
      { t: 'v', i: [0], v: [], m: false },
      { t: 'q', k: [1] },
      { t: 'q', k: 'a' },
      { t: 'e', e: [[bytes(1)]] },
      { t: 'e', e: [], m: 1 },
      Object.create({ t: 's', r: bytes(8) }),
    ]
    for (const v of bad) expect(parseSyncMsg(v), JSON.stringify(v)).toBeNull()
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('boom')
        },
        getPrototypeOf: () => Object.prototype,
      },
    )
    expect(parseSyncMsg(hostile)).toBeNull()
  })

  it('parses snapshots, skipping malformed entries', () => {
    expect(parseSnapshot({ v: 1, at: 5, e: [entry() as Value[], 'junk'] })).toMatchObject({ at: 5, bad: 1 })
    expect(parseSnapshot({ v: 2, at: 5, e: [] })).toBeNull()
    expect(parseSnapshot({ v: 1, at: Number.NaN, e: [] })).toBeNull()
  })
})

describe('entry bodies', () => {
  it('round-trip values and tombstones; the value size is exact', () => {
    const v = { a: [1, 2], b: new Uint8Array([3]) }
    const vb = encodeValue(v)
    const body = encodeBody('key', [1_700_000_000_000, 7], 5_000, vb)
    const p = parseBody(body, LIMITS)
    expect(p).toEqual({
      key: 'key',
      hlc: [1_700_000_000_000, 7],
      leaseMs: 5_000,
      heldMs: 0,
      tombstone: false,
      valueOffset: body.length - vb.length,
    })
    expect(decodeValue(body)).toEqual(['key', 1_700_000_000_000, 7, 5_000, v])
    const tomb = parseBody(encodeBody('key', [1, 0], 0), LIMITS)
    expect(tomb).toMatchObject({ tombstone: true, leaseMs: 0, heldMs: 0 })
  })

  it('a lease taken before the write travels as [leaseMs, heldMs]; a fresh one as the plain length', () => {
    const vb = encodeValue('v')
    const renewal = encodeBody('key', [1_700_000_003_000, 0], 20_000, vb, 3_000)
    expect(decodeValue(renewal)).toEqual(['key', 1_700_000_003_000, 0, [20_000, 3_000], 'v'])
    expect(parseBody(renewal, LIMITS)).toMatchObject({ leaseMs: 20_000, heldMs: 3_000, tombstone: false })
    const p = parseBody(renewal, LIMITS)
    if (typeof p === 'string') throw new Error(p)
    expect(renewal.length - p.valueOffset).toBe(vb.length)
    // A leased delete keeps its acquisition time too.
    expect(parseBody(encodeBody('key', [50, 0], 10, undefined, 40), LIMITS)).toMatchObject({
      tombstone: true,
      leaseMs: 10,
      heldMs: 40,
    })
    // heldMs 0 has one encoding, the plain number.
    expect(encodeBody('key', [50, 0], 10, vb, 0)).toEqual(encodeBody('key', [50, 0], 10, vb))
  })

  it('refuses non-canonical prefixes, wrong shapes and bad fields', () => {
    const valid = encodeBody('k', [100, 0], 0, encodeValue(1))
    // The same fields with the wall as a uint32 instead of a positive fixint: not the canonical encoding.
    const padded = new Uint8Array([0x95, 0xa1, 0x6b, 0xce, 0, 0, 0, 100, 0, 0, 1])
    expect(decodeValue(padded)).toEqual(decodeValue(valid))
    expect(parseBody(padded, LIMITS)).toBe('malformed')
    const cases: Value[] = [
      ['k', 100, 0],
      ['k', 100, 0, 0, 1, 2],
      [1, 100, 0, 0],
      ['k', -1, 0, 0],
      ['k', 100, 2 ** 32, 0],
      ['k', 100, 0, 0.5],
      ['k', 100, 0, 600_001],
      ['k', 100, 0, [5_000, 0]],
      ['k', 100, 0, [0, 5]],
      ['k', 100, 0, [5_000]],
      ['k', 100, 0, [5_000, 1, 2]],
      ['k', 100, 0, [5_000, 101]],
      ['k', 100, 0, [5_000, -1]],
      ['k', 100, 0, [600_001, 1]],
      ['k', 100, 0, ['5000', 1]],
      { k: 'k' },
    ]
    for (const c of cases) expect(parseBody(encodeValue(c), LIMITS), JSON.stringify(c)).toBe('malformed')
    expect(parseBody(new Uint8Array([0xc1]), LIMITS)).toBe('malformed')
    expect(parseBody(encodeValue(['k'.repeat(257), 1, 0, 0]), LIMITS)).toBe('tooLarge')
    expect(
      parseBody(encodeBody('k', [1, 0], 0, encodeValue('x'.repeat(20))), { ...LIMITS, maxValueBytes: 20 }),
    ).toBe('tooLarge')
    // A value body whose prefix is the tombstone's, plus trailing bytes: not a value (0x94 header).
    const tomb = encodeBody('k', [1, 0], 0)
    expect(parseBody(new Uint8Array([...tomb, 0x01]), LIMITS)).toBe('malformed')
  })

  it('spreads keys over the 64 buckets', () => {
    const counts = new Array(64).fill(0)
    for (let i = 0; i < 6_400; i++) counts[bucketOf(`key/${i}`)]++
    expect(Math.min(...counts)).toBeGreaterThan(50)
    expect(Math.max(...counts)).toBeLessThan(160)
  })
})
