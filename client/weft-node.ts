/**
 * The public node: what `joinOverlay` resolves to (shared/docs/API.md), and
 * every type a user of it meets. `WeftNode` is an interface: the object
 * behind it (facade.ts) has exactly these members, and none of the node's
 * internals (its protocols, links or signalling client).
 *
 * Payload type parameters (`subscribe<T>`, `handle<Req, Res>`,
 * `request<Res>`, `sync.get<T>`, `dht.get<T>`) say what the application
 * expects; they are not checked at run time. Anything a peer sends is a
 * `Value` (checked on arrival); whether it has the shape `T` is for the
 * application to check when a peer may be wrong or hostile.
 */

import type { DhtRecord, LookupResult } from '../shared/chord/chord.ts'
import type { SyncChange } from '../shared/sync/events.ts'
import type { Value } from '../shared/types.ts'
import type { FilesApi } from './files/types.ts'
import type { SignalState } from './signal-client.ts'

export type { DhtRecord, LookupResult } from '../shared/chord/chord.ts'
export type { SyncChange } from '../shared/sync/events.ts'
export type { Value } from '../shared/types.ts'

/** An open link, as `peers()` lists it. */
export interface PeerLink {
  id: string
  transport: 'webrtc' | 'relay'
}

/** An open link with its measurements, as `inspect()` lists it. */
export interface PeerSummary extends PeerLink {
  /** Smoothed round-trip time in ms (NaN until measured). */
  rtt: number
  /** The link carries the broadcast mesh (both ends agreed); else it is an on-demand link. */
  mesh: boolean
}

/**
 * A change in who is present in the network (`node.on('presence', …)`): a
 * node appeared (`join`, with its state), changed its state (`update`; also
 * our own, after `presence.set`), or is gone (`leave`, with why: it said so,
 * it was not heard from in time, or a full table made room for a linked node).
 */
export interface PresenceEvent {
  id: string
  kind: 'join' | 'update' | 'leave'
  /** The node's state (join and update). */
  state?: Value
  /** Why a node is gone (leave only). */
  reason?: 'left' | 'expired' | 'evicted'
}

/** One present node, as `presence.get()` gives it. */
export interface PresenceInfo<T = Value> {
  state: T
  /** When the node's session started (ms, its clock; never later than our first sight of it). */
  since: number
}

/**
 * `node.presence`: who is in the network now (every live node, not only
 * linked ones) and what each says about itself, like y-webrtc's awareness.
 * A state is at most 1 KiB as MessagePack; a node that closes is gone
 * everywhere within about a second, one that crashes within about 5 s of
 * its links closing (its neighbours report it), or 3 × its interval + 2 s
 * when none of them survives (PROTOCOL-presence.md).
 */
export interface PresenceApi {
  /** Set our state and announce it to every node (TypeError: not a Value; ValueTooLargeError: over 1 KiB). */
  set(state: Value): Promise<void>
  /** Every present node, ourselves included: id -> { state, since }. */
  get<T = Value>(): Map<string, PresenceInfo<T>>
}

/** The node's events and what each listener gets. */
export type NodeEvents = {
  /** A link to a peer opened. */
  'peer:connect': { id: string }
  /** A link to a peer closed. */
  'peer:disconnect': { id: string }
  /** The node's standing with the signal servers changed. */
  signal: SignalState
  /** The node closed (close() finished). */
  closed: undefined
  /** Another node joined, changed its presence state or left (and our own state changed). */
  presence: PresenceEvent
}

/** Where a broadcast or routed message came from, and the hops it took (0: from a neighbour, or ourselves). */
export interface MessageMeta {
  from: string
  hops: number
}

/** A subscriber of a topic (broadcasts, publications and routed messages sent to it here). */
export type Subscriber<T = Value> = (data: T, meta: MessageMeta) => void

/** A handler of requests for a method: its answer (or what it throws, as RemoteError at the caller). */
export type Handler<Req = Value, Res extends Value = Value> = (
  data: Req,
  meta: { from: string },
) => Res | Promise<Res>

/** `node.sync`: the replicated table; every node holds all of it. */
export interface SyncApi {
  /** Write `key` (signed by us); with `leaseMs`, this node owns the key that long (LeaseHeldError for others). */
  set(key: string, value: Value, opts?: { leaseMs?: number }): Promise<void>
  get<T = Value>(key: string): T | undefined
  delete(key: string): Promise<void>
  entries(): [string, Value][]
  /** The node holding a live lease on `key`. */
  owner(key: string): string | undefined
  /** The live lease on a key: owner and expiry (ms, the owner's clock). */
  lease(key: string): { owner: string; expires: number } | undefined
  on(event: 'change', fn: (e: SyncChange) => void): () => void
}

