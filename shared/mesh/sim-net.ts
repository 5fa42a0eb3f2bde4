/**
 * A mesh network in the simulator, for tests and benchmarks: every node runs
 * `createMesh` with fast fake keys, and every delivery is recorded (message
 * id -> node -> hop count of each delivery), across crashes and restarts.
 */
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { createSim, type Sim, type SimOptions } from '../sim/sim.ts'
import { randomGraph } from '../sim/topology.ts'
import type { Value } from '../types.ts'
import { createMesh, type Mesh, type MeshDelivery, type MeshOptions } from './mesh.ts'
import type { MeshMsg } from './messages.ts'

export interface MeshNet {
  readonly sim: Sim<MeshMsg>
  readonly ids: string[]
  /** message id -> node id -> hops of every delivery there (more than one entry would be a duplicate delivery). */
  readonly deliveries: Map<string, Map<string, number[]>>
  mesh(id: string): Mesh
  /** Sum of a counter over the live instances. */
  sum(counter: string): number
  broadcast(from: string, topic: string, data: Value): Promise<string>
  /** Nodes that delivered `msgId`. */
  reached(msgId: string): number
  /** Largest number of deliveries of `msgId` at any one node (1 when there are no duplicate deliveries). */
  maxDeliveries(msgId: string): number
}

export interface MeshNetOptions {
  seed: number
  n: number
  degree: number
  mesh?: MeshOptions
  sim?: Omit<SimOptions<MeshMsg>, 'seed'>
  /** Called with every delivery at every node, after it is recorded. */
  observe?: (node: string, d: MeshDelivery) => void
}

export async function createMeshNet(o: MeshNetOptions): Promise<MeshNet> {
  // The mesh returns every promise it starts (a gossip's checks): no need to yield after each event.
  const sim = createSim<MeshMsg>({ yieldEachEvent: false, ...o.sim, seed: o.seed })
  const ids = Array.from({ length: o.n }, () => sim.randomId())
  const deliveries = new Map<string, Map<string, number[]>>()
  for (const id of ids) {
    sim.addNode(id, (deps) => {
      const mesh = createMesh({ ...deps, keys: createFakeKeyring(id) }, o.mesh)
      mesh.onDeliver((d) => {
        let m = deliveries.get(d.id)
        if (!m) {
          m = new Map()
          deliveries.set(d.id, m)
        }
        const hops = m.get(id)
        if (hops) hops.push(d.hops)
        else m.set(id, [d.hops])
        o.observe?.(id, d)
      })
      return mesh
    })
  }
  await randomGraph(sim, ids, o.degree)
  const mesh = (id: string) => sim.proto<Mesh>(id)
  return {
    sim,
    ids,
    deliveries,
    mesh,
    sum(counter) {
      let s = 0
      for (const id of sim.upIds()) s += mesh(id).counters[counter] ?? 0
      return s
    },
    broadcast: (from, topic, data) => mesh(from).broadcast(topic, data),
    reached: (msgId) => deliveries.get(msgId)?.size ?? 0,
    maxDeliveries(msgId) {
      let max = 0
      for (const h of deliveries.get(msgId)?.values() ?? []) max = Math.max(max, h.length)
      return max
    },
  }
}
