import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { mulberry32 } from '../shared/sim/prng.ts'
import { TokenBucket } from '../shared/token-bucket.ts'
import { createMemoryHostCache, mergeSample } from './registry.ts'
import { createServerBook } from './server-book.ts'

const id = (n: number) => n.toString(16).padStart(40, '0')

describe('memory host cache', () => {
  it('samples live entries of the network, never the caller, at most n, no duplicates', () => {
    const cache = createMemoryHostCache({ random: mulberry32(1) })
    for (let i = 0; i < 50; i++) cache.add('a', id(i), `s${i}`, 1000 + i)
    for (let i = 100; i < 110; i++) cache.add('b', id(i), `s${i}`, 1000)
    for (let round = 0; round < 50; round++) {
      const s = cache.sample('a', 16, id(7), 2000)
      expect(s).toHaveLength(16)
      expect(new Set(s.map((p) => p.id)).size).toBe(16)
      for (const p of s) {
        expect(p.id).not.toBe(id(7))
        expect(Number.parseInt(p.id, 16)).toBeLessThan(50)
      }
    }
    expect(cache.sample('a', 100, id(0), 2000)).toHaveLength(49)
    expect(cache.sample('nowhere', 5, null, 2000)).toEqual([])
    expect(cache.sample('b', 0, null, 2000)).toEqual([])
  })

  it('prefers recently active entries', () => {
    const cache = createMemoryHostCache({ random: mulberry32(2) })
    for (let i = 0; i < 1000; i++) cache.add('a', id(i), 's', 0)
    // Ten of them were active lately.
    for (let i = 0; i < 10; i++) cache.touch('a', id(i * 97), 5000)
    const recent = new Set(Array.from({ length: 10 }, (_, i) => id(i * 97)))
    let hits = 0
    const rounds = 200
    for (let r = 0; r < rounds; r++)
      for (const p of cache.sample('a', 8, null, 6000)) if (recent.has(p.id)) hits++
    // Uniform sampling would pick a recent one 1% of the time; here half the sample is drawn from the
    // 16 most recent (10 of which are the active ones), so about 30%.
    expect(hits / (rounds * 8)).toBeGreaterThan(0.25)
    const s = cache.sample('a', 8, null, 6000)
    expect(s.filter((p) => recent.has(p.id)).every((p) => p.lastSeen === 5000)).toBe(true)
    // ... but it is still a random sample that reaches the rest.
    const seen = new Set<string>()
    for (let r = 0; r < rounds; r++) for (const p of cache.sample('a', 8, null, 6000)) seen.add(p.id)
    expect(seen.size).toBeGreaterThan(300)
  })

  it('expires entries that were neither touched nor kept alive', () => {
    const cache = createMemoryHostCache({ ttlMs: 1000 })
    cache.add('a', id(1), 's1', 0)
    cache.add('a', id(2), 's2', 0)
    cache.add('a', id(3), 's3', 0)
    cache.touch('a', id(2), 800)
    cache.keepAlive([{ network: 'a', id: id(3) }], 900)
    expect(cache.lookup('a', id(1), 999)).toEqual({ id: id(1), lastSeen: 0, session: 's1' })
    expect(cache.lookup('a', id(1), 1000)).toBeNull()
    expect(
      cache
        .sample('a', 10, null, 1500)
        .map((p) => p.id)
        .sort(),
    ).toEqual([id(2), id(3)])
    // keepAlive did not make id(3) look active.
    expect(cache.lookup('a', id(3), 1500)?.lastSeen).toBe(0)
    expect(cache.prune(1500)).toBe(1)
    expect(cache.size()).toBe(2)
    expect(cache.prune(2000)).toBe(2)
    expect(cache.size()).toBe(0)
    expect(cache.counts().size).toBe(0)
  })

  it('removes only for the owning session (a replaced socket cannot remove its successor)', () => {
    const cache = createMemoryHostCache()
    cache.add('a', id(1), 'old', 0)
    cache.add('a', id(1), 'new', 10)
    expect(cache.remove('a', id(1), 'old')).toBe(false)
    expect(cache.lookup('a', id(1), 20)).not.toBeNull()
    expect(cache.remove('a', id(1), 'new')).toBe(true)
    expect(cache.lookup('a', id(1), 20)).toBeNull()
    expect(cache.size()).toBe(0)
  })

  it('is bounded per network and in total', () => {
    const cache = createMemoryHostCache({ maxPerNetwork: 10, maxEntries: 15 })
    for (let i = 0; i < 30; i++) cache.add('a', id(i), 's', i)
    expect(cache.counts().get('a')).toBe(10)
    // The least recently active went first.
    expect(cache.lookup('a', id(19), 100)).toBeNull()
    expect(cache.lookup('a', id(20), 100)).not.toBeNull()
    for (let i = 0; i < 5; i++) expect(cache.add('b', id(100 + i), 's', 50)).toBe(true)
    expect(cache.add('b', id(200), 's', 50)).toBe(false)
    expect(cache.size()).toBe(15)
  })

  it('keeps its structures consistent under random operations (property)', () => {
    const op = fc.oneof(
      fc.record({
        k: fc.constant('add' as const),
        n: fc.integer({ min: 0, max: 30 }),
        net: fc.integer({ min: 0, max: 2 }),
      }),
      fc.record({
        k: fc.constant('remove' as const),
        n: fc.integer({ min: 0, max: 30 }),
        net: fc.integer({ min: 0, max: 2 }),
      }),
      fc.record({
        k: fc.constant('touch' as const),
        n: fc.integer({ min: 0, max: 30 }),
        net: fc.integer({ min: 0, max: 2 }),
      }),
      fc.record({
        k: fc.constant('tick' as const),
        n: fc.integer({ min: 0, max: 400 }),
        net: fc.constant(0),
      }),
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), fc.integer(), (ops, seed) => {
        const cache = createMemoryHostCache({
          ttlMs: 1000,
          maxPerNetwork: 20,
          maxEntries: 50,
          random: mulberry32(seed),
        })
        const model = new Map<string, number>() // "net/id" → expires
        let now = 0
        for (const o of ops) {
          const net = `n${o.net}`
          const key = `${net}/${id(o.n)}`
          if (o.k === 'tick') now += o.n
          else if (o.k === 'add') {
            if (cache.add(net, id(o.n), 's', now)) model.set(key, now + 1000)
          } else if (o.k === 'remove') {
            cache.remove(net, id(o.n), 's')
            model.delete(key)
          } else {
            cache.touch(net, id(o.n), now)
            if (model.has(key)) model.set(key, now + 1000)
          }
          const s = cache.sample(net, 5, id(0), now)
          expect(new Set(s.map((p) => p.id)).size).toBe(s.length)
          expect(s.length).toBeLessThanOrEqual(5)
          for (const p of s) {
            expect(p.id).not.toBe(id(0))
            expect(cache.lookup(net, p.id, now)).not.toBeNull()
          }
          expect(cache.size()).toBeLessThanOrEqual(50)
          for (const n of cache.counts().values()) expect(n).toBeLessThanOrEqual(20)
        }
        // Everything the cache still considers live, the model added and did not remove.
        for (let n = 0; n <= 30; n++)
          for (let k = 0; k <= 2; k++) {
            if (cache.lookup(`n${k}`, id(n), now)) expect(model.has(`n${k}/${id(n)}`)).toBe(true)
          }
      }),
      { numRuns: 200 },
    )
  })
})

