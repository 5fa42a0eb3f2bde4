/**
 * STUN and TURN servers the operator hands to clients (`ICE_SERVERS`), so
 * that peers behind NATs can open direct WebRTC links instead of going
 * through this server's relay, which is bounded by its quota.
 *
 * Configuration: a JSON list of RTCIceServer entries,
 *
 *   ICE_SERVERS='[{"urls":"stun:stun.example.org:3478"},
 *                 {"urls":["turn:turn.example.org:3478?transport=udp","turns:turn.example.org:5349"]}]'
 *
 * A TURN entry either carries its own `username` and `credential` (handed to
 * every client as they are), or none, and then `TURN_SECRET` makes
 * time-limited credentials for each registration, as coturn's
 * `use-auth-secret` / `static-auth-secret` (the "TURN REST API") expects:
 *
 *   username   = "<unix time when it expires>:<node id>"
 *   credential = base64(HMAC-SHA1(TURN_SECRET, username))
 *
 * valid for `TURN_CREDENTIAL_TTL_S` (default a day). A client gets fresh ones
 * with every register and `peers` answer, and asks again before they expire
 * (the answer's `iceTtlMs`). A leaked credential is worth that long, for one
 * node id; the secret never leaves the server.
 *
 * Everything is checked at startup: a bad entry stops the server with a
 * message naming it.
 */
import { createHmac } from 'node:crypto'
import {
  type IceServer,
  isIceUrl,
  MAX_ICE_FIELD_CHARS,
  MAX_ICE_SERVERS,
  MAX_ICE_TTL_MS,
  MAX_ICE_URLS,
  MIN_ICE_TTL_MS,
} from '../shared/signal-events.ts'

/** An entry of ICE_SERVERS as an operator writes it (RTCIceServer's shape). */
export interface IceServerConfig {
  urls: string | string[]
  username?: string
  credential?: string
}

/** Shortest TURN secret accepted: the credentials handed out must not let anyone guess it offline. */
export const MIN_TURN_SECRET_CHARS = 16
/** @default a day */
export const DEFAULT_TURN_CREDENTIAL_TTL_S = 86_400

const isTurn = (url: string) => url.startsWith('turn:') || url.startsWith('turns:')

/**
 * ICE_SERVERS checked and normalised (every `urls` a list); a TypeError that
 * names the entry and what is wrong with it otherwise. `turnSecret` says
 * whether TURN entries without credentials can be given made ones.
 */
export function checkIceServers(x: unknown, turnSecret: string | undefined): IceServer[] {
  const where = (i: number) => `iceServers (ICE_SERVERS) entry ${i + 1}`
  if (!Array.isArray(x))
    throw new TypeError(
      'iceServers (ICE_SERVERS) must be a JSON list such as [{"urls":"stun:stun.example.org:3478"}]',
    )
  if (x.length > MAX_ICE_SERVERS)
    throw new TypeError(`iceServers (ICE_SERVERS): at most ${MAX_ICE_SERVERS} entries (clients take no more)`)
  const out: IceServer[] = []
  x.forEach((e: unknown, i) => {
    if (typeof e !== 'object' || e === null || Array.isArray(e))
      throw new TypeError(`${where(i)}: not an object with "urls"`)
    const entry = e as Record<string, unknown>
    const extra = Object.keys(entry).filter((k) => !['urls', 'username', 'credential'].includes(k))
    if (extra.length > 0)
      throw new TypeError(`${where(i)}: unknown field ${extra.join(', ')} (urls, username, credential)`)
    const urls = typeof entry.urls === 'string' ? [entry.urls] : entry.urls
    if (!Array.isArray(urls) || urls.length === 0 || urls.length > MAX_ICE_URLS)
      throw new TypeError(`${where(i)}: "urls" must be a URL or a list of 1 to ${MAX_ICE_URLS} URLs`)
    for (const u of urls)
      if (!isIceUrl(u))
        throw new TypeError(
          `${where(i)}: not a STUN or TURN URL: ${JSON.stringify(u)} ` +
            '(stun:host[:port], stuns:, turn:host[:port][?transport=udp|tcp], turns:)',
        )
    const { username, credential } = entry
    for (const [name, v] of [
      ['username', username],
      ['credential', credential],
    ] as const)
      if (v !== undefined && (typeof v !== 'string' || v.length === 0 || v.length > MAX_ICE_FIELD_CHARS))
        throw new TypeError(
          `${where(i)}: "${name}" must be a string of 1 to ${MAX_ICE_FIELD_CHARS} characters`,
        )
    if ((username === undefined) !== (credential === undefined))
      throw new TypeError(`${where(i)}: give both "username" and "credential", or neither`)
    const turn = (urls as string[]).some(isTurn)
    if (turn && username === undefined && turnSecret === undefined)
      throw new TypeError(
        `${where(i)}: a TURN server needs "username" and "credential", or TURN_SECRET (turnSecret) ` +
          "to make time-limited ones per client (coturn's use-auth-secret)",
      )
    if (turn && (urls as string[]).some((u) => !isTurn(u)))
      throw new TypeError(
        `${where(i)}: put STUN and TURN URLs in separate entries (TURN ones carry credentials)`,
      )
    const s: IceServer = { urls: [...(urls as string[])] }
    if (typeof username === 'string') s.username = username
    if (typeof credential === 'string') s.credential = credential
    out.push(s)
  })
  if (turnSecret !== undefined) {
    if (turnSecret.length < MIN_TURN_SECRET_CHARS)
      throw new TypeError(`turnSecret (TURN_SECRET) must have at least ${MIN_TURN_SECRET_CHARS} characters`)
    if (!out.some((s) => s.username === undefined && s.urls.some(isTurn)))
      throw new TypeError(
        'turnSecret (TURN_SECRET) is set, but no TURN entry of iceServers (ICE_SERVERS) is left without credentials for it',
      )
  }
  return out
}

export interface IceOptions {
  iceServers: IceServer[]
  turnSecret?: string | undefined
  turnCredentialTtlS: number
}

/** What a register or peers answer carries for node `id` at `nowMs`: the servers, with made credentials. */
export type IceAnswer = { iceServers: IceServer[]; iceTtlMs?: number } | Record<string, never>

/** The ICE part of answers. Without configuration, nothing (clients then use their own, or none). */
export function createIce(o: IceOptions): (id: string, nowMs: number) => IceAnswer {
  if (o.iceServers.length === 0) return () => ({})
  const secret = o.turnSecret
  if (secret === undefined) {
    const fixed = { iceServers: o.iceServers }
    return () => fixed
  }
  const ttlMs = Math.min(MAX_ICE_TTL_MS, Math.max(MIN_ICE_TTL_MS, o.turnCredentialTtlS * 1000))
  return (id, nowMs) => {
    const username = `${Math.floor((nowMs + ttlMs) / 1000)}:${id}`
    const credential = turnCredential(secret, username)
    return {
      iceServers: o.iceServers.map((s) =>
        s.username === undefined && s.urls.some(isTurn) ? { ...s, username, credential } : s,
      ),
      iceTtlMs: ttlMs,
    }
  }
}

/** coturn's REST API credential for `username`: base64(HMAC-SHA1(secret, username)). */
export function turnCredential(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64')
}
