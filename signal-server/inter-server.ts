/**
 * Messages between signal-server instances that share one Redis, sealed
 * with a secret every instance is given (`redisSecret`), so that someone who
 * can PUBLISH on that Redis cannot make an instance deliver a frame "from"
 * any node, kick a node, or list a server.
 *
 * Channels (Redis pub/sub):
 *   <prefix>:x:all          every instance listens: replace, servers
 *   <prefix>:x:<instance>   one instance's inbox: signal, relay, relay-error for
 *                           nodes registered there (a frame goes to the target's
 *                           instance only, found through the host cache)
 *
 * A message, as bytes:
 *   version (1 byte, 1) | mac (32) | header length (4, big-endian) | header (JSON, UTF-8) | body
 *   mac    = HMAC-SHA256(key, channel || 0x00 || everything after the mac)
 *   key    = HKDF-SHA256(secret, salt "weft-inter-server", info "v1"), 32 bytes
 *   header = { t: type, i: sending instance, ts: its clock (ms), seq: its counter, ...fields }
 *
 *   t              fields                              body
 *   replace        network, id, session                -      `id` registered again (socket `session`):
 *                                                             instances drop any other socket of it
 *   signal         network, to, from, data             -      a signal for `to`, registered at the receiver
 *   relay          network, to, from                   frame  a relay frame for `to`
 *   relay-error    network, to, from, reason           -      the receiver's node `from` sent `to` a frame
 *                                                             that was dropped (reason 'congested')
 *   servers        urls                                -      the sender's public URLs (sent every sweep)
 *
 * The channel is under the MAC, so a message for one inbox cannot be replayed
 * into another. A receiver accepts a message only if, in this order, it is not
 * larger than any real one, its MAC is right, its header is well-formed, its
 * time is within `maxSkewMs` of the receiver's clock, and its seq is above the
 * last one accepted from that instance (one publishing connection per
 * instance, and Redis delivers in publish order, so a sender's seqs arrive
 * increasing). So a recorded message cannot be played again, now or later.
 * Each refusal is counted by reason. Everything is parsed as untrusted input:
 * nothing here throws.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import { isNodeId } from '../shared/bytes.ts'
import { isNetworkName, jsonByteLength, MAX_SERVERS, normalizeServerUrl } from '../shared/signal-events.ts'

/** An instance name on the wire: `<name>.<boot id>`, so a restarted instance is a new sender. */
export const INSTANCE_PATTERN = /^[A-Za-z0-9._-]{1,80}$/
/** Longest session accepted (`<instance>/<socket.io id>`). */
export const MAX_SESSION_CHARS = 128
const VERSION = 1
const MAC_BYTES = 32
const HEAD = 1 + MAC_BYTES + 4
/** Header JSON besides a signal's data. */
const HEADER_SLACK = 2048

export type InterServerMessage =
  | { t: 'replace'; network: string; id: string; session: string }
  /** `ref`: the sender's instance waits for a `signal-ack` with it. */
  | { t: 'signal'; network: string; to: string; from: string; data: unknown; ref: number }
  /** The target's instance's answer to signal `ref`: delivered, or why not. */
  | { t: 'signal-ack'; ref: number; result: RemoteSignalResult }
  | { t: 'relay'; network: string; to: string; from: string; frame: Uint8Array }
  | { t: 'relay-error'; network: string; to: string; from: string; reason: RemoteRelayError }
  /** Every sweep, from every instance: its public URLs (maybe none), and that it is alive. */
  | { t: 'servers'; urls: string[] }

export type RemoteSignalResult = 'ok' | 'unknown-peer' | 'congested'
export type RemoteRelayError = 'congested' | 'unknown-peer'
const SIGNAL_RESULTS: readonly unknown[] = ['ok', 'unknown-peer', 'congested'] satisfies RemoteSignalResult[]
const RELAY_ERRORS: readonly unknown[] = ['congested', 'unknown-peer'] satisfies RemoteRelayError[]
const isRef = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x > 0

/** Why a message from Redis was refused (counted as `interServer.<reason>`). */
export type InterServerRefusal = 'too-large' | 'bad-mac' | 'malformed' | 'stale' | 'replay'

export interface Received {
  /** The sending instance. */
  from: string
  message: InterServerMessage
}

export interface InterServerLimits {
  signalMaxBytes: number
  relayFrameMaxBytes: number
  /** Accepted distance between a message's time and ours. @default 30_000 */
  maxSkewMs?: number
}

export interface InterServerCodec {
  /** Seal `message` for `channel`, from this instance. */
  seal(channel: string, message: InterServerMessage, now: number): Buffer
  /** Open what arrived on `channel`: the message, or why it was refused. */
  open(channel: string, bytes: Buffer, now: number): Received | InterServerRefusal
}

export function deriveKey(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'weft-inter-server', 'v1', 32))
}

/** A record with only own fields of plain objects, or null. */
function record(x: unknown): Record<string, unknown> | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return null
  const proto = Object.getPrototypeOf(x)
  return proto === Object.prototype || proto === null ? (x as Record<string, unknown>) : null
}
function field(o: Record<string, unknown>, k: string): unknown {
  return Object.hasOwn(o, k) ? o[k] : undefined
}

