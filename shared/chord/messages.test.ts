import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Value } from '../types.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import {
  type ChordMsg,
  LIMITS,
  parseChordMsg,
  parseProvider,
  parseRecord,
  type RecordWire,
} from './messages.ts'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const rec: RecordWire = {
  k: 'hello',
  vb: encodeValue({ x: 1 }),
  d: false,
  a: A,
  pk: new Uint8Array(32).fill(1),
  q: 1700000000003,
  t: 1700000000000,
  s: new Uint8Array(64).fill(2),
}
const prov = { k: 'svc', p: B, pk: new Uint8Array(32), t: 5, ttl: 1000, s: new Uint8Array(64) }

/** One well-formed message of every type. */
const samples: ChordMsg[] = [
  { t: 'ping', r: 1 },
  { t: 'pong', r: 1 },
  { t: 'find', r: 2, k: A },
  { t: 'found', r: 2, p: A, s: [B, A] },
  { t: 'closer', r: 2, n: [A, B] },
  { t: 'route', r: 9, k: A, o: B, h: 3 },
  { t: 'routed', r: 9, p: A, s: [B], h: 4 },
  { t: 'getPred', r: 3 },
  { t: 'pred', r: 3, p: null, s: [] },
  { t: 'pred', r: 3, p: A, s: [B] },
  { t: 'notify' },
  { t: 'newSucc' },
  { t: 'leave', p: A, s: [B] },
  { t: 'leave', p: null, s: [] },
  { t: 'table', r: 4 },
  { t: 'fingers', r: 4, f: [A, B] },
  { t: 'offer', r: 5, recs: [['k', A, 1, 2]], provs: [['svc', B, 7]] },
  { t: 'want', r: 5, recs: [['k', A]], provs: [['svc', B]] },
  { t: 'store', r: 0, recs: [rec], provs: [prov] },
  { t: 'stored', r: 6, ok: 1, err: null, q: null },
  { t: 'stored', r: 6, ok: 0, err: 'quota', q: null },
  { t: 'stored', r: 6, ok: 0, err: 'stale', q: 1700000000009 },
  { t: 'get', r: 7, k: 'hello', a: A },
  { t: 'got', r: 7, rec },
  { t: 'got', r: 7, rec: null },
  { t: 'getProv', r: 8, k: 'svc' },
  { t: 'provs', r: 8, provs: [prov] },
  { t: 'err', r: 8, code: 'busy' },
]

