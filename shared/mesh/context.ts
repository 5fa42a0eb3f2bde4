/**
 * What the parts of one mesh node share: its dependencies, options,
 * counters, links and bounded tables. Built once by `createMesh` and handed
 * to each part (push.ts, tree.ts, receive.ts, repair.ts); no part keeps
 * module-level state.
 */
import type { Counters } from '../protocol.ts'
import type { LinkSets } from './links.ts'
import type { MissingTable } from './missing.ts'
import type { MeshDeps, ResolvedMeshOptions } from './options.ts'
import type { PayloadCache } from './payload-cache.ts'
import type { PendingChecks } from './pending.ts'
import type { SeenCache } from './seen-cache.ts'

export interface MeshContext {
  readonly deps: MeshDeps
  readonly opt: ResolvedMeshOptions
  readonly counters: Counters
  readonly links: LinkSets
  /** Ids accepted lately: the replay window (seen-cache.ts). */
  readonly seen: SeenCache
  /** Accepted broadcasts kept in full, to answer GRAFTs and to announce. */
  readonly cache: PayloadCache
  /** Ids heard of (IHAVE) but not received. */
  readonly missing: MissingTable
  /** Signature checks running. */
  readonly pending: PendingChecks
}

/** Ids to send per peer in one message each at the end of a tick (IHAVE or GRAFT batches). */
export type Batches = Map<string, string[]>

export function addToBatch(batches: Batches, peer: string, id: string): void {
  let b = batches.get(peer)
  if (!b) {
    b = []
    batches.set(peer, b)
  }
  b.push(id)
}
