/**
 * The host cache: which nodes are registered, per network, and how recently
 * each was active. It is what a GWebCache keeps: a bootstrap sample is a few
 * live hosts, chosen at random but leaning towards recently active ones
 * (half of the sample comes from the most recent entries, half uniformly from
 * all), never the caller.
 *
 * Every entry carries the session (socket) that registered it, so removing
 * the entry of a replaced socket cannot remove its successor's; and an expiry,
 * pushed forward by `touch` (activity) and `keepAlive` (still connected), so
 * entries of a crashed instance fade away.
 *
 * This file is pure: plain Maps, no I/O, time passed in. The Redis variant
 * (registry-redis.ts) implements the same interface so that a bootstrap
 * sample spans all instances.
 */
import type { PeerInfo } from '../shared/signal-events.ts'

type MaybePromise<T> = T | Promise<T>

/** A live entry as `lookup` returns it: who, how recently active, and the session that registered it. */
export interface HostEntry extends PeerInfo {
  session: string
}

export interface HostCache {
  /** Register `id` in `network` for `session` (replacing any previous session). False when full. */
  add(network: string, id: string, session: string, now: number): MaybePromise<boolean>
  /** Forget `id`, but only if `session` still owns it. */
  remove(network: string, id: string, session: string): MaybePromise<boolean>
  /** `id` was active: lastSeen = now, expiry pushed forward. */
  touch(network: string, id: string, now: number): MaybePromise<void>
  /** These entries are still connected: push their expiry forward without changing lastSeen. */
  keepAlive(entries: readonly { network: string; id: string }[], now: number): MaybePromise<void>
  /** Up to `n` live entries of `network`, never `exclude`, random but preferring recent ones. */
  sample(network: string, n: number, exclude: string | null, now: number): MaybePromise<PeerInfo[]>
  /** The live entry for `id`, or null. */
  lookup(network: string, id: string, now: number): MaybePromise<HostEntry | null>
  /** Drop expired entries; returns how many went. */
  prune(now: number): MaybePromise<number>
  close?(): MaybePromise<void>
}

/**
 * Build a sample of `n` from a pool of recent entries (most recent first) and
 * a pool of uniformly drawn ones: half (rounded up) at random from the recent
 * pool, the rest from the uniform pool, then any shortfall from whatever is
 * left. No duplicates, never `exclude`. Shared by both implementations.
 */
export function mergeSample(
  recent: readonly PeerInfo[],
  uniform: readonly PeerInfo[],
  n: number,
  exclude: string | null,
  random: () => number,
): PeerInfo[] {
  if (n <= 0) return []
  const seen = new Set<string>()
  if (exclude !== null) seen.add(exclude)
  const out: PeerInfo[] = []
  const take = (pool: PeerInfo[], k: number) => {
    shuffle(pool, random)
    for (const p of pool) {
      if (out.length >= n || k <= 0) break
      if (seen.has(p.id)) continue
      seen.add(p.id)
      out.push(p)
      k--
    }
  }
  const r = [...recent]
  const u = [...uniform]
  take(r, Math.ceil(n / 2))
  take(u, n - out.length)
  take(r, n - out.length)
  return shuffle(out, random)
}

function shuffle<T>(xs: T[], random: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = xs[i] as T
    xs[i] = xs[j] as T
    xs[j] = t
  }
  return xs
}

export interface MemoryHostCacheOptions {
  /** An entry not touched or kept alive for this long is gone. @default 120_000 */
  ttlMs?: number
  /** At most this many entries per network; adding more evicts the least recently active. @default 100_000 */
  maxPerNetwork?: number
  /** At most this many entries in all; adding more is refused. @default 200_000 */
  maxEntries?: number
  /** Uniform in [0, 1). @default Math.random */
  random?: () => number
}

interface Entry {
  id: string
  session: string
  lastSeen: number
  expires: number
  /** Index in Net.all (for uniform picks with O(1) removal). */
  pos: number
  /** Recency list: prev is more recent, next less recent. */
  prev: Entry | null
  next: Entry | null
}

interface Net {
  byId: Map<string, Entry>
  all: Entry[]
  head: Entry | null
  tail: Entry | null
}

/** The in-memory host cache, synchronous (its methods return plain values). */
export interface MemoryHostCache extends HostCache {
  add(network: string, id: string, session: string, now: number): boolean
  remove(network: string, id: string, session: string): boolean
  touch(network: string, id: string, now: number): void
  keepAlive(entries: readonly { network: string; id: string }[], now: number): void
  sample(network: string, n: number, exclude: string | null, now: number): PeerInfo[]
  lookup(network: string, id: string, now: number): HostEntry | null
  prune(now: number): number
  /** Entries now (live or not yet pruned). */
  size(): number
  /** Entries per network. */
  counts(): Map<string, number>
}

