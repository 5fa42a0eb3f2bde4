/**
 * The overlay node: what `joinOverlay` returns. The public API over the
 * node's host (client/node/host.ts), which hosts the protocols and owns the
 * dialer, the connection manager and persistence.
 */
import { id160, utf8 } from '../shared/bytes.ts'
import type { Chord, DhtRecord, LookupResult } from '../shared/chord/index.ts'
import { recordSlot } from '../shared/chord/index.ts'
import type { Mesh } from '../shared/mesh/mesh.ts'
import type { Sync, SyncChange } from '../shared/sync/index.ts'
import type { Value } from '../shared/types.ts'
import { authorOf, checkKey, checkNodeId, checkTopic, checkValue } from './node/checks.ts'
import type { Clock } from './node/clock.ts'
import { NodeHost } from './node/host.ts'
import type { Env, JoinOptions } from './node/options.ts'

export type { Env, JoinOptions } from './node/options.ts'

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

export class OverlayNode extends NodeHost {
  readonly sync: SyncApi
  readonly dht: DhtApi

  constructor(env: Env, opts: JoinOptions, clock?: Clock) {
    super(env, opts, clock)
    const ring = this.core.chord
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
        keyed((k) => {
          checkValue(value)
          return ring.put(k, value)
        })(key),
      get: (key, opts) => keyed((k) => ring.get(k, authorOf(opts, this.id)))(key),
      getRecord: (key, opts) => keyed((k) => ring.getRecord(k, authorOf(opts, this.id)))(key),
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
    const table = this.core.sync
    this.sync = {
      set: (key, value, opts) => {
        this.assertOpen()
        return table.set(key, value, opts)
      },
      get: (key) => table.get(key),
      delete: (key) => {
        this.assertOpen()
        return table.delete(key)
      },
      entries: () => table.entries(),
      owner: (key) => table.owner(key),
      lease: (key) => table.lease(key),
      on: (event, fn) => {
        if (event !== 'change') throw new TypeError(`node.sync has no ${String(event)} event`)
        return table.onChange(fn)
      },
    }
  }

  get mesh(): Mesh {
    return this.core.mesh
  }

  get syncTable(): Sync {
    return this.core.sync
  }

  get chord(): Chord {
    return this.core.chord
  }

  /** Each neighbour's own neighbours, from peer exchange (for the network drawing). */
  get neighbourLinks(): Map<string, string[]> {
    return this.manager.neighbourLinks
  }

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
    for (const [peer, theirs] of this.manager.neighbourLinks) out[peer] = [...theirs]
    return out
  }

  async broadcast(topic: string, data: Value): Promise<void> {
    this.assertOpen()
    checkTopic(topic)
    checkValue(data)
    await this.core.broadcast(topic, data)
  }

  /** Broadcasts on `topic`, and routed messages sent to it here. */
  subscribe(topic: string, fn: Subscriber): () => void {
    checkTopic(topic)
    return this.core.subscribe(topic, fn)
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

  /** Write the table snapshot now (also called by the browser entry on pagehide). */
  save(): Promise<void> {
    return this.persistence.save()
  }

  /** Write this node's share of the DHT (an always-on peer does, periodically and on close). */
  saveDht(): Promise<void> {
    return this.persistence.saveDht()
  }
}
