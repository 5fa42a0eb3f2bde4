/**
 * Several signal-server instances sharing one Redis.
 *
 * The host cache lives in Redis (registry-redis.ts), so a bootstrap sample
 * spans every instance; each entry's session is `<instance>/<socket id>`, so
 * a lookup also says which instance holds the node. Everything else goes as
 * sealed messages on Redis pub/sub (inter-server.ts): a signal or relay
 * frame for a node on another instance goes to that instance's inbox only,
 * and that instance answers a signal once it delivered it (`signal-ack`),
 * and a frame only when it dropped it (`relay-error`); a registration is
 * announced to all (they drop their older socket of that id); every sweep
 * each instance announces its configured public URLs (maybe none), which the
 * others list to their clients while the announcements keep coming. An
 * instance silent for three sweeps is taken for dead: its nodes leave
 * samples, and signals for them are refused as `unknown-peer` at once, until
 * they register elsewhere or their entries expire (relay frames still go,
 * see ownerOf).
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
  type RemoteSignalResult,
} from './inter-server.ts'
import type { HostCache } from './registry.ts'
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
/** Signals waiting for the target's instance's answer, at most (beyond: answered 'congested' at once). */
const MAX_PENDING_SIGNALS = 10_000
/** How long a signal waits for the target's instance's answer before 'unknown-peer'. */
const SIGNAL_ANSWER_MS = 5000
/** How long a host cache lookup is reused for relaying, and how many are kept. */
const LOOKUP_CACHE_MS = 1000
const MAX_LOOKUPS = 10_000
/** An instance not heard from for this many announcement periods is taken for dead. */
const SILENT_PERIODS = 3

