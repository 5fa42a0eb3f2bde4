import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { arbValue } from '../../test/arbitraries.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import { MAX_BITFIELD_BYTES, MAX_MANIFEST_BYTES, MAX_PIECE_SIZE, MAX_PIECES } from './limits.ts'
import { parseSwarmMsg, type SwarmMsg } from './messages.ts'

const F = 'cd'.repeat(32)
const P = 'ab'.repeat(20)

describe('swarm messages', () => {
  it('every message survives the wire (MessagePack) and parses to a fresh object with only its fields', () => {
    const msgs: SwarmMsg[] = [
      { t: 'hello', file: F },
      { t: 'hello', file: F, bits: new Uint8Array([0xf0]) },
      { t: 'bye', file: F, reason: 'full' },
      { t: 'meta-req', file: F },
      { t: 'meta', file: F, manifest: new Uint8Array(100) },
      { t: 'have', file: F, index: 3 },
      { t: 'req', file: F, index: 0 },
      { t: 'piece', file: F, index: MAX_PIECES - 1, data: new Uint8Array(1000).fill(7) },
      { t: 'cancel', file: F, index: 7 },
      { t: 'busy', file: F, index: 7 },
      { t: 'busy', file: F, index: 7, suggest: 9 },
      { t: 'none', file: F },
      { t: 'none', file: F, index: 1 },
      { t: 'pex', file: F, peers: [P, 'cd'.repeat(20)] },
    ]
    for (const m of msgs) {
      const wire = decodeValue(encodeValue(m as never))
      expect(parseSwarmMsg(wire), m.t).toEqual(m)
      expect(parseSwarmMsg({ ...m, extra: 'x' })).toEqual(m)
    }
  })

  it('takes a piece of MAX_PIECE_SIZE bytes', () => {
    const r = parseSwarmMsg({ t: 'piece', file: F, index: 0, data: new Uint8Array(MAX_PIECE_SIZE) })
    expect(typeof r === 'object' && r.t === 'piece' && r.data.length).toBe(MAX_PIECE_SIZE)
  })

  it('refuses what breaks a ceiling or a shape, with the reason', () => {
    const cases: [unknown, string][] = [
      [null, 'shape'],
      [[1], 'shape'],
      [new Uint8Array(3), 'shape'],
      [{ file: F }, 'shape'],
      [{ t: 'nope', file: F }, 'shape'],
      [{ t: 'have', file: F.toUpperCase(), index: 1 }, 'file'],
      [{ t: 'have', file: F.slice(2), index: 1 }, 'file'],
      [{ t: 'have', file: F, index: -1 }, 'index'],
      [{ t: 'have', file: F, index: 1.5 }, 'index'],
      [{ t: 'req', file: F, index: MAX_PIECES }, 'index'],
      [{ t: 'req', file: F, index: '1' }, 'index'],
      [{ t: 'busy', file: F, index: 1, suggest: -2 }, 'index'],
      [{ t: 'piece', file: F, index: 1, data: new Uint8Array(MAX_PIECE_SIZE + 1) }, 'data'],
      [{ t: 'piece', file: F, index: 1, data: new Uint8Array(0) }, 'data'],
      [{ t: 'piece', file: F, index: 1, data: [1, 2] }, 'data'],
      [{ t: 'hello', file: F, bits: new Uint8Array(MAX_BITFIELD_BYTES + 1) }, 'bits'],
      [{ t: 'hello', file: F, bits: 'ff' }, 'bits'],
      [{ t: 'meta', file: F, manifest: new Uint8Array(MAX_MANIFEST_BYTES + 1) }, 'manifest'],
      [{ t: 'meta', file: F, manifest: new Uint8Array(0) }, 'manifest'],
      [
        { t: 'pex', file: F, peers: Array.from({ length: 33 }, (_, i) => i.toString(16).padStart(40, '0')) },
        'peers',
      ],
      [{ t: 'pex', file: F, peers: ['x'] }, 'peers'],
      [{ t: 'pex', file: F, peers: 'abc' }, 'peers'],
      [{ t: 'bye', file: F, reason: 'r'.repeat(33) }, 'reason'],
      [{ t: 'bye', file: F }, 'reason'],
      [{ t: 'none', file: F, index: null }, 'index'],
    ]
    for (const [k, [v, why]] of cases.entries()) expect(parseSwarmMsg(v), `case ${k}`).toBe(why)
  })

  it('de-duplicates pex ids', () => {
    expect(parseSwarmMsg({ t: 'pex', file: F, peers: [P, P] })).toEqual({ t: 'pex', file: F, peers: [P] })
  })

  it('never throws, whatever it is given (a getter that throws included)', () => {
    const evil = {
      t: 'have',
      get file(): string {
        throw new Error('boom')
      },
    }
    expect(parseSwarmMsg(evil)).toBe('shape')
    fc.assert(
      fc.property(arbValue, (v) => {
        const r = parseSwarmMsg(v)
        return typeof r === 'string' || typeof r === 'object'
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(
        fc.record({
          t: fc.constantFrom('hello', 'req', 'piece', 'pex', 'meta', 'busy', 'none'),
          file: fc.constant(F),
        }),
        arbValue,
        arbValue,
        (base, a, b) => {
          const r = parseSwarmMsg({ ...base, index: a, data: b, bits: a, peers: b, manifest: a })
          return typeof r === 'string' || typeof r === 'object'
        },
      ),
      { numRuns: 500 },
    )
  })
})
