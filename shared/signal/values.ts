/** Checks of the values the signal events carry: bytes, names, URLs, JSON, peer lists, ICE servers. */
import { isNodeId } from '../bytes.ts'
import {
  ICE_URL,
  type IceConfig,
  type IceServer,
  type JsonValue,
  MAX_ICE_FIELD_CHARS,
  MAX_ICE_SERVERS,
  MAX_ICE_TTL_MS,
  MAX_ICE_URLS,
  MAX_JSON_DEPTH,
  MAX_SERVER_URL_CHARS,
  MAX_SERVERS,
  MIN_ICE_TTL_MS,
  NETWORK_PATTERN,
  type PeerInfo,
} from './types.ts'

/** Buffer, Uint8Array or ArrayBuffer → a plain Uint8Array over the same memory; anything else → null. */
export function toBytes(x: unknown): Uint8Array | null {
  if (x instanceof Uint8Array) {
    return Object.getPrototypeOf(x) === Uint8Array.prototype
      ? x
      : new Uint8Array(x.buffer, x.byteOffset, x.byteLength)
  }
  if (x instanceof ArrayBuffer) return new Uint8Array(x)
  return null
}

export function isRecord(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false
  const proto = Object.getPrototypeOf(x)
  return proto === Object.prototype || proto === null
}

export function own(o: Record<string, unknown>, k: string): unknown {
  return Object.hasOwn(o, k) ? o[k] : undefined
}

export function isNetworkName(x: unknown): x is string {
  return typeof x === 'string' && NETWORK_PATTERN.test(x)
}

/** An http(s) URL of at most 256 characters with no credentials; returned normalised, or null. */
export function normalizeServerUrl(x: unknown): string | null {
  if (typeof x !== 'string' || x.length === 0 || x.length > MAX_SERVER_URL_CHARS) return null
  let u: URL
  try {
    u = new URL(x)
  } catch {
    return null
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null
  if (u.username || u.password || u.hostname === '') return null
  u.hash = ''
  const s = u.href.endsWith('/') && u.search === '' ? u.href.slice(0, -1) : u.href
  return s.length <= MAX_SERVER_URL_CHARS ? s : null
}

/**
 * May a signal server at `server` list `listed` (normalised URLs) as another of its operator's
 * servers? Not a local address (loopback, private, link-local, shared, `localhost`, `.local`)
 * unless it is on one itself, and not plain http when it is https: a hostile server would
 * otherwise have its nodes, browsers among them, open connections into their own networks.
 * (Names are not resolved here: a public name for a private address is the browser's to stop.)
 */
export function mayList(server: string, listed: string): boolean {
  const from = new URL(server)
  const to = new URL(listed)
  if (from.protocol === 'https:' && to.protocol !== 'https:') return false
  return isLocalHost(from.hostname) || !isLocalHost(to.hostname)
}

/**
 * May a signal server at `server` hand out the STUN/TURN URL `ice` (stun:, stuns:, turn:, turns:;
 * host, port, ?transport=)? The nearness rule of mayList: not a local address unless the server is
 * on one itself; else every node's WebRTC checks would go where the server likes inside the
 * node's own networks (169.254.169.254, the router). An unreadable host is not allowed.
 */
export function mayListIce(server: string, ice: string): boolean {
  if (isLocalHost(new URL(server).hostname)) return true
  const m = /^(?:stuns?|turns?):(\[[^\]]*\]|[^:?]*)/i.exec(ice)
  if (!m?.[1]) return false
  try {
    // As URL reads a host (an IPv4 address written as one number or in hex is one too).
    return !isLocalHost(new URL(`http://${m[1]}`).hostname)
  } catch {
    return false
  }
}

/**
 * A host name or address literal (URL.hostname) on this machine or its local networks, or no
 * single public host (multicast, broadcast, reserved). Names are not resolved.
 */