/** The message a header and body describe, or null (pure; exported for tests). */
export function parseMessage(
  header: Record<string, unknown>,
  body: Uint8Array,
  limits: InterServerLimits,
): InterServerMessage | null {
  const t = field(header, 't')
  if (t === 'servers') {
    const urls = field(header, 'urls')
    if (!Array.isArray(urls) || urls.length > MAX_SERVERS || body.length > 0) return null
    const out: string[] = []
    for (const u of urls) {
      const n = normalizeServerUrl(u)
      if (n === null) return null
      out.push(n)
    }
    return { t, urls: out }
  }
  if (t === 'signal-ack') {
    const ref = field(header, 'ref')
    const result = field(header, 'result')
    if (!isRef(ref) || !SIGNAL_RESULTS.includes(result) || body.length > 0) return null
    return { t, ref, result: result as RemoteSignalResult }
  }
  const network = field(header, 'network')
  if (!isNetworkName(network)) return null
  if (t === 'replace') {
    const id = field(header, 'id')
    const session = field(header, 'session')
    if (!isNodeId(id) || typeof session !== 'string' || body.length > 0) return null
    if (session.length === 0 || session.length > MAX_SESSION_CHARS) return null
    return { t, network, id, session }
  }
  const to = field(header, 'to')
  const from = field(header, 'from')
  if (!isNodeId(to) || !isNodeId(from)) return null
  switch (t) {
    case 'signal': {
      const ref = field(header, 'ref')
      if (!Object.hasOwn(header, 'data') || !isRef(ref) || body.length > 0) return null
      const data = header.data
      const size = jsonByteLength(data, limits.signalMaxBytes)
      if (size < 0 || size > limits.signalMaxBytes) return null
      return { t, network, to, from, data, ref }
    }
    case 'relay':
      if (body.length > limits.relayFrameMaxBytes) return null
      return { t, network, to, from, frame: body }
    case 'relay-error': {
      const reason = field(header, 'reason')
      if (!RELAY_ERRORS.includes(reason) || body.length > 0) return null
      return { t, network, to, from, reason: reason as RemoteRelayError }
    }
    default:
      return null
  }
}

export function createInterServerCodec(
  secret: string,
  instance: string,
  limits: InterServerLimits,
): InterServerCodec {
  if (!INSTANCE_PATTERN.test(instance)) throw new TypeError(`bad instance name: ${instance}`)
  const key = deriveKey(secret)
  const maxSkewMs = limits.maxSkewMs ?? 30_000
  const maxHeader = limits.signalMaxBytes + HEADER_SLACK
  const maxBytes = HEAD + maxHeader + limits.relayFrameMaxBytes
  let seq = 0
  // Last seq accepted per sender, and when: only senders that passed the MAC get an entry.
  const last = new Map<string, { seq: number; at: number }>()

  const mac = (channel: string, rest: Buffer): Buffer =>
    createHmac('sha256', key).update(channel).update(Buffer.of(0)).update(rest).digest()

  /** Forget senders silent for longer than any replay of theirs could still be in the time window. */
  const prune = (now: number) => {
    if (last.size < 64) return
    for (const [k, v] of last) if (now - v.at > 3 * maxSkewMs) last.delete(k)
  }

  return {
    seal(channel, message, now) {
      const { frame, ...fields } = message as InterServerMessage & { frame?: Uint8Array }
      const header = Buffer.from(JSON.stringify({ ...fields, i: instance, ts: now, seq: ++seq }))
      const body = frame ? Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength) : Buffer.alloc(0)
      const len = Buffer.alloc(4)
      len.writeUInt32BE(header.length)
      // The MAC covers version | length | header | body, and sits after the version byte.
      const tag = mac(channel, Buffer.concat([Buffer.of(VERSION), len, header, body]))
      return Buffer.concat([Buffer.of(VERSION), tag, len, header, body])
    },

    open(channel, bytes, now) {
      if (bytes.length < HEAD || bytes.length > maxBytes) return 'too-large'
      if (bytes[0] !== VERSION) return 'bad-mac'
      const tag = bytes.subarray(1, 1 + MAC_BYTES)
      const rest = Buffer.concat([bytes.subarray(0, 1), bytes.subarray(1 + MAC_BYTES)])
      if (!timingSafeEqual(tag, mac(channel, rest))) return 'bad-mac'
      const headerLength = bytes.readUInt32BE(1 + MAC_BYTES)
      if (headerLength > maxHeader || HEAD + headerLength > bytes.length) return 'malformed'
      let header: Record<string, unknown> | null
      try {
        header = record(JSON.parse(bytes.subarray(HEAD, HEAD + headerLength).toString('utf8')))
      } catch {
        return 'malformed'
      }
      if (!header) return 'malformed'
      const from = field(header, 'i')
      const ts = field(header, 'ts')
      const n = field(header, 'seq')
      if (typeof from !== 'string' || !INSTANCE_PATTERN.test(from)) return 'malformed'
      if (typeof ts !== 'number' || !Number.isFinite(ts)) return 'malformed'
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) return 'malformed'
      const b = bytes.subarray(HEAD + headerLength)
      const message = parseMessage(header, new Uint8Array(b.buffer, b.byteOffset, b.byteLength), limits)
      if (!message) return 'malformed'
      if (Math.abs(now - ts) > maxSkewMs) return 'stale'
      const seen = last.get(from)
      if (seen && n <= seen.seq) return 'replay'
      last.set(from, { seq: n, at: now })
      prune(now)
      return { from, message }
    },
  }
}
