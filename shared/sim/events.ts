/** The simulator's events (sim.ts). */
import type { TickEvent } from './ticks.ts'
import type { SimNode } from './types.ts'

/**
 * A node as the simulator keeps it: its instance's epoch and its link map
 * (neighbour -> link index, links.ts) at hand, so a send or a delivery looks
 * each end up once.
 */
export type Rec<M> = SimNode<M> & {
  readonly epoch: number
  readonly links: Map<string, number>
  /** Replaced by a restart, or removed: no longer the node's current instance. */
  gone: boolean
}

/** A message in flight. */
export interface Delivery<M> {
  time: number
  seq: number
  type: 'msg'
  from: string
  to: string
  msg: M
  epoch: number
  /** sizeOf(msg), counted once at the send. */
  size: number
  /** The sender's and the receiver's instances at the send (`epoch` is the receiver's). */
  tx: Rec<M>
  rx: Rec<M>
  /** The simulator's count of removed links at the send (none since: the link is still there). */
  cuts: number
}
/** The moment a message has left its sender's uplink: resolves that send. */
export interface SentEvent {
  time: number
  seq: number
  type: 'sent'
  resolve: () => void
}
/** What the heap holds; ticks are in their own queue. */
export type HeapEvent<M> = Delivery<M> | SentEvent
export type Event<M> = HeapEvent<M> | TickEvent

/** FNV-1a over every line, as 8 hex digits (the trace's fingerprint). */
export function fnv1aHex(lines: readonly string[]): string {
  let h = 0x811c9dc5
  for (const line of lines) {
    for (let i = 0; i < line.length; i++) {
      h ^= line.charCodeAt(i)
      h = Math.imul(h, 0x01000193) >>> 0
    }
  }
  return h.toString(16).padStart(8, '0')
}