function isLocalHost(host: string): boolean {
  // One trailing dot names the same host (`localhost.`).
  const h = host
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
  if (h === 'localhost' || h.endsWith('.localhost') || h.endsWith('.local')) return true
  const v4 = /^(?:::ffff:)?(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(h)
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])]
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      a >= 224 || // multicast, reserved, broadcast
      (a === 100 && b >= 64 && b < 128) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b < 32) ||
      (a === 192 && b === 168) ||
      (a === 198 && (b === 18 || b === 19))
    )
  }
  // URL writes an IPv4 address inside IPv6 in hex: mapped (::ffff:c0a8:101), compatible (::7f00:1), NAT64.
  const inner = /^(?:::ffff:|::|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h)
  if (inner) {
    const hi = Number.parseInt(inner[1] as string, 16)
    const lo = Number.parseInt(inner[2] as string, 16)
    return isLocalHost(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`)
  }
  if (!h.includes(':')) return false
  return (
    h === '::' ||
    h === '::1' ||
    /^f[cd][0-9a-f]{0,2}:/.test(h) || // unique local
    /^fe[89a-f][0-9a-f]?:/.test(h) || // link-local, site-local
    /^ff[0-9a-f]{0,2}:/.test(h) // multicast
  )
}

export const utf8Encoder = new TextEncoder()

/**
 * Size in UTF-8 bytes of `x` serialised as JSON, or -1 when `x` is not a
 * plain JSON value (binary, class instances, non-finite numbers, nesting
 * deeper than 32). Stops early (returning limit + 1) once `limit` is passed.
 */
export function jsonByteLength(x: unknown, limit = Number.POSITIVE_INFINITY): number {
  const total = addJsonBytes(x, 0, 0, limit)
  return total < 0 ? -1 : total > limit ? limit + 1 : total
}

/**
 * `total` plus the JSON size of `v` (at nesting `depth`), -1 when `v` is not a JSON value; adds no
 * more once the sum passes `limit`. A plain recursive function (no closure made per call: this runs
 * twice for every signal the server relays).
 */
function addJsonBytes(v: unknown, depth: number, total: number, limit: number): number {
  if (depth > MAX_JSON_DEPTH) return -1
  if (total > limit) return total
  if (v === null) return total + 4
  switch (typeof v) {
    case 'boolean':
      return total + (v ? 4 : 5)
    case 'number':
      return Number.isFinite(v) ? total + String(v).length : -1
    case 'string':
      return total + stringJsonBytes(v)
    case 'object': {
      if (Array.isArray(v)) {
        let t = total + 2 + Math.max(0, v.length - 1)
        for (let i = 0; i < v.length; i++) {
          t = addJsonBytes(v[i], depth + 1, t, limit)
          if (t < 0 || t > limit) return t
        }
        return t
      }
      if (!isRecord(v)) return -1
      const keys = Object.keys(v)
      let t = total + 2 + Math.max(0, keys.length - 1)
      for (const k of keys) {
        t = addJsonBytes(v[k], depth + 1, t + stringJsonBytes(k) + 1, limit)
        if (t < 0 || t > limit) return t
      }
      return t
    }
    default:
      return -1
  }
}

export function stringJsonBytes(s: string): number {
  // Fast path for plain printable ASCII (SDP, candidates, hex): length + 2 quotes.
  if (/^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/.test(s)) return s.length + 2
  return utf8Encoder.encode(JSON.stringify(s)).length
}

export function isJsonValue(x: unknown): x is JsonValue {
  return jsonByteLength(x) >= 0
}

export function parsePeerList(x: unknown): PeerInfo[] | null {
  if (!Array.isArray(x) || x.length > 1024) return null
  const out: PeerInfo[] = []
  for (const p of x) {
    if (!isRecord(p)) return null
    const id = own(p, 'id')
    const lastSeen = own(p, 'lastSeen')
    if (!isNodeId(id) || typeof lastSeen !== 'number' || !Number.isFinite(lastSeen)) return null
    out.push({ id, lastSeen })
  }
  return out
}

/** A STUN/TURN URL weft hands to RTCPeerConnection (stun:, stuns:, turn:, turns:). */
export function isIceUrl(x: unknown): x is string {
  return typeof x === 'string' && x.length <= MAX_ICE_FIELD_CHARS && ICE_URL.test(x)
}

export function iceField(x: unknown): x is string {
  return typeof x === 'string' && x.length > 0 && x.length <= MAX_ICE_FIELD_CHARS
}

/** One ICE server entry (`urls` a URL or a list of them), normalised; null when anything in it is wrong. */
export function parseIceServer(x: unknown): IceServer | null {
  if (!isRecord(x)) return null
  const raw = own(x, 'urls')
  const urls = typeof raw === 'string' ? [raw] : raw
  if (!Array.isArray(urls) || urls.length === 0 || urls.length > MAX_ICE_URLS || !urls.every(isIceUrl))
    return null
  const username = own(x, 'username')
  const credential = own(x, 'credential')
  if ((username !== undefined && !iceField(username)) || (credential !== undefined && !iceField(credential)))
    return null
  const out: IceServer = { urls: [...urls] }
  if (username !== undefined) out.username = username
  if (credential !== undefined) out.credential = credential
  return out
}

/**
 * An answer's ICE servers: a list of at most 8; a wrong entry is left out
 * (the rest still help). Null when the field is not such a list at all.
 */
export function parseIceServers(x: unknown): IceServer[] | null {
  if (!Array.isArray(x) || x.length > MAX_ICE_SERVERS) return null
  const out: IceServer[] = []
  for (const e of x) {
    const s = parseIceServer(e)
    if (s) out.push(s)
  }
  return out
}

/** The ICE fields of a register or peers answer; a wrong or missing field is as good as none. */
export function parseIceConfig(p: Record<string, unknown>): IceConfig {
  const out: IceConfig = {}
  const servers = parseIceServers(own(p, 'iceServers'))
  if (servers) out.iceServers = servers
  const ttl = own(p, 'iceTtlMs')
  if (servers && typeof ttl === 'number' && Number.isFinite(ttl))
    out.iceTtlMs = Math.min(MAX_ICE_TTL_MS, Math.max(MIN_ICE_TTL_MS, Math.floor(ttl)))
  return out
}

export function parseServerList(x: unknown): string[] | null {
  if (!Array.isArray(x) || x.length > MAX_SERVERS) return null
  const out: string[] = []
  for (const s of x) {
    if (typeof s !== 'string') return null
    const u = normalizeServerUrl(s)
    if (u !== null) out.push(u)
  }
  return out
}
