/**
 * The overlay node: what `joinOverlay` returns. It owns the signalling
 * client, the links and the connection manager, and hosts the node's
 * protocols: one composition of mesh, sync, Chord and router
 * (shared/node, `createNodeCore`), the same the simulator runs. It gives
 * the core links, the clock and link-setup signals, parses each frame once
 * into a typed message for it, and drives its clock.
 *
 * Dialling: the lower id always makes the WebRTC offer, so two peers never
 * offer at once; the higher id asks it to (`dial` signal). When no direct
 * link opens within `directTimeoutMs`, or either end runs with relay
 * 'force', both ends switch to a relay link through the signal server.
 *
 * Connection manager: keeps `targetPeers` mesh links (at most `maxPeers`),
 * candidates from the server's bootstrap samples and from peer exchange
 * (neighbours tell each other who their neighbours are, like Gnutella's pong
 * caching and BitTorrent's PEX); dead links are replaced; links opened for
 * unicast count against one budget with them and close when idle.
 */

import { id160, isNodeId, utf8 } from '../shared/bytes.ts'
import { type Chord, type DhtRecord, type LookupResult, recordSlot } from '../shared/chord/index.ts'
import { deriveNetworkKeys, type NetworkKeys, networkTag } from '../shared/crypto/network.ts'
import { AccessDeniedError, ClosedError, NoRouteError } from '../shared/errors.ts'
import type { Identity } from '../shared/identity/keys.ts'
import { checkPuzzleBits, DEFAULT_PUZZLE_BITS } from '../shared/identity/puzzle.ts'
import type { Mesh } from '../shared/mesh/mesh.ts'
import { createNodeCore, type NodeCore, type NodeMsg, nodeMsgBody } from '../shared/node/index.ts'
import { bump, type Counters } from '../shared/protocol.ts'
import type { PeerInfo } from '../shared/signal-events.ts'
import type { Sync, SyncChange } from '../shared/sync/index.ts'
import { isValue, type Value } from '../shared/types.ts'
import { type Frame, Kind } from '../shared/wire/frame.ts'
import { Emitter } from './emitter.ts'
import { ACCESS_DENIED, isHandshakePiece, Link, type LinkControl } from './links/link.ts'
import { createRelayPipe, type RelayPipe, relaySid } from './links/relay.ts'
import {
  createWebRtcPipe,
  describeRtcError,
  rtcErrorKey,
  type SimplePeerCtor,
  type WebRtcPipe,
} from './links/webrtc.ts'
import { type ContentSealer, contentSealer, privateTable, sealedBytes } from './private-content.ts'
import { type IoFactory, SignalClient, type SignalStatus } from './signal-client.ts'
import { type NodeStorage, noStorage } from './storage.ts'

export interface JoinOptions {
  /** Signal server URL(s), tried in order. */
  signal: string | string[]
  /** Networks never mix. @default 'default' */
  network?: string
  /**
   * A private network's secret: only nodes that know it link with us
   * (others get AccessDeniedError), and broadcasts, table values and DHT
   * values of the network are encrypted under keys derived from it. Never
   * sent anywhere; the signal server sees a hash of the network's name only.
   */
  secret?: string
  /** 'force': behave as a firewalled node, every link relayed; 'never': direct links only. @default 'auto' */
  relay?: 'auto' | 'force' | 'never'
  /** Most mesh links. @default 8 */
  maxPeers?: number
  /** Mesh links the connection manager aims for. @default min(6, maxPeers) */
  targetPeers?: number
  /**
   * Node only: WebRTC, as the module of node-datachannel/polyfill, werift or
   * @roamhq/wrtc (adapted for simple-peer), or false for relay links only.
   * @default the first of those installed, node-datachannel first
   */
  wrtc?: unknown
  /** How long a direct link may take before falling back to the relay. @default 5000 */
  directTimeoutMs?: number
  /** Largest message a node sends or accepts. @default 4 MiB */
  maxMessageBytes?: number
  /** Default timeout of `request`. @default 10000 */
  requestTimeoutMs?: number
  /** All links (mesh and on-demand) together. @default 48 */
  maxLinks?: number
  /**
   * STUN/TURN servers for this node's RTCPeerConnections. Overrides what the
   * signal server hands out (its ICE_SERVERS, with TURN credentials made for
   * this node); `[]` uses none. Without any, peers behind NATs that cannot
   * link directly go through the signal server's relay, within its quota.
   * @default what the signal server hands out (none if it has none)
   */
  iceServers?: RTCIceServer[]
  /**
   * How long the first join keeps trying the signal servers (in turn, with
   * backoff) before joinOverlay rejects with SignalError. @default 30000
   */
  timeoutMs?: number
  /**
   * Called with every change of where the node stands with the signal
   * servers, from the first attempt on (before joinOverlay resolves, when
   * `node.on` cannot be reached yet): `{ state: 'connecting' | 'registered' |
   * 'down' | 'closed', server, attempt, retryInMs?, error? }`.
   */
  onSignal?: (status: SignalStatus) => void
  /** Node only: keep the identity, the table and the DHT share in this folder. */
  dataDir?: string
  /** Keep this node's DHT share in storage (always-on peers). @default false */
  persistDht?: boolean
  /**
   * Once on the ring, send link-setup signals through the overlay instead of
   * the signal server (which is then needed only to enter and for relay).
   * @default true
   */
  overlaySignals?: boolean
  /**
   * The network's identity puzzle: a node's public key must meet this many
   * bits of work (shared/identity/puzzle.ts). Every member of a network, and
   * its signal server, must use the same value; keys below it are refused
   * at the server, at link setup, and as authors of broadcasts, table
   * entries, DHT records and routed messages. A new identity costs about
   * 2^puzzleBits key generations, once.
   * @default 10 (DEFAULT_PUZZLE_BITS)
   */
  puzzleBits?: number
}

/** What a host environment (browser or Node) provides. */
export interface Env {
  SimplePeer: SimplePeerCtor
  io: IoFactory
  identity: Identity
  /** Called on close: release the identity slot (Web Lock) and the like. */
  release?: () => void
  /** Where the sync table (and an always-on peer's DHT share) is kept. @default memory only */
  storage?: NodeStorage
}

/** `node.sync`: the replicated table (API.md). */
export interface SyncApi {
  set(key: string, value: Value, opts?: { leaseMs?: number }): Promise<void>
  get(key: string): Value | undefined
  delete(key: string): Promise<void>
  entries(): [string, Value][]
  owner(key: string): string | undefined
  /** The live lease on a key: owner and expiry (ms, the owner's clock). */
  lease(key: string): { owner: string; expires: number } | undefined
  on(event: 'change', fn: (e: SyncChange) => void): () => void
}

/**
 * `node.dht`: the Chord ring of all nodes (API.md), plus views for tools and
 * the demo. Records are owned (BEP 44 style): a key lives in its author's
 * namespace, and only the author can write or delete it.
 */
export interface DhtApi {
  /** Store `value` under `key` in our own namespace. */
  put(key: string, value: Value): Promise<void>
  /** An author's value for `key` (default author: us); undefined when none or deleted. */
  get(key: string, opts?: { author?: string }): Promise<Value | undefined>
  /** The same read with the record's author, sequence and signing time (tombstones too). */
  getRecord(key: string, opts?: { author?: string }): Promise<DhtRecord | undefined>
  /** Delete our own record for `key`. */
  delete(key: string): Promise<void>
  provide(key: string): Promise<void>
  findProviders(key: string): Promise<string[]>
  /**
   * The node responsible for `key` and the hops it took to find it: with
   * `author`, where that author's record for `key` lives; without, the key's
   * own position (where its provider records live).
   */
  lookup(key: string, opts?: { author?: string }): Promise<LookupResult>
  successors(): string[]
  predecessor(): string | null
  fingers(): string[]
}