describe('mergeSample', () => {
  it('takes half from the recent pool and fills from the uniform pool, without duplicates', () => {
    const p = (n: number) => ({ id: id(n), lastSeen: n })
    const recent = [p(1), p(2), p(3), p(4)]
    const uniform = [p(3), p(10), p(11), p(12), p(13)]
    const s = mergeSample(recent, uniform, 4, id(1), mulberry32(3))
    expect(s).toHaveLength(4)
    expect(s.filter((x) => x.lastSeen < 10)).toHaveLength(2)
    expect(s.some((x) => x.id === id(1))).toBe(false)
    // A short uniform pool is made up from the recent one.
    expect(mergeSample(recent, [], 3, null, Math.random)).toHaveLength(3)
  })
})

describe('token bucket', () => {
  it('allows a burst, then the rate', () => {
    const b = new TokenBucket(100, 10, 0)
    for (let i = 0; i < 10; i++) expect(b.take(1, 0)).toBe(true)
    expect(b.take(1, 0)).toBe(false)
    expect(b.take(1, 5)).toBe(false)
    expect(b.take(1, 10)).toBe(true)
    expect(b.take(5, 60)).toBe(true)
    expect(b.available(10_000)).toBe(10)
    expect(b.take(11, 10_000)).toBe(false)
  })
})

describe('server book', () => {
  it("lists configured servers, then the other instances' announced ones, bounded, deduplicated, never itself", () => {
    let announced = ['https://c.example/', 'https://a.example', 'https://me.example', 'javascript:alert(1)']
    const book = createServerBook({
      configured: ['https://a.example/', 'https://a.example', 'https://b.example', 'ftp://x.example'],
      self: ['https://me.example'],
      cluster: () => announced,
    })
    expect(book.list()).toEqual(['https://a.example', 'https://b.example', 'https://c.example'])
    expect(book.list(2)).toEqual(['https://a.example', 'https://b.example'])
    // The server the client is connected to is left out, whichever way the client reached it.
    expect(book.list(16, 'b.example')).toEqual(['https://a.example', 'https://c.example'])
    // Announcements come and go; the book reads them every time.
    announced = []
    expect(book.list()).toEqual(['https://a.example', 'https://b.example'])
    expect(book.list(16).length).toBeLessThanOrEqual(16)
  })
})
