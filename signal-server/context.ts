/**
 * What the event handlers are given: the options, the counters, the
 * connections, the per-source limits and the cluster, plus two helpers they
 * share (activity reaching the host cache, and bootstrap samples). Built once
 * by the server (server.ts); handlers never reach past it.
 */
import { MAX_SAMPLE_SIZE, type PeerInfo } from '../shared/signal-events.ts'
import type { Cluster } from './cluster.ts'
import type { Conn, Connections } from './connections.ts'
import type { IceAnswer } from './ice.ts'
import type { ServerCounters } from './metrics.ts'
import type { ResolvedOptions } from './options.ts'
import type { ServerBook } from './server-book.ts'
import type { SourceTable } from './sources.ts'

export interface ServerContext {
  readonly o: ResolvedOptions
  readonly counters: ServerCounters
  readonly conns: Connections
  readonly sources: SourceTable
  readonly cluster: Cluster
  /** Hosts (`name:port`) of this server's public URLs: the only ones a registration may be signed for. */
  publicHosts: ReadonlySet<string>
  /** The other servers handed to clients. */
  book: ServerBook
  /** The STUN/TURN servers (and made TURN credentials) a register or peers answer carries for a node. */
  readonly ice: (id: string, nowMs: number) => IceAnswer
}

/** `c` was active: tell the host cache, at most every cluster.touchEveryMs. */
export function touch(ctx: ServerContext, c: Conn, now: number): void {
  if (now - c.lastTouch < ctx.cluster.touchEveryMs) return
  c.lastTouch = now
  try {
    Promise.resolve(ctx.cluster.hosts.touch(c.network, c.id, now)).catch(() => {})
  } catch {
    // (A cache that throws at once, not in its promise: the event it came with still goes.)
  }
}

/** Up to `n` live peers of `c`'s network, never `c` (empty when the host cache fails). */
export async function sample(ctx: ServerContext, c: Conn, n: number): Promise<PeerInfo[]> {
  try {
    return await ctx.cluster.hosts.sample(c.network, Math.min(n, MAX_SAMPLE_SIZE), c.id, Date.now())
  } catch {
    return []
  }
}
