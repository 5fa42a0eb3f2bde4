/**
 * Whole nodes in the simulator: every node is `createNodeCore` (mesh, sync,
 * Chord and router, wired as in the browser node), with the simulator as its
 * host. For tests and benchmarks of what the protocols do together.
 *
 * The host's part, as the browser node plays it:
 *
 * - links: the random graph's links carry the mesh (`meshUp` when they come
 *   up); any other link is opened on demand by a send (the simulator's
 *   `connectOnSend`, as the browser node dials Chord's fingers), and
 *   `connect` (a link outside the ring, after a `noroute`) succeeds at once;
 * - the wire: with `wire` (the default) every message is written to its
 *   MessagePack bytes and parsed back through the core's boundary check on
 *   the way, as a frame would be;
 * - time: each node's clock may be off by a fixed amount (`clockSkewMs`);
 * - the ring: `buildRing` joins every node through the real join protocol,
 *   in batches; a restarted node joins again through a live member.
 */
import { SIM_CHORD_OPTIONS } from '../chord/harness.ts'
import { keyPositionSync } from '../chord/sha256-sync.ts'
import type { ProtocolNode } from '../protocol.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { settleAll } from '../sim/settle.ts'
import { createSim, type Sim, type SimDeps, type SimOptions } from '../sim/sim.ts'
import { randomGraph } from '../sim/topology.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import { createNodeCore, type NodeCore, type NodeCoreOptions } from './core.ts'
import { type NodeMsg, nodeMsgBody } from './messages.ts'

export interface NodeNetOptions {
  seed: number
  n: number
  /** Mesh degree of the random graph. */
  degree: number
  /** Core options; the puzzle is off (fake keys) and Chord runs its fast simulation timers unless given. */
  core?: NodeCoreOptions
  sim?: Omit<SimOptions<NodeMsg>, 'seed' | 'connectOnSend'>
  /** Each node's clock is off by a fixed amount drawn from [-clockSkewMs, clockSkewMs]. @default 0 */
  clockSkewMs?: number
  /** Write every message to bytes and parse it back on the way. @default true */
  wire?: boolean
}

export interface SimNode extends ProtocolNode<NodeMsg> {
  readonly core: NodeCore
}

export interface NodeNet {
  readonly sim: Sim<NodeMsg>
  /** Every node ever added, in order. */
  readonly ids: string[]
  core(id: string): NodeCore
  /** A node's own clock now. */
  clock(id: string): number
  /** Join every node not on the ring yet, in batches, until each knows its true successor and predecessor. */
  buildRing(maxMs?: number): Promise<void>
  /** Ids of live ring members, sorted. */
  members(): string[]
  /** Every member's successor and predecessor are the true ones. */
  ringCorrect(): boolean
  crash(id: string): Promise<void>
  /**
   * Restart a crashed node (empty) and start its join through a live member;
   * `joined` settles when the join does (the simulation must run meanwhile).
   */
  restart(id: string): Promise<{ joined: Promise<void> }>
  /** Messages the wire check refused on the way (an honest node's should all pass: 0). */
  readonly refused: { count: number }
  /** Sum of a stats() counter over the live nodes. */
  sum(counter: string): number
}

