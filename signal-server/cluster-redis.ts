/**
 * Several signal-server instances sharing one Redis.
 *
 * The host cache lives in Redis (registry-redis.ts), so a bootstrap sample
 * spans every instance; each entry's session is `<instance>/<socket id>`, so
 * a lookup also says which instance holds the node. Everything else goes as
 * sealed messages on Redis pub/sub (inter-server.ts): a signal or relay
 * frame for a node on another instance goes to that instance's inbox only;
 * a registration is announced to all (they drop their older socket of that
 * id); every sweep each instance announces its configured public URLs, which
 * the others list to their clients while the announcements keep coming.
 *
 * Messages are authenticated with the shared secret, bound to their
 * channel, dated and numbered: a forged, altered, redirected or replayed
 * message is refused and counted (`interServer.<reason>`). What someone with
 * access to the Redis can still do is in signal-server/README.md.
 */
import { randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import type { Cluster, ClusterEvents } from './cluster.ts'
import {
  createInterServerCodec,
  INSTANCE_PATTERN,
  type InterServerMessage,
  type InterServerRefusal,
} from './inter-server.ts'
import { createRedisHostCache } from './registry-redis.ts'

export interface RedisClusterOptions {
  url: string
  prefix: string
  /** The shared secret every instance is given. */
  secret: string
  /** This instance's name (a boot id is appended, so a restart is a new sender). */
  instance: string
  /** Announced to the other instances (only what the operator configured). */
  publicUrls: readonly string[]
  hostTtlMs: number
  maxPeers: number
  signalMaxBytes: number
  relayFrameMaxBytes: number
  /** Announcements are repeated this often (the server's sweep period). */
  announceEveryMs: number
  log: (line: string) => void
  /** A message from Redis was refused. */
  refused: (reason: InterServerRefusal) => void
}

/** Announcing instances remembered at most. */
const MAX_ANNOUNCERS = 256

export async function createRedisCluster(o: RedisClusterOptions, events: ClusterEvents): Promise<Cluster> {
  const self = `${o.instance}.${randomBytes(6).toString('hex')}`
  const codec = createInterServerCodec(o.secret, self, {
    signalMaxBytes: o.signalMaxBytes,
    relayFrameMaxBytes: o.relayFrameMaxBytes,
  })
  const channelAll = `${o.prefix}:x:all`
  const inbox = (instance: string) => `${o.prefix}:x:${instance}`
  const pub = createClient({ url: o.url })
  const sub = pub.duplicate()
  for (const c of [pub, sub]) c.on('error', (err: Error) => o.log(`redis: ${err.message}`))
  await Promise.all([pub.connect(), sub.connect()])
  const hosts = createRedisHostCache(pub, {
    prefix: o.prefix,
    ttlMs: o.hostTtlMs,
    maxPerNetwork: o.maxPeers * 16,
  })
  // Other instances' public URLs, by instance, while their announcements keep coming.
  const announced = new Map<string, { urls: string[]; until: number }>()

  const publish = (channel: string, m: InterServerMessage) => {
    pub
      .publish(channel, codec.seal(channel, m, Date.now()))
      .catch((err: Error) => o.log(`redis publish: ${err.message}`))
  }
  /** The instance holding `to` (not this one), from its host cache entry. */
  const ownerOf = async (network: string, to: string, now: number): Promise<string | null> => {
    let session: string | undefined
    try {
      session = (await hosts.lookup(network, to, now))?.session
    } catch {
      return null
    }
    const slash = session?.lastIndexOf('/') ?? -1
    const instance = slash > 0 ? (session as string).slice(0, slash) : ''
    return INSTANCE_PATTERN.test(instance) && instance !== self ? instance : null
  }

  const receive = (channel: string) => (raw: Buffer) => {
    const now = Date.now()
    const r = codec.open(channel, raw, now)
    if (typeof r === 'string') return o.refused(r)
    const m = r.message
    switch (m.t) {
      case 'replace':
        return events.replace(m.network, m.id, m.session)
      case 'signal':
        return events.signal(m.network, m.to, m.from, m.data)
      case 'relay':
        if (events.relay(m.network, m.to, m.from, m.frame) === 'congested')
          publish(inbox(r.from), {
            t: 'relay-error',
            network: m.network,
            to: m.to,
            from: m.from,
            reason: 'congested',
          })
        return
      case 'relay-error':
        return events.relayError(m.network, m.to, m.from, m.reason)
      case 'servers':
        if (announced.has(r.from) || announced.size < MAX_ANNOUNCERS)
          announced.set(r.from, { urls: m.urls, until: now + 3 * o.announceEveryMs })
        return
    }
  }
  await sub.subscribe(channelAll, receive(channelAll), true)
  await sub.subscribe(inbox(self), receive(inbox(self)), true)

  const announce = () => {
    if (o.publicUrls.length > 0) publish(channelAll, { t: 'servers', urls: [...o.publicUrls] })
  }
  announce()

  return {
    hosts,
    touchEveryMs: 5000,
    session: (socketId) => `${self}/${socketId}`,
    registered(network, id, session) {
      publish(channelAll, { t: 'replace', network, id, session })
    },
    async signal(network, to, from, data, now) {
      const owner = await ownerOf(network, to, now)
      if (owner === null) return false
      publish(inbox(owner), { t: 'signal', network, to, from, data })
      return true
    },
    async relay(network, to, from, frame, now) {
      const owner = await ownerOf(network, to, now)
      if (owner === null) return false
      publish(inbox(owner), { t: 'relay', network, to, from, frame })
      return true
    },
    servers() {
      const now = Date.now()
      const out: string[] = []
      for (const a of announced.values()) if (a.until > now) out.push(...a.urls)
      return [...new Set(out)]
    },
    ready: () => pub.isReady && sub.isReady,
    health: () => ({ redis: pub.isReady && sub.isReady }),
    tick(now) {
      for (const [k, a] of announced) if (a.until <= now) announced.delete(k)
      announce()
    },
    async close() {
      for (const c of [sub, pub]) await c.close().catch(() => {})
    },
  }
}