/** The instance of a host cache session (`<instance>/<socket id>`), or ''. */
function instanceOf(session: string): string {
  const slash = session.lastIndexOf('/')
  return slash > 0 ? session.slice(0, slash) : ''
}

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
  // Other instances' public URLs, by instance, while their announcements keep coming.
  const announced = new Map<string, { urls: string[]; until: number }>()
  const startedAt = Date.now()
  /**
   * Whether `instance` may be alive: this one, one whose announcements keep coming, or any while we
   * have been up too briefly to have heard everyone. A killed instance's nodes leave samples and
   * lookups once it falls silent, long before their host cache entries expire.
   */
  const alive = (instance: string, now: number): boolean =>
    instance === self ||
    (announced.get(instance)?.until ?? 0) > now ||
    now - startedAt < SILENT_PERIODS * o.announceEveryMs
  const hosts = createRedisHostCache(pub, {
    prefix: o.prefix,
    ttlMs: o.hostTtlMs,
    maxPerNetwork: o.maxPeers * 16,
    live: (session) => alive(instanceOf(session), Date.now()),
  })
  // Signals sent to another instance, waiting for its answer.
  let nextRef = 0
  const pending = new Map<
    number,
    { owner: string; done: (r: RemoteSignalResult) => void; timer: NodeJS.Timeout }
  >()
  const answered = (ref: number, from: string, result: RemoteSignalResult) => {
    const p = pending.get(ref)
    if (!p || p.owner !== from) return
    pending.delete(ref)
    clearTimeout(p.timer)
    p.done(result)
  }

  const publish = (channel: string, m: InterServerMessage) => {
    pub
      .publish(channel, codec.seal(channel, m, Date.now()))
      .catch((err: Error) => o.log(`redis publish: ${err.message}`))
  }
  /**
   * Host cache lookups for relaying, shared for LOOKUP_CACHE_MS: a relayed stream costs one Redis read
   * a second, not one per frame. The promise itself is kept, so every frame to a target awaits the
   * same one and frames keep their order. A registration anywhere (`replace`) drops the node's entry.
   */
  const lookups = new Map<string, { at: number; entry: ReturnType<HostCache['lookup']> }>()
  const lookupKey = (network: string, id: string) => `${network} ${id}`
  const lookup = (network: string, id: string, now: number) => {
    const k = lookupKey(network, id)
    const cached = lookups.get(k)
    if (cached && now - cached.at < LOOKUP_CACHE_MS) return cached.entry
    const entry = Promise.resolve(hosts.lookup(network, id, now))
    // A failed read is not kept.
    entry.catch(() => lookups.delete(k))
    if (lookups.size < MAX_LOOKUPS || cached) lookups.set(k, { at: now, entry })
    return entry
  }
  /**
   * The instance holding `to` (not this one), from its host cache entry. `liveOnly`: not when that
   * instance fell silent (for signals: a link setup is better refused at once and tried elsewhere).
   * Relay frames still go to a silent instance's inbox, to be lost there: refusing them would make
   * the senders close their links to nodes that are moving to another instance and keep them.
   */
  const ownerOf = async (
    network: string,
    to: string,
    now: number,
    liveOnly: boolean,
  ): Promise<string | null> => {
    let session: string | undefined
    try {
      session = (await lookup(network, to, now))?.session
    } catch {
      return null
    }
    const instance = instanceOf(session ?? '')
    if (!INSTANCE_PATTERN.test(instance) || instance === self) return null
    return !liveOnly || alive(instance, now) ? instance : null
  }

  const receive = (channel: string) => (raw: Buffer) => {
    const now = Date.now()
    const r = codec.open(channel, raw, now)
    if (typeof r === 'string') return o.refused(r)
    const m = r.message
    switch (m.t) {
      case 'replace':
        lookups.delete(lookupKey(m.network, m.id))
        return events.replace(m.network, m.id, m.session)
      case 'signal':
        return publish(inbox(r.from), {
          t: 'signal-ack',
          ref: m.ref,
          result: events.signal(m.network, m.to, m.from, m.data),
        })
      case 'signal-ack':
        return answered(m.ref, r.from, m.result)
      case 'relay': {
        const dropped = events.relay(m.network, m.to, m.from, m.frame)
        if (dropped !== null)
          publish(inbox(r.from), {
            t: 'relay-error',
            network: m.network,
            to: m.to,
            from: m.from,
            reason: dropped,
          })
        return
      }
      case 'relay-error':
        return events.relayError(m.network, m.to, m.from, m.reason)
      case 'servers':
        if (r.from === self) return
        if (announced.has(r.from) || announced.size < MAX_ANNOUNCERS)
          announced.set(r.from, { urls: m.urls, until: now + 3 * o.announceEveryMs })
        return
    }
  }
  await sub.subscribe(channelAll, receive(channelAll), true)
  await sub.subscribe(inbox(self), receive(inbox(self)), true)

  // Sent even without public URLs: it also tells the others this instance is alive.
  const announce = () => publish(channelAll, { t: 'servers', urls: [...o.publicUrls] })
  announce()

  return {
    hosts,
    touchEveryMs: 5000,
    session: (socketId) => `${self}/${socketId}`,
    registered(network, id, session) {
      publish(channelAll, { t: 'replace', network, id, session })
    },
    async signal(network, to, from, data, now) {
      const owner = await ownerOf(network, to, now, true)
      if (owner === null) return 'unknown-peer'
      if (pending.size >= MAX_PENDING_SIGNALS) return 'congested'
      nextRef = nextRef >= Number.MAX_SAFE_INTEGER ? 1 : nextRef + 1
      const ref = nextRef
      return new Promise<RemoteSignalResult>((done) => {
        // No answer in time: the owner died, or the message was lost; the target is as good as unknown.
        const timer = setTimeout(() => answered(ref, owner, 'unknown-peer'), SIGNAL_ANSWER_MS)
        timer.unref()
        pending.set(ref, { owner, done, timer })
        publish(inbox(owner), { t: 'signal', network, to, from, data, ref })
      })
    },
    async relay(network, to, from, frame, now) {
      const owner = await ownerOf(network, to, now, false)
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
      for (const [k, l] of lookups) if (now - l.at >= LOOKUP_CACHE_MS) lookups.delete(k)
      announce()
    },
    async close() {
      for (const ref of [...pending.keys()]) {
        const p = pending.get(ref)
        if (p) answered(ref, p.owner, 'unknown-peer')
      }
      for (const c of [sub, pub]) await c.close().catch(() => {})
    },
  }
}
