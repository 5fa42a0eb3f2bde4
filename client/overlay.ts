/**
 * The overlay node: the public API (weft-node.ts's `WeftNode`: argument
 * checks, then the protocols) over the node's host (client/node/host.ts),
 * which hosts the protocols and owns the dialer, the connection manager and
 * persistence. `joinOverlay` hands the application a facade over it
 * (facade.ts); this package's tests and tools use it whole.
 */
import { id160, utf8 } from '../shared/bytes.ts'
import type { Chord } from '../shared/chord/index.ts'
import { recordSlot } from '../shared/chord/index.ts'
import type { Mesh } from '../shared/mesh/mesh.ts'
import { bump } from '../shared/protocol.ts'
import type { Sync } from '../shared/sync/index.ts'
import type { Value } from '../shared/types.ts'
import { type FilesFront, lazyFiles } from './files/lazy.ts'
import { loadEngine } from './files/load-engine.ts'
import {
  authorOf,
  checkFunction,
  checkKey,
  checkNodeId,
  checkRequestOptions,
  checkTopic,
  checkValue,
} from './node/checks.ts'
import type { Clock } from './node/clock.ts'
import { NodeHost } from './node/host.ts'
import type { Env, JoinOptions } from './node/options.ts'
import { sealedBytes } from './private-content.ts'
import type {
  DhtApi,
  Handler,
  NodeInspection,
  PeerLink,
  PeerSummary,
  PresenceApi,
  PresenceInfo,
  Subscriber,
  SyncApi,
  WeftNode,
} from './weft-node.ts'

export type { Env, JoinOptions } from './node/options.ts'

/**
 * A Value as the type the application said it expects: type parameters
 * (`subscribe<T>`, `request<Res>`, ...) are the caller's word, not checked
 * at run time (weft-node.ts).
 */
const asExpected = <T>(v: Value): T => v as never

export class OverlayNode extends NodeHost implements WeftNode {
  readonly sync: SyncApi
  readonly dht: DhtApi
  readonly presence: PresenceApi
  readonly files: FilesFront

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
        keyed(async (k) => {
          checkValue(value)
          // In a private network the value is sealed (client/private-content.ts).
          const c = this.content
          return ring.put(k, c ? await c.seal('dht', k, this.id, value) : value)
        })(key),
      get: <T>(key: string, opts?: { author?: string }) =>
        keyed(async (k) => {
          const author = authorOf(opts, this.id)
          const v = await ring.get(k, author)
          const c = this.content
          const open = c && v !== undefined ? ((await c.open('dht', k, author, v)) ?? undefined) : v
          return open === undefined ? undefined : asExpected<T>(open)
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
    }
    const table = this.core.sync
    this.sync = {
      set: (key, value, opts) => {
        this.assertOpen()
        return this.privTable ? this.privTable.set(key, value, opts) : table.set(key, value, opts)
      },
      get: <T>(key: string) => {
        const v = this.privTable ? this.privTable.get(key) : table.get(key)
        return v === undefined ? undefined : asExpected<T>(v)
      },
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
    const presence = this.presenceNode
    this.presence = {
      // Async: a bad state or a closed node is a rejection, as the Promise says.
      set: async (state) => {
        this.assertOpen()
        checkValue(state)
        return presence.set(state)
      },
      get: <T>() => {
        const out = new Map<string, PresenceInfo<T>>()
        for (const [id, p] of presence.get()) out.set(id, { state: asExpected<T>(p.state), since: p.since })
        return out
      },
    }
    // The swarm and its store load on first use (client/files/lazy.ts).
    const maxBytes = opts.files?.maxBytes
    this.files = lazyFiles(
      async () => {
        const { createFilesEngine } = await loadEngine()
        return createFilesEngine(this, this.env.fileStore, this.env.random ?? Math.random, maxBytes, {
          lie: this.env.lieAboutFiles === true,
        })
      },
      () => this.isClosed,
    )
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

  peers(): PeerLink[] {
    return [...this.links.values()]
      .filter((l) => l.state === 'open')
      .map((l) => ({ id: l.peer, transport: l.transport }))
  }

  /** Richer than peers(): RTT and mesh membership. */
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

  inspect(): NodeInspection {
    const ring = this.core.chord
    return {
      id: this.id,
      network: this.network,
      closed: this.isClosed,
      signal: this.transport.state,
      links: this.linkDetails(),
      topology: this.topology(),
      ring: {
        joined: this.core.onRing(),
        successors: ring.successors(),
        predecessor: ring.predecessor(),
        fingers: ring.fingers(),
      },
      topics: this.core.topics?.info() ?? [],
    }
  }

  async broadcast(topic: string, data: Value): Promise<void> {
    this.assertOpen()
    checkTopic(topic)
    checkValue(data)
    const c = this.content
    await this.core.broadcast(topic, c ? await c.seal('broadcast', topic, this.id, data) : data)
  }

  /**
   * Deliver `data` to the subscribers of `topic` only: along the topic's
   * multicast tree (shared/topics/), not the whole mesh. In a private network
   * it is sealed like a broadcast (subscribers open it the same way).
   */
  async publish(topic: string, data: Value): Promise<void> {
    this.assertOpen()
    checkTopic(topic)
    checkValue(data)
    const c = this.content
    await this.core.publish(topic, c ? await c.seal('broadcast', topic, this.id, data) : data)
  }

  /** Broadcasts and publications on `topic`, and routed messages sent to it here (the first subscription joins its multicast tree). */
  subscribe<T = Value>(topic: string, fn: Subscriber<T>): () => void {
    checkTopic(topic)
    checkFunction(fn, 'subscribe')
    const c = this.content
    if (!c) return this.core.subscribe(topic, (data, meta) => fn(asExpected<T>(data), meta))
    // A private network's broadcasts come sealed (routed messages come as they are: sealed to us).
    return this.core.subscribe(topic, (data, meta) => {
      if (!sealedBytes(data)) return fn(asExpected<T>(data), meta)
      void c.open('broadcast', topic, meta.from, data).then((v) => {
        if (v === null) return
        try {
          fn(asExpected<T>(v), meta)
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

  handle<Req = Value, Res extends Value = Value>(method: string, fn: Handler<Req, Res>): () => void {
    checkTopic(method)
    checkFunction(fn, 'handle')
    return this.core.router.serve(method, (data, meta) => fn(asExpected<Req>(data), meta))
  }

  async request<Res = Value>(
    to: string,
    method: string,
    data: Value,
    opts: { timeoutMs?: number } = {},
  ): Promise<Res> {
    this.assertOpen()
    checkTopic(method)
    checkValue(data)
    checkRequestOptions(opts)
    if (to !== this.id) checkNodeId(to)
    return asExpected<Res>(await this.core.router.request(to, method, data, opts))
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