/** Frames queued for a peer while an on-demand link to it opens. */
const MAX_VIA_QUEUE = 64
/** close() waits at most this long for the successor to take our records. */
const LEAVE_TIMEOUT_MS = 5000
/** How often an always-on peer writes its DHT share to disk. */
const DHT_SAVE_MS = 15_000
/** How often a node that is alone on its ring looks for a ring to join. */
const RING_CHECK_MS = 5000
/**
 * Links that traffic from peers (Chord, forwarded messages) may make this node
 * open on demand: a burst, then so many per second. Peers choose those ids (a
 * Chord `route` names the origin to answer), and each dial costs signal-server
 * events: without a budget, a stream of made-up ids gets this node dropped by
 * the server as abusive.
 */
const VIA_DIAL_BURST = 32
const VIA_DIALS_PER_SEC = 8

/** At most one table snapshot per this long; the first change after a quiet spell is saved at once. */
const SAVE_GAP_MS = 250

export interface PeerSummary {
  id: string
  transport: 'webrtc' | 'relay'
  rtt: number
  mesh: boolean
}

export interface NodeEvents extends Record<string, unknown> {
  'peer:connect': { id: string }
  'peer:disconnect': { id: string }
  signal: string
  closed: undefined
}

export type Handler = (data: Value, meta: { from: string }) => Value | Promise<Value>
export type Subscriber = (data: Value, meta: { from: string; hops: number }) => void

/**
 * Does this signal start a new link rather than continue the one open with
 * its sender? An ask to offer, a relay session other than the open one, or a
 * WebRTC offer while a direct link is open (late ICE candidates of the open
 * link are not).
 */
function startsSession(s: SignalData, linked: Link): boolean {
  if (s.t === 'dial') return true
  if (s.t === 'relay') return linked.transport !== 'relay' || (linked.pipe as RelayPipe).sid !== s.sid
  if (s.t === 'rtc')
    return linked.transport === 'webrtc' && (s.s as { type?: unknown } | null)?.type === 'offer'
  return false
}

interface Dial {
  peer: string
  mesh: boolean
  /**
   * Set up at the peer's request (its signal), not ours: counted against the
   * inbound bounds (MAX_INBOUND), not the connection manager's own dials.
   */
  inbound: boolean
  /** Relay sessions this dial has started or adopted (MAX_RELAY_SESSIONS). */
  relays: number
  pipe?: WebRtcPipe
  relay?: RelayPipe
  link?: Link
  timer?: ReturnType<typeof setTimeout>
  /** Why the direct attempt failed (the WebRTC error), for the NoRouteError when there is no relay. */
  error?: string
  started: number
  waiters: { resolve: (l: Link) => void; reject: (e: Error) => void }[]
}

type SignalData =
  | { t: 'rtc'; s: unknown; mesh: boolean }
  | { t: 'dial'; mesh: boolean }
  | { t: 'relay'; mesh: boolean; sid: number }
  | { t: 'refuse'; reason: string }

function parseSignalData(d: unknown): SignalData | null {
  if (typeof d !== 'object' || d === null) return null
  const o = d as Record<string, unknown>
  const mesh = o.mesh === true
  switch (o.t) {
    case 'rtc':
      return typeof o.s === 'object' && o.s !== null ? { t: 'rtc', s: o.s, mesh } : null
    case 'dial':
      return { t: 'dial', mesh }
    case 'relay':
      return Number.isInteger(o.sid) && (o.sid as number) >= 0 && (o.sid as number) <= 0xffffffff
        ? { t: 'relay', mesh, sid: o.sid as number }
        : null
    case 'refuse':
      return typeof o.reason === 'string' ? { t: 'refuse', reason: o.reason.slice(0, 64) } : null
    default:
      return null
  }
}

const TICK_MS = 100
const MANAGE_MS = 1000
const PEX_MS = 15_000
const SAMPLE_MS = 20_000
const AUX_IDLE_MS = 60_000
const MAX_CANDIDATES = 256
const MAX_DIALS = 4
/**
 * Link setups that peers started (their signals) pending at once. Anyone
 * registered with the signal server can start one, so they are bounded
 * apart from this node's own dials and open links: a flood of throw-away
 * identities holds at most these slots and the connection manager goes on
 * dialling its candidates.
 */
const MAX_INBOUND = 16
/** ...of which peers the signal server never sampled for us may hold at most this many. */
const MAX_INBOUND_STRANGERS = 8
/** An inbound relay setup that has not opened a link by then is given up (the handshake takes a few round trips). */
const INBOUND_RELAY_MS = 8000
/**
 * A relay setup whose peer has sent nothing at all by then is given up: an honest peer sends
 * its hello right behind its `relay` signal, or as soon as ours reaches it. Sooner for setups
 * the peer started (it holds an inbound slot); for our own dials it frees the connection
 * manager from peers that never answer (throw-away identities in a bootstrap sample).
 */
const INBOUND_SILENT_MS = 3000
const OWN_SILENT_MS = 6000
/**
 * Relay sessions one setup may go through (each new `relay` signal from the peer restarts the
 * handshake; an honest peer restarts at most once, when both ends started one at the same time).
 */
const MAX_RELAY_SESSIONS = 3
/**
 * A `relay` signal from a peer we have no setup with is only noted (at most this many, for
 * PENDING_RELAY_MS): the setup, and its inbound slot, begin with the peer's hello. An honest
 * peer sends it right behind the signal; a flood of signals that are never followed by a hello
 * costs one entry each here and no slot.
 */
const MAX_PENDING_RELAYS = 256
const PENDING_RELAY_MS = 5000
/** A peer whose inbound setup failed may not start another for this long. */
const INBOUND_BACKOFF_MS = 30_000
/** Peers remembered in a backoff map at most (the oldest entry goes first). */
const MAX_BACKOFF = 4096
/** Peers the signal server sampled for us, remembered (bounded) to keep inbound slots for them. */
const MAX_SAMPLED = 1024
/** Refusals ('full') we answer: a burst, then so many per second; beyond, signals are dropped unanswered. */
const REFUSE_BURST = 8
const REFUSALS_PER_SEC = 2

export class OverlayNode extends Emitter<NodeEvents> {
  readonly id: string
  readonly network: string
  readonly identity: Identity
  /** The node's protocols (mesh, sync, Chord, router), composed once: shared/node. */
  readonly core: NodeCore
  readonly signalClient: SignalClient
  readonly mesh: Mesh
  readonly syncTable: Sync
  readonly sync: SyncApi
  readonly chord: Chord
  readonly dht: DhtApi
  readonly counters: Counters = {}

