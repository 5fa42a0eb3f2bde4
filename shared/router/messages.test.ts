import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { arbValue, exactlyEqual } from '../../test/arbitraries.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import { type InnerMsg, parseInnerMsg, parseRouteMsg, type RouteMsg, routeMsgValue } from './messages.ts'

const id = 'ab'.repeat(20)
const bytes = (n: number) => new Uint8Array(n).fill(7)
const envelope: RouteMsg = {
  t: 'fwd',
  src: id,
  dst: 'cd'.repeat(20),
  ttl: 32,
  nonce: bytes(8),
  signedAt: 1_700_000_000_000,
  publicKey: bytes(32),
  sig: bytes(64),
  body: bytes(3),
}

describe('route messages', () => {
  it('every message survives its wire form and the codec unchanged', () => {
    const all: RouteMsg[] = [
      envelope,
      { t: 'msg', topic: 'news', data: { a: [1, 'x', null] } },
      { t: 'req', id: 2 ** 40 + 5, method: 'add', data: null },
      { t: 'res', id: 0, data: bytes(4) },
      { t: 'err', id: 9, code: 'no-handler', message: 'none' },
      { t: 'sig', data: { t: 'dial', mesh: true } },
      { t: 'noroute', dst: id, nonce: bytes(8) },
    ]
    for (const m of all) expect(parseRouteMsg(decodeValue(encodeValue(routeMsgValue(m))) ?? null)).toEqual(m)
  })

  it('keeps the wire keys n, w and pk for the envelope', () => {
    expect(Object.keys(routeMsgValue(envelope) as object).sort()).toEqual(
      ['body', 'dst', 'n', 'pk', 'sig', 'src', 't', 'ttl', 'w'].sort(),
    )
  })

  it('refuses what breaks a rule', () => {
    const wire = routeMsgValue(envelope) as Record<string, unknown>
    const bad: unknown[] = [
      null,
      [],
      'fwd',
      { t: 'what' },
      { ...wire, ttl: 33 },
      { ...wire, ttl: -1 },
      { ...wire, n: bytes(7) },
      { ...wire, w: 1.5 },
      { ...wire, pk: bytes(31) },
      { ...wire, sig: bytes(63) },
      { ...wire, src: 'AB'.repeat(20) },
      { ...wire, body: 'x' },
      { t: 'msg', topic: 'x' }, // no data
      { t: 'msg', topic: '', data: 1 },
      { t: 'msg', topic: 'x'.repeat(257), data: 1 },
      { t: 'req', id: -1, method: 'm', data: 1 },
      { t: 'req', id: 1.5, method: 'm', data: 1 },
      { t: 'req', id: 2 ** 53, method: 'm', data: 1 },
      { t: 'res', id: 1 },
      { t: 'err', id: 1, code: 'other', message: '' },
      { t: 'err', id: 1, code: 'remote', message: 'x'.repeat(4097) },
      { t: 'noroute', dst: 'x', n: bytes(8) },
      { t: 'noroute', dst: id }, // names no envelope: anyone could send it
      { t: 'noroute', dst: id, n: bytes(9) },
      { t: 'sig' },
    ]
    for (const v of bad) expect(parseRouteMsg(v as never), JSON.stringify(v)).toBeNull()
    expect(parseInnerMsg(wire as never)).toBeNull()
  })

  it('any data survives a msg, a req and a res', () => {
    fc.assert(
      fc.property(arbValue, (data) => {
        const all: InnerMsg[] = [
          { t: 'msg', topic: 't', data },
          { t: 'req', id: 1, method: 'm', data },
          { t: 'res', id: 1, data },
        ]
        for (const m of all) {
          const back = parseInnerMsg(decodeValue(encodeValue(routeMsgValue(m))) ?? null)
          expect(back?.t).toBe(m.t)
          expect(back && 'data' in back && exactlyEqual(back.data, data)).toBe(true)
        }
      }),
      { numRuns: 200 },
    )
  })
})
