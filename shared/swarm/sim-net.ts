/**
 * A swarm network in the simulator, for tests and benchmarks: every node
 * runs `createSwarm` with an in-memory store, WebCrypto's SHA-256 (awaited
 * inside the events the simulator awaits, so a run still depends on nothing
 * but its seed), and a shared stand-in for the DHT's
 * provider records (provide adds the node, findProviders returns up to 256
 * of them, as the Chord DHT does). Links open on demand, as the host opens
 * a direct link to a swarm peer; each node uploads at `uplinkBytesPerMs`.
 *
 * A liar is a node whose store corrupts every piece it reads and which
 * serves without checking: it announces pieces and sends bad ones.
 */
import { createSim, type Sim, type SimOptions } from '../sim/sim.ts'
import type { SwarmMsg } from './messages.ts'
import type { Download, FileInfo, Swarm, SwarmOptions } from './options.ts'
import { createMemoryStore, lyingStore, type PieceStore } from './store.ts'
import { createSwarm } from './swarm.ts'

export interface SwarmNetOptions {
  seed: number
  n: number
  /** Upload rate of every node, bytes per ms. @default 40 (a 4 KiB piece in about 100 ms) */
  uplinkBytesPerMs?: number
  swarm?: SwarmOptions
  sim?: Omit<SimOptions<SwarmMsg>, 'seed' | 'uplinkBytesPerMs' | 'connectOnSend'>
  /** Nodes (by index) that corrupt every piece they serve. */
  liars?: number[]
}

export interface SwarmNet {
  readonly sim: Sim<SwarmMsg>
  readonly ids: string[]
  readonly providers: Map<string, string[]>
  swarm(id: string): Swarm
  store(id: string): PieceStore
  /** Sum of a counter over the live nodes. */
  sum(counter: string): number
}

export function createSwarmNet(o: SwarmNetOptions): SwarmNet {
  const sim = createSim<SwarmMsg>({
    ...o.sim,
    seed: o.seed,
    connectOnSend: true,
    uplinkBytesPerMs: o.uplinkBytesPerMs ?? 40,
  })
  const ids = Array.from({ length: o.n }, () => sim.randomId())
  const providers = new Map<string, string[]>()
  const stores = new Map<string, PieceStore>()
  const swarms = new Map<string, Swarm>()
  const liars = new Set((o.liars ?? []).map((i) => ids[i] as string))
  for (const id of ids) {
    const base = createMemoryStore()
    stores.set(id, base)
    const liar = liars.has(id)
    sim.addNode(id, (deps) => {
      const swarm = createSwarm(
        {
          ...deps,
          store: liar ? lyingStore(base) : base,
          provide(file) {
            const list = providers.get(file) ?? []
            if (!list.includes(id)) list.push(id)
            providers.set(file, list)
          },
          findProviders: async (file) => (providers.get(file) ?? []).slice(0, 256),
        },
        liar ? { ...o.swarm, verifyOnServe: false } : o.swarm,
      )
      swarms.set(id, swarm) // a restart builds a new one
      return {
        handle(from, msg) {
          // The wire boundary: what a real link's validator would do with the decoded body.
          const m = swarm.parse(msg)
          return m ? swarm.handle(from, m) : undefined
        },
        tick: (now) => swarm.tick(now),
        linkDown: (peer) => swarm.linkDown(peer),
      }
    })
  }
  const swarm = (id: string) => swarms.get(id) as Swarm
  return {
    sim,
    ids,
    providers,
    swarm,
    store: (id) => stores.get(id) as PieceStore,
    sum(counter) {
      let s = 0
      for (const id of sim.upIds()) s += swarm(id).counters[counter] ?? 0
      return s
    },
  }
}

/** Random bytes from the simulator's PRNG. */
export function randomBytes(sim: Sim<SwarmMsg>, n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.floor(sim.rng() * 256)
  return out
}

export interface Distribution {
  info: FileInfo
  downloads: Map<string, Download>
  /** Virtual ms from start until each node finished. */
  finishedAt: Map<string, number>
  failed: Map<string, Error>
}

/** Seed `data` at `seeder`, start a download at every other node, record when each finishes. */
export async function distribute(
  net: SwarmNet,
  seeder: string,
  data: Uint8Array,
  who: string[] = net.ids.filter((id) => id !== seeder),
): Promise<Distribution> {
  const info = await net.swarm(seeder).add(data, { name: 'file.bin' })
  const start = net.sim.now
  const downloads = new Map<string, Download>()
  const finishedAt = new Map<string, number>()
  const failed = new Map<string, Error>()
  for (const id of who) {
    const dl = net.swarm(id).get(info.uri)
    downloads.set(id, dl)
    dl.done().then(
      () => finishedAt.set(id, net.sim.now - start),
      (err: Error) => failed.set(id, err),
    )
  }
  return { info, downloads, finishedAt, failed }
}