  private readonly env: Env
  private readonly opts: Required<
    Omit<
      JoinOptions,
      | 'wrtc'
      | 'dataDir'
      | 'signal'
      | 'persistDht'
      | 'overlaySignals'
      | 'puzzleBits'
      | 'iceServers'
      | 'timeoutMs'
      | 'onSignal'
      | 'secret'
    >
  > &
    JoinOptions
  private readonly links = new Map<string, Link>()
  private readonly dials = new Map<string, Dial>()
  /** Candidate peers -> when we last heard of them. */
  private readonly candidates = new Map<string, number>()
  /** Peers whose dial failed -> do not retry before this time. */
  private readonly backoff = new Map<string, number>()
  /** Peers the signal server sampled for us (bootstrap candidates), oldest first. */
  private readonly sampled = new Set<string>()
  /** Peers whose inbound setup failed -> refuse their next one before this time. */
  private readonly inboundBackoff = new Map<string, number>()
  /** Relay sessions peers announced, waiting for their hello (MAX_PENDING_RELAYS), oldest first. */
  private readonly pendingRelays = new Map<string, { sid: number; mesh: boolean; at: number }>()
  private refuseTokens = REFUSE_BURST
  private refuseAt = Date.now()
  /** The network's identity puzzle (JoinOptions.puzzleBits). */
  private readonly puzzleBits: number
  /** Each neighbour's own neighbours, from peer exchange (for the network drawing). */
  readonly neighbourLinks = new Map<string, string[]>()
  private readonly timers: ReturnType<typeof setInterval>[] = []
  private closed = false
  private lastSample = 0
  private readonly storage: NodeStorage
  private saveTimer: ReturnType<typeof setTimeout> | undefined
  private lastSave = 0
  /** Resolves once this node is on a Chord ring (joined through a peer, or the first one). */
  private ringReady: Promise<void> = Promise.resolve()
  private readonly viaQueue = new Map<string, Frame[]>()
  /**
   * Frame bodies the link checked with the core's parser, and the typed
   * message it made (the link's validators answer yes or no, within its
   * decode budget): onFrame takes the message from here, so each body is
   * parsed once. Weak: a body the link dropped leaves nothing behind.
   */
  private readonly parsed = new WeakMap<object, NodeMsg>()
  private viaDialTokens = VIA_DIAL_BURST
  private viaDialAt = Date.now()
  private lastRingCheck = 0
  private lastDhtSave = Date.now()
  private readonly closedTotals = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
  /** While the first join waits for a link: peers that cannot link with us (relayMismatch). */
  private mismatched: Set<string> | undefined
  private onMismatch: (() => void) | undefined
  /** While joining: peers that refused us for the network's secret. */
  private denied: Set<string> | undefined
  /** Peers that refused us for the network's secret -> until when a dial to them fails at once. */
  private readonly deniedBy = new Map<string, number>()
  /** A private network's keys (JoinOptions.secret), derived at start. */
  private networkKeys: NetworkKeys | undefined
  /** Its content sealing, and the table as the application sees it (client/private-content.ts). */
  private content: ContentSealer | undefined
  private privTable: ReturnType<typeof privateTable> | undefined
  /** The network as the signal server knows it: a hash of its name (shared/crypto/network.ts). */
  private readonly networkTag: string

  constructor(env: Env, opts: JoinOptions) {
    super()
    this.env = env
    const maxPeers = opts.maxPeers ?? 8
    this.opts = {
      network: 'default',
      relay: 'auto',
      maxPeers,
      targetPeers: Math.min(6, maxPeers),
      directTimeoutMs: 5000,
      maxMessageBytes: 4 * 1024 * 1024,
      requestTimeoutMs: 10_000,
      maxLinks: 48,
      ...opts,
    }
    if (!['auto', 'force', 'never'].includes(this.opts.relay))
      throw new TypeError(`relay must be auto, force or never`)
    if (!Number.isInteger(maxPeers) || maxPeers < 1)
      throw new TypeError('maxPeers must be a positive integer')
    this.identity = env.identity
    this.id = env.identity.id
    const puzzleBits = checkPuzzleBits(opts.puzzleBits ?? DEFAULT_PUZZLE_BITS)
    this.puzzleBits = puzzleBits
    this.network = this.opts.network
    // The server is told the name's hash, never the name or anything of the secret: members and
    // non-members of a name meet there, and the links keep them apart (AccessDeniedError).
    this.networkTag = networkTag(this.network)
    const servers = Array.isArray(opts.signal) ? opts.signal : [opts.signal]
    this.signalClient = new SignalClient({
      servers,
      network: this.networkTag,
      identity: this.identity,
      io: env.io,
      ...(opts.timeoutMs === undefined ? {} : { joinTimeoutMs: opts.timeoutMs }),
    })
    this.storage = env.storage ?? noStorage
    // Throws (TypeError) when our own key does not meet the network's puzzle.
    this.core = createNodeCore(
      {
        id: this.id,
        keys: env.identity,
        now: () => Date.now(),
        random: Math.random,
        send: (to, m) => this.sendOpen(to, m),
        sendVia: (to, m) => this.sendVia(to, frameOf(m)),
        connect: async (to) => void (await this.dial(to, false)),
        linked: () => this.openPeers(),
        isLinked: (peer) => this.links.get(peer)?.state === 'open',
        meshNeighbours: () => this.meshNeighbours(),
        onSignal: (from, data, overLink) => this.onSignal(from, data, overLink),
        resendSignal: (dst, data) => this.resendSignal(dst, data),
        reportError: (err) =>
          queueMicrotask(() => {
            throw err
          }),
        // One bag for the node: the core's drops (identity puzzle, sync off the mesh, ...) beside the links'.
        counters: this.counters,
      },
      {
        puzzleBits,
        router: {
          maxMessageBytes: this.opts.maxMessageBytes,
          requestTimeoutMs: this.opts.requestTimeoutMs,
          // Envelopes sealed to their destination: the nodes that forward them read the head only.
          seal: true,
        },
        // One hop may need a link opened first (signalling, ICE, the key proof).
        chord: { requestTimeoutMs: 8000 },
      },
    )
    this.mesh = this.core.mesh
    this.syncTable = this.core.sync
    this.chord = this.core.chord
    this.syncTable.onAccept(() => this.scheduleSave())
    const ring = this.chord
    // Every keyed operation: a live node, a valid key, and a place on the ring first.
    const keyed =
      <T>(op: (key: string) => Promise<T>) =>
      async (key: string): Promise<T> => {
        this.assertOpen()
        checkKey(key)
        await this.ringReady
        return op(key)
      }
    this.dht = {
      put: (key, value) =>
        keyed(async (k) => {
          checkValue(value)
          // In a private network the value is sealed (client/private-content.ts).
          const c = this.content
          return ring.put(k, c ? await c.seal('dht', k, this.id, value) : value)
        })(key),
      get: (key, opts) =>
        keyed(async (k) => {
          const author = authorOf(opts, this.id)
          const v = await ring.get(k, author)
          const c = this.content
          return c && v !== undefined ? ((await c.open('dht', k, author, v)) ?? undefined) : v
        })(key),
      getRecord: (key, opts) =>
        keyed(async (k) => {
          const rec = await ring.getRecord(k, authorOf(opts, this.id))
          const c = this.content
          if (!c || rec?.value === undefined) return rec
          const value = await c.open('dht', k, rec.author, rec.value)
          return value === null ? undefined : { ...rec, value }
        })(key),
      delete: keyed((k) => ring.delete(k)),
      provide: keyed((k) => ring.provide(k)),
      findProviders: keyed((k) => ring.findProviders(k)),
      lookup: (key, opts) =>
        keyed(async (k) => {
          const author = opts?.author === undefined ? undefined : authorOf(opts, this.id)
          return ring.lookup(await id160(utf8(author === undefined ? k : recordSlot(author, k))))
        })(key),
      successors: () => ring.successors(),
      predecessor: () => ring.predecessor(),
      fingers: () => ring.fingers(),
    }
    const table = this.syncTable
    this.sync = {
      set: (key, value, opts) => {
        this.assertOpen()
        return this.privTable ? this.privTable.set(key, value, opts) : table.set(key, value, opts)
      },
      get: (key) => (this.privTable ? this.privTable.get(key) : table.get(key)),
      delete: (key) => {
        this.assertOpen()
        return table.delete(key)
      },
      entries: () => (this.privTable ? this.privTable.entries() : table.entries()),
      owner: (key) => table.owner(key),
      lease: (key) => table.lease(key),
      on: (event, fn) => {
        if (event !== 'change') throw new TypeError(`node.sync has no ${String(event)} event`)
        return this.privTable ? this.privTable.onChange(fn) : table.onChange(fn)
      },
    }
  }

