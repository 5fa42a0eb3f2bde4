/** The simulator's options, what it gives each node, and its figures (sim.ts). */
import type { ProtocolDeps, ProtocolNode } from '../protocol.ts'
import type { Rng } from './prng.ts'

export interface SimOptions<M> {
  /** The seed of every random draw in the run. */
  seed: number
  /** Per-link one-way latency range in ms, drawn once per link. @default { min: 5, max: 50 } */
  latency?: { min: number; max: number }
  /** Probability that any one message is lost. @default 0 */
  loss?: number
  /** Interval between a node's ticks in ms (each node gets a random phase). @default 100 */
  tickMs?: number
  /** Bytes a message counts for in the counters. @default a structural estimate */
  sizeOf?: (msg: M) => number
  /** Keep a trace of every delivery (for determinism checks). @default false */
  trace?: boolean
  /**
   * Open a link on demand when a node sends to one it has no link to (as the
   * real host does for Chord's fingers), without linkUp events. A send to a
   * crashed or partitioned node is still lost. @default false
   */
  connectOnSend?: boolean
  /**
   * Every node's upload rate in bytes per ms (sizeOf counts the bytes). A
   * node's messages leave in the order sent, one at a time; `send` resolves
   * when its message has left. @default Infinity (no uplink model: sends leave at once)
   */
  uplinkBytesPerMs?: number
  /**
   * After every event, let the promise continuations it set off run before
   * the next one (a real event loop's order). false awaits only a handler that
   * returned a promise: much faster at 10,000 nodes, for protocols whose work
   * is done when handle/tick return or whose promises they return (the mesh,
   * flooding). @default true
   */
  yieldEachEvent?: boolean
}

export interface SimDeps<M> extends ProtocolDeps<M> {
  /** As ProtocolDeps.send; with an uplink model, resolves when the message has left the sender. */
  send(to: string, msg: M): void | Promise<void>
  /** Ids this node has a live link to. */
  neighbours(): string[]
}

export interface NodeCounters {
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
}

export interface SimNode<M> {
  readonly id: string
  up: boolean
  proto: ProtocolNode<M>
  counters: NodeCounters
  /** Per-node PRNG (derived from the run's seed and the node id). */
  readonly rng: Rng
}

export type NodeFactory<M> = (deps: SimDeps<M>) => ProtocolNode<M>

export interface SimTotals {
  delivered: number
  lost: number
  undeliverable: number
  events: number
}
