/**
 * The router's dependencies (what the host gives it), its options with
 * their defaults, and the interface it offers.
 */
import type { BoxRecord } from '../crypto/box-record.ts'
import type { Keyring } from '../identity/keys.ts'
import type { Counters, ProtocolNode } from '../protocol.ts'
import type { Value } from '../types.ts'
import { ROUTE_MAX_AGE_MS, ROUTE_MAX_SKEW_MS, type RouteMsg } from './messages.ts'
import type { OutboxOptions } from './outbox.ts'
import type { ServedOptions } from './served.ts'

/** The way toward a destination, as the host sees it now. */
export interface Hop {
  /** The next node: the destination itself when linked to it. */
  via: string
  /** Is a link to `via` open now? (A closed one is opened on demand by `sendVia`.) */
  open: boolean
}

export interface RouterDeps {
  /** This node's id. */
  readonly id: string
  /** Signs our envelopes and checks others' (the host refuses keys below the network's puzzle). */
  readonly keys: Keyring
  now(): number
  /** Uniform in [0, 1): nonces and the first request id. */
  random(): number
  /**
   * The next hop toward `dst`: `dst` itself when a link to it is open; else
   * an open link strictly closer to `dst` on the ring; else the ring's next
   * hop (which never passes `dst`). Null when this node knows no way (it is
   * not on a ring, or its part of the ring has no place for `dst`).
   */
  nextHop(dst: string): Hop | null
  /**
   * Send over the open link to `to`. A rejection (too large, link closed)
   * reaches the caller of send/request; with no open link it may be dropped.
   */
  send(to: string, msg: RouteMsg): void | Promise<void>
  /**
   * Send over the link to `to`, opening one on demand; best effort, never throws. `unreachable`
   * is called if the link cannot be opened (the dial failed, or `to` refused it): the message is
   * then dropped. (Not for drops under load: a full queue, a spent dial budget.)
   */
  sendVia(to: string, msg: RouteMsg, unreachable?: () => void): void
  /** Open a link to `to` outside the ring; resolves once it is open, rejects when it cannot be. */
  connect(to: string): Promise<void>
  /** A link-setup signal from `from` (routed, or over the link with it: `overLink`). */
  onSignal?(from: string, data: Value, overLink: boolean): void
  /** A link-setup signal the ring could not place: send it to `dst` another way (the signal server). */
  resendSignal?(dst: string, data: Value): void
}

export interface RouterOptions {
  /** Largest inner message (MessagePack bytes) sent in an envelope. @default 4_194_304 (4 MiB) */
  maxMessageBytes?: number
  /** How long a request waits for its answer unless told. @default 10_000 */
  requestTimeoutMs?: number
  /** An unanswered request is sent again after this long, then after twice as long each time. 0: never. @default 1_000 */
  retryMs?: number
  /** Longest gap between two sends of a request. @default 2_000 */
  maxRetryGapMs?: number
  /** A request is sent again only this long after its first send (the served memory must cover it). @default 30_000 */
  retryWindowMs?: number
  /** A request larger than this (MessagePack bytes) is sent once: a copy costs its size on every hop. @default 65_536 */
  maxRetryBytes?: number
  /** Envelopes kept for a resend after `noroute`. @default 15 s, 128 destinations, 4 MiB, 256 per destination */
  outbox?: Partial<OutboxOptions>
  /** Envelope signatures remembered (the replay window narrows past it). @default 8_192 */
  seenMax?: number
  /** The replay window's past. @default 120_000 (ROUTE_MAX_AGE_MS) */
  maxAgeMs?: number
  /** The replay window's future: the clock skew allowed. @default 60_000 (ROUTE_MAX_SKEW_MS) */
  maxSkewMs?: number
  /** Requests served here, remembered for copies. @default 60 s, 8,192 entries, 1,024 per source, 4 MiB of answers (256 KiB each), resent at most 8 times, 500 ms apart */
  served?: Partial<ServedOptions>
  /** After a `noroute` for a node, `preferServer(node)` holds this long. @default 60_000 */
  serverSignalsMs?: number
  /**
   * Seal envelope bodies to the destination's box key (PROTOCOL-route.md,
   * "Sealed envelopes"), so the nodes that forward them read only the head.
   * Costs real X25519/AES-GCM (the simulator's nodes leave it off). @default false
   */
  seal?: boolean
}

