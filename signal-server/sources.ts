/**
 * Per-source limits: what one client address may hold and do, so that one
 * machine (or one NAT) cannot take the whole server, and ten identities do
 * not multiply a per-identity quota.
 *
 * A source is the address a client connects from, reduced to what one
 * subscriber controls: an IPv4 address, or an IPv6 /64 (the smallest
 * allocation an ISP hands out; anyone with one address in it has them all).
 * IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) count as their IPv4 address.
 *
 * Behind a reverse proxy every TCP connection comes from the proxy. Only when
 * the operator names its proxies (`trustProxy`: addresses or CIDR ranges) is
 * X-Forwarded-For read: from the right, skipping trusted proxies, the first
 * address is the client. Without that opt-in the header is ignored (anyone
 * can write it).
 *
 * Per source the server counts:
 *   - concurrent TCP connections (HTTP, WebSocket); a trusted proxy's are not counted,
 *   - concurrent socket.io sessions,
 *   - registrations per minute (a token bucket; every attempt costs one),
 *   - distinct identities: an identity counts while it is registered from this
 *     source and for `identityWindowMs` after it left; a new one beyond the
 *     limit is refused, so throw-away identities cost time as well as work,
 *   - relayed bytes per second, shared by every identity of the source.
 *
 * Memory: a source entry lives while it has connections, and afterwards until
 * its identities' windows ran out and its buckets refilled; entries beyond
 * `maxSources` that hold nothing live are evicted oldest first. Pure apart
 * from node:net's address parsing: time is passed in.
 */
import { BlockList, isIP } from 'node:net'
import { TokenBucket } from '../shared/token-bucket.ts'

// ---------------------------------------------------------------- addresses

/** `::ffff:1.2.3.4` → `1.2.3.4`; a zone (`fe80::1%eth0`) is dropped. Anything else unchanged. */
function plainAddress(address: string): string {
  const a = address.includes('%') ? address.slice(0, address.indexOf('%')) : address
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(a)
  return mapped ? (mapped[1] as string) : a
}

/**
 * An X-Forwarded-For entry without the port some proxies write after it (`203.0.113.9:51234`,
 * `[2001:db8::7]:51234`, `[2001:db8::7]`); a bare IPv6 address is left as it is.
 */
function withoutPort(entry: string): string {
  const v6 = /^\[([0-9A-Fa-f:.%]+)\](?::\d{1,5})?$/.exec(entry)
  if (v6) return v6[1] as string
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(entry)
  return v4 ? (v4[1] as string) : entry
}

/** The eight 16-bit groups of an IPv6 address (valid per isIP), or null. */
function ipv6Groups(a: string): number[] | null {
  let s = a
  // A trailing dotted IPv4 part is two groups.
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s)
  if (v4) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number) as [number, number, number, number]
    s = `${s.slice(0, v4.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`
  }
  const halves = s.split('::')
  if (halves.length > 2) return null
  const part = (x: string | undefined) => (x ? x.split(':').map((g) => Number.parseInt(g, 16)) : [])
  const head = part(halves[0])
  const tail = part(halves[1])
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0
  const groups = [...head, ...new Array<number>(Math.max(0, fill)).fill(0), ...tail]
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff)
    ? groups
    : null
}

/**
 * The source an address belongs to: an IPv4 address as is, an IPv6 address
 * reduced to its first `ipv6PrefixBits` bits (`2001:db8:1:2::/64`). Anything
 * that is not an address is one source, `unknown`.
 */
export function sourceKey(address: string | undefined, ipv6PrefixBits = 64): string {
  if (!address) return 'unknown'
  const a = plainAddress(address)
  const kind = isIP(a)
  if (kind === 4) return a
  if (kind !== 6) return 'unknown'
  const groups = ipv6Groups(a)
  if (!groups) return 'unknown'
  const bits = Math.max(0, Math.min(128, Math.floor(ipv6PrefixBits)))
  const kept: string[] = []
  for (let i = 0; i * 16 < bits; i++) {
    const left = bits - i * 16
    const mask = left >= 16 ? 0xffff : (0xffff << (16 - left)) & 0xffff
    kept.push(((groups[i] as number) & mask).toString(16))
  }
  return `${kept.join(':')}${kept.length < 8 ? '::' : ''}/${bits}`
}

/** Which addresses are the operator's reverse proxies, and the client address behind them. */
export interface AddressResolver {
  /** Whether `address` (a TCP peer) is a trusted proxy. */
  trusted(address: string | undefined): boolean
  /**
   * The client address of a request from TCP peer `peer` carrying
   * `forwardedFor` (X-Forwarded-For): the peer itself unless it is trusted;
   * otherwise the right-most forwarded address that is not a trusted proxy
   * (stopping at the first entry that is not an address).
   */
  clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined): string | undefined
}

/** X-Forwarded-For read at most, from the right: 32 hops of the longest IPv6 address with room to spare. */
const MAX_FORWARDED_CHARS = 2048

