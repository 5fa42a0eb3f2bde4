/**
 * Chord rings in the simulator, for the tests and the sim-chord benchmark:
 * build a ring through the real join protocol (in batches, stabilizing
 * between them), compute the truth from the sorted live ids, and run the
 * simulator until a promise settles.
 */
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { settle, settleAll } from '../sim/settle.ts'
import { createSim, type Sim } from '../sim/sim.ts'
import { type Chord, type ChordOptions, createChord } from './chord.ts'
import type { ChordMsg } from './messages.ts'
import { recordSlot } from './records.ts'
import { RING_BITS, startsUpTo, successorIn, successorIndex } from './ring.ts'
import { keyPositionSync } from './sha256-sync.ts'

/** Fast timers for simulations (virtual time is free; events are not). */
export const SIM_CHORD_OPTIONS: ChordOptions = {
  stabilizeMs: 500,
  fixFingersMs: 200,
  checkPredecessorMs: 1000,
  requestTimeoutMs: 400,
  republishMs: 5000,
  providerTtlMs: 30_000,
  // No idle back-off: this harness has no links, so the link-down hints that wake a backed-off
  // node in the product (core.linkDown → chord.peerDown) never come. The back-off is tested with
  // links, over the node core (shared/node/idle.sim.test.ts).
  idleMaxMs: 0,
}

/**
 * What a hostile node does to each message it sends: return it (changed or
 * not) to send it, or null to drop it. The node runs the honest protocol
 * otherwise, so it keeps its place on the ring and its share of records.
 */
export type Tamper = (to: string, msg: ChordMsg) => ChordMsg | null

export interface ChordNet {
  readonly sim: Sim<ChordMsg>
  /** The node's state machine (the current instance). */
  node(id: string): Chord
  /** Add a node (not yet joined). */
  add(id?: string): string
  /** Ids of live nodes that have joined, sorted. */
  live(): string[]
  /** Mark a node as a ring member (joined) for the truth computations. */
  member(id: string): void
  /** Crash a node for good. */
  kill(id: string): Promise<void>
  /** Make a node hostile from now on (null: honest again). */
  tamper(id: string, fn: Tamper | null): void
}

export function createChordNet(
  seed: number,
  options: ChordOptions = SIM_CHORD_OPTIONS,
  simOptions: { tickMs?: number; sizeOf?: (msg: ChordMsg) => number } = {},
): ChordNet {
  const sim = createSim<ChordMsg>({ seed, connectOnSend: true, ...simOptions })
  const members = new Set<string>()
  const tampers = new Map<string, Tamper>()
  let sorted: string[] | null = null
  return {
    sim,
    node: (id) => sim.proto<Chord>(id),
    add(id = sim.randomId()) {
      sim.addNode(id, (deps) => {
        const send = (to: string, msg: ChordMsg) => {
          const fn = tampers.get(id)
          const out = fn ? fn(to, msg) : msg
          if (out) deps.send(to, out)
        }
        return createChord(
          {
            ...deps,
            send,
            linked: (peer) => sim.hasLink(deps.id, peer),
            keys: createFakeKeyring(deps.id),
            keyPosition: keyPositionSync,
          },
          options,
        )
      })
      return id
    },
    live() {
      if (!sorted) sorted = [...members].sort()
      return sorted
    },
    member(id) {
      members.add(id)
      sorted = null
    },
    async kill(id) {
      await sim.crash(id)
      members.delete(id)
      sorted = null
    },
    tamper(id, fn) {
      if (fn) tampers.set(id, fn)
      else tampers.delete(id)
    },
  }
}

/**
 * One Chord node outside any network, for handler tests: what it sends is
 * collected in `sent`, and time moves only when the test calls `advance`.
 */
export function stubChord(id: string, options: ChordOptions = {}, start = 1_000_000) {
  const sent: [string, ChordMsg][] = []
  let now = start
  const chord = createChord(
    {
      id,
      send: (to, m) => void sent.push([to, m]),
      now: () => now,
      random: () => 0.5,
      keys: createFakeKeyring(id),
      keyPosition: keyPositionSync,
    },
    options,
  )
  return {
    chord,
    sent,
    advance(ms: number) {
      now += ms
      return chord.tick(now)
    },
    get now() {
      return now
    },
  }
}

export type StubChord = ReturnType<typeof stubChord>

// Running the simulator until promises settle: the simulator's own (shared/sim/settle.ts).
export { settle, settleAll }

/** Every member's successor and predecessor are the true ones. */
export function ringCorrect(net: ChordNet): boolean {
  const ids = net.live()
  if (ids.length < 2) return true
  for (let i = 0; i < ids.length; i++) {
    const c = net.node(ids[i] as string)
    if (c.successor() !== ids[(i + 1) % ids.length]) return false
    if (c.predecessor() !== ids[(i - 1 + ids.length) % ids.length]) return false
  }
  return true
}

/** Stabilized: every member's predecessor and whole successor list are the true ones. */
export function ringStable(net: ChordNet): boolean {
  return ringCorrect(net) && successorListsCorrect(net) === net.live().length
}

/**
 * How many members' successor lists are exactly the next members: as many
 * as the node's list holds (its capacity, 2·log2 of the ring size it
 * estimates), or as its successor's list gives it (one more than that
 * list), or all the others in a smaller ring.
 */
