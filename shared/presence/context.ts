/**
 * What the parts of one presence node share: its dependencies, options,
 * counters, table, links and event sink. Built once by `createPresence` and
 * handed to each part (accept.ts, announce.ts, pull.ts); no part keeps
 * module-level state.
 */
import type { Counters } from '../protocol.ts'
import type { Value } from '../types.ts'
import type { PresenceConfig, PresenceDeps } from './options.ts'
import type { PresenceTable } from './table.ts'

/** A change in who is present, or in what they say. */
export interface PresenceEvent {
  id: string
  kind: 'join' | 'update' | 'leave'
  /** The node's state (join and update). */
  state?: Value
  /** Why a node is gone (leave): it said so, it was not heard from in time, or a linked node took its place in a full table. */
  reason?: 'left' | 'expired' | 'evicted'
}

export interface PresenceContext {
  readonly deps: PresenceDeps
  readonly cfg: PresenceConfig
  readonly counters: Counters
  /** The other present nodes, and the departed (tombstones). */
  readonly table: PresenceTable
  /** Mesh neighbours now, as linkUp/linkDown (and the tick's reconciliation) report them. */
  readonly linked: Set<string>
  /** Hand an event to the listeners (a listener's throw is counted, never propagated). */
  emit(e: PresenceEvent): void
  /** True once this node has left: it neither announces nor accepts. */
  closed(): boolean
}