  /** Connect to a signal server and open the first links. */
  async start(): Promise<void> {
    if (this.opts.secret !== undefined) {
      this.networkKeys = await deriveNetworkKeys(this.network, this.opts.secret)
      this.content = contentSealer(this.networkKeys)
      // Before the saved table is imported, so its versions are opened too.
      this.privTable = privateTable(this.syncTable, this.id, this.content)
    }
    // The table as this node last saw it, then reconciled with the network by anti-entropy.
    const saved = await this.storage.load(`sync-${this.network}`).catch(() => undefined)
    if (saved !== undefined) await this.syncTable.importState(saved).catch(() => 0)
    this.signalClient.on('signal', ({ from, data }) => this.onSignal(from, data))
    this.signalClient.on('relay', ({ from, frame }) => this.onRelayFrame(from, frame))
    this.signalClient.on('relay-error', (e) => {
      bump(this.counters, `relay-error.${e.reason}`)
      // The server no longer knows the peer: a relay link to it is dead, whatever heartbeats say.
      const l = this.links.get(e.to)
      if (e.reason === 'unknown-peer' && l?.transport === 'relay') l.close('peer-gone')
    })
    this.signalClient.on('registered', ({ peers }) => this.addSampled(peers))
    this.signalClient.on('state', (s) => this.emit('signal', s))
    const onSignal = this.opts.onSignal
    if (onSignal) this.signalClient.on('status', (st) => safeCall(() => onSignal(st)))
    const saved2 = await this.storage.load(`dht-${this.network}`).catch(() => undefined)
    if (saved2 !== undefined) await this.chord.importState(saved2).catch(() => 0)
    const peers = await this.signalClient.start()
    this.lastSample = Date.now()
    this.timers.push(setInterval(() => this.tick(), TICK_MS))
    this.timers.push(setInterval(() => this.manage(), MANAGE_MS))
    this.timers.push(setInterval(() => this.sendPex(), PEX_MS))
    if (peers.length === 0) {
      // Alone in the network: this node starts the ring.
      this.ringReady = this.chord.join(null)
      await this.ringReady
      return
    }
    // Peers that cannot link with us at all (relay 'never' against relay 'force'), while we wait.
    const mismatched = new Set<string>()
    this.mismatched = mismatched
    const denied = new Set<string>()
    this.denied = denied
    // Resolve once one link is open; if none opens in time we are still joined (and keep trying),
    // unless the only peers that answered cannot link with us: then say so.
    try {
      await new Promise<void>((resolve, reject) => {
        const finish = (err?: Error) => {
          off()
          clearTimeout(t)
          this.onMismatch = undefined
          if (err) reject(err)
          else resolve()
        }
        const cannotLink = () =>
          new NoRouteError(
            [...mismatched][0] as string,
            `relay: '${this.opts.relay}' cannot reach this network: ${mismatched.size} of the ${peers.length} ` +
              `peers the signal server offered ${this.opts.relay === 'never' ? "link only through its relay (they run relay: 'force')" : "take direct links only (they run relay: 'never')"}; ` +
              `with relay: 'auto' this node links with both`,
          )
        const off = this.on('peer:connect', () => finish())
        // Every peer of the sample refused us for that: no link is coming.
        // Or every one refused us for the network's secret (or could not link): we are not let in.
        const refused = () =>
          denied.size > 0 ? new AccessDeniedError([...denied][0] as string) : cannotLink()
        this.onMismatch = () => {
          if (peers.every((p) => mismatched.has(p.id) || denied.has(p.id))) finish(refused())
        }
        const t = setTimeout(
          () =>
            finish(this.peers().length === 0 && mismatched.size + denied.size > 0 ? refused() : undefined),
          this.opts.directTimeoutMs + 10_000,
        )
      })
    } finally {
      this.mismatched = undefined
      this.denied = undefined
    }
    this.ringReady = this.joinRing()
  }

  /** Join the Chord ring through a linked peer (any member will do), or start one if none answers. */
  private async joinRing(): Promise<void> {
    for (const p of this.peers()) {
      try {
        await this.chord.join(p.id)
        // join() returns before stabilization fills the successor list; until then a get has
        // nobody to ask, so the ring counts as ready once a successor is known (or after 5 s).
        const until = Date.now() + 5000
        while (!this.closed && Date.now() < until && this.chord.successors().every((s) => s === this.id))
          await new Promise((r) => setTimeout(r, 50))
        return
      } catch {
        bump(this.counters, 'dht.join-failed')
      }
    }
    await this.chord.join(null)
  }

  // ------------------------------------------------------------------ public API

  peers(): { id: string; transport: 'webrtc' | 'relay' }[] {
    return [...this.links.values()]
      .filter((l) => l.state === 'open')
      .map((l) => ({ id: l.peer, transport: l.transport }))
  }

  /** Richer than peers(): RTT and mesh membership, for the demo page. */
  linkDetails(): PeerSummary[] {
    return [...this.links.values()]
      .filter((l) => l.state === 'open')
      .map((l) => ({ id: l.peer, transport: l.transport, rtt: l.rtt, mesh: l.isMesh }))
  }

  /**
   * The part of the network this node knows: its own links, and each
   * neighbour's mesh links as told by peer exchange. Node id -> linked ids.
   */
  topology(): Record<string, string[]> {
    const out: Record<string, string[]> = { [this.id]: this.peers().map((p) => p.id) }
    for (const [peer, theirs] of this.neighbourLinks) out[peer] = [...theirs]
    return out
  }

  async broadcast(topic: string, data: Value): Promise<void> {
    this.assertOpen()
    checkTopic(topic)
    checkValue(data)
    const c = this.content
    await this.core.broadcast(topic, c ? await c.seal('broadcast', topic, this.id, data) : data)
  }

  /** Broadcasts on `topic`, and routed messages sent to it here. */
  subscribe(topic: string, fn: Subscriber): () => void {
    checkTopic(topic)
    const c = this.content
    if (!c) return this.core.subscribe(topic, fn)
    // A private network's broadcasts come sealed (routed messages come as they are: sealed to us).
    return this.core.subscribe(topic, (data, meta) => {
      if (!sealedBytes(data)) return fn(data, meta)
      void c.open('broadcast', topic, meta.from, data).then((v) => {
        if (v === null) return
        try {
          fn(v, meta)
        } catch (err) {
          bump(this.counters, 'subscriber.threw')
          queueMicrotask(() => {
            throw err
          })
        }
      })
    })
  }

  /** Deliver `data` to the subscribers of `topic` at node `to`, linked or not (routed unicast). */
  async send(to: string, topic: string, data: Value): Promise<void> {
    this.assertOpen()
    checkTopic(topic)
    checkValue(data)
    if (to !== this.id) checkNodeId(to)
    await this.core.router.send(to, topic, data)
  }

  handle(method: string, fn: Handler): () => void {
    checkTopic(method)
    return this.core.router.serve(method, fn)
  }

  async request(to: string, method: string, data: Value, opts: { timeoutMs?: number } = {}): Promise<Value> {
    this.assertOpen()
    checkTopic(method)
    checkValue(data)
    if (to !== this.id) checkNodeId(to)
    return this.core.router.request(to, method, data, opts)
  }

