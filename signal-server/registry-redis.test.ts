/**
 * The Redis host cache against a real redis-server: samples, removal only by
 * the owning session, lookups naming the session, and expiry on Redis's clock.
 */
import { randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RedisProcess, sleep, startRedis } from '../test/redis-kit.ts'
import { createRedisHostCache, type RedisClient } from './registry-redis.ts'

let redis: RedisProcess
let redisUrl = ''
beforeAll(async () => {
  redis = await startRedis()
  redisUrl = redis.url
})
afterAll(() => redis?.stop())

describe('redis host cache', () => {
  let client: RedisClient
  beforeAll(async () => {
    client = createClient({ url: redisUrl })
    await client.connect()
  })
  afterAll(async () => {
    await client.close()
  })
  const id = (n: number) => n.toString(16).padStart(40, '0')

  it('samples, removes only for the owning session, and lets entries expire', async () => {
    const prefix = `u${randomBytes(4).toString('hex')}`
    // Expiry runs on Redis's clock, so this test runs on real time: a TTL long enough that a loaded
    // machine's pauses do not decide what expires.
    const ttlMs = 1000
    const cache = createRedisHostCache(client, { prefix, ttlMs, maxPerNetwork: 50 })
    for (let i = 0; i < 60; i++) await cache.add('n', id(i), `s${i}`, 1000 + i)
    expect(await client.zCard(`${prefix}:hosts:n`)).toBe(50)
    const s = await cache.sample('n', 16, id(59), 0)
    expect(s).toHaveLength(16)
    expect(new Set(s.map((p) => p.id)).size).toBe(16)
    expect(s.some((p) => p.id === id(59))).toBe(false)
    expect(await cache.remove('n', id(20), 'wrong')).toBe(false)
    expect(await cache.lookup('n', id(20), 0)).toEqual({ id: id(20), lastSeen: 1020, session: 's20' })
    expect(await cache.remove('n', id(20), 's20')).toBe(true)
    expect(await cache.lookup('n', id(20), 0)).toBeNull()
    await cache.touch('n', id(30), 5000)
    expect(await cache.lookup('n', id(30), 0)).toEqual({ id: id(30), lastSeen: 5000, session: 's30' })
    // id(40) is kept alive, as the server's sweep does, at a tenth of the TTL; the others are left to
    // expire. Wait (generously) until they have: only the kept-alive entry is still live, and a sample
    // meets the dead ones and removes them. Were keep-alive broken, id(40) would expire with the rest.
    let keeping = true
    const keeper = (async () => {
      while (keeping) {
        await cache.keepAlive([{ network: 'n', id: id(40) }], 0)
        await sleep(ttlMs / 10)
      }
    })()
    let live: unknown[] = []
    try {
      const deadline = Date.now() + 20 * ttlMs
      for (;;) {
        live = await cache.sample('n', 64, null, 0)
        if (live.length <= 1 || Date.now() > deadline) break
        await sleep(50)
      }
    } finally {
      keeping = false
      await keeper
    }
    expect(live).toEqual([{ id: id(40), lastSeen: 1040 }])
    expect(await client.zCard(`${prefix}:hosts:n`)).toBeLessThanOrEqual(50 - 2 * 16 + 1)
  })
})
