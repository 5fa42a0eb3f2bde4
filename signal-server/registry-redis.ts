/**
 * The host cache in Redis, so that several signal server instances share one
 * view of who is registered and a bootstrap sample spans all of them.
 *
 * Keys (prefix `weft` by default):
 *   <prefix>:hosts:<network>        sorted set: node id → lastSeen (ms); trimmed to the
 *                                   maxPerNetwork most recent; expires when unused
 *   <prefix>:owner:<network>:<id>   string "<session> <lastSeen>", expires ttlMs after the
 *                                   last keep-alive: the entry is live while this exists
 *
 * A sample takes the most recent members and a few random ones
 * (ZRANDMEMBER), keeps those whose owner key still exists (members of a
 * crashed instance fade out when their owner keys expire, and are removed
 * lazily when a sample meets them), then mixes them as the in-memory cache
 * does (mergeSample). Removal is compare-and-delete on the session, so the
 * old socket of a replaced registration cannot remove the new one.
 */
import type { createClient } from 'redis'
import type { PeerInfo } from '../shared/signal-events.ts'
import { type HostCache, type HostEntry, mergeSample } from './registry.ts'

export type RedisClient = ReturnType<typeof createClient>

export interface RedisHostCacheOptions {
  /** Key prefix. @default 'weft' */
  prefix?: string
  /** Owner keys expire this long after the last keep-alive. @default 120_000 */
  ttlMs?: number
  /** Sorted-set members kept per network. @default 100_000 */
  maxPerNetwork?: number
  /** Uniform in [0, 1). @default Math.random */
  random?: () => number
  /** Whether an entry's session may still be alive (its instance is); others are left out of samples. @default all */
  live?: (session: string) => boolean
}

const REMOVE = `
local v = redis.call('GET', KEYS[1])
if not v then redis.call('ZREM', KEYS[2], ARGV[2]) return 0 end
if string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0`

const TOUCH = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local session = string.match(v, '^(%S+) ')
if not session then return 0 end
redis.call('SET', KEYS[1], session .. ' ' .. ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1`

export function createRedisHostCache(client: RedisClient, options: RedisHostCacheOptions = {}): HostCache {
  const prefix = options.prefix ?? 'weft'
  const ttlMs = options.ttlMs ?? 120_000
  const maxPerNetwork = options.maxPerNetwork ?? 100_000
  const random = options.random ?? Math.random
  const live = options.live ?? (() => true)
  const hostsKey = (network: string) => `${prefix}:hosts:${network}`
  const ownerKey = (network: string, id: string) => `${prefix}:owner:${network}:${id}`

  return {
    async add(network, id, session, now) {
      await client
        .multi()
        .set(ownerKey(network, id), `${session} ${now}`, { expiration: { type: 'PX', value: ttlMs } })
        .zAdd(hostsKey(network), { score: now, value: id })
        .zRemRangeByRank(hostsKey(network), 0, -(maxPerNetwork + 1))
        .pExpire(hostsKey(network), ttlMs)
        .exec()
      return true
    },

    async remove(network, id, session) {
      const r = await client.eval(REMOVE, {
        keys: [ownerKey(network, id), hostsKey(network)],
        arguments: [session, id],
      })
      return r === 1
    },

    async touch(network, id, now) {
      await client.eval(TOUCH, {
        keys: [ownerKey(network, id), hostsKey(network)],
        arguments: [String(now), String(ttlMs), id],
      })
    },

    async keepAlive(entries) {
      if (entries.length === 0) return
      const networks = new Set<string>()
      // Batches keep one pipeline from holding tens of thousands of replies at once.
      for (let i = 0; i < entries.length; i += 1000) {
        const m = client.multi()
        for (const { network, id } of entries.slice(i, i + 1000)) {
          m.pExpire(ownerKey(network, id), ttlMs)
          networks.add(network)
        }
        await m.execAsPipeline()
      }
      const m = client.multi()
      for (const network of networks) m.pExpire(hostsKey(network), ttlMs)
      await m.execAsPipeline()
    },

    async sample(network, n, exclude) {
      if (n <= 0) return []
      const key = hostsKey(network)
      const [recentRaw, uniformRaw] = await Promise.all([
        client.zRangeWithScores(key, 0, 2 * n - 1, { REV: true }),
        client.zRandMemberCountWithScores(key, 2 * n),
      ])
      const candidates = new Map<string, number>()
      for (const r of [...recentRaw, ...(uniformRaw ?? [])]) candidates.set(String(r.value), Number(r.score))
      candidates.delete(exclude ?? '')
      if (candidates.size === 0) return []
      const ids = [...candidates.keys()]
      const owners = await client.mGet(ids.map((id) => ownerKey(network, id)))
      const dead = ids.filter((_, i) => owners[i] === null)
      if (dead.length > 0) await client.zRem(key, dead)
      // Entries of a silent instance stay in Redis (it may come back) but are not handed out.
      const sessionLive = (v: unknown) => live(String(v).split(' ')[0] ?? '')
      const alive = new Set(ids.filter((_, i) => owners[i] !== null && sessionLive(owners[i])))
      const toInfo = (r: { value: unknown; score: unknown }): PeerInfo => ({
        id: String(r.value),
        lastSeen: Number(r.score),
      })
      const recent = recentRaw.filter((r) => alive.has(String(r.value))).map(toInfo)
      const uniform = (uniformRaw ?? []).filter((r) => alive.has(String(r.value))).map(toInfo)
      return mergeSample(recent, uniform, n, exclude, random)
    },

    async lookup(network, id): Promise<HostEntry | null> {
      const v = await client.get(ownerKey(network, id))
      if (v === null) return null
      const [session, seen] = String(v).split(' ')
      const lastSeen = Number(seen)
      return { id, lastSeen: Number.isFinite(lastSeen) ? lastSeen : 0, session: session ?? '' }
    },

    prune() {
      // Owner keys expire on their own; dead sorted-set members go lazily in sample().
      return 0
    },
  }
}
