/**
 * What a Chord node is built from: its dependencies (`ChordDeps`), its
 * options with their defaults (`ChordOptions`, resolved once into
 * `ResolvedOptions`), and the context every part of the node shares
 * (`ChordContext`: id, deps, options, counters, a send that never throws).
 */
import { DEFAULT_MAX_SKEW_MS } from '../hlc.ts'
import { bump, type Counters, type SignedProtocolDeps } from '../protocol.ts'
import { type ChordMsg, LIMITS } from './messages.ts'
import type { StoreLimits } from './store.ts'

export interface ChordDeps extends SignedProtocolDeps<ChordMsg> {
  /**
   * Send `msg` to `to`. `unreachable`, when the host can tell (a link it
   * tried to open failed: the node is not registered any more), is called
   * then, and the request it carried fails at once rather than at its
   * timeout; a host that cannot tell never calls it.
   */
  send(to: string, msg: ChordMsg, unreachable?: () => void): void
  /**
   * Is there an open link to `peer`? A `route`'s answer goes to its origin,
   * and one whose origin is not linked makes the host open a link at a
   * peer's word: those are budgeted per peer (`ROUTE_DIALS`, handlers.ts).
   * @default no node is linked but the one a message came from
   */
  linked?: (peer: string) => boolean
  /**
   * A string's ring position: id160(utf8(s)), for provider keys and record
   * slots (recordSlot(author, key)). Injected where WebCrypto's asynchronous
   * digest does not fit (the simulator gives keyPositionSync).
   * @default id160(utf8(s)) through WebCrypto
   */
  keyPosition?: (key: string) => string | Promise<string>
}

export interface ChordOptions {
  /**
   * Shortest successor list. The list grows to the paper's 2·log2 N as the
   * node estimates the ring size N from the spacing of its successors, so
   * that a node keeps a live successor when half the ring fails at once.
   * @default 8
   */
  successors?: number
  /** Longest successor list (2·log2 N reaches 32 at N = 65,536). @default 32 */
  maxSuccessors?: number
  /** Copies of each record in all: on the key's successor and the next ones. @default 3 */
  replicas?: number
  /** Interval between stabilizations. @default 1000 */
  stabilizeMs?: number
  /** Interval between finger refreshes (one lookup each). @default 500 */
  fixFingersMs?: number
  /** Interval between predecessor pings. @default 2000 */
  checkPredecessorMs?: number
  /**
   * While the routing table stays the same, stabilize, fix-fingers and
   * check-predecessor back off (their periods double after each quiet
   * stabilization) up to this period each; any change or failure brings
   * them back at once (scheduler.ts). At most the base periods: no back-off.
   * @default 30_000
   */
  idleMaxMs?: number
  /** A request (one hop) unanswered this long fails and marks its target dead. @default 3000 */
  requestTimeoutMs?: number
  /** Interval between a primary's offers to its replicas (and hand-off of stray records). @default 60_000 */
  republishMs?: number
  /** Lifetime of our provider records. @default 600_000 */
  providerTtlMs?: number
  /** How often we re-sign and re-store what we provide. @default providerTtlMs / 3 */
  provideRefreshMs?: number
  /** Largest encoded value (MessagePack bytes). @default 262_144 */
  maxValueBytes?: number
  /** Largest key, in UTF-8 bytes. @default 1024 */
  maxKeyBytes?: number
  /** Records one author may have stored on this node. @default 10_000 */
  perAuthorQuota?: number
  /** Bytes of records one author may have stored on this node. @default 16_777_216 (16 MiB) */
  perAuthorBytes?: number
  /**
   * A record or provider record signed more than this far ahead of our clock
   * is refused (`drop.record.future`, `drop.provider.future`).
   * @default 60_000
   */
  maxSkewMs?: number
  /** Records this node stores in all. @default 100_000 */
  maxRecords?: number
  /** Bytes of records and provider records this node stores in all. @default 134_217_728 (128 MiB) */
  maxStoreBytes?: number
  /** Provider records this node stores in all. @default 100_000 */
  maxProviderRecords?: number
  /** Provider records one provider may have stored on this node. @default 1_000 */
  perProviderQuota?: number
  /** Providers kept per key (those expiring last win). @default 256 */
  maxProvidersPerKey?: number
  /** Longest provider record lifetime accepted from others. @default 86_400_000 */
  maxProviderTtlMs?: number
  /** Tombstones are dropped this long after they were written. @default 86_400_000 */
  tombstoneTtlMs?: number
  /** Requests in flight at once; more fail at once. @default 1024 */
  maxPending?: number
  /** Iterative lookups (see lookup.ts); false: recursive. @default true */
  iterative?: boolean
  /**
   * Bytes of replies one peer's requests may make us send per `replyWindowMs`
   * (records, provider records, id lists); past it a request is answered
   * `err busy` (`drop.replyBudget`, reply-budget.ts). @default 4_194_304 (4 MiB)
   */
  replyBudgetBytes?: number
  /** The window of `replyBudgetBytes` and `routeBudget`. @default 10_000 */
  replyWindowMs?: number
  /**
   * Recursive lookups (`route`) one peer may have us pass on per
   * `replyWindowMs`; past it they are dropped (`drop.routeBudget`; answered
   * `err busy` when the peer is the route's origin). @default 256
   */
  routeBudget?: number
}