/**
 * `trustProxy` entries: an address (`10.0.0.2`, `::1`), a CIDR range
 * (`10.0.0.0/8`, `fd00::/8`), or `loopback`. Throws a TypeError naming a bad entry.
 */
export function createAddressResolver(trustProxy: readonly string[]): AddressResolver {
  const list = new BlockList()
  for (const raw of trustProxy) {
    const entry = raw.trim()
    if (entry === 'loopback') {
      list.addSubnet('127.0.0.0', 8, 'ipv4')
      list.addAddress('::1', 'ipv6')
      continue
    }
    const [addr, prefix, extra] = entry.split('/')
    const kind = isIP(addr ?? '')
    const bits = prefix === undefined ? undefined : Number(prefix)
    const max = kind === 4 ? 32 : 128
    if (
      kind === 0 ||
      extra !== undefined ||
      (bits !== undefined && !(Number.isInteger(bits) && bits >= 0 && bits <= max))
    )
      throw new TypeError(`trustProxy: not an address or CIDR range: ${raw}`)
    const type = kind === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) list.addAddress(addr as string, type)
    else list.addSubnet(addr as string, bits, type)
  }
  const none = trustProxy.length === 0
  const trusted = (address: string | undefined): boolean => {
    if (none || !address) return false
    const a = plainAddress(address)
    const kind = isIP(a)
    return kind !== 0 && list.check(a, kind === 4 ? 'ipv4' : 'ipv6')
  }
  return {
    trusted,
    clientAddress(peer, forwardedFor) {
      if (!trusted(peer) || forwardedFor === undefined) return peer
      let header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor
      // Bounded: a proxy chain is short, a header of thousands of entries is an attack. Kept from the
      // right, where the proxies wrote (a client's own long header must not push their entries out),
      // without the first entry, which the cut may have left a part of.
      if (header.length > MAX_FORWARDED_CHARS) {
        header = header.slice(-MAX_FORWARDED_CHARS)
        header = header.slice(header.indexOf(',') + 1)
      }
      const hops = header.split(',').slice(-32)
      let client = peer
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = plainAddress(withoutPort((hops[i] as string).trim()))
        if (isIP(hop) === 0) break
        client = hop
        if (!trusted(hop)) break
      }
      return client
    },
  }
}

// ------------------------------------------------------------------ limits

export interface SourceLimits {
  /** Concurrent TCP connections per source (a trusted proxy's are not counted). */
  maxConnectionsPerSource: number
  /** Concurrent socket.io sessions per source. */
  maxSocketsPerSource: number
  /** Registration attempts per source per minute (also the burst). */
  registrationsPerSourcePerMin: number
  /** Distinct identities per source within `identityWindowMs`. */
  maxIdentitiesPerSource: number
  /** How long an identity still counts for its source after it left. */
  identityWindowMs: number
  /** Relayed bytes per second per source, all its identities together. */
  relayBytesPerSourcePerSec: number
  /** Relay burst per source, bytes. */
  relayBurstBytesPerSource: number
  /** Source entries remembered at most (entries with live connections are never evicted). */
  maxSources: number
}

interface Source {
  /** The key, one string shared by every connection of the source. */
  key: string
  tcp: number
  sockets: number
  registrations: TokenBucket | null
  relay: TokenBucket | null
  /**
   * Identity slots, flat: node id, then a number: positive, how many registered sockets of that
   * identity the source has now; zero or less, minus the time the identity stops counting (it left).
   * Most sources hold one identity: a two-element array costs a fraction of a Map, and at most
   * maxIdentitiesPerSource (128) entries are ever scanned.
   */
  ids: (string | number)[] | null
}

export interface SourceTable {
  /**
   * A TCP connection opened: the source's key (the one string all its connections share), or null
   * (and not counted) when the source is at its limit.
   */
  openConnection(key: string): string | null
  closeConnection(key: string): void
  /** Whether the source may open one more session now. */
  canOpenSocket(key: string): boolean
  /** A session opened: the source's key (shared string). */
  openSocket(key: string): string
  closeSocket(key: string): void
  /** One registration attempt; false when the source used its attempts for this minute. */
  takeRegistration(key: string, now: number): boolean
  /** `id` registers from the source; false when it would be one identity too many. */
  claimIdentity(key: string, id: string, now: number): boolean
  /** A registered socket of `id` left; the identity keeps counting for the window. */
  releaseIdentity(key: string, id: string, now: number): void
  /** Take `bytes` of the source's relay allowance; false (nothing taken) when there is not enough. */
  takeRelay(key: string, bytes: number, now: number): boolean
  /** Whether `bytes` of relay allowance are there now (nothing taken). */
  relayAvailable(key: string, bytes: number, now: number): boolean
  /** Forget sources that hold nothing any more; returns how many went. */
  prune(now: number): number
  size(): number
  /** Test and metrics view of one source. */
  peek(key: string): { tcp: number; sockets: number; identities: number } | null
}

