/** The simulator's events and per-link state (sim.ts). */
import type { TickEvent } from './ticks.ts'
import type { SimNode } from './types.ts'

/**
 * A node as the simulator keeps it: its instance's epoch and its link map
 * (the one in the simulator's `adj`) at hand, so a send or a delivery looks
 * each end up once.
 */
export type Rec<M> = SimNode<M> & { readonly epoch: number; readonly links: Map<string, LinkState> }

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

export interface LinkState {
  /** The link's ends, in id order (lo < hi). */
  readonly lo: string
  readonly hi: string
  latency: number
  /** Last scheduled delivery time per direction, to keep FIFO order. */
  lastAB: number
  lastBA: number
}

/** A new link's state: its ends in id order, no delivery scheduled yet. */
export function newLink(a: string, b: string, latency: number): LinkState {
  return a < b
    ? { lo: a, hi: b, latency, lastAB: 0, lastBA: 0 }
    : { lo: b, hi: a, latency, lastAB: 0, lastBA: 0 }
}

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
