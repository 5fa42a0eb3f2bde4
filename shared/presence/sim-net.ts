/**
 * A presence network in the simulator, for tests and benchmarks. Each
 * simulated node runs the real mesh (`createMesh`, Plumtree, fast fake keys)
 * and presence over it, wired as a host wires them: presence records are
 * mesh broadcasts on PRESENCE_TOPIC, handed back to `handleBroadcast` on
 * delivery (not our own), and link messages are tagged `{ p: 'mesh' |
 * 'presence', m }`. Every presence event at every node is recorded with
 * the simulated time it happened.
 *
 * (When shared/node's composition lands, this net should run it instead,
 * as the sync simulator does, so the simulator tests the product's wiring.)
 */
import { createMesh, type Mesh, type MeshOptions } from '../mesh/mesh.ts'
import type { MeshMsg } from '../mesh/messages.ts'
import type { ProtocolNode } from '../protocol.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { shuffle } from '../sim/prng.ts'
import { createSim, type Sim, type SimDeps, type SimOptions } from '../sim/sim.ts'
import { randomGraph } from '../sim/topology.ts'
import { type PresenceMsg, parseRecord } from './messages.ts'
import {
  createPresence,
  PRESENCE_TOPIC,
  type Presence,
  type PresenceEvent,
  type PresenceOptions,
} from './presence.ts'
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

  function buildNode(deps: SimDeps<PresenceNetMsg>): PresenceNode {
    const id = deps.id
    const keys = createFakeKeyring(id)
    const inflight = new Set<Promise<unknown>>()
    const track = (p: Promise<unknown>) => {
      inflight.add(p)
      void p.finally(() => inflight.delete(p))
    }
    const base = { id, keys, now: deps.now, random: deps.random, neighbours: deps.neighbours }
    const mesh = createMesh({ ...base, send: (to, m) => deps.send(to, { p: 'mesh', m }) }, o.mesh)
    const presence = createPresence(
      {
        ...base,
        send: (to, m) => deps.send(to, { p: 'presence', m }),
        broadcast: (record) => {
          const body = parseRecord(record)?.[0]
          const interval = body && parseBody(body)?.interval
          if (interval !== undefined) intervals.set(id, interval)
          return mesh.broadcast(PRESENCE_TOPIC, record)
        },
      },
      o.presence,
    )
    mesh.onDeliver((d) => {
      if (d.topic === PRESENCE_TOPIC && d.hops > 0) track(presence.handleBroadcast(d.origin, d.data))
    })
    const view = new Set<string>()
    views.set(id, view)
    presence.onPresence((e) => {
      events.push({ ...e, at: id, time: sim.now })
      if (e.kind === 'join') view.add(e.id)
      else if (e.kind === 'leave') view.delete(e.id)
    })
    const drain = async () => {
      for (;;) {
        await presence.settled()
        if (inflight.size === 0) return
        await Promise.all([...inflight])
      }
    }
    // Called after every event: when nothing runs, no promise chain is built.
    const settle = () => (inflight.size === 0 ? presence.settled() : drain())
    return {
      presence,
      mesh,
      settle,
      async handle(from, msg) {
        if (msg.p === 'mesh') await mesh.handle(from, msg.m)
        else await presence.handle(from, msg.m)
        await settle()
      },
      tick(t) {
        mesh.tick(t)
        presence.tick(t)
        return settle()
      },
      async linkUp(p) {
        mesh.linkUp(p)
        presence.linkUp(p)
        await settle()
      },
      async linkDown(p) {
        mesh.linkDown(p)
        presence.linkDown(p)
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
