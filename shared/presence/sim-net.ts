/**
 * A presence network in the simulator, for tests and benchmarks. Each
 * simulated node runs the node composition the browser node runs
 * (shared/node, `createNodeCore`, with fast fake keys; no ring is joined):
 * the real mesh (Plumtree) carries presence records on PRESENCE_TOPIC and
 * hands other nodes' deliveries to presence, presence's link messages go in
 * their own frame kind to mesh neighbours, and links coming up and going
 * down reach presence through the core, as in the product. Link messages are
 * tagged `{ p: 'mesh' | 'presence', m }`. Every presence event at every node
 * is recorded with the simulated time it happened.
 */
import type { Mesh, MeshOptions } from '../mesh/mesh.ts'
import type { MeshMsg } from '../mesh/messages.ts'
import { createNodeCore, type NodeCore } from '../node/core.ts'
import type { ProtocolNode } from '../protocol.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { shuffle } from '../sim/prng.ts'
import { createSim, type Sim, type SimDeps, type SimOptions } from '../sim/sim.ts'
import { randomGraph } from '../sim/topology.ts'
import { Kind } from '../wire/frame.ts'
import { type PresenceMsg, parseRecord } from './messages.ts'
import { PRESENCE_TOPIC, type Presence, type PresenceEvent, type PresenceOptions } from './presence.ts'
import { parseBody } from './record.ts'

export type PresenceNetMsg = { p: 'mesh'; m: MeshMsg } | { p: 'presence'; m: PresenceMsg }

export interface PresenceNetOptions {
  seed: number
  n: number
  degree: number
  presence?: PresenceOptions
  mesh?: MeshOptions
  sim?: Omit<SimOptions<PresenceNetMsg>, 'seed'>
}

export interface PresenceNode extends ProtocolNode<PresenceNetMsg> {
  readonly core: NodeCore
  readonly presence: Presence
  readonly mesh: Mesh
  /** Resolves when the work the node started (signing, checks) has finished. */
  settle(): Promise<void>
}

/** An event at `at` (a node), at simulated time `time`. */
export interface ObservedEvent extends PresenceEvent {
  at: string
  time: number
}

export interface PresenceNet {
  readonly sim: Sim<PresenceNetMsg>
  /** Every node ever added, in order (the first `n` are the initial ones). */
  readonly ids: string[]
  node(id: string): PresenceNode
  presence(id: string): Presence
  /** A new node, linked to `links` random up nodes. */
  add(links: number): Promise<string>
  /** Graceful: each calls `leave()`, keeps its links `lingerMs`, then goes (its links go down). */
  leave(ids: string[], lingerMs: number): Promise<void>
  crash(id: string): Promise<void>
  /** Every presence event at every node, in order. */
  readonly events: ObservedEvent[]
  /**
   * Up nodes (other than `target`) that hold `target` now, by the events each
   * emitted (cheap: no table is copied; `allSeeAll` checks the tables).
   */
  seers(target: string): number
  /** Every up node's table holds exactly the up nodes. */
  allSeeAll(): boolean
  /** Run in steps of `stepMs` until `done()` holds or `maxMs` pass (cheaper than checking after every event); whether it held. */
  runUntil(done: () => boolean, maxMs: number, stepMs?: number): Promise<boolean>
  /** Sum of a presence counter over the up nodes. */
  sum(counter: string): number
  /** The interval a node's latest record announced (receivers expire it by this). */
  announcedInterval(id: string): number | undefined
}