export type RequestHandler = (
  data: Value,
  meta: { from: string },
) => Value | undefined | Promise<Value | undefined>
export type MessageListener = (m: { from: string; topic: string; data: Value; hops: number }) => void

export interface Router extends ProtocolNode<RouteMsg> {
  /** A route message over the link with `from` (parsed by parseRouteMsg). */
  handle(from: string, msg: RouteMsg): Promise<void>
  tick(now: number): void
  /** The link to `peer` closed: requests waiting for its answer fail (NoRouteError). */
  linkDown(peer: string): void
  /** Deliver `data` to the subscribers of `topic` at node `to` (ourselves included: hops 0). */
  send(to: string, topic: string, data: Value): Promise<void>
  /** Call `method` at node `to`: its handler's answer, RemoteError, NoRouteError or TimeoutError. */
  request(to: string, method: string, data: Value, opts?: { timeoutMs?: number }): Promise<Value>
  /** Answer requests for `method` (one handler per method, the last wins); returns the undo. */
  serve(method: string, fn: RequestHandler): () => void
  /** Called with every unicast message delivered here. */
  onMessage(fn: MessageListener): () => void
  /** Send a link-setup signal to `to` over the ring, in an envelope. */
  signal(to: string, data: Value): Promise<void>
  /** Can a signal to `to` go over the ring now (a hop is open and no `noroute` came for it lately)? */
  canSignal(to: string): boolean
  /** Fail every pending request (ClosedError); later calls fail too. */
  close(): void
  /** Traffic and drops by name (PROTOCOL-route.md). */
  readonly counters: Counters
  /** Entries held in each bounded memory. */
  sizes(): RouterSizes
  /** Our signed box record (with `seal`), once made: for the link hello. */
  boxRecord(): BoxRecord | undefined
  /** A box record a peer showed (its hello): verified, and kept if it is the newest for `id`. */
  learnBox(id: string, record: BoxRecord): void
}

export interface RouterSizes {
  pending: number
  outbox: number
  outboxBytes: number
  seen: number
  served: number
  servedBytes: number
}

const DEFAULT_OUTBOX: OutboxOptions = {
  keepMs: 15_000,
  maxDsts: 128,
  maxBytes: 4 * 1024 * 1024,
  maxPerDst: 256,
}
const DEFAULT_SERVED: ServedOptions = {
  keepMs: 60_000,
  maxEntries: 8_192,
  maxPerSource: 1_024,
  maxBytes: 4 * 1024 * 1024,
  maxAnswerBytes: 256 * 1024,
  resendGapMs: 500,
  maxResends: 8,
}

export type ResolvedRouterOptions = Required<Omit<RouterOptions, 'outbox' | 'served'>> & {
  outbox: OutboxOptions
  served: ServedOptions
}

/** The options with their defaults filled in. */
export function resolveRouterOptions(options: RouterOptions = {}): ResolvedRouterOptions {
  return {
    maxMessageBytes: options.maxMessageBytes ?? 4 * 1024 * 1024,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    retryMs: options.retryMs ?? 1_000,
    maxRetryGapMs: options.maxRetryGapMs ?? 2_000,
    retryWindowMs: options.retryWindowMs ?? 30_000,
    maxRetryBytes: options.maxRetryBytes ?? 65_536,
    seenMax: options.seenMax ?? 8_192,
    maxAgeMs: options.maxAgeMs ?? ROUTE_MAX_AGE_MS,
    maxSkewMs: options.maxSkewMs ?? ROUTE_MAX_SKEW_MS,
    serverSignalsMs: options.serverSignalsMs ?? 60_000,
    seal: options.seal ?? false,
    outbox: { ...DEFAULT_OUTBOX, ...options.outbox },
    served: { ...DEFAULT_SERVED, ...options.served },
  }
}
