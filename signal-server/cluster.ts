/**
 * The cluster: what a signal server shares with the other instances of its
 * deployment. The handlers see only this interface, so one instance and
 * several behind one Redis run the same code:
 *
 *   - the host cache (who is registered, per network) that bootstrap
 *     samples and lookups read,
 *   - passing a signal or relay frame to a node registered on another
 *     instance, and hearing the same from them (ClusterEvents),
 *   - telling the others that a node registered here (they drop their
 *     older socket of it),
 *   - the public URLs the other instances announce (the server list).
 *
 * `createLocalCluster` is the single instance: an in-memory host cache and
 * nobody else. `createRedisCluster` (cluster-redis.ts) is several instances.
 */
import type { RelayErrorReason } from '../shared/signal-events.ts'
import type { RemoteRelayError, RemoteSignalResult } from './inter-server.ts'
import { createMemoryHostCache, type HostCache } from './registry.ts'

/** What the cluster delivers to this instance (implemented by the server). */
export interface ClusterEvents {
  /** `id` registered again on another instance as `session`: drop any other socket of it here. */
  replace(network: string, id: string, session: string): void
  /** A signal from another instance for `to`: delivered ('ok'), or why not (its answer to that instance). */
  signal(network: string, to: string, from: string, data: unknown): RemoteSignalResult
  /** A relay frame from another instance; returns why it was dropped, or null when delivered. */
  relay(network: string, to: string, from: string, frame: Uint8Array): RemoteRelayError | null
  /** Another instance dropped a frame that `from` (registered here) sent to `to`. */
  relayError(network: string, to: string, from: string, reason: RelayErrorReason): void
}

export interface Cluster {
  readonly hosts: HostCache
  /** Activity reaches the host cache at most this often per node. */
  readonly touchEveryMs: number
  /** Entries in the in-memory host cache, when there is one (metrics). */
  readonly localEntries?: () => number
  /** The host cache session of a socket of this instance. */
  session(socketId: string): string
  /** `id` registered here as `session`: the other instances drop their sockets of it. */
  registered(network: string, id: string, session: string): void
  /**
   * Pass a signal to `to` on another instance, and wait for that instance's answer: 'ok' once it
   * delivered the signal; 'unknown-peer' when no live instance holds `to` (or none answered in time).
   */
  signal(network: string, to: string, from: string, data: unknown, now: number): Promise<RemoteSignalResult>
  /** Pass a relay frame to `to` on another instance; false when no other instance has it. */
  relay(network: string, to: string, from: string, frame: Uint8Array, now: number): Promise<boolean>
  /** Public URLs the other instances announced. */
  servers(): string[]
  /** False while the shared store is unreachable (/healthz answers 503). */
  ready(): boolean
  /** What /healthz adds. */
  health(): Record<string, unknown>
  /** Periodic upkeep, from the server's sweep. */
  tick(now: number): void
  close(): Promise<void>
}

export interface LocalClusterOptions {
  hostTtlMs: number
  maxPeers: number
}

/** One instance alone: the in-memory host cache; every node is local or nowhere. */
export function createLocalCluster(o: LocalClusterOptions): Cluster {
  const hosts = createMemoryHostCache({
    ttlMs: o.hostTtlMs,
    maxPerNetwork: o.maxPeers,
    maxEntries: o.maxPeers,
  })
  return {
    hosts,
    touchEveryMs: 1000,
    localEntries: () => hosts.size(),
    session: (socketId) => socketId,
    registered: () => {},
    signal: async () => 'unknown-peer',
    relay: async () => false,
    servers: () => [],
    ready: () => true,
    health: () => ({}),
    tick: () => {},
    close: async () => {},
  }
}