export async function createPresenceNet(o: PresenceNetOptions): Promise<PresenceNet> {
  const sim = createSim<PresenceNetMsg>({ ...o.sim, seed: o.seed })
  const ids: string[] = []
  const events: ObservedEvent[] = []
  const intervals = new Map<string, number>()
  /** Each node's view of the others, from its events. */
  const views = new Map<string, Set<string>>()

  /** The product's wiring: one node composition, of which mesh and presence speak here. */
  function buildNode(deps: SimDeps<PresenceNetMsg>): PresenceNode {
    const id = deps.id
    const core = createNodeCore(
      {
        id,
        keys: createFakeKeyring(id),
        now: deps.now,
        random: deps.random,
        send(to, m) {
          if (m.kind === Kind.Mesh) deps.send(to, { p: 'mesh', m: m.msg })
          else if (m.kind === Kind.Presence) deps.send(to, { p: 'presence', m: m.msg })
        },
        sendVia: () => {},
        connect: async () => {},
        linked: () => deps.neighbours(),
        isLinked: (peer) => deps.neighbours().includes(peer),
        meshNeighbours: () => deps.neighbours(),
      },
      { puzzleBits: 0, mesh: o.mesh ?? {}, presence: o.presence ?? {} },
    )
    const { mesh } = core
    const presence = core.presence
    if (!presence) throw new Error('the core was built without presence')
    // Our own record, as the mesh hands it back: the interval receivers will expire us by.
    mesh.onDeliver((d) => {
      if (d.topic !== PRESENCE_TOPIC || d.hops !== 0) return
      const body = parseRecord(d.data)?.[0]
      const interval = body && parseBody(body)?.interval
      if (interval !== undefined) intervals.set(id, interval)
    })
    const view = new Set<string>()
    views.set(id, view)
    presence.onPresence((e) => {
      events.push({ ...e, at: id, time: sim.now })
      if (e.kind === 'join') view.add(e.id)
      else if (e.kind === 'leave') view.delete(e.id)
    })
    const settle = () => core.settled()
    return {
      core,
      presence,
      mesh,
      settle,
      async handle(from, msg) {
        if (msg.p === 'mesh') await core.handle(from, { kind: Kind.Mesh, msg: msg.m })
        else await core.handle(from, { kind: Kind.Presence, msg: msg.m })
        await settle()
      },
      async tick(t) {
        await core.tick(t)
        await settle()
      },
      async linkUp(p) {
        await core.meshUp(p)
        await settle()
      },
      async linkDown(p) {
        await core.linkDown(p)
      },
    }
  }

  for (let i = 0; i < o.n; i++) {
    const id = sim.randomId()
    ids.push(id)
    sim.addNode(id, buildNode)
  }
  await randomGraph(sim, ids, o.degree)

  const node = (id: string) => sim.proto<PresenceNode>(id)
  const net: PresenceNet = {
    sim,
    ids,
    events,
    node,
    presence: (id) => node(id).presence,
    async add(links) {
      const peers = shuffle(sim.rng, sim.upIds()).slice(0, links)
      const id = sim.randomId()
      ids.push(id)
      sim.addNode(id, buildNode)
      for (const p of peers) await sim.link(id, p)
      return id
    },
    async leave(leaving, lingerMs) {
      const done = Promise.all(leaving.map((id) => node(id).presence.leave()))
      await sim.runFor(lingerMs)
      await done
      for (const id of leaving) await sim.crash(id)
    },
    crash: (id) => sim.crash(id),
    seers(target) {
      let n = 0
      for (const id of sim.upIds()) if (id !== target && views.get(id)?.has(target)) n++
      return n
    },
    allSeeAll() {
      const up = sim.upIds()
      for (const id of up) if (node(id).presence.sizes().nodes !== up.length) return false
      for (const id of up) {
        const seen = node(id).presence.get()
        for (const x of up) if (!seen.has(x)) return false
      }
      return true
    },
    async runUntil(done, maxMs, stepMs = 100) {
      const end = sim.now + maxMs
      while (!done()) {
        if (sim.now >= end) return false
        await sim.runFor(Math.min(stepMs, end - sim.now))
      }
      return true
    },
    announcedInterval: (id) => intervals.get(id),
    sum(counter) {
      let s = 0
      for (const id of sim.upIds()) s += node(id).presence.counters[counter] ?? 0
      return s
    },
  }
  return net
}