export interface ResolvedOptions {
  successors: number
  maxSuccessors: number
  replicas: number
  stabilizeMs: number
  fixFingersMs: number
  checkPredecessorMs: number
  idleMaxMs: number
  requestTimeoutMs: number
  republishMs: number
  providerTtlMs: number
  provideRefreshMs: number
  maxValueBytes: number
  maxKeyBytes: number
  maxSkewMs: number
  maxProviderTtlMs: number
  tombstoneTtlMs: number
  maxPending: number
  iterative: boolean
  replyBudgetBytes: number
  replyWindowMs: number
  routeBudget: number
  store: StoreLimits
}

export function resolveOptions(options: ChordOptions): ResolvedOptions {
  const providerTtlMs = options.providerTtlMs ?? 600_000
  return {
    successors: Math.max(1, options.successors ?? 8),
    maxSuccessors: Math.min(LIMITS.ids, Math.max(1, options.successors ?? 8, options.maxSuccessors ?? 32)),
    replicas: Math.max(1, options.replicas ?? 3),
    stabilizeMs: options.stabilizeMs ?? 1000,
    fixFingersMs: options.fixFingersMs ?? 500,
    checkPredecessorMs: options.checkPredecessorMs ?? 2000,
    idleMaxMs: options.idleMaxMs ?? 30_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 3000,
    republishMs: options.republishMs ?? 60_000,
    providerTtlMs,
    provideRefreshMs: options.provideRefreshMs ?? Math.floor(providerTtlMs / 3),
    maxValueBytes: options.maxValueBytes ?? 262_144,
    maxKeyBytes: options.maxKeyBytes ?? 1024,
    maxSkewMs: options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS,
    maxProviderTtlMs: options.maxProviderTtlMs ?? 86_400_000,
    tombstoneTtlMs: options.tombstoneTtlMs ?? 86_400_000,
    maxPending: options.maxPending ?? 1024,
    iterative: options.iterative ?? true,
    replyBudgetBytes: options.replyBudgetBytes ?? 4 * 1024 * 1024,
    replyWindowMs: Math.max(1, options.replyWindowMs ?? 10_000),
    routeBudget: Math.max(0, options.routeBudget ?? 256),
    store: {
      maxRecords: options.maxRecords ?? 100_000,
      maxStoreBytes: options.maxStoreBytes ?? 128 * 1024 * 1024,
      perAuthorQuota: options.perAuthorQuota ?? 10_000,
      perAuthorBytes: options.perAuthorBytes ?? 16 * 1024 * 1024,
      maxProviderRecords: options.maxProviderRecords ?? 100_000,
      perProviderQuota: options.perProviderQuota ?? 1_000,
      maxProvidersPerKey: options.maxProvidersPerKey ?? 256,
    },
  }
}

/** What every part of one Chord node shares. */
export interface ChordContext {
  readonly self: string
  readonly deps: ChordDeps
  readonly o: ResolvedOptions
  readonly counters: Counters
  /** The host's send, which must not throw into a handler or a tick: a failure is a lost message. */
  send(to: string, msg: ChordMsg, unreachable?: () => void): void
  /** Start work nobody waits for; its failure is counted (`error.internal`), never thrown. */
  background(p: Promise<unknown>): void
  /** `ms` spread by ±25 %, so periodic work of many nodes does not fall into step. */
  jitter(ms: number): number
}

export function createContext(deps: ChordDeps, options: ChordOptions): ChordContext {
  const counters: Counters = {}
  return {
    self: deps.id,
    deps,
    o: resolveOptions(options),
    counters,
    send(to, msg, unreachable) {
      try {
        deps.send(to, msg, unreachable)
      } catch {
        bump(counters, 'error.send')
      }
    },
    background(p) {
      p.catch(() => bump(counters, 'error.internal'))
    },
    jitter: (ms) => Math.floor(ms * (0.75 + 0.5 * deps.random())),
  }
}
