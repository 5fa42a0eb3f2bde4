/**
 * A sync network in the simulator, for tests and benchmarks. Each simulated
 * node runs the sync table over a broadcast transport, with messages tagged
 * `{ p: 'mesh' | 'flood' | 'sync', m }`:
 *
 * - `transport: 'mesh'` (the default): the node composition the browser node
 *   runs (shared/node, `createNodeCore`, with fast fake keys): the real mesh
 *   (Plumtree) carries sync broadcasts on SYNC_TOPIC and hands them to the
 *   table as the product does;
 * - `transport: 'flood'`: plain flooding with a seen-set, the simplest
 *   broadcast there is (a baseline, and independent of the mesh).
 *
 * Every node may get a fixed clock offset (`clockSkewMs`), so lease and
 * skew rules meet clocks that disagree. A restarted node can be restored from
 * a snapshot, imported before its links come up (a reloaded tab reads
 * IndexedDB first). Acceptances at every node, across restarts, go to
 * `onAccept` listeners; broadcast deliveries are recorded with their hops.
 */
import type { Mesh, MeshOptions } from '../mesh/mesh.ts'
import type { MeshMsg } from '../mesh/messages.ts'
import { createNodeCore, type NodeCore } from '../node/core.ts'
import { SYNC_TOPIC } from '../node/topics.ts'
import type { ProtocolNode } from '../protocol.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { createSim, type NodeFactory, type Sim, type SimDeps, type SimOptions } from '../sim/sim.ts'
import { randomGraph } from '../sim/topology.ts'
import type { Value } from '../types.ts'
import { Kind } from '../wire/frame.ts'
import type { SyncMsg } from './messages.ts'
import { createSync, type Sync, type SyncAccept, type SyncOptions } from './sync.ts'

/** A broadcast of the flood transport. */
export interface FloodEnvelope {
  id: string
  origin: string
  hops: number
  data: SyncMsg
}

export type NetMsg = { p: 'mesh'; m: MeshMsg } | { p: 'flood'; m: FloodEnvelope } | { p: 'sync'; m: SyncMsg }

export interface SyncNetOptions {
  seed: number
  n: number
  degree: number
  /** The broadcast transport. @default 'mesh' */
  transport?: 'mesh' | 'flood'
  sync?: SyncOptions
  mesh?: MeshOptions
  sim?: Omit<SimOptions<NetMsg>, 'seed'>
  /** Each node's clock is off by a fixed amount drawn from [-clockSkewMs, clockSkewMs]. @default 0 */
  clockSkewMs?: number
}

export interface SyncNode extends ProtocolNode<NetMsg> {
  readonly sync: Sync
  readonly mesh: Mesh | undefined
  /** Resolves when the node's snapshot import and every broadcast it started have finished. */
  settle(): Promise<void>
}

export interface SyncNet {
  readonly sim: Sim<NetMsg>
  readonly ids: string[]
  sync(id: string): Sync
  node(id: string): SyncNode
  /** The fixed offset of a node's clock from simulated time. */
  offset(id: string): number
  /** A node's own clock now. */
  clock(id: string): number
  set(id: string, key: string, value: Value, opts?: { leaseMs?: number }): Promise<void>
  del(id: string, key: string): Promise<void>
  crash(id: string): Promise<void>
  /** Restart a node (crashing it first when up), restored from `snapshot` or empty. */
  restart(id: string, snapshot?: Value): Promise<void>
  /** Every acceptance at every node, across restarts. */
  onAccept(fn: (node: string, e: SyncAccept) => void): () => void
  /** Broadcast id (any topic) -> node -> hops of its first delivery there. */
  readonly deliveries: Map<string, Map<string, number>>
  /** The id of the last broadcast a node sent (mesh id, or flood id). */
  lastBroadcast(id: string): string | undefined
  /** Up nodes grouped by digest. */
  digests(): Map<string, string[]>
  converged(): boolean
  /** Sum of a sync counter over the up nodes. */
  sum(counter: string): number
}