/**
 * `node.dht`: the Chord ring of all nodes. Records are owned (BEP 44 style):
 * a key lives in its author's namespace, and only the author can write or
 * delete it.
 */
export interface DhtApi {
  /** Store `value` under `key` in our own namespace. */
  put(key: string, value: Value): Promise<void>
  /** An author's value for `key` (default author: us); undefined when none or deleted. */
  get<T = Value>(key: string, opts?: { author?: string }): Promise<T | undefined>
  /** The same read with the record's author, sequence and signing time (tombstones too). */
  getRecord(key: string, opts?: { author?: string }): Promise<DhtRecord | undefined>
  /** Delete our own record for `key`. */
  delete(key: string): Promise<void>
  /** Announce that this node provides `key`. */
  provide(key: string): Promise<void>
  /** Node ids that provide `key`. */
  findProviders(key: string): Promise<string[]>
  /**
   * The node responsible for `key` and the hops it took to find it: with
   * `author`, where that author's record for `key` lives; without, the key's
   * own position (where its provider records live).
   */
  lookup(key: string, opts?: { author?: string }): Promise<LookupResult>
}

/** What `inspect()` tells: the node's diagnostics, a snapshot taken at the call. */
export interface NodeInspection {
  id: string
  network: string
  /** close() has begun (the node takes no more calls). */
  closed: boolean
  /** Where the node stands with the signal servers. */
  signal: SignalState
  /** Open links, with round-trip time and mesh role. */
  links: PeerSummary[]
  /**
   * The part of the network this node knows: node id -> ids it is linked
   * with. Its own links, and each neighbour's mesh links as told by peer
   * exchange.
   */
  topology: Record<string, string[]>
  /** This node's view of the Chord ring. */
  ring: {
    /** Joined a ring with other members (a successor other than itself). */
    joined: boolean
    successors: string[]
    predecessor: string | null
    /** Distinct finger-table entries. */
    fingers: string[]
  }
  /** Topic multicast trees this node is in: its place in each (member states, or the root). */
  topics: { topic: string; state: string; parent: string | null; children: string[] }[]
}

/** A node of a weft network (shared/docs/API.md). */
export interface WeftNode {
  /** 40 lowercase hex characters: the first 160 bits of SHA-256(public key). */
  readonly id: string
  /** Open links now. */
  peers(): PeerLink[]
  /** Listen to an event; returns the function that stops listening. */
  on<K extends keyof NodeEvents>(event: K, fn: (payload: NodeEvents[K]) => void): () => void
  /** Stop listening (the same function that was given to `on`). */
  off<K extends keyof NodeEvents>(event: K, fn: (payload: NodeEvents[K]) => void): void
  /** Leave: the DHT share goes to the successor, links close with a goodbye, timers stop. */
  close(): Promise<void>

  /** Broadcast `data` on `topic` to every node of the network (signed by us). */
  broadcast(topic: string, data: Value): Promise<void>
  /** Broadcasts and publications on `topic`, and routed messages sent to it here; returns the unsubscribe. */
  subscribe<T = Value>(topic: string, fn: Subscriber<T>): () => void
  /**
   * Deliver `data` to the subscribers of `topic` (ourselves too, if we
   * subscribe), and as few others as possible: it travels the topic's
   * multicast tree, which every subscriber joins (README, "Topics"). Resolves
   * once it is on its way: handed to our tree neighbours, or accepted by the
   * topic's root when we are not in the tree yet.
   */
  publish(topic: string, data: Value): Promise<void>

  /** Deliver `data` to the subscribers of `topic` at node `to`, linked or not (routed unicast). */
  send(to: string, topic: string, data: Value): Promise<void>
  /** Answer requests for `method`; returns the function that stops answering. */
  handle<Req = Value, Res extends Value = Value>(method: string, fn: Handler<Req, Res>): () => void
  /** Call `method` at node `to`: its handler's answer (TimeoutError, NoRouteError, RemoteError). */
  request<Res = Value>(to: string, method: string, data: Value, opts?: { timeoutMs?: number }): Promise<Res>

  readonly sync: SyncApi
  readonly dht: DhtApi
  readonly presence: PresenceApi
  /** Files shared BitTorrent-style: add, get (by weft: link or id), list, remove (client/files/types.ts). */
  readonly files: FilesApi

  /** Counters: at least peers, messagesIn, messagesOut, bytesIn, bytesOut, and every protocol's. */
  stats(): Record<string, number>
  /** Diagnostics: links with RTT and mesh role, the topology from peer exchange, the ring, the signal state. */
  inspect(): NodeInspection
}
