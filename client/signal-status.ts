/**
 * Where a node stands with the signal servers (the `status` a SignalClient
 * emits, and JoinOptions.onSignal), and what each refusal a server can send
 * means for the person who reads the SignalError.
 */
import { SignalError } from '../shared/errors.ts'
import { type IceServer, mayList, mayListIce, normalizeServerUrl } from '../shared/signal-events.ts'

export type SignalState = 'connecting' | 'registered' | 'down' | 'closed'

/** Where the client stands with the signal servers: what a `status` event (and JoinOptions.onSignal) gets. */
export interface SignalStatus {
  state: SignalState
  /** The server being tried (connecting), registered with, or that failed last (down). */
  server?: string
  /** Attempts since the last registration: 1 for the first. */
  attempt: number
  /** While down: milliseconds until the next attempt. */
  retryInMs?: number
  /** While down: why the last attempt failed (`reason` is a SignalError reason code). */
  error?: { reason: string; message: string }
}

/** Refusals of our identity itself: every server of the network would say the same. */
export const IDENTITY_REFUSALS: ReadonlySet<string> = new Set(['bad-signature', 'bad-key', 'weak-identity'])
/** Refusals a server would repeat to us (its configuration, our client): join does not ask it again. */
export const SERVER_REFUSALS: ReadonlySet<string> = new Set(['wrong-server', 'bad-payload', 'bad-answer'])
/** A join attempt is not started with less time than this left (it could not finish). */
export const MIN_ATTEMPT_MS = 250

/** What a server's refusal means for the person reading the error, and what to do about it. */
const REFUSALS: Readonly<Record<string, string>> = {
  'wrong-server':
    'it accepts registrations only at its own public URL(s) (its PUBLIC_URL): connect with that URL, or ask its operator to add this one',
  'weak-identity':
    "this node's key does not meet the network's identity puzzle: give joinOverlay the puzzleBits the server uses (its PUZZLE_BITS)",
  'bad-signature': 'it could not verify our registration (a client and server of different weft versions?)',
  'bad-key': 'it refused our public key (a client and server of different weft versions?)',
  'bad-payload': 'it refused the registration message (a client and server of different weft versions?)',
  'server-full': 'it is full (MAX_PEERS): try again later, or another server',
  'too-many-registrations': 'this address registered too often in the last minute: wait a minute',
  'too-many-identities': 'this address registered too many identities lately (IDENTITY_WINDOW_MS)',
  'rate-limited': 'we sent too much too fast',
  abuse: 'it dropped us for sending invalid events',
  timeout: 'we did not register in time',
  shutdown: 'it is shutting down',
  unavailable: 'its shared store (Redis) failed: try another server',
  'already-registered': 'this connection had registered already',
}

export function refusal(url: string, reason: string): string {
  return `${url} refused us (${reason}): ${REFUSALS[reason] ?? 'no explanation known for this code'}`
}

export function asSignalError(url: string, err: unknown): SignalError {
  if (err instanceof SignalError) return err
  return new SignalError('unreachable', `${url}: ${err instanceof Error ? err.message : String(err)}`)
}

/** Full jitter over an exponential cap, never zero: the delay before reconnect attempt `n` (0-based). */
export function backoffMs(n: number, minMs: number, maxMs: number): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(n, 30))
  return Math.round(minMs / 2 + Math.random() * cap)
}

/** A session counts as one that lasted (the reconnect backoff starts over) after this long, or maxBackoffMs if less. */
export const LASTING_SESSION_MS = 10_000

/**
 * The reconnect backoff after a registered connection drops. It starts over only once a session
 * has lasted (LASTING_SESSION_MS, or maxBackoffMs if less): a server that kicks the node right
 * after each registration sees reconnects back off to maxBackoffMs, not one every 250-750 ms.
 */
export class ReconnectBackoff {
  private n = 0
  private since: number | undefined

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
  ) {}

  /** Registered (now): the session runs from here. */
  registered(): void {
    this.since = Date.now()
  }

  /** The delay before the next reconnect attempt. */
  next(): number {
    if (this.since !== undefined && Date.now() - this.since >= Math.min(LASTING_SESSION_MS, this.maxMs))
      this.n = 0
    this.since = undefined
    return backoffMs(this.n++, this.minMs, this.maxMs)
  }
}

export function dedupe(xs: string[]): string[] {
  return [...new Set(xs)]
}

/**
 * The servers that `server`'s register answer lists, those it may list (mayList: no local address
 * from a public server, no http from an https one); the rest are left out.
 */
export function listedServers(server: string, servers: readonly unknown[]): string[] {
  return servers.map(normalizeServerUrl).filter((u): u is string => u !== null && mayList(server, u))
}

/**
 * The STUN/TURN servers `server`'s answer gives, less the URLs it may not hand out (mayListIce:
 * no local address from a server on a public host); an entry left with no URL goes. `left`: how many URLs went.
 */
export function nearIceServers(server: string, servers: IceServer[]): { kept: IceServer[]; left: number } {
  let left = 0
  const kept: IceServer[] = []
  for (const e of servers) {
    const urls = e.urls.filter((u) => mayListIce(server, u))
    left += e.urls.length - urls.length
    if (urls.length > 0) kept.push({ ...e, urls })
  }
  return { kept, left }
}

/** Why `start` gave up: the servers tried (how often), and the last one's reason. */
export function joinFailure(
  tried: Map<string, number>,
  last: SignalError | undefined,
  elapsedMs: number,
  leftMs: number,
  joinTimeoutMs: number,
): SignalError {
  const list = [...tried].map(([u, n]) => (n > 1 ? `${u} (${n} times)` : u)).join(', ')
  const why =
    leftMs < MIN_ATTEMPT_MS
      ? `no signal server registered this node within ${elapsedMs} ms (timeoutMs ${joinTimeoutMs})`
      : 'every signal server refused this node'
  return new SignalError(
    last?.reason ?? 'unreachable',
    `${why}; tried ${list}; the last said: ${last?.message ?? 'nothing'}`,
  )
}