export async function createSyncNet(o: SyncNetOptions): Promise<SyncNet> {
  const transport = o.transport ?? 'mesh'
  const sim = createSim<NetMsg>({ ...o.sim, seed: o.seed })
  const ids = Array.from({ length: o.n }, () => sim.randomId())
  const offsets = new Map<string, number>()
  const skew = o.clockSkewMs ?? 0
  for (const id of ids) offsets.set(id, skew === 0 ? 0 : Math.round((sim.rng() * 2 - 1) * skew))
  const listeners = new Set<(node: string, e: SyncAccept) => void>()
  const deliveries = new Map<string, Map<string, number>>()
  const last = new Map<string, string>()

  const record = (msgId: string, node: string, hops: number) => {
    let m = deliveries.get(msgId)
    if (!m) {
      m = new Map()
      deliveries.set(msgId, m)
    }
    if (!m.has(node)) m.set(node, hops)
  }

  function factory(id: string, snapshot?: Value): NodeFactory<NetMsg> {
    return (deps: SimDeps<NetMsg>) => buildNode(deps, id, snapshot)
  }

  function buildNode(deps: SimDeps<NetMsg>, id: string, snapshot: Value | undefined): SyncNode {
    return transport === 'mesh' ? meshNode(deps, id, snapshot) : floodNode(deps, id, snapshot)
  }

  /** The product's wiring: one node composition; only its mesh and sync speak here (no ring is joined). */
  function meshNode(deps: SimDeps<NetMsg>, id: string, snapshot: Value | undefined): SyncNode {
    const offset = offsets.get(id) ?? 0
    const core: NodeCore = createNodeCore(
      {
        id,
        keys: createFakeKeyring(id),
        now: () => deps.now() + offset,
        random: deps.random,
        send(to, m) {
          if (m.kind === Kind.Mesh) deps.send(to, { p: 'mesh', m: m.msg })
          else if (m.kind === Kind.Sync) deps.send(to, { p: 'sync', m: m.msg })
        },
        sendVia: () => {},
        connect: async () => {},
        linked: () => deps.neighbours(),
        isLinked: (peer) => deps.neighbours().includes(peer),
        meshNeighbours: () => deps.neighbours(),
      },
      // No presence: its announcements would only add to the traffic measured here.
      { puzzleBits: 0, mesh: o.mesh ?? {}, sync: o.sync ?? {}, presence: false },
    )
    core.mesh.onDeliver((d) => {
      record(d.id, id, d.hops)
      if (d.hops === 0 && d.topic === SYNC_TOPIC) last.set(id, d.id)
    })
    const { sync } = core
    sync.onAccept((e) => {
      for (const fn of [...listeners]) fn(id, e)
    })
    const ready =
      snapshot === undefined ? Promise.resolve() : sync.importState(snapshot).then(() => undefined)
    return {
      sync,
      mesh: core.mesh,
      settle: async () => {
        await ready
        await core.settled()
      },
      async handle(from, msg) {
        await ready
        if (msg.p === 'sync') await core.handle(from, { kind: Kind.Sync, msg: msg.m })
        else if (msg.p === 'mesh') await core.handle(from, { kind: Kind.Mesh, msg: msg.m })
        await core.settled()
      },
      async tick(t) {
        await ready
        await core.tick(t + offset)
        await core.settled()
      },
      async linkUp(p) {
        await ready
        await core.meshUp(p)
        await core.settled()
      },
      async linkDown(p) {
        await ready
        await core.linkDown(p)
      },
    }
  }

  /** The baseline: the table over plain flooding. */
  function floodNode(deps: SimDeps<NetMsg>, id: string, snapshot: Value | undefined): SyncNode {
    const offset = offsets.get(id) ?? 0
    const now = () => deps.now() + offset
    const inflight: Promise<unknown>[] = []
    const seen = new Set<string>()
    let seq = 0

    const flush = async () => {
      while (inflight.length > 0) await inflight.shift()
    }

    const floodBroadcast = (data: SyncMsg) => {
      const env: FloodEnvelope = { id: `${id}:${seq++}`, origin: id, hops: 0, data }
      seen.add(env.id)
      last.set(id, env.id)
      record(env.id, id, 0)
      for (const n of deps.neighbours()) deps.send(n, { p: 'flood', m: { ...env, hops: 1 } })
    }

    const onFlood = (from: string, env: FloodEnvelope) => {
      if (seen.has(env.id)) return
      seen.add(env.id)
      record(env.id, id, env.hops)
      if (env.origin !== id) inflight.push(sync.handleBroadcast(env.origin, env.data))
      for (const n of deps.neighbours())
        if (n !== from) deps.send(n, { p: 'flood', m: { ...env, hops: env.hops + 1 } })
    }

    const sync = createSync(
      {
        id,
        keys: createFakeKeyring(id),
        now,
        random: deps.random,
        neighbours: deps.neighbours,
        send: (to, m) => deps.send(to, { p: 'sync', m }),
        broadcast: floodBroadcast,
      },
      o.sync,
    )
    sync.onAccept((e) => {
      for (const fn of [...listeners]) fn(id, e)
    })
    const ready =
      snapshot === undefined ? Promise.resolve() : sync.importState(snapshot).then(() => undefined)

    return {
      sync,
      mesh: undefined,
      settle: async () => {
        await ready
        await flush()
      },
      async handle(from, msg) {
        await ready
        if (msg.p === 'sync') await sync.handle(from, msg.m)
        else if (msg.p === 'flood') onFlood(from, msg.m)
        await flush()
      },
      async tick(t) {
        await ready
        await sync.tick(t + offset)
        await flush()
      },
      async linkUp(p) {
        await ready
        await sync.linkUp?.(p)
        await flush()
      },
      async linkDown(p) {
        await ready
        await sync.linkDown?.(p)
      },
    }
  }

  for (const id of ids) sim.addNode(id, factory(id))
  await randomGraph(sim, ids, o.degree)

  const node = (id: string) => sim.proto<SyncNode>(id)
  const net: SyncNet = {
    sim,
    ids,
    deliveries,
    node,
    sync: (id) => node(id).sync,
    offset: (id) => offsets.get(id) ?? 0,
    clock: (id) => sim.now + (offsets.get(id) ?? 0),
    async set(id, key, value, opts) {
      await node(id).sync.set(key, value, opts)
      await node(id).settle()
    },
    async del(id, key) {
      await node(id).sync.delete(key)
      await node(id).settle()
    },
    crash: (id) => sim.crash(id),
    async restart(id, snapshot) {
      await sim.restart(id, factory(id, snapshot))
      await node(id).settle()
    },
    onAccept(fn) {
      listeners.add(fn)
      return () => void listeners.delete(fn)
    },
    lastBroadcast: (id) => last.get(id),
    digests() {
      const out = new Map<string, string[]>()
      for (const id of sim.upIds()) {
        const d = node(id).sync.digest()
        const g = out.get(d)
        if (g) g.push(id)
        else out.set(d, [id])
      }
      return out
    },
    converged: () => net.digests().size <= 1,
    sum(counter) {
      let s = 0
      for (const id of sim.upIds()) s += node(id).sync.counters[counter] ?? 0
      return s
    },
  }
  return net
}
