/**
 * What the parts of one node's swarm share: deps, options, counters, the
 * table of files with live state, and the few operations every part uses.
 * swarm.ts builds it; peers.ts, download.ts and upload.ts take it.
 */
import type { Counters } from '../protocol.ts'
import type { DownloadState } from './download-state.ts'
import type { FileSwarm } from './file-swarm.ts'
import type { Sha256 } from './manifest.ts'
import type { SwarmMsg } from './messages.ts'
import type { ResolvedSwarmOptions, SwarmDeps } from './options.ts'
import type { Uploads } from './upload.ts'

export interface DropOptions {
  /** Never again for this file (it sent bad data, or flooded). */
  ban?: boolean
  /** Send no `bye` (the link is gone, or the peer left first). */
  silent?: boolean
  /** Keep it as a candidate to dial again later (it left for a reason that may pass). */
  retry?: boolean
}

export interface SwarmContext {
  readonly deps: SwarmDeps
  readonly opts: ResolvedSwarmOptions
  readonly counters: Counters
  readonly hash: Sha256
  /** Files with live swarm state, by id. */
  readonly files: Map<string, FileSwarm>
  /** Downloads running, by file id. */
  readonly downloads: Map<string, DownloadState>
  readonly uploads: Uploads
  now(): number
  /** Best effort: a failure is counted (`swarm.send-failed`), never thrown. */
  send(to: string, msg: SwarmMsg): void
  /** Take a peer out of a file's swarm; its requests go to others. */
  dropPeer(f: FileSwarm, peer: string, reason: string, o?: DropOptions): void
}
