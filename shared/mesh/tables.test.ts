import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import type { Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import { bodyValue, MAX_IDS_PER_MSG, msgIdOf, parseBody, parseMeshMsg } from './messages.ts'
import { MissingTable } from './missing.ts'
import { type CachedBroadcast, PayloadCache } from './payload-cache.ts'
import { SeenCache } from './seen-cache.ts'

const ID = (c: string) => c.repeat(40)

describe('SeenCache', () => {
  it('is bounded by count: the oldest ids go first', () => {
    const s = new SeenCache(3, 1_000)
    for (const [i, id] of ['a', 'b', 'c', 'd', 'e'].entries()) s.add(id, i)
    expect(s.size).toBe(3)
    expect(['a', 'b', 'c', 'd', 'e'].map((id) => s.has(id))).toEqual([false, false, true, true, true])
  })

  it('is bounded by age, measured from local first receipt', () => {
    const s = new SeenCache(100, 1_000)
    s.add('a', 5_000)
    s.add('b', 5_500)
    s.add('a', 5_900) // a second receipt does not refresh the age
    expect(s.expire(6_000)).toBe(0)
    expect(s.expire(6_001)).toBe(1)
    expect(s.has('a')).toBe(false)
    expect(s.has('b')).toBe(true)
    s.expire(6_501)
    expect(s.size).toBe(0)
  })

  it('a clock that steps back does not drop entries early', () => {
    const s = new SeenCache(100, 1_000)
    s.add('a', 10_000)
    expect(s.expire(2_000)).toBe(0)
    expect(s.has('a')).toBe(true)
  })
})

function entry(id: string, bytes: number, at: number): CachedBroadcast {
  return {
    id,
    from: undefined,
    payload: new Uint8Array(bytes),
    sig: new Uint8Array(64),
    hops: 1,
    at,
    haves: new Set(),
    grafted: new Map(),
    round: 0,
    nextAnnounceAt: at,
  }
}

describe('PayloadCache', () => {
  it('is bounded in entries, bytes and age', () => {
    const c = new PayloadCache(3, 1_000, 500)
    for (let i = 0; i < 5; i++) c.add(entry(`e${i}`, 10, i))
    expect(c.size).toBe(3)
    expect(c.get('e1')).toBeUndefined()
    expect(c.get('e4')).toBeDefined()

    const b = new PayloadCache(100, 1_000, 500)
    for (let i = 0; i < 5; i++) b.add(entry(`e${i}`, 300 - 64, i)) // 300 bytes each with the signature
    expect(b.size).toBe(3)
    expect(b.bytes).toBe(900)
    b.add(entry('huge', 2_000, 5)) // larger than the whole budget: not kept, nothing evicted
    expect(b.size).toBe(3)

    b.expire(504)
    expect(b.size).toBe(1)
    expect(b.bytes).toBe(300)
  })
})

describe('MissingTable', () => {
  it('bounds entries, entries per announcing peer, and announcers per entry', () => {
    const m = new MissingTable(10, 4, 2)
    for (let i = 0; i < 6; i++) m.announce(`x${i}`, 'liar', 100)
    expect(m.size).toBe(4)
    expect(m.announce('x9', 'liar', 100)).toBe('quota')
    // Another peer may still announce the liar's ids (as a second announcer) and its own.
    expect(m.announce('x0', 'honest', 100)).toBe('added')
    expect(m.announce('x0', 'third', 100)).toBe('known')
    for (let i = 0; i < 6; i++) m.announce(`h${i}`, 'honest', 100)
    expect(m.size).toBe(8)
    expect(m.announce('y', 'other', 100)).toBe('created')
    expect(m.announce('y2', 'other', 100)).toBe('created')
    expect(m.announce('y3', 'other', 100)).toBe('full')
    // Deleting frees the creator's quota.
    m.delete('x0')
    m.delete('x1')
    expect(m.announce('x9', 'liar', 100)).toBe('created')
  })

  it('reports due entries and forgets a departed announcer', () => {
    const m = new MissingTable(10, 10, 4)
    m.announce('a', 'p', 100)
    m.announce('a', 'q', 100)
    m.announce('b', 'p', 300)
    expect(m.due(200).map((e) => e.id)).toEqual(['a'])
    m.removePeer('p')
    expect(m.get('a')?.announcers).toEqual(['q'])
    expect(m.get('b')?.announcers).toEqual([])
  })
})

describe('parseMeshMsg', () => {
  const sig = new Uint8Array(64)

  it('accepts the four messages and copies only known fields', () => {
    expect(parseMeshMsg({ type: 'gossip', payload: new Uint8Array([1]), sig, hops: 3, extra: 1 })).toEqual({
      type: 'gossip',
      payload: new Uint8Array([1]),
      sig,
      hops: 3,
    })
    expect(parseMeshMsg({ type: 'ihave', ids: [ID('a')] })).toEqual({ type: 'ihave', ids: [ID('a')] })
    expect(parseMeshMsg({ type: 'graft', ids: [ID('b')] })).toEqual({ type: 'graft', ids: [ID('b')] })
    expect(parseMeshMsg({ type: 'prune' })).toEqual({ type: 'prune' })
  })

  it('rejects malformed shapes', () => {
    const bad: Value[] = [
      null,
      1,
      'gossip',
      new Uint8Array(3),
      [{ type: 'prune' }],
      {},
      { type: 'nope' },
      { type: 'gossip', payload: new Uint8Array(0), sig, hops: 1 },
      { type: 'gossip', payload: new Uint8Array(1), sig: new Uint8Array(63), hops: 1 },
      { type: 'gossip', payload: new Uint8Array(1), sig, hops: 1.5 },
      { type: 'gossip', payload: new Uint8Array(1), sig, hops: -1 },
      { type: 'gossip', payload: new Uint8Array(1), sig, hops: 1e9 },
      { type: 'gossip', payload: 'x', sig, hops: 1 },
      { type: 'ihave', ids: [] },
      { type: 'ihave', ids: [ID('A')] },
      { type: 'ihave', ids: ['abc'] },
      { type: 'ihave', ids: ID('a') },
      { type: 'ihave', ids: Array.from({ length: MAX_IDS_PER_MSG + 1 }, () => ID('a')) },
      { type: 'graft', ids: [1] },
    ]
    for (const v of bad) expect(parseMeshMsg(v)).toBeNull()
  })

  it('never throws, whatever arrives', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          fc.record({
            type: fc.constantFrom('gossip', 'ihave', 'graft', 'prune', 'x'),
            payload: fc.oneof(fc.uint8Array(), fc.anything()),
            sig: fc.oneof(fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.anything()),
            hops: fc.oneof(fc.integer(), fc.double(), fc.anything()),
            ids: fc.oneof(
              fc.array(
                fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 40, maxLength: 40 }),
              ),
              fc.anything(),
            ),
          }),
        ),
        (v) => {
          const r = parseMeshMsg(v as Value)
          expect(r === null || typeof r.type === 'string').toBe(true)
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('signed body', () => {
  it('round-trips, and the id is the first 160 bits of the signature', async () => {
    const origin = ID('c')
    const keys = createFakeKeyring(origin)
    const body = {
      origin,
      key: keys.publicKey,
      topic: 'chat',
      data: { a: [1, new Uint8Array([9])] },
      nonce: new Uint8Array(8),
    }
    const payload = encodeValue(bodyValue(body))
    expect(parseBody(payload, 256)).toEqual(body)
    const sig = await keys.sign(payload)
    expect(msgIdOf(sig)).toHaveLength(40)
    expect(msgIdOf(sig)).toBe(
      Array.from(sig.subarray(0, 20), (b) => b.toString(16).padStart(2, '0')).join(''),
    )
  })

  it('rejects bodies of the wrong shape', () => {
    const keys = createFakeKeyring(ID('c'))
    const ok = { v: 1, o: ID('c'), k: keys.publicKey, t: 't', d: 1, n: new Uint8Array(8) }
    const bad: Value[] = [
      { ...ok, v: 2 },
      { ...ok, o: 'c' },
      { ...ok, k: new Uint8Array(31) },
      { ...ok, k: new Uint8Array(32) }, // a small-order point
      { ...ok, t: 5 },
      { ...ok, t: 'x'.repeat(300) },
      { ...ok, n: new Uint8Array(7) },
      [ok],
    ]
    for (const v of bad) expect(parseBody(encodeValue(v), 256)).toBeNull()
    const { d: _d, ...noData } = ok
    expect(parseBody(encodeValue(noData), 256)).toBeNull()
    expect(parseBody(new Uint8Array([0xc1]), 256)).toBeNull()
    expect(parseBody(new Uint8Array([0x92, 0x01]), 256)).toBeNull()
  })
})