export function successorListsCorrect(net: ChordNet): number {
  const ids = net.live()
  let n = 0
  for (let i = 0; i < ids.length; i++) {
    const c = net.node(ids[i] as string)
    const next = net.node(ids[(i + 1) % ids.length] as string)
    const want = Math.min(c.successorCapacity(), 1 + next.successors().length, ids.length - 1)
    const s = c.successors()
    let ok = s.length === want
    for (let j = 0; ok && j < want; j++) ok = s[j] === ids[(i + 1 + j) % ids.length]
    if (ok) n++
  }
  return n
}

/** Fraction of all finger entries (members × 160) that equal the true successor of their start. */
export function fingerAccuracy(net: ChordNet): number {
  const ids = net.live()
  let good = 0
  ids.forEach((id, k) => {
    const c = net.node(id)
    const table = c.fingerTable()
    const next = ids[(k + 1) % ids.length] as string
    // The starts before the next node (most of them) have it as their successor: no search.
    const near = ids.length > 1 ? startsUpTo(id, next) : RING_BITS
    for (let i = 0; i < RING_BITS; i++) {
      const want = i < near ? next : (successorIn(ids, c.fingerStart(i)) as string)
      // A start whose successor is the node itself has no finger (null): we never route to ourselves.
      if (table[i] === (want === id ? null : want)) good++
    }
  })
  return ids.length ? good / (ids.length * RING_BITS) : 1
}

/** Run in steps of `stepMs` until `done()` holds or `maxMs` pass; returns whether it held. */
export async function runUntil(
  net: ChordNet,
  done: () => boolean,
  maxMs: number,
  stepMs = 500,
): Promise<boolean> {
  const end = net.sim.now + maxMs
  while (net.sim.now < end) {
    if (done()) return true
    await net.sim.runFor(stepMs)
  }
  return done()
}

export interface BuildOptions {
  /** Each batch adds this fraction of the current ring size. @default 1 (doubling) */
  growth?: number
  /** Virtual time allowed for each batch to stabilize. @default 60_000 */
  batchMaxMs?: number
  /** Wait for the fingers (to `fingerTarget`) once the ring is built. @default true */
  fingers?: boolean
  /**
   * The share of finger entries (fingerAccuracy) that must be exact before
   * the build returns. Below 1, the last few stale entries are left to
   * fix-fingers: at 10,000 nodes they take it longer than building the ring.
   * @default 1
   */
  fingerTarget?: number
  /** The simulator's tick interval. @default 100 */
  tickMs?: number
  /** Count messages but not their bytes (saves the size estimate of every message, for large rings). @default false */
  cheapSizes?: boolean
}

/**
 * Build a ring of `n` nodes with the real join protocol: the first creates
 * it, then batches join through random members, and the simulator runs
 * until successors and predecessors are all correct before the next batch.
 */
export async function buildRing(
  seed: number,
  n: number,
  options: ChordOptions = SIM_CHORD_OPTIONS,
  build: BuildOptions = {},
): Promise<ChordNet> {
  const net = createChordNet(seed, options, {
    ...(build.tickMs === undefined ? {} : { tickMs: build.tickMs }),
    ...(build.cheapSizes ? { sizeOf: () => 0 } : {}),
  })
  const growth = build.growth ?? 1
  const batchMaxMs = build.batchMaxMs ?? 60_000
  const first = net.add()
  await settle(net.sim, net.node(first).join(null))
  net.member(first)
  while (net.live().length < n) {
    const have = net.live()
    const k = Math.min(n - have.length, Math.max(1, Math.ceil(have.length * growth)))
    const batch = Array.from({ length: k }, () => net.add())
    const joins = batch.map((id) =>
      net.node(id).join(have[Math.floor(net.sim.rng() * have.length)] as string),
    )
    const res = await settleAll(net.sim, joins)
    res.forEach((r, i) => {
      if (r.status === 'rejected') throw new Error(`join of ${batch[i]} failed: ${String(r.reason)}`)
      net.member(batch[i] as string)
    })
    if (!(await runUntil(net, () => ringCorrect(net), batchMaxMs)))
      throw new Error(`ring of ${net.live().length} did not stabilize within ${batchMaxMs} ms`)
  }
  if (build.fingers ?? true) {
    const target = build.fingerTarget ?? 1
    if (!(await runUntil(net, () => fingerAccuracy(net) >= target, 120_000, 1000)))
      throw new Error(`fingers did not converge to ${target}: accuracy ${fingerAccuracy(net)}`)
  }
  return net
}

/** Ring position of `author`'s record for `key`. */
export function recordPos(author: string, key: string): string {
  return keyPositionSync(recordSlot(author, key))
}

/** The true successor of `pos` among the members. */
export function trueSuccessor(net: ChordNet, pos: string): string {
  return successorIn(net.live(), pos) as string
}

/** The true owners (successor and the next replicas - 1) of `pos` among the members. */
export function trueOwners(net: ChordNet, pos: string, replicas: number): string[] {
  const ids = net.live()
  const i = successorIndex(ids, pos)
  if (i < 0) return []
  const out: string[] = []
  for (let j = 0; j < Math.min(replicas, ids.length); j++) out.push(ids[(i + j) % ids.length] as string)
  return out
}