  stats(): Record<string, number> {
    const t = { ...this.closedTotals }
    for (const l of this.links.values()) {
      t.messagesIn += l.stats.messagesIn
      t.messagesOut += l.stats.messagesOut
      t.bytesIn += l.stats.bytesIn
      t.bytesOut += l.stats.bytesOut
    }
    const open = this.peers()
    return {
      peers: open.length,
      meshPeers: this.meshNeighbours().length,
      relayPeers: open.filter((p) => p.transport === 'relay').length,
      ...t,
      signalsOut: this.signalClient.stats.signalsOut,
      signalsIn: this.signalClient.stats.signalsIn,
      relayBytesOut: this.signalClient.stats.relayBytesOut,
      relayBytesIn: this.signalClient.stats.relayBytesIn,
      signalReconnects: this.signalClient.stats.reconnects,
      signalConnected: this.signalClient.connected ? 1 : 0,
      signalDropped: this.signalClient.stats.dropped,
      ...this.core.stats(),
      ...this.networkKeys?.counters,
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    // Chord's voluntary departure: our records go to our successor (acknowledged) before the links close.
    await Promise.race([
      this.chord.leave().catch(() => bump(this.counters, 'dht.leave-failed')),
      new Promise((r) => setTimeout(r, LEAVE_TIMEOUT_MS)),
    ])
    this.closed = true
    for (const t of this.timers) clearInterval(t)
    this.core.close()
    for (const d of [...this.dials.values()]) this.failDial(d, new ClosedError())
    const hadLinks = this.links.size > 0
    for (const l of [...this.links.values()]) l.close('node-closed')
    // Goodbyes are written; give them a moment on the wire before the caller tears the page down.
    if (hadLinks) await new Promise((r) => setTimeout(r, 150))
    this.signalClient.close()
    if (this.saveTimer) {
      clearTimeout(this.saveTimer)
      await this.save()
    }
    if (this.opts.persistDht) await this.saveDht()
    this.env.release?.()
    this.emit('closed', undefined)
    this.removeAll()
  }

  get isClosed(): boolean {
    return this.closed
  }

  // ------------------------------------------------------------------ links

  private meshNeighbours(): string[] {
    const out: string[] = []
    for (const l of this.links.values()) if (l.state === 'open' && l.isMesh) out.push(l.peer)
    return out
  }

  /** Open links now (mesh or not). */
  private openPeers(): string[] {
    const out: string[] = []
    for (const l of this.links.values()) if (l.state === 'open') out.push(l.peer)
    return out
  }

  /**
   * A message of the core over the open link to `to`. With none open it is
   * not sent (`send.no-link`) and the promise rejects, as it does when the
   * link refuses it (MessageTooLargeError): the router tells its caller.
   */
  private sendOpen(to: string, m: NodeMsg): Promise<void> {
    const l = this.links.get(to)
    if (l?.state !== 'open') {
      bump(this.counters, 'send.no-link')
      return Promise.reject(new NoRouteError(to, `no open link to ${to}`))
    }
    return l.send(frameOf(m))
  }

  /** A link-setup signal the ring could not place goes through the signal server. */
  private resendSignal(dst: string, data: Value): void {
    const s = parseSignalData(data)
    if (!s) return bump(this.counters, 'drop.signal')
    this.signalClient.signal(dst, s).catch((err: Error) => {
      const d = this.dials.get(dst)
      if (d) this.failDial(d, err instanceof NoRouteError ? err : new NoRouteError(dst, err.message))
    })
  }

  /**
   * Send a link-setup signal: through the overlay once this node is on the
   * ring and a hop toward `peer` is open (the server is then needed only to
   * enter and for relay), else through the signal server. After the ring
   * answered `noroute` for `peer`, its signals go through the server for a
   * while (the router's canSignal).
   */
  private async signalTo(peer: string, data: SignalData): Promise<void> {
    if (
      this.opts.overlaySignals !== false &&
      data.t !== 'relay' &&
      data.t !== 'refuse' &&
      this.core.router.canSignal(peer) &&
      isValue(data)
    ) {
      bump(this.counters, 'signal.overlay')
      return this.core.router.signal(peer, data)
    }
    bump(this.counters, 'signal.server')
    return this.signalClient.signal(peer, data)
  }

  /** Send a frame to `to` over its link, opening one on demand (bounded queue while it opens). */
  private sendVia(to: string, frame: Frame): void {
    const l = this.links.get(to)
    if (l?.state === 'open') {
      l.send(frame).catch(() => bump(this.counters, 'send.failed'))
      return
    }
    let q = this.viaQueue.get(to)
    if (q) {
      if (q.length < MAX_VIA_QUEUE) q.push(frame)
      else bump(this.counters, 'send.queue-full')
      return
    }
    if (!this.dials.has(to) && !this.takeViaDial()) return bump(this.counters, 'send.dial-rate')
    q = [frame]
    this.viaQueue.set(to, q)
    this.dial(to, false).then(
      (link) => {
        const frames = this.viaQueue.get(to) ?? []
        this.viaQueue.delete(to)
        for (const f of frames) link.send(f).catch(() => bump(this.counters, 'send.failed'))
      },
      () => {
        this.viaQueue.delete(to)
        bump(this.counters, 'send.link-failed')
      },
    )
  }

  /** A token of the on-demand dial budget (VIA_DIAL_BURST, refilled at VIA_DIALS_PER_SEC). */
  private takeViaDial(): boolean {
    const now = Date.now()
    this.viaDialTokens = Math.min(
      VIA_DIAL_BURST,
      this.viaDialTokens + ((now - this.viaDialAt) / 1000) * VIA_DIALS_PER_SEC,
    )
    this.viaDialAt = now
    if (this.viaDialTokens < 1) return false
    this.viaDialTokens--
    return true
  }

  private dial(peer: string, mesh: boolean): Promise<Link> {
    const open = this.links.get(peer)
    if (open?.state === 'open') return Promise.resolve(open)
    // A peer that refused us for the network's secret lately (it would not even answer now).
    if ((this.deniedBy.get(peer) ?? 0) > Date.now()) return Promise.reject(new AccessDeniedError(peer))
    const existing = this.dials.get(peer)
    if (existing) {
      existing.mesh ||= mesh
      existing.inbound = false // we want this link too
      return new Promise((resolve, reject) => existing.waiters.push({ resolve, reject }))
    }
    const d: Dial = { peer, mesh, inbound: false, relays: 0, started: Date.now(), waiters: [] }
    this.dials.set(peer, d)
    const p = new Promise<Link>((resolve, reject) => d.waiters.push({ resolve, reject }))
    if (this.opts.relay === 'force') this.startRelay(d)
    else if (this.id < peer) this.startWebRtc(d, true)
    else {
      this.armFallback(d)
      this.signalTo(peer, { t: 'dial', mesh }).catch((err: Error) => this.failDial(d, err))
    }
    return p
  }

  private startWebRtc(d: Dial, initiator: boolean): void {
    const pipe = createWebRtcPipe({
      SimplePeer: this.env.SimplePeer,
      initiator,
      ...(this.opts.wrtc ? { wrtc: this.opts.wrtc } : {}),
      // Ours if given, else the signal server's (its TURN credentials are renewed as they age).
      iceServers: this.opts.iceServers ?? this.signalClient.iceServers ?? [],
      sendSignal: (s) =>
        this.signalTo(d.peer, { t: 'rtc', s, mesh: d.mesh }).catch((err: Error) => {
          if (err instanceof NoRouteError) this.failDial(d, err)
        }),
    })
    d.pipe = pipe
    this.armFallback(d)
    pipe.opened.then(
      () => {
        if (this.dials.get(d.peer) !== d || d.pipe !== pipe) return pipe.close('superseded')
        this.attachLink(d, pipe)
      },
      (err: unknown) => {
        // A failed direct attempt falls back to the relay at the timer (or now, if it failed fast).
        if (this.dials.get(d.peer) !== d || d.pipe !== pipe || d.relay) return
        d.error = describeRtcError(err)
        bump(this.counters, `dial.webrtc-failed.${rtcErrorKey(err)}`)
        this.fallBack(d)
      },
    )
  }

  private armFallback(d: Dial): void {
    clearTimeout(d.timer)
    d.timer = setTimeout(() => this.fallBack(d), this.opts.directTimeoutMs)
  }

  private fallBack(d: Dial): void {
    if (this.dials.get(d.peer) !== d || d.relay) return
    if (!d.error) bump(this.counters, 'dial.webrtc-timeout')
    if (this.opts.relay === 'never') {
      const why =
        d.error ??
        (d.pipe
          ? `WebRTC did not connect within ${this.opts.directTimeoutMs} ms (ICE ${d.pipe.iceState()})`
          : `no WebRTC offer from the peer within ${this.opts.directTimeoutMs} ms`)
      return this.failDial(d, new NoRouteError(d.peer, `no direct link to ${d.peer}: ${why}`))
    }
    bump(this.counters, 'dial.relay-fallback')
    this.startRelay(d)
  }

  /**
   * Open the relay link of a dial. The side that starts it picks the session
   * id and announces it (`sid` undefined); the other side adopts the
   * announced one. When both start at once, the lower id's session wins.
   */
  private startRelay(d: Dial, sid?: number): void {
    if (d.relay) {
      if (sid === undefined || d.relay.sid === sid || this.id < d.peer) return
      if (d.relays >= MAX_RELAY_SESSIONS) {
        bump(this.counters, 'drop.signal.relay-restarts')
        return this.failDial(d, new NoRouteError(d.peer, `${d.peer} restarted its relay too often`))
      }
      // They (the lower id) started one too: adopt theirs.
      d.link?.close('relay-restart')
      d.relay.close('relay-restart')
      delete d.relay
      delete d.link
    }
    d.pipe?.close('relay-instead')
    delete d.pipe
    clearTimeout(d.timer)
    // The handshake over the relay should finish in a few round trips through the server (sooner
    // for a setup the peer started: anyone can start one, and it holds an inbound slot meanwhile).
    d.relays++
    d.timer = setTimeout(
      () => this.failDial(d, new NoRouteError(d.peer, `relay link to ${d.peer} did not open`)),
      d.inbound ? INBOUND_RELAY_MS : 15_000,
    )
    const announce = sid === undefined
    const relay = createRelayPipe({
      signal: this.signalClient,
      peer: d.peer,
      sid: sid ?? crypto.getRandomValues(new Uint32Array(1))[0] ?? 0,
    })
    d.relay = relay
    if (announce)
      this.signalClient
        .signal(d.peer, { t: 'relay', mesh: d.mesh, sid: relay.sid })
        .catch((err: Error) => this.failDial(d, err))
    this.attachLink(d, relay)
    const link = d.link
    setTimeout(
      () => {
        if (this.dials.get(d.peer) !== d || d.link !== link || (link?.stats.bytesIn ?? 0) > 0) return
        bump(this.counters, d.inbound ? 'dial.inbound-silent' : 'dial.silent')
        this.failDial(d, new NoRouteError(d.peer, `${d.peer} said nothing over the relay`))
      },
      d.inbound ? INBOUND_SILENT_MS : OWN_SILENT_MS,
    )
  }

  private attachLink(d: Dial, pipe: WebRtcPipe | RelayPipe): void {
    const link = new Link({
      pipe,
      identity: this.identity,
      peer: d.peer,
      mesh: d.mesh && this.meshNeighbours().length < this.opts.maxPeers,
      validators: {
        [Kind.Mesh]: this.validator(Kind.Mesh),
        [Kind.Route]: this.validator(Kind.Route),
        [Kind.Sync]: this.validator(Kind.Sync),
        [Kind.Chord]: this.validator(Kind.Chord),
      },
      maxMessageBytes: this.opts.maxMessageBytes,
      counters: this.counters,
      puzzleBits: this.puzzleBits,
      network: this.networkTag,
      ...(this.networkKeys ? { networkKeys: this.networkKeys } : {}),
      // Our box record in the hello: a peer that later routes to us can seal at once.
      box: () => this.core.router.boxRecord(),
    })
    d.link = link
    link.on('open', () => this.onLinkOpen(d, link))
    link.on('close', (reason) => {
      if (d.link === link && this.dials.get(d.peer) === d) {
        if (reason === 'relay-restart' || reason === 'relay-instead') return
        // Closed during the handshake: a direct attempt may still fall back to the relay.
        bump(this.counters, `link.handshake-closed.${reason.split(':')[0]}`)
        d.error = `the link closed during its handshake: ${reason.slice(0, 100)}`
        delete d.link
        // Refused for the network's secret (by us, or the peer said so): no other way will do.
        if (reason === ACCESS_DENIED || reason === `bye:${ACCESS_DENIED}`) {
          setBounded(this.deniedBy, d.peer, Date.now() + DENIED_MS)
          if (this.denied && this.denied.size < MAX_SAMPLED) {
            this.denied.add(d.peer)
            this.onMismatch?.()
          }
          return this.failDial(d, new AccessDeniedError(d.peer))
        }
        if (pipe.transport === 'webrtc' && !d.relay) return this.fallBack(d)
        return this.failDial(d, new NoRouteError(d.peer, `link to ${d.peer} closed: ${reason}`))
      }
      this.onLinkClose(link, reason)
    })
    link.start()
  }

  private onLinkOpen(d: Dial, link: Link): void {
    clearTimeout(d.timer)
    if (link.remoteBox) this.core.router.learnBox(link.peer, link.remoteBox)
    if (this.dials.get(d.peer) === d) this.dials.delete(d.peer)
    const old = this.links.get(link.peer)
    if (old && old !== link && old.state === 'open') {
      // Keep one link per peer: a direct one beats a relayed one.
      if (old.transport === 'relay' && link.transport === 'webrtc') old.close('upgraded')
      else {
        link.close('duplicate')
        for (const w of d.waiters) w.resolve(old)
        return
      }
    }
    this.links.set(link.peer, link)
    bump(this.counters, `link.opened.${link.transport}`)
    this.backoff.delete(link.peer)
    // A protocol handler that throws must not become an unhandled rejection (it would end a Node process).
    link.on('frame', (f) => {
      this.onFrame(link, f).catch(() => bump(this.counters, 'frame.error'))
    })
    link.on('control', (c) => this.onControl(link, c))
    for (const w of d.waiters) w.resolve(link)
    if (link.isMesh) this.meshUp(link.peer)
    this.emit('peer:connect', { id: link.peer })
    void link.sendControl({
      t: 'pex',
      peers: this.meshNeighbours()
        .filter((p) => p !== link.peer)
        .slice(0, 32),
    })
  }

  private onLinkClose(link: Link, reason: string): void {
    bump(this.counters, `link.closed.${reason.split(':')[0]}`)
    if (this.links.get(link.peer) !== link) return
    this.links.delete(link.peer)
    if (reason.startsWith('bye:')) {
      // It left (or closed the link on purpose): do not spend dials on it for a while.
      this.candidates.delete(link.peer)
      this.backoff.set(link.peer, Date.now() + 60_000)
    }
    this.neighbourLinks.delete(link.peer)
    for (const k of Object.keys(this.closedTotals) as (keyof typeof this.closedTotals)[])
      this.closedTotals[k] += link.stats[k]
    // Requests waiting for its answer fail; it leaves the mesh.
    this.core.linkDown(link.peer).catch(() => {})
    this.emit('peer:disconnect', { id: link.peer })
    if (!this.closed) this.manage()
  }

  private failDial(d: Dial, err: Error): void {
    if (this.dials.get(d.peer) !== d) return
    this.dials.delete(d.peer)
    clearTimeout(d.timer)
    d.pipe?.close('dial-failed')
    d.relay?.close('dial-failed')
    d.link?.close('dial-failed')
    setBounded(this.backoff, d.peer, Date.now() + 30_000)
    if (d.inbound) {
      setBounded(this.inboundBackoff, d.peer, Date.now() + INBOUND_BACKOFF_MS)
      bump(this.counters, 'dial.inbound-failed')
    } else bump(this.counters, 'dial.failed')
    for (const w of d.waiters) w.reject(err)
  }

  // ------------------------------------------------------------------ signalling

  /** A link-setup signal from `from`; `overLink` when it came over the link we have with `from`. */
  private onSignal(from: string, raw: unknown, overLink = false): void {
    if (this.closed) return
    const s = parseSignalData(raw)
    if (!s) return bump(this.counters, 'drop.signal')
    if (s.t === 'refuse') {
      const d = this.dials.get(from)
      if (s.reason === 'no-relay') this.relayMismatch(from)
      if (d)
        this.failDial(
          d,
          new NoRouteError(
            from,
            s.reason === 'no-relay'
              ? `${from} takes direct links only (it runs relay: 'never'), and this node has relay: 'force'`
              : `${from} refused: ${s.reason}`,
          ),
        )
      return
    }
    const linked = this.links.get(from)
    // WebRTC signals over an open relay link upgrade it to a direct one (not when relays are forced).
    const upgrade = s.t === 'rtc' && linked?.transport === 'relay' && this.opts.relay !== 'force'
    if (linked?.state === 'open' && !upgrade) {
      // (Over that very link it cannot be stale: the peer still uses it.)
      if (overLink || !startsSession(s, linked)) return
      // The peer sets up a new link, so it no longer has this one: its goodbye is still on the way.
      // (Waiting for it would leave the new dial unanswered until it times out.)
      bump(this.counters, 'link.superseded')
      linked.close('superseded')
    }
    let d = this.dials.get(from)
    if (!d) {
      if (s.t === 'relay' && this.opts.relay !== 'never') return this.notePendingRelay(from, s)
      if (!this.admitInbound(from)) return
      d = { peer: from, mesh: s.mesh, inbound: true, relays: 0, started: Date.now(), waiters: [] }
      this.dials.set(from, d)
    } else d.mesh ||= s.mesh
    switch (s.t) {
      case 'dial':
        // The higher id asks us (the lower) to offer.
        if (this.opts.relay === 'force') return this.startRelay(d)
        if (this.id < from && !d.pipe && !d.relay) this.startWebRtc(d, true)
        return
      case 'rtc':
        if (this.opts.relay === 'force') return this.startRelay(d)
        if (d.relay) return
        if (!d.pipe) {
          if (this.id < from) return bump(this.counters, 'drop.signal.glare') // we offer, they must not
          this.startWebRtc(d, false)
        }
        d.pipe?.signal(s.s)
        return
      case 'relay':
        if (this.opts.relay === 'never') {
          // The peer offers only a relayed link: it runs relay 'force' (or gave up on WebRTC).
          this.relayMismatch(from)
          this.failDial(
            d,
            new NoRouteError(
              from,
              `${from} links only through the signal server's relay (it runs relay: 'force'), and this node has relay: 'never'`,
            ),
          )
          void this.signalClient.signal(from, { t: 'refuse', reason: 'no-relay' }).catch(() => {})
          return
        }
        return this.startRelay(d, s.sid)
    }
  }

  /**
   * `peer` and this node cannot link: one runs relay 'never', the other relay 'force'. Counted;
   * during the first join, noted so that joinOverlay can say so (see start).
   */
  private relayMismatch(peer: string): void {
    bump(this.counters, 'dial.relay-mismatch')
    if (this.mismatched && this.mismatched.size < MAX_SAMPLED) {
      this.mismatched.add(peer)
      this.onMismatch?.()
    }
  }

  /**
   * May `from` start a link setup now? Not while it is in backoff after a
   * failed one, not past MAX_INBOUND pending (MAX_INBOUND_STRANGERS for peers
   * the server never sampled for us), and not past maxLinks. A refusal is
   * answered ('full') within a small budget, so a flood cannot make this node
   * flood the server; the rest are dropped and counted.
   */
  private admitInbound(from: string): boolean {
    const now = Date.now()
    if ((this.inboundBackoff.get(from) ?? 0) > now) {
      bump(this.counters, 'drop.signal.inbound-backoff')
      return false
    }
    let inbound = 0
    let strangers = 0
    for (const d of this.dials.values()) {
      if (!d.inbound) continue
      inbound++
      if (!this.sampled.has(d.peer)) strangers++
    }
    const stranger = !this.sampled.has(from)
    let reason: string | undefined
    if (this.links.size + this.dials.size >= this.opts.maxLinks) reason = 'links'
    else if (inbound >= MAX_INBOUND) reason = 'inbound'
    else if (stranger && strangers >= MAX_INBOUND_STRANGERS) reason = 'strangers'
    if (reason === undefined) return true
    bump(this.counters, `drop.signal.inbound-full.${reason}`)
    this.refuseTokens = Math.min(
      REFUSE_BURST,
      this.refuseTokens + ((now - this.refuseAt) / 1000) * REFUSALS_PER_SEC,
    )
    this.refuseAt = now
    if (this.refuseTokens >= 1) {
      this.refuseTokens--
      void this.signalClient.signal(from, { t: 'refuse', reason: 'full' }).catch(() => {})
    }
    return false
  }

  /** A peer announced a relay session: wait for its hello before setting anything up (MAX_PENDING_RELAYS). */
  private notePendingRelay(from: string, s: { sid: number; mesh: boolean }): void {
    const now = Date.now()
    if ((this.inboundBackoff.get(from) ?? 0) > now) return bump(this.counters, 'drop.signal.inbound-backoff')
    // A new session replaces one the peer announced and never spoke on.
    if (this.pendingRelays.delete(from)) bump(this.counters, 'drop.signal.relay-unanswered')
    this.pendingRelays.set(from, { sid: s.sid, mesh: s.mesh, at: now })
    if (this.pendingRelays.size > MAX_PENDING_RELAYS) {
      this.pendingRelays.delete(this.pendingRelays.keys().next().value as string)
      bump(this.counters, 'drop.signal.relay-pending-full')
    }
  }

  private onRelayFrame(from: string, frame: Uint8Array): void {
    // By session id: a dial to a peer we already have a relay link with (a link-setup signal can
    // start one) must not take the open link's frames.
    const sid = relaySid(frame)
    const d = this.dials.get(from)
    if (d?.relay?.sid === sid) return d.relay.deliver(frame)
    const l = this.links.get(from)
    if (l?.transport === 'relay' && (l.pipe as RelayPipe).sid === sid)
      return (l.pipe as RelayPipe).deliver(frame)
    const pending = this.pendingRelays.get(from)
    if (pending?.sid === sid) return this.acceptRelay(from, pending, frame)
    bump(this.counters, 'drop.relay-frame')
  }

  /**
   * The first frame of a relay session a peer announced: its hello (small,
   * uncompressed, Kind.Link) starts the setup, if an inbound slot is free;
   * anything else is dropped unread and the peer backs off.
   */
  private acceptRelay(from: string, p: { sid: number; mesh: boolean }, frame: Uint8Array): void {
    this.pendingRelays.delete(from)
    if (this.closed) return
    if (!isHandshakePiece(frame.subarray(4))) {
      bump(this.counters, 'drop.before-auth')
      setBounded(this.inboundBackoff, from, Date.now() + INBOUND_BACKOFF_MS)
      return
    }
    const existing = this.dials.get(from)
    if (existing) {
      // We started a setup with it meanwhile: its session joins that one, as its signal would have.
      this.startRelay(existing, p.sid)
      if (existing.relay?.sid === p.sid) existing.relay.deliver(frame)
      return
    }
    if (!this.admitInbound(from)) return
    const d: Dial = { peer: from, mesh: p.mesh, inbound: true, relays: 0, started: Date.now(), waiters: [] }
    this.dials.set(from, d)
    this.startRelay(d, p.sid)
    d.relay?.deliver(frame)
  }

  // ------------------------------------------------------------------ frames

  /** A frame from `link`, checked by the link with the core's parser (see `parsed`): to its protocol. */
  private async onFrame(link: Link, f: Frame): Promise<void> {
    if (this.closed) return
    const m = typeof f.body === 'object' && f.body !== null ? this.parsed.get(f.body) : undefined
    if (!m || m.kind !== f.kind) return bump(this.counters, 'drop.kind')
    await this.core.handle(link.peer, m)
  }

  /** The link's validator for a kind of the core: parse, and keep the typed message for onFrame. */
  private validator(kind: NodeMsg['kind']): (body: Value) => boolean {
    return (body) => {
      const m = this.core.parse(kind, body)
      if (m && typeof body === 'object' && body !== null) this.parsed.set(body, m)
      return m !== null
    }
  }

  private onControl(link: Link, c: LinkControl): void {
    if (c.t === 'pex') {
      this.neighbourLinks.set(link.peer, c.peers)
      this.addCandidates(c.peers.map((id) => ({ id, lastSeen: Date.now() })))
    } else if (c.t === 'role') {
      // The other end asks to carry the mesh on this link: agree while we have room, so the link
      // becomes a mesh link on both ends (a one-sided wish would leave it out of the mesh).
      if (c.mesh && !link.localMesh && this.meshNeighbours().length < this.opts.maxPeers) link.setMesh(true)
      if (link.isMesh) this.meshUp(link.peer)
      else this.meshDown(link.peer)
    }
  }

  private meshUp(peer: string): void {
    this.core.meshUp(peer).catch(() => {})
  }

  private meshDown(peer: string): void {
    this.core.meshDown(peer).catch(() => {})
  }

  private sendPex(): void {
    const mine = this.meshNeighbours()
    for (const l of this.links.values()) {
      if (l.state !== 'open') continue
      void l.sendControl({ t: 'pex', peers: mine.filter((p) => p !== l.peer).slice(0, 32) })
    }
  }

  // ------------------------------------------------------------------ connection manager

  /** Peers from the signal server's samples: candidates, and remembered as sampled (see MAX_INBOUND_STRANGERS). */
  private addSampled(peers: PeerInfo[]): void {
    for (const p of peers) {
      this.sampled.delete(p.id)
      this.sampled.add(p.id)
    }
    while (this.sampled.size > MAX_SAMPLED) {
      const oldest = this.sampled.values().next().value
      if (oldest === undefined) break
      this.sampled.delete(oldest)
    }
    this.addCandidates(peers)
  }

  private addCandidates(peers: PeerInfo[]): void {
    for (const p of peers) {
      if (p.id === this.id) continue
      this.candidates.delete(p.id)
      this.candidates.set(p.id, Date.now())
    }
    while (this.candidates.size > MAX_CANDIDATES) {
      const oldest = this.candidates.keys().next().value
      if (oldest === undefined) break
      this.candidates.delete(oldest)
    }
  }

  private manage(): void {
    if (this.closed) return
    const now = Date.now()
    const mesh = this.meshNeighbours()
    // Our own dials only: link setups that peers started must not stop us dialling (MAX_INBOUND).
    const dialling = [...this.dials.values()].filter((d) => d.mesh && !d.inbound).length
    const want = this.opts.targetPeers - mesh.length - dialling
    if (want > 0) {
      const pool = [...this.candidates.keys()].filter(
        (id) => !this.links.has(id) && !this.dials.has(id) && (this.backoff.get(id) ?? 0) <= now,
      )
      shuffle(pool)
      for (const id of pool.slice(0, Math.min(want, MAX_DIALS))) {
        this.dial(id, true).catch(() => {
          this.candidates.delete(id)
        })
      }
      // An existing on-demand link can be promoted instead of opening a new one.
      // Links we have that are not mesh links yet: ask (again) to carry the mesh on them; the
      // other end agrees once it has room (it may have been full when the link opened).
      let room = want
      for (const l of this.links.values()) {
        if (room <= 0) break
        if (l.state !== 'open' || l.isMesh) continue
        if (!l.localMesh) l.setMesh(true)
        else void l.sendControl({ t: 'role', mesh: true })
        room--
      }
      if (pool.length < want && this.signalClient.connected && now - this.lastSample > 2000) {
        this.lastSample = now
        this.signalClient.peers().then(
          (ps) => this.addSampled(ps),
          () => {},
        )
      }
    } else if (mesh.length > this.opts.maxPeers) {
      // Too many: hand the newest extra links back to on-demand duty.
      const extra = [...this.links.values()].filter((l) => l.isMesh).sort((a, b) => b.openedAt - a.openedAt)
      for (const l of extra.slice(0, mesh.length - this.opts.maxPeers)) l.setMesh(false)
    }
    if (now - this.lastSample > SAMPLE_MS && this.signalClient.connected) {
      this.lastSample = now
      this.signalClient.peers().then(
        (ps) => this.addSampled(ps),
        () => {},
      )
    }
    // Idle on-demand links close; over budget, the least recently used go first; never those the ring needs.
    const needed = this.chord.neededLinks()
    const aux = [...this.links.values()].filter((l) => !l.isMesh && l.state === 'open' && !needed.has(l.peer))
    for (const l of aux) if (now - l.lastUsed > AUX_IDLE_MS) l.close('idle')
    const over = this.links.size - this.opts.maxLinks
    if (over > 0) {
      aux.sort((a, b) => a.lastUsed - b.lastUsed)
      for (const l of aux.slice(0, over)) l.close('budget')
    }
    // Expire stale dial backoffs.
    for (const [id, until] of this.backoff) if (until <= now) this.backoff.delete(id)
    for (const [id, until] of this.inboundBackoff) if (until <= now) this.inboundBackoff.delete(id)
    for (const [id, p] of this.pendingRelays) {
      if (now - p.at <= PENDING_RELAY_MS) break // oldest first
      this.pendingRelays.delete(id)
      bump(this.counters, 'drop.signal.relay-unanswered')
    }
  }

  private scheduleSave(): void {
    if (this.saveTimer || this.closed) return
    const wait = Math.max(0, this.lastSave + SAVE_GAP_MS - Date.now())
    this.saveTimer = setTimeout(() => void this.save(), wait)
  }

  /** Write this node's share of the DHT (an always-on peer does, periodically and on close). */
  async saveDht(): Promise<void> {
    await this.storage
      .save(`dht-${this.network}`, this.chord.exportState())
      .catch(() => bump(this.counters, 'save.failed'))
  }

  /** Write the table snapshot now (also called by the browser entry on pagehide). */
  async save(): Promise<void> {
    clearTimeout(this.saveTimer)
    this.saveTimer = undefined
    this.lastSave = Date.now()
    await this.storage
      .save(`sync-${this.network}`, this.syncTable.exportState())
      .catch(() => bump(this.counters, 'save.failed'))
  }

  private tick(): void {
    if (this.closed) return
    const now = Date.now()
    this.core.tick(now).catch(() => bump(this.counters, 'tick.error'))
    if (this.opts.persistDht && now - this.lastDhtSave > DHT_SAVE_MS) {
      this.lastDhtSave = now
      void this.saveDht()
    }
    // Two nodes that started alone at once each made a ring: the one still alone joins through a neighbour.
    if (now - this.lastRingCheck > RING_CHECK_MS) {
      this.lastRingCheck = now
      // Alone: no successor but ourselves and nobody has joined through us (no predecessor).
      const pred = this.chord.predecessor()
      const alone = this.chord.successors().every((s) => s === this.id) && (pred === null || pred === this.id)
      const via = this.peers()[0]
      if (alone && via && via.id < this.id) this.ringReady = this.chord.join(via.id).catch(() => {})
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError()
  }
}

function checkTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > 256 || topic.charCodeAt(0) === 0)
    throw new TypeError('a topic or method is a string of 1 to 256 characters, not starting with NUL')
}