export function createMemoryHostCache(options: MemoryHostCacheOptions = {}): MemoryHostCache {
  const ttlMs = options.ttlMs ?? 120_000
  const maxPerNetwork = options.maxPerNetwork ?? 100_000
  const maxEntries = options.maxEntries ?? 200_000
  const random = options.random ?? Math.random
  const nets = new Map<string, Net>()
  let total = 0

  const unlink = (net: Net, e: Entry) => {
    if (e.prev) e.prev.next = e.next
    else net.head = e.next
    if (e.next) e.next.prev = e.prev
    else net.tail = e.prev
    e.prev = e.next = null
  }
  const pushFront = (net: Net, e: Entry) => {
    e.next = net.head
    e.prev = null
    if (net.head) net.head.prev = e
    net.head = e
    if (!net.tail) net.tail = e
  }
  const drop = (network: string, net: Net, e: Entry) => {
    unlink(net, e)
    const last = net.all.pop() as Entry
    if (last !== e) {
      net.all[e.pos] = last
      last.pos = e.pos
    }
    net.byId.delete(e.id)
    total--
    if (net.byId.size === 0) nets.delete(network)
  }
  const info = (e: Entry): PeerInfo => ({ id: e.id, lastSeen: e.lastSeen })

  return {
    add(network, id, session, now) {
      let net = nets.get(network)
      const existing = net?.byId.get(id)
      if (net && existing) {
        existing.session = session
        existing.lastSeen = Math.max(existing.lastSeen, now)
        existing.expires = now + ttlMs
        unlink(net, existing)
        pushFront(net, existing)
        return true
      }
      if (net && net.byId.size >= maxPerNetwork && net.tail) drop(network, net, net.tail)
      if (total >= maxEntries) return false
      if (!net) {
        net = { byId: new Map(), all: [], head: null, tail: null }
        nets.set(network, net)
      }
      const e: Entry = {
        id,
        session,
        lastSeen: now,
        expires: now + ttlMs,
        pos: net.all.length,
        prev: null,
        next: null,
      }
      net.all.push(e)
      net.byId.set(id, e)
      pushFront(net, e)
      total++
      return true
    },

    remove(network, id, session) {
      const net = nets.get(network)
      const e = net?.byId.get(id)
      if (!net || !e || e.session !== session) return false
      drop(network, net, e)
      return true
    },

    touch(network, id, now) {
      const net = nets.get(network)
      const e = net?.byId.get(id)
      if (!net || !e) return
      e.lastSeen = Math.max(e.lastSeen, now)
      e.expires = Math.max(e.expires, now + ttlMs)
      if (net.head !== e) {
        unlink(net, e)
        pushFront(net, e)
      }
    },

    keepAlive(entries, now) {
      for (const { network, id } of entries) {
        const e = nets.get(network)?.byId.get(id)
        if (e) e.expires = Math.max(e.expires, now + ttlMs)
      }
    },

    sample(network, n, exclude, now) {
      const net = nets.get(network)
      if (!net || n <= 0) return []
      const live = (e: Entry) => e.expires > now && e.id !== exclude
      // Small network: everyone is a candidate, the recent half still favoured.
      const recent: PeerInfo[] = []
      for (let e = net.head; e && recent.length < 2 * n; e = e.next) if (live(e)) recent.push(info(e))
      const uniform: PeerInfo[] = []
      if (net.all.length <= 4 * n) {
        for (const e of net.all) if (live(e)) uniform.push(info(e))
      } else {
        const picked = new Set<string>()
        for (let tries = 0; tries < 4 * n && uniform.length < 2 * n; tries++) {
          const e = net.all[Math.floor(random() * net.all.length)] as Entry
          if (live(e) && !picked.has(e.id)) {
            picked.add(e.id)
            uniform.push(info(e))
          }
        }
      }
      return mergeSample(recent, uniform, n, exclude, random)
    },

    lookup(network, id, now) {
      const e = nets.get(network)?.byId.get(id)
      return e && e.expires > now ? { id: e.id, lastSeen: e.lastSeen, session: e.session } : null
    },

    prune(now) {
      let n = 0
      for (const [network, net] of [...nets]) {
        for (const e of [...net.all]) {
          if (e.expires <= now) {
            drop(network, net, e)
            n++
          }
        }
      }
      return n
    },

    size: () => total,
    counts: () => new Map([...nets].map(([k, v]) => [k, v.byId.size])),
  }
}
