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

describe('SeenCache (the replay window)', () => {
  const O = 'origin'

  it("is bounded by count: the oldest-dated ids go first, and their origin's floor rises", () => {
    const s = new SeenCache(3, 1_000, 100)
    // Added out of time order: eviction follows the signed time, not arrival.
    for (const [id, t] of [
      ['c', 30],
      ['a', 10],
      ['e', 50],
      ['b', 20],
      ['d', 40],
    ] as const)
      s.add(O, id, t)
    expect(s.size).toBe(3)
    expect(['a', 'b', 'c', 'd', 'e'].map((id) => s.has(id))).toEqual([false, false, true, true, true])
    expect(s.floorOf(O)).toBe(20)
    // Anything ordered at or below the floor (time, then id) could be an id let go: refused, even inside the window.
    expect(s.admit(O, 'b', 20, 100)).toBe('forgotten')
    expect(s.admit(O, 'a', 10, 100)).toBe('forgotten')
    expect(s.admit(O, 'z', 19, 100)).toBe('forgotten')
    expect(s.admit(O, 'a', 21, 100)).toBe('ok')
    // Other origins are not held back by this one's floor.
    expect(s.admit('other', 'z', 19, 100)).toBe('ok')
  })

  it('breaks ties by id: messages signed in one millisecond are not refused together', () => {
    const s = new SeenCache(2, 1_000, 100)
    for (const id of ['m', 'c', 'x']) s.add(O, id, 7)
    expect(s.has('c')).toBe(false)
    expect(s.admit(O, 'c', 7, 10)).toBe('forgotten')
    expect(s.admit(O, 'b', 7, 10)).toBe('forgotten')
    expect(s.admit(O, 'd', 7, 10)).toBe('ok')
  })

  it('admits only times within [now - maxAgeMs, now + maxSkewMs]', () => {
    const s = new SeenCache(100, 1_000, 100)
    expect(s.admit(O, 'a', 5_000, 6_000)).toBe('ok')
    expect(s.admit(O, 'a', 4_999, 6_000)).toBe('tooOld')
    expect(s.admit(O, 'a', 6_100, 6_000)).toBe('ok')
    expect(s.admit(O, 'a', 6_101, 6_000)).toBe('future')
    expect(s.floorOf(O)).toBe(Number.NEGATIVE_INFINITY)
  })

  it('lets an id go only once its time leaves the window; a second add does not refresh it', () => {
    const s = new SeenCache(100, 1_000, 100)
    s.add(O, 'a', 5_000)
    s.add(O, 'b', 5_500)
    s.add(O, 'a', 5_900)
    expect(s.expire(6_000)).toBe(0)
    expect(s.expire(6_001)).toBe(1)
    expect(s.has('a')).toBe(false)
    expect(s.has('b')).toBe(true)
    expect(s.floorOf('anyone')).toBe(5_000)
    s.expire(6_501)
    expect(s.size).toBe(0)
  })

  it('a clock that steps back lets nothing go early, and nothing let go in again', () => {
    const s = new SeenCache(100, 1_000, 100)
    s.add(O, 'a', 10_000)
    expect(s.expire(2_000)).toBe(0)
    expect(s.has('a')).toBe(true)
    s.expire(20_000)
    expect(s.has('a')).toBe(false)
    // The clock jumps back to when 'a' was fresh: its time is still refused.
    expect(s.admit(O, 'a', 10_000, 10_500)).toBe('forgotten')
  })

  it('a flood dated ahead, from one origin, shuts out only that origin', () => {
    const s = new SeenCache(10, 10_000, 1_000)
    for (let i = 0; i < 50; i++) s.add('flood', `f${i}`, 1_000 + i) // 1 s ahead of now = 0
    expect(s.floorOf('flood')).toBe(1_039)
    // Current messages of honest origins: each admitted, each let go at once (the oldest), each floor its own.
    for (let t = 1; t <= 5; t++) {
      for (const o of ['h1', 'h2']) {
        expect(s.admit(o, `${o}/${t}`, t, t)).toBe('ok')
        s.add(o, `${o}/${t}`, t)
        expect(s.has(`${o}/${t}`)).toBe(false)
        expect(s.admit(o, `${o}/${t}`, t, t)).toBe('forgotten') // and never again
      }
    }
    expect(s.floorOf('h1')).toBe(5)
    expect(s.admit('flood', 'f99', 1_030, 100)).toBe('forgotten')
  })

  it('keeps at most maxFloors origin floors; the least recently raised folds into the global floor', () => {
    const s = new SeenCache(1, 10_000, 1_000, 3)
    for (let i = 0; i < 6; i++) s.add(`o${i}`, `m${i}`, i) // each add lets the previous go
    expect(s.floorCount).toBe(3)
    // o0 and o1 were folded: everyone is now held below time 1; o2..o4 keep their own floors.
    expect(s.floorOf('new')).toBe(1)
    expect(s.admit('o1', 'm1', 1, 0)).toBe('forgotten')
    expect(s.admit('o4', 'm4', 4, 0)).toBe('forgotten')
    expect(s.admit('o3', 'x', 4, 0)).toBe('ok')
  })

  it('never admits an id it let go, under any sequence of adds and expiries (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('add' as const), id: fc.integer({ min: 0, max: 40 }) }),
            fc.record({ op: fc.constant('tick' as const), step: fc.integer({ min: -300, max: 400 }) }),
          ),
          { maxLength: 200 },
        ),
        fc.integer({ min: 1, max: 4 }),
        (ops, maxFloors) => {
          const s = new SeenCache(8, 500, 100, maxFloors)
          const accepted = new Set<number>()
          let now = 1_000
          for (const o of ops) {
            if (o.op === 'tick') {
              now += o.step // the clock may step back
              s.expire(now)
              continue
            }
            // Each id has one signed time and one origin, as a real signature does (with ties).
            const key = String(o.id)
            const time = 1_000 + (o.id % 13) * 37
            const origin = `o${o.id % 5}`
            if (s.has(key)) continue
            if (s.admit(origin, key, time, now) !== 'ok') continue
            expect(accepted.has(o.id)).toBe(false)
            accepted.add(o.id)
            s.add(origin, key, time)
            expect(s.size).toBeLessThanOrEqual(8)
            expect(s.floorCount).toBeLessThanOrEqual(maxFloors)
          }
        },
      ),
    )
  })
})

function entry(id: string, bytes: number, at: number): CachedBroadcast {
  return {
    id,
    origin: 'ab'.repeat(20),
    from: undefined,
    payload: new Uint8Array(bytes),
    sig: new Uint8Array(64),
    hops: 1,
    requested: false,
    routed: false,
    viaRoute: false,
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
      time: 1_700_000_000_000,
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
    const ok = { v: 2, o: ID('c'), k: keys.publicKey, t: 't', d: 1, n: new Uint8Array(8), w: 5 }
    expect(parseBody(encodeValue(ok), 256)).not.toBeNull()
    const { w: _w, ...noTime } = ok
    const bad: Value[] = [
      { ...ok, v: 1 },
      { ...noTime, v: 1 }, // a version-1 body: no signed time, replayable
      noTime,
      { ...ok, w: 1.5 },
      { ...ok, w: '5' },
      { ...ok, w: 2 ** 53 },
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
