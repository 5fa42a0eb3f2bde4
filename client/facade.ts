/**
 * The object `joinOverlay` resolves to: a `WeftNode` (weft-node.ts) over the
 * node that does the work (overlay.ts, over the host in client/node/). It
 * holds that node in a private field and has exactly the interface's
 * members, so the node's internals are not reachable from the application.
 * Tests and tools of this package reach them with `NodeFacade.internals`.
 */
import type { Value } from '../shared/types.ts'
import type { FilesApi } from './files/types.ts'
import type { OverlayNode } from './overlay.ts'
import type {
  DhtApi,
  Handler,
  NodeEvents,
  NodeInspection,
  PeerLink,
  PresenceApi,
  Subscriber,
  SyncApi,
  WeftNode,
} from './weft-node.ts'

export class NodeFacade implements WeftNode {
  readonly #node: OverlayNode
  readonly id: string
  readonly sync: SyncApi
  readonly dht: DhtApi
  readonly presence: PresenceApi
  readonly files: FilesApi

  constructor(node: OverlayNode) {
    this.#node = node
    this.id = node.id
    this.sync = node.sync
    this.dht = node.dht
    this.presence = node.presence
    // The API's four members only (the node's front also holds its engine).
    const f = node.files
    this.files = {
      add: (data, opts) => f.add(data, opts),
      get: (ref, opts) => f.get(ref, opts),
      list: () => f.list(),
      remove: (id) => f.remove(id),
      usage: () => f.usage(),
    }
  }

  /** The node behind a facade (for this package's tests and tools); throws for anything else. */
  static internals(node: WeftNode): OverlayNode {
    if (!(node instanceof NodeFacade)) throw new TypeError('not a node made by joinOverlay')
    return node.#node
  }

  peers(): PeerLink[] {
    return this.#node.peers()
  }

  on<K extends keyof NodeEvents>(event: K, fn: (payload: NodeEvents[K]) => void): () => void {
    return this.#node.on(event, fn)
  }

  off<K extends keyof NodeEvents>(event: K, fn: (payload: NodeEvents[K]) => void): void {
    this.#node.off(event, fn)
  }

  close(): Promise<void> {
    return this.#node.close()
  }

  broadcast(topic: string, data: Value): Promise<void> {
    return this.#node.broadcast(topic, data)
  }

  subscribe<T = Value>(topic: string, fn: Subscriber<T>): () => void {
    return this.#node.subscribe(topic, fn)
  }

  publish(topic: string, data: Value): Promise<void> {
    return this.#node.publish(topic, data)
  }

  send(to: string, topic: string, data: Value): Promise<void> {
    return this.#node.send(to, topic, data)
  }

  handle<Req = Value, Res extends Value = Value>(method: string, fn: Handler<Req, Res>): () => void {
    return this.#node.handle(method, fn)
  }

  request<Res = Value>(to: string, method: string, data: Value, opts?: { timeoutMs?: number }): Promise<Res> {
    return this.#node.request<Res>(to, method, data, opts)
  }

  stats(): Record<string, number> {
    return this.#node.stats()
  }

  inspect(): NodeInspection {
    return this.#node.inspect()
  }
}