describe('parseChordMsg', () => {
  it('accepts every message of the grammar, also after a MessagePack round trip', () => {
    for (const m of samples) {
      expect(parseChordMsg(m as Value)).toEqual(m)
      const wire = decodeValue(encodeValue(m as Value))
      expect(wire).not.toBeNull()
      expect(parseChordMsg(wire as Value)).toEqual(m)
    }
  })

  it('keeps only the fields of the grammar', () => {
    const m = parseChordMsg({ t: 'get', r: 1, k: 'x', a: A, junk: new Uint8Array(1000) })
    expect(m).toEqual({ t: 'get', r: 1, k: 'x', a: A })
    const s = parseChordMsg({ t: 'store', r: 0, recs: [{ ...rec, extra: 'x'.repeat(1000) }], provs: [] })
    expect(s && s.t === 'store' && Object.keys(s.recs[0] as object).sort()).toEqual(
      ['a', 'd', 'k', 'pk', 'q', 's', 't', 'vb'].sort(),
    )
  })

  it('refuses malformed messages with null', () => {
    const bad: unknown[] = [
      null,
      42,
      'ping',
      [],
      new Uint8Array(3),
      {},
      { t: 'nope', r: 1 },
      { t: 'ping' },
      { t: 'ping', r: -1 },
      { t: 'ping', r: 1.5 },
      { t: 'ping', r: 2 ** 60 },
      { t: 'find', r: 1, k: 'A'.repeat(40) }, // uppercase
      { t: 'find', r: 1, k: 'a'.repeat(39) },
      { t: 'found', r: 1, p: A, s: [] }, // an answer names at least one node
      { t: 'found', r: 1, p: A, s: [A, 'x'] },
      { t: 'closer', r: 1, n: Array.from({ length: LIMITS.ids + 1 }, () => A) },
      { t: 'route', r: 1, k: A, o: B, h: 256 },
      { t: 'pred', r: 1, p: 'x', s: [] },
      { t: 'leave', p: 'x', s: [] },
      { t: 'leave', p: null },
      { t: 'offer', r: 1, recs: [['k', A, -1, 0]], provs: [] },
      { t: 'offer', r: 1, recs: [['k', A, 1]], provs: [] },
      { t: 'offer', r: 1, recs: [['k', 1, 0, A]], provs: [] }, // the old (key, wall, counter, author) digest
      { t: 'offer', r: 1, recs: Array.from({ length: LIMITS.offer + 1 }, () => ['k', A, 1, 0]), provs: [] },
      { t: 'want', r: 1, recs: [1], provs: [] },
      { t: 'want', r: 1, recs: ['k'], provs: [] }, // a want names the author too
      { t: 'store', r: 0, recs: [{ ...rec, pk: new Uint8Array(31) }], provs: [] },
      { t: 'store', r: 0, recs: [{ ...rec, s: new Uint8Array(63) }], provs: [] },
      { t: 'store', r: 0, recs: [{ ...rec, q: -1 }], provs: [] },
      { t: 'store', r: 0, recs: [{ ...rec, q: 2 ** 53 }], provs: [] },
      { t: 'store', r: 0, recs: [{ ...rec, t: 1.5 }], provs: [] },
      {
        t: 'store',
        r: 0,
        recs: [{ k: 'k', vb: rec.vb, d: false, a: A, pk: rec.pk, h: [1, 0], s: rec.s }],
        provs: [],
      },
      { t: 'store', r: 0, recs: [{ ...rec, d: true }], provs: [] }, // a tombstone carries no value
      { t: 'store', r: 0, recs: [{ ...rec, a: 'zz' }], provs: [] },
      { t: 'store', r: 0, recs: [], provs: [{ ...prov, ttl: 1.5 }] },
      { t: 'store', r: 0, recs: [rec] },
      { t: 'stored', r: 1, ok: 1, err: 'x'.repeat(LIMITS.code + 1), q: null },
      { t: 'stored', r: 1, ok: 1, err: null }, // q is required (null when nothing was stale)
      { t: 'stored', r: 1, ok: 0, err: 'stale', q: -5 },
      { t: 'get', r: 1, k: 'x'.repeat(LIMITS.keyChars + 1), a: A },
      { t: 'get', r: 1, k: 'x' }, // whose record?
      { t: 'get', r: 1, k: 'x', a: 'zz' },
      { t: 'got', r: 1, rec: {} },
      { t: 'err', r: 1, code: 5 },
      Object.assign(Object.create({ t: 'ping' }), { r: 1 }), // fields from a prototype do not count
    ]
    for (const b of bad) expect(parseChordMsg(b as Value)).toBeNull()
    expect(parseRecord({ ...rec, vb: 'x' })).toBeNull()
    expect(parseProvider({ ...prov, p: A.slice(1) })).toBeNull()
  })

  it('never throws, whatever arrives', () => {
    const field = fc.oneof(
      fc.constantFrom(...samples.map((m) => m.t)),
      fc.constantFrom(A, B, 'x'),
      fc.integer(),
      fc.double(),
      fc.constant(null),
      fc.uint8Array({ maxLength: 70 }),
    )
    const msgLike = fc.record(
      {
        t: fc.constantFrom(...samples.map((m) => m.t), 'x'),
        r: fc.oneof(fc.nat(), fc.integer(), fc.double()),
        k: field,
        p: field,
        s: fc.array(field, { maxLength: 4 }),
        n: fc.array(field, { maxLength: 4 }),
        recs: fc.array(fc.oneof(field, fc.constant(rec), fc.array(field, { maxLength: 5 })), {
          maxLength: 3,
        }),
        provs: fc.array(fc.oneof(field, fc.constant(prov), fc.array(field, { maxLength: 4 })), {
          maxLength: 3,
        }),
        rec: fc.oneof(field, fc.constant(rec)),
        h: field,
        a: field,
        q: field,
        o: field,
        ok: field,
        err: field,
        code: field,
        f: fc.array(field, { maxLength: 4 }),
      },
      { requiredKeys: ['t'] },
    )
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), msgLike as fc.Arbitrary<unknown>), (v) => {
        const m = parseChordMsg(v as Value)
        // Whatever is accepted re-parses to itself and can be encoded for the wire.
        if (m !== null) {
          expect(parseChordMsg(m as Value)).toEqual(m)
          encodeValue(m as Value)
        }
      }),
      { numRuns: 3000 },
    )
    // Mutations of every sample: drop a field, retype a field.
    for (const m of samples) {
      for (const key of Object.keys(m)) {
        const dropped: Record<string, unknown> = { ...m }
        delete dropped[key]
        expect(() => parseChordMsg(dropped as Value)).not.toThrow()
        for (const junk of [null, 'x', -1, [], {}, new Uint8Array(2)])
          expect(() => parseChordMsg({ ...m, [key]: junk } as Value)).not.toThrow()
      }
    }
  })
})