export async function createNodeNet(o: NodeNetOptions): Promise<NodeNet> {
  const sim = createSim<NodeMsg>({ ...o.sim, seed: o.seed, connectOnSend: true })
  const ids = Array.from({ length: o.n }, () => sim.randomId())
  const skew = o.clockSkewMs ?? 0
  const offsets = new Map<string, number>()
  for (const id of ids) offsets.set(id, skew === 0 ? 0 : Math.round((sim.rng() * 2 - 1) * skew))
  const wire = o.wire ?? true
  const refused = { count: 0 }
  /** The random graph's links, by node: they carry the mesh. */
  const meshAdj = new Map<string, Set<string>>()
  const meshOf = (id: string) => {
    let s = meshAdj.get(id)
    if (!s) {
      s = new Set()
      meshAdj.set(id, s)
    }
    return s
  }
  let building = true
  const joined = new Set<string>()
  // Presence is off unless asked for (o.core.presence): it has a simulator of its own (shared/presence/sim-net.ts).
  const coreOptions: NodeCoreOptions = { puzzleBits: 0, chord: SIM_CHORD_OPTIONS, presence: false, ...o.core }

  function build(deps: SimDeps<NodeMsg>): SimNode {
    const id = deps.id
    const offset = offsets.get(id) ?? 0
    const onTheWire = (m: NodeMsg): NodeMsg | null => {
      if (!wire) return m
      const back = decodeValue(encodeValue(nodeMsgBody(m)))
      const parsed = back === null ? null : core.parse(m.kind, back)
      if (!parsed) refused.count++
      return parsed
    }
    const send = (to: string, m: NodeMsg) => {
      const w = onTheWire(m)
      if (w) deps.send(to, w)
    }
    const core: NodeCore = createNodeCore(
      {
        id,
        keys: createFakeKeyring(id),
        now: () => deps.now() + offset,
        random: deps.random,
        send,
        sendVia: send,
        connect: async () => {},
        linked: () => deps.neighbours(),
        isLinked: (peer) => sim.connected(id, peer),
        meshNeighbours: () => [...meshOf(id)].filter((p) => sim.connected(id, p)),
        keyPosition: keyPositionSync,
      },
      coreOptions,
    )
    return {
      core,
      handle: (from, m) => core.handle(from, m),
      tick: (t) => core.tick(t + offset),
      async linkUp(peer) {
        if (building) {
          meshOf(id).add(peer)
          meshOf(peer).add(id)
        }
        if (meshOf(id).has(peer)) await core.meshUp(peer)
      },
      linkDown: (peer) => core.linkDown(peer),
    }
  }

  for (const id of ids) sim.addNode(id, build)
  await randomGraph(sim, ids, o.degree)
  building = false

  const core = (id: string) => sim.proto<SimNode>(id).core
  let sorted: string[] | null = null
  const members = () => {
    if (!sorted) sorted = [...joined].filter((id) => sim.node(id).up).sort()
    return sorted
  }
  const changed = () => {
    sorted = null
  }

  async function join(batch: string[], via: string[]): Promise<void> {
    const res = await settleAll(
      sim,
      batch.map((id) =>
        core(id).chord.join(via.length === 0 ? null : (via[Math.floor(sim.rng() * via.length)] as string)),
      ),
    )
    res.forEach((r, i) => {
      if (r.status === 'rejected') throw new Error(`join of ${batch[i]} failed: ${String(r.reason)}`)
      joined.add(batch[i] as string)
    })
    changed()
  }

  const net: NodeNet = {
    sim,
    ids,
    refused,
    core,
    clock: (id) => sim.now + (offsets.get(id) ?? 0),

    async buildRing(maxMs = 120_000) {
      const waiting = sim.upIds().filter((id) => !joined.has(id))
      if (members().length === 0 && waiting.length > 0) await join(waiting.splice(0, 1), [])
      while (waiting.length > 0) {
        const have = members()
        await join(waiting.splice(0, Math.max(1, have.length)), have)
        if (!(await sim.runUntilTrue(() => net.ringCorrect(), maxMs)))
          throw new Error(`a ring of ${members().length} did not stabilize within ${maxMs} ms`)
      }
    },

    members,

    ringCorrect() {
      const m = members()
      if (m.length < 2) return true
      for (let i = 0; i < m.length; i++) {
        const c = core(m[i] as string).chord
        if (c.successor() !== m[(i + 1) % m.length]) return false
        if (c.predecessor() !== m[(i - 1 + m.length) % m.length]) return false
      }
      return true
    },

    async crash(id) {
      await sim.crash(id)
      changed()
    },

    async restart(id) {
      joined.delete(id)
      changed()
      await sim.restart(id)
      const via = members()
      const bootstrap = via.length === 0 ? null : (via[Math.floor(sim.rng() * via.length)] as string)
      const done = core(id)
        .chord.join(bootstrap)
        .then(() => {
          joined.add(id)
          changed()
        })
      return { joined: done }
    },

    sum(counter) {
      let s = 0
      for (const id of sim.upIds()) s += core(id).stats()[counter] ?? 0
      return s
    },
  }
  return net
}