export function createSourceTable(limits: SourceLimits): SourceTable {
  // Insertion order is recency: every use moves an entry to the end, eviction starts at the front.
  const sources = new Map<string, Source>()

  /** Index of `id`'s slot number in `ids`, or -1. */
  const slotOf = (ids: (string | number)[], id: string): number => {
    for (let i = 0; i < ids.length; i += 2) if (ids[i] === id) return i + 1
    return -1
  }
  const expireIds = (s: Source, now: number) => {
    const ids = s.ids
    if (!ids) return
    const kept: (string | number)[] = []
    for (let i = 0; i < ids.length; i += 2) {
      const slot = ids[i + 1] as number
      if (slot > 0 || -slot > now) kept.push(ids[i] as string, slot)
    }
    s.ids = kept.length > 0 ? kept : null
  }
  const identities = (s: Source) => (s.ids ? s.ids.length / 2 : 0)
  /** Buckets that refilled hold nothing worth keeping: a long-lived peer's source keeps neither. */
  const dropFull = (s: Source, now: number) => {
    if (s.registrations && s.registrations.available(now) >= limits.registrationsPerSourcePerMin)
      s.registrations = null
    if (s.relay && s.relay.available(now) >= limits.relayBurstBytesPerSource) s.relay = null
  }
  const idle = (s: Source, now: number): boolean => {
    dropFull(s, now)
    if (s.tcp > 0 || s.sockets > 0) return false
    expireIds(s, now)
    return s.ids === null && s.registrations === null && s.relay === null
  }
  const get = (key: string): Source => {
    let s = sources.get(key)
    if (s) {
      sources.delete(key)
      sources.set(key, s)
      return s
    }
    s = { key, tcp: 0, sockets: 0, registrations: null, relay: null, ids: null }
    sources.set(key, s)
    if (sources.size > limits.maxSources) {
      // Bounded work per insertion: look at the oldest few, drop those that hold nothing live, and move
      // live ones to the back, or a front of quiet long-lived peers would stop every eviction for good.
      let looked = 0
      for (const [k, old] of sources) {
        if (sources.size <= limits.maxSources || looked++ >= 64 || k === key) break
        sources.delete(k)
        if (old.tcp > 0 || old.sockets > 0) sources.set(k, old)
      }
    }
    return s
  }

  return {
    openConnection(key) {
      const s = get(key)
      if (s.tcp >= limits.maxConnectionsPerSource) return null
      s.tcp++
      return s.key
    },
    closeConnection(key) {
      const s = sources.get(key)
      if (s && s.tcp > 0) s.tcp--
    },
    canOpenSocket(key) {
      return (sources.get(key)?.sockets ?? 0) < limits.maxSocketsPerSource
    },
    openSocket(key) {
      const s = get(key)
      s.sockets++
      return s.key
    },
    closeSocket(key) {
      const s = sources.get(key)
      if (s && s.sockets > 0) s.sockets--
    },
    takeRegistration(key, now) {
      const s = get(key)
      const perMin = limits.registrationsPerSourcePerMin
      s.registrations ??= new TokenBucket(perMin / 60, perMin, now)
      return s.registrations.take(1, now)
    },
    claimIdentity(key, id, now) {
      const s = get(key)
      const at = s.ids ? slotOf(s.ids, id) : -1
      if (s.ids && at >= 0) {
        const slot = s.ids[at] as number
        // Live, or left within the window: the same slot again.
        if (slot > 0 || -slot > now) {
          s.ids[at] = slot > 0 ? slot + 1 : 1
          return true
        }
      }
      // Expired slots are swept only when the limit is in sight.
      if (identities(s) >= limits.maxIdentitiesPerSource) {
        expireIds(s, now)
        if (identities(s) >= limits.maxIdentitiesPerSource) return false
      }
      if (!s.ids) {
        // A literal of two: push() onto [] would reserve room for 17.
        s.ids = [id, 1]
        return true
      }
      const again = slotOf(s.ids, id)
      if (again >= 0) s.ids[again] = 1
      else s.ids.push(id, 1)
      return true
    },
    releaseIdentity(key, id, now) {
      const ids = sources.get(key)?.ids
      const at = ids ? slotOf(ids, id) : -1
      if (!ids || at < 0) return
      const slot = ids[at] as number
      if (slot <= 0) return
      ids[at] = slot > 1 ? slot - 1 : -(now + limits.identityWindowMs)
    },
    takeRelay(key, bytes, now) {
      const s = get(key)
      s.relay ??= new TokenBucket(limits.relayBytesPerSourcePerSec, limits.relayBurstBytesPerSource, now)
      return s.relay.take(bytes, now)
    },
    relayAvailable(key, bytes, now) {
      const b = sources.get(key)?.relay
      return b ? b.available(now) >= bytes : bytes <= limits.relayBurstBytesPerSource
    },
    /** Also drops refilled buckets of live sources. */
    prune(now) {
      let n = 0
      for (const [k, s] of sources) {
        if (idle(s, now)) {
          sources.delete(k)
          n++
        }
      }
      return n
    },
    size: () => sources.size,
    peek(key) {
      const s = sources.get(key)
      return s ? { tcp: s.tcp, sockets: s.sockets, identities: identities(s) } : null
    },
  }
}
