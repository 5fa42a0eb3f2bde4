/**
 * The checks `joinOverlay` makes on its options before it does anything
 * else, so that a mistake gets a message saying what is wrong and how to put
 * it right (a TypeError), not a refusal code from a server later
 * (`SignalError: bad-payload` for a network name with a space, socket.io's
 * "Invalid namespace" for a URL with a path).
 */
import { isIceUrl, MAX_SERVERS, NETWORK_PATTERN, normalizeServerUrl } from '../shared/signal-events.ts'
import type { JoinOptions } from './node/options.ts'

/** Every option joinOverlay takes (the compiler keeps this list and JoinOptions alike). */
const JOIN_OPTIONS = Object.keys({
  signal: 1,
  network: 1,
  secret: 1,
  relay: 1,
  maxPeers: 1,
  targetPeers: 1,
  wrtc: 1,
  directTimeoutMs: 1,
  maxMessageBytes: 1,
  requestTimeoutMs: 1,
  maxLinks: 1,
  iceServers: 1,
  timeoutMs: 1,
  onSignal: 1,
  dataDir: 1,
  persistDht: 1,
  overlaySignals: 1,
  puzzleBits: 1,
  presence: 1,
  files: 1,
} satisfies Record<keyof JoinOptions, 1>)

/**
 * The option `key` is likely a misspelling of: one that differs only in case, or by at most two
 * letters (added, dropped or changed) for names of six letters or more. An unrelated extra key (an
 * app's own setting in a shared object) is left alone: only a near miss, whose value would otherwise
 * be dropped without a word, is an error.
 */
function nearMiss(key: string): string | undefined {
  const lower = key.toLowerCase()
  return JOIN_OPTIONS.find((k) => {
    if (k.toLowerCase() === lower) return true
    return key.length >= 6 && k.length >= 6 && editDistanceAtMost2(lower, k.toLowerCase())
  })
}

/** Whether `a` becomes `b` in at most two insertions, deletions or substitutions (banded Levenshtein). */
function editDistanceAtMost2(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 2) return false
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(
        (prev[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      )
    prev = row
  }
  return (prev[b.length] as number) <= 2
}

/**
 * A signal server URL as weft needs it: http: or https:, the server's origin
 * (no path, query or credentials). Returns it normalised; throws a TypeError
 * naming the problem and the URL to use instead.
 */
