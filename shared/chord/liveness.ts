/**
 * The failure detector. One unanswered request is not a death (one message
 * may be lost): it is a strike, and it sends a probe ping at once. The
 * second timeout in a row marks the node dead for `5 stabilizeMs + 2
 * requestTimeoutMs`: it leaves the successor list, the fingers and the
 * predecessor (`onDead`), and lookups route around it. So a crashed node is
 * known dead two timeouts after we first missed it, whatever else we were
 * asking it. Any message from a node clears its strikes and its mark. Both
 * tables are bounded (`MAX_DEAD`, oldest forgotten first).
 */
import { bump } from '../protocol.ts'
import type { ChordContext } from './options.ts'

export interface Liveness {
  isDead(x: string): boolean
  /** A request to `x` timed out. */
  strike(x: string): void
  /** `x` sent us something: it is alive. */
  heard(x: string): void
  markDead(x: string): void
  /** Forget marks that have run out. */
  sweep(now: number): void
}

/** Timeouts in a row that mark a node dead. */
const STRIKES_TO_DEAD = 2
/** Dead marks (and strikes, and probes) kept at most. */
const MAX_DEAD = 2048

export interface LivenessIo {
  /** Ping `x`; settles when it answers or times out. */
  probe(x: string): Promise<unknown>
  /** `x` is dead: take it out of every table. */
  onDead(x: string): void
}

export function createLiveness(ctx: ChordContext, io: LivenessIo): Liveness {
  const { deps, o, counters, self } = ctx
  const deadTtlMs = 5 * o.stabilizeMs + 2 * o.requestTimeoutMs
  const dead = new Map<string, number>()
  /** Timeouts in a row per node, below STRIKES_TO_DEAD. */
  const strikes = new Map<string, number>()
  /** Nodes a probe ping is out to. */
  const probing = new Set<string>()

  function isDead(x: string): boolean {
    if (dead.size === 0) return false // the usual case: routing asks this of every candidate
    const until = dead.get(x)
    if (until === undefined) return false
    if (until <= deps.now()) {
      dead.delete(x)
      return false
    }
    return true
  }

  function markDead(x: string): void {
    if (x === self) return
    bump(counters, 'peer.dead')
    dead.delete(x)
    dead.set(x, deps.now() + deadTtlMs)
    if (dead.size > MAX_DEAD) {
      const oldest = dead.keys().next().value
      if (oldest !== undefined) dead.delete(oldest)
    }
    io.onDead(x)
  }

  return {
    isDead,
    markDead,
    strike(x) {
      const n = (strikes.get(x) ?? 0) + 1
      strikes.delete(x)
      if (n >= STRIKES_TO_DEAD) {
        markDead(x)
        return
      }
      strikes.set(x, n)
      if (strikes.size > MAX_DEAD) {
        const oldest = strikes.keys().next().value
        if (oldest !== undefined) strikes.delete(oldest)
      }
      if (!probing.has(x) && probing.size < MAX_DEAD) {
        probing.add(x)
        io.probe(x).then(() => probing.delete(x))
      }
    },
    heard(x) {
      // Every message lands here: skip the lookups when nothing is marked (the usual case).
      if (dead.size > 0) dead.delete(x)
      if (strikes.size > 0) strikes.delete(x)
    },
    sweep(now) {
      for (const [x, until] of dead) if (until <= now) dead.delete(x)
    },
  }
}