function checkNodeId(to: unknown): asserts to is string {
  if (typeof to !== 'string' || !/^[0-9a-f]{40}$/.test(to))
    throw new TypeError(`not a node id: ${JSON.stringify(to)}`)
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new TypeError('a key is a non-empty string')
}

/** The `author` option of a DHT read: a node id, or (when absent) ours. */
function authorOf(opts: { author?: string } | undefined, self: string): string {
  const a: unknown = opts?.author
  if (a === undefined) return self
  if (!isNodeId(a)) throw new TypeError('author is a node id: 40 lowercase hex characters')
  return a
}

function checkValue(v: unknown): asserts v is Value {
  if (!isValue(v)) throw new TypeError('data must be a Value: JSON-compatible data or Uint8Array, nested')
}

/** Call an application callback; what it throws is reported apart, not into our own work. */
function safeCall(fn: () => void): void {
  try {
    fn()
  } catch (err) {
    queueMicrotask(() => {
      throw err
    })
  }
}

/** The frame a message of the core travels in. */
function frameOf(m: NodeMsg): Frame {
  return { kind: m.kind, body: nodeMsgBody(m) }
}

/** Set `key` in a map kept to MAX_BACKOFF entries (re-inserted keys move to the end; the oldest go). */
/** How long a peer that refused us for the network's secret is not asked again. */
const DENIED_MS = 60_000

function setBounded<K, V>(m: Map<K, V>, key: K, value: V): void {
  m.delete(key)
  m.set(key, value)
  if (m.size > MAX_BACKOFF) m.delete(m.keys().next().value as K)
}

function shuffle<T>(xs: T[]): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    const t = xs[i] as T
    xs[i] = xs[j] as T
    xs[j] = t
  }
}
