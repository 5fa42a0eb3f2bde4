/**
 * Stub nodes for the swarm's unit tests: each is a real `createSwarm` with a
 * virtual clock, an in-memory store, a seeded PRNG, a stub DHT, and every
 * message it sends kept in an array that the test reads (`take`) and
 * answers by hand (`recv`, through the wire validator), playing the peers.
 * One fake, used by every swarm test file.
 */
import { mulberry32 } from '../shared/sim/prng.ts'
import { buildManifest, bytesSource } from '../shared/swarm/manifest.ts'
import type { SwarmMsg } from '../shared/swarm/messages.ts'
import type { Swarm, SwarmDeps, SwarmOptions } from '../shared/swarm/options.ts'
import { createMemoryStore, type PieceStore } from '../shared/swarm/store.ts'
import { createSwarm } from '../shared/swarm/swarm.ts'
import { fileUri } from '../shared/swarm/uri.ts'

export const T0 = 1_000_000
export const ME = '00'.repeat(20)
export const X = '11'.repeat(20)
export const Y = '22'.repeat(20)
export const Z = '33'.repeat(20)

export interface SwarmStub {
  swarm: Swarm
  store: PieceStore
  /** Every message sent, in order: [to, msg]. */
  sent: [string, SwarmMsg][]
  /** What findProviders answers. */
  providers: string[]
  /** Files announced through provide. */
  provided: string[]
  /** Times sha256 ran. */
  hashes: { n: number }
  now(): number
  /** Messages sent and not taken yet (optionally only those of one type, or to one peer); others stay. */
  take<T extends SwarmMsg['t']>(t?: T, to?: string): [string, Extract<SwarmMsg, { t: T }>][]
  /** A message from `from`, through the wire validator, awaited with what it started. */
  recv(from: string, msg: unknown): Promise<void>
  /** Advance the clock by `ms` and tick. */
  tick(ms: number): Promise<void>
  /** Resolve the oldest `n` held piece sends (holdPieces). */
  release(n?: number): Promise<void>
}

/** Let promise continuations (a DHT answer, a store write) run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setTimeout(r, 0))
}

export interface StubOptions {
  /** Piece sends resolve only when the test calls `release` (an upload that takes time). */
  holdPieces?: boolean
}

export function swarmStub(
  opts: SwarmOptions = {},
  deps: Partial<SwarmDeps> = {},
  id = ME,
  stubOpts: StubOptions = {},
): SwarmStub {
  let t = T0
  let seen = 0
  let pending: [string, SwarmMsg][] = []
  const sent: [string, SwarmMsg][] = []
  const store = deps.store ?? createMemoryStore()
  const providers: string[] = []
  const provided: string[] = []
  const hashes = { n: 0 }
  const held: (() => void)[] = []
  const swarm = createSwarm(
    {
      id,
      send: (to, msg) => {
        sent.push([to, msg])
        if (stubOpts.holdPieces && msg.t === 'piece') return new Promise<void>((r) => held.push(r))
      },
      now: () => t,
      random: mulberry32(42),
      store,
      sha256: async (data) => {
        hashes.n++
        return new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>))
      },
      findProviders: async () => [...providers],
      provide: (f) => void provided.push(f),
      ...deps,
    },
    { pieceSize: 1024, ...opts },
  )
  return {
    swarm,
    store,
    sent,
    providers,
    provided,
    hashes,
    now: () => t,
    take<T extends SwarmMsg['t']>(type?: T, to?: string) {
      pending.push(...sent.slice(seen))
      seen = sent.length
      const out: [string, Extract<SwarmMsg, { t: T }>][] = []
      const keep: [string, SwarmMsg][] = []
      for (const e of pending) {
        if ((type === undefined || e[1].t === type) && (to === undefined || e[0] === to))
          out.push(e as [string, Extract<SwarmMsg, { t: T }>])
        else keep.push(e)
      }
      pending = keep
      return out
    },
    async recv(from, msg) {
      const m = swarm.parse(msg)
      if (m) await swarm.handle(from, m)
      await flush()
    },
    async release(n = held.length) {
      for (const r of held.splice(0, n)) r()
      await flush()
    },
    async tick(ms) {
      t += ms
      swarm.tick(t)
      await flush()
    },
  }
}

/** A file of `pieces` pieces of 1 KiB (the last `last` bytes), its manifest and id. */
export async function testFile(pieces: number, last = 1024, seed = 1) {
  const size = (pieces - 1) * 1024 + last
  const data = Uint8Array.from({ length: size }, (_, i) => (i * 131 + seed * 17 + (i >> 10)) & 0xff)
  const built = await buildManifest(bytesSource(data), { pieceSize: 1024, name: 'test.bin' })
  const piece = (i: number) => data.slice(i * 1024, Math.min(size, (i + 1) * 1024))
  return { data, ...built, uri: fileUri(built.id, { name: 'test.bin', size }), piece }
}

/** A complete have-map of n pieces. */
export function fullBits(n: number): Uint8Array {
  const b = new Uint8Array(Math.ceil(n / 8))
  for (let i = 0; i < n; i++) b[i >> 3] = (b[i >> 3] as number) | (1 << (7 - (i & 7)))
  return b
}

/** A have-map of n pieces holding `idx`. */
export function bitsOf(n: number, idx: number[]): Uint8Array {
  const b = new Uint8Array(Math.ceil(n / 8))
  for (const i of idx) b[i >> 3] = (b[i >> 3] as number) | (1 << (7 - (i & 7)))
  return b
}
