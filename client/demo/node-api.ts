/**
 * What the demo page uses of a node. The table (`node.sync`) and the DHT
 * (`node.dht`) arrive in later builds, and a few of their helpers (lease,
 * lookup, fingers, ...) are optional, so the page feature-detects them here
 * instead of assuming them.
 */
import type { OverlayNode, Value } from '../browser.ts'

export type DemoNode = OverlayNode & { sync?: SyncApi; dht?: DhtApi }

export interface SyncChange {
  key: string
  value: Value | undefined
  from: string
}

/** API.md's node.sync, with the optional lease(key) helper. */
export interface SyncApi {
  set(key: string, value: Value, opts?: { leaseMs?: number }): Promise<void>
  get(key: string): Value | undefined
  delete(key: string): Promise<void>
  entries(): [string, Value][]
  owner(key: string): string | undefined
  on(event: 'change', fn: (e: SyncChange) => void): unknown
  lease?(key: string): { owner: string; expires: number } | undefined
}

/** A DHT record as `getRecord` returns it (who wrote it, which version). */
export interface DhtRecordView {
  author: string
  value: Value | undefined
  deleted: boolean
  seq: number
  time: number
}

/** API.md's node.dht (records owned by their author), with the optional helpers the ring drawing and lookups use. */
export interface DhtApi {
  put(key: string, value: Value): Promise<void>
  get(key: string, opts?: { author?: string }): Promise<Value | undefined>
  getRecord?(key: string, opts?: { author?: string }): Promise<DhtRecordView | undefined>
  delete(key: string): Promise<void>
  provide(key: string): Promise<void>
  findProviders(key: string): Promise<string[]>
  lookup?(key: string, opts?: { author?: string }): Promise<unknown>
  fingers?(): unknown
  successors?(): unknown
  predecessor?(): unknown
}

function hasMethods(x: unknown, names: string[]): boolean {
  if (typeof x !== 'object' || x === null) return false
  const o = x as Record<string, unknown>
  return names.every((n) => typeof o[n] === 'function')
}

export function syncOf(node: DemoNode): SyncApi | undefined {
  const s = node.sync
  return hasMethods(s, ['set', 'get', 'delete', 'entries', 'owner', 'on']) ? s : undefined
}

export function dhtOf(node: DemoNode): DhtApi | undefined {
  const d = node.dht
  return hasMethods(d, ['put', 'get', 'delete', 'provide', 'findProviders']) ? d : undefined
}

/** Call an optional method, tolerating its absence or failure (drawing helpers must never break the page). */
export function tryCall<T>(fn: (() => T) | undefined): T | undefined {
  if (!fn) return undefined
  try {
    return fn()
  } catch {
    return undefined
  }
}

/** The signal server state, read from the node's signalling client when it exposes it. */
export function signalStateOf(node: DemoNode): string | undefined {
  const st = (node as unknown as { signalClient?: { state?: unknown } }).signalClient?.state
  return typeof st === 'string' ? st : undefined
}

/** linkDetails() when the node has it, else peers() with unknown RTT. */
export function linksOf(
  node: DemoNode,
): { id: string; transport: 'webrtc' | 'relay'; rtt: number; mesh: boolean }[] {
  if (typeof node.linkDetails === 'function') return node.linkDetails()
  return node.peers().map((p) => ({ ...p, rtt: Number.NaN, mesh: true }))
}
