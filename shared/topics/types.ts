/**
 * Topic multicast's dependencies, options (with their defaults), and the
 * interface createTopics returns (topics.ts).
 */
import type { Counters, ProtocolNode, SignedProtocolDeps } from '../protocol.ts'
import type { Value } from '../types.ts'
import type { TopicMsg } from './messages.ts'

export const JOIN_METHOD = '\u0000topics.join'
export const INJECT_METHOD = '\u0000topics.inject'

export interface TopicsDeps extends SignedProtocolDeps<TopicMsg> {
  /** Send over the link to `to`, opening one on demand. */
  send(to: string, msg: TopicMsg): void
  /** The node that owns a ring position now. */
  lookup(pos: string): Promise<string>
  /** Do we own this ring position now? */
  owns(pos: string): boolean
  /** A routed request (the router's). */
  request(to: string, method: string, data: Value, opts?: { timeoutMs?: number }): Promise<Value>
  /** Serve a routed request method (the router's); the handler sees the verified origin. */
  serve(method: string, fn: (data: Value, meta: { from: string }) => Promise<Value | undefined>): () => void
  /** A topic's ring position. */
  keyPosition(topic: string): string | Promise<string>
  /** A publication for the application (we subscribe to `topic`). */
  deliver(topic: string, data: Value, meta: { from: string; hops: number }): void
}

export interface TopicsOptions {
  /** Children the root places under one node. @default 4 */
  fanout?: number
  /** How often a member renews its place with the root. @default 30_000 */
  refreshMs?: number
  /** A JOIN's routed request waits this long. @default 10_000 */
  joinTimeoutMs?: number
  /** An ATTACH unanswered this long counts as refused. @default 5_000 */
  attachTimeoutMs?: number
  /** Longest wait between two JOIN attempts after failures. @default 30_000 */
  maxBackoffMs?: number
  /** Topics this node subscribes to at most. @default 256 */
  maxTopics?: number
  /** Topics this node is the root of at most. @default 256 */
  maxRooted?: number
  /** Members per topic at the root. @default 512 */
  maxMembers?: number
  /** Children this node adopts, over all topics. @default 256 */
  maxChildren?: number
  /** Topics one peer may be our child in (one peer cannot hold every child slot). @default 32 */
  maxChildTopics?: number
  /** Largest signed publication (bytes). @default 1_048_576 */
  maxPayloadBytes?: number
  /** Publication ids remembered (the replay window narrows past it). @default 8_192 */
  seenMax?: number
}

export type Resolved = Required<TopicsOptions>

export const DEFAULTS: Resolved = {
  fanout: 4,
  refreshMs: 30_000,
  joinTimeoutMs: 10_000,
  attachTimeoutMs: 5_000,
  maxBackoffMs: 30_000,
  maxTopics: 256,
  maxRooted: 256,
  maxMembers: 512,
  maxChildren: 256,
  maxChildTopics: 32,
  maxPayloadBytes: 1_048_576,
  seenMax: 8_192,
}
/** The replay window (as the mesh's). */
export const MAX_AGE_MS = 120_000
export const MAX_SKEW_MS = 60_000

export interface Membership {
  state: 'joining' | 'attaching' | 'attached'
  parent: string | null
  avoid: string[]
  /** When the next JOIN may go (joining), the ATTACH times out (attaching), or the refresh is due (attached). */
  due: number
  backoff: number
  busy: boolean
}

export interface TopicsInfo {
  topic: string
  state: Membership['state'] | 'root'
  parent: string | null
  children: string[]
}

export interface Topics extends ProtocolNode<TopicMsg> {
  /** Join `topic`'s tree (idempotent). */
  join(topic: string): void
  /** Leave `topic`'s tree: our children are told to join again. */
  leave(topic: string): void
  /** Sign and send a publication; resolves to its id once it is on its way. */
  publish(topic: string, data: Value): Promise<string>
  tick(now: number): Promise<void>
  /** The link to `peer` closed: a lost parent means joining again; a lost child leaves our set. */
  linkDown(peer: string): void
  /** Nodes we have tree links with (they must stay open). */
  neighbours(): Set<string>
  info(): TopicsInfo[]
  readonly counters: Counters
  close(): void
}