export function checkSignalUrl(x: unknown): string {
  if (typeof x !== 'string' || x.trim() === '')
    throw new TypeError(
      `signal: each signal server is a URL string such as 'http://localhost:8080' (got ${describe(x)})`,
    )
  let u: URL
  try {
    u = new URL(x)
  } catch {
    throw new TypeError(`signal: not a URL: ${JSON.stringify(x)}; write it in full, e.g. 'https://${x}'`)
  }
  if (u.protocol === 'ws:' || u.protocol === 'wss:') {
    const fixed = `${u.protocol === 'wss:' ? 'https' : 'http'}://${u.host}`
    throw new TypeError(
      `signal: ${JSON.stringify(x)} is a WebSocket URL; give the server's http(s) URL (${fixed}): weft opens the WebSocket itself`,
    )
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new TypeError(
      `signal: a signal server URL starts with http:// or https:// (got ${JSON.stringify(x)}` +
        `${/^[a-z0-9.-]+:\d+/i.test(x) ? `; did you mean 'http://${x}'?` : ''})`,
    )
  if (u.username || u.password)
    throw new TypeError(`signal: no user or password in a signal server URL (${u.host})`)
  if (u.pathname !== '/' || u.search !== '')
    throw new TypeError(
      `signal: a signal server URL is the server's address alone, without a path or query: ` +
        `got ${JSON.stringify(x)}, use '${u.origin}'`,
    )
  const n = normalizeServerUrl(u.origin)
  if (n === null) throw new TypeError(`signal: URL too long: ${JSON.stringify(x.slice(0, 80))}…`)
  return n
}

/** `signal` of JoinOptions: one URL or a list of 1 to 16; each checked (checkSignalUrl). */
export function checkSignalUrls(x: unknown): string[] {
  const list = Array.isArray(x) ? x : [x]
  if (Array.isArray(x) && (x.length === 0 || x.length > MAX_SERVERS))
    throw new TypeError(`signal: give 1 to ${MAX_SERVERS} signal server URLs (got ${x.length})`)
  return list.map(checkSignalUrl)
}

/** A network name: the same rule the server applies, said in words. */
export function checkNetworkName(x: unknown): string {
  if (typeof x !== 'string' || !NETWORK_PATTERN.test(x))
    throw new TypeError(
      `network: 1 to 64 characters of letters A-Z a-z, digits 0-9, '.', '_' and '-' (got ${describe(x)})`,
    )
  return x
}

/** Checks every option joinOverlay takes, in the order a reader meets them; the first problem throws. */
export function checkJoinOptions(o: unknown): void {
  if (typeof o !== 'object' || o === null)
    throw new TypeError("joinOverlay needs options: { signal: 'https://your-signal-server' }")
  const opts = o as Record<string, unknown>
  for (const key of Object.keys(opts)) {
    if (JOIN_OPTIONS.includes(key)) continue
    const meant = nearMiss(key)
    if (meant) throw new TypeError(`${key}: not an option of joinOverlay; did you mean ${meant}?`)
  }
  if (opts.signal === undefined)
    throw new TypeError(
      "joinOverlay needs { signal: URL or URLs of signal servers }, e.g. 'http://localhost:8080'",
    )
  checkSignalUrls(opts.signal)
  if (opts.network !== undefined) checkNetworkName(opts.network)
  if (opts.secret !== undefined && !(typeof opts.secret === 'string' && opts.secret.length > 0))
    throw new TypeError(`secret: a string of at least one character (got ${typeof opts.secret})`)
  if (opts.relay !== undefined && !['auto', 'force', 'never'].includes(opts.relay as string))
    throw new TypeError(`relay: 'auto', 'force' or 'never' (got ${describe(opts.relay)})`)
  for (const k of ['maxPeers', 'targetPeers', 'maxLinks', 'maxMessageBytes'] as const)
    if (opts[k] !== undefined && !(Number.isInteger(opts[k]) && (opts[k] as number) >= 1))
      throw new TypeError(`${k}: a whole number of at least 1 (got ${describe(opts[k])})`)
  const maxPeers = (opts.maxPeers as number | undefined) ?? 8
  if (opts.targetPeers !== undefined && (opts.targetPeers as number) > maxPeers)
    throw new TypeError(`targetPeers: at most maxPeers (${maxPeers}) (got ${describe(opts.targetPeers)})`)
  for (const k of ['overlaySignals', 'persistDht'] as const)
    if (opts[k] !== undefined && typeof opts[k] !== 'boolean')
      throw new TypeError(`${k}: true or false (got ${describe(opts[k])})`)
  if (opts.dataDir !== undefined && !(typeof opts.dataDir === 'string' && opts.dataDir !== ''))
    throw new TypeError(`dataDir: a folder's path, such as './weft-data' (got ${describe(opts.dataDir)})`)
  for (const k of ['timeoutMs', 'directTimeoutMs', 'requestTimeoutMs'] as const)
    if (
      opts[k] !== undefined &&
      !(typeof opts[k] === 'number' && (opts[k] as number) > 0 && Number.isFinite(opts[k]))
    )
      throw new TypeError(`${k}: milliseconds, a number above 0 (got ${describe(opts[k])})`)
  if (opts.iceServers !== undefined) checkIceServerList(opts.iceServers)
  if (opts.presence !== undefined) checkPresenceOptions(opts.presence)
  if (opts.files !== undefined) checkFilesOptions(opts.files)
  if (opts.onSignal !== undefined && typeof opts.onSignal !== 'function')
    throw new TypeError(`onSignal: a function (got ${describe(opts.onSignal)})`)
}

/** `presence`: { intervalMs?: 1000 to 120000 }. */
function checkPresenceOptions(x: unknown): void {
  if (typeof x !== 'object' || x === null || Array.isArray(x))
    throw new TypeError(`presence: an object such as { intervalMs: 10000 } (got ${describe(x)})`)
  for (const k of Object.keys(x))
    if (k !== 'intervalMs')
      throw new TypeError(`presence: unknown option ${JSON.stringify(k)} (it takes intervalMs)`)
  const ms = (x as { intervalMs?: unknown }).intervalMs
  if (ms !== undefined && !(typeof ms === 'number' && Number.isFinite(ms) && ms >= 1000 && ms <= 120_000))
    throw new TypeError(`presence.intervalMs: milliseconds from 1000 to 120000 (got ${describe(ms)})`)
}

/** `files`: { maxBytes?: a whole number of bytes, at least 1 MiB }. */
function checkFilesOptions(x: unknown): void {
  if (typeof x !== 'object' || x === null || Array.isArray(x))
    throw new TypeError(`files: an object such as { maxBytes: 2 ** 30 } (got ${describe(x)})`)
  for (const k of Object.keys(x))
    if (k !== 'maxBytes')
      throw new TypeError(`files: unknown option ${JSON.stringify(k)} (it takes maxBytes)`)
  const n = (x as { maxBytes?: unknown }).maxBytes
  if (n !== undefined && !(Number.isSafeInteger(n) && (n as number) >= 1 << 20))
    throw new TypeError(
      `files.maxBytes: a whole number of bytes, at least 1 MiB (1048576) (got ${describe(n)})`,
    )
}

/** `iceServers` as RTCPeerConnection takes it; checked here so a typo fails now, not at the first link. */
function checkIceServerList(x: unknown): void {
  if (!Array.isArray(x))
    throw new TypeError(
      `iceServers: a list such as [{ urls: 'stun:stun.example.org:3478' }] (got ${describe(x)})`,
    )
  x.forEach((e: unknown, i) => {
    const urls = (e as { urls?: unknown } | null)?.urls
    const list = typeof urls === 'string' ? [urls] : urls
    if (!Array.isArray(list) || list.length === 0)
      throw new TypeError(`iceServers[${i}]: needs urls, e.g. { urls: 'stun:stun.example.org:3478' }`)
    for (const u of list)
      if (!isIceUrl(u))
        throw new TypeError(
          `iceServers[${i}]: not a STUN or TURN URL: ${describe(u)} (stun:host:port, turn:host:port, turns:host:port)`,
        )
  })
}

function describe(x: unknown): string {
  if (typeof x === 'string') return JSON.stringify(x.length > 80 ? `${x.slice(0, 80)}…` : x)
  if (typeof x === 'function') return 'a function'
  if (Array.isArray(x)) return 'a list'
  if (x === null) return 'null'
  return typeof x === 'object' ? 'an object' : String(x)
}
