/**
 * What the demo page uses of a node: the library's own types (WeftNode and
 * the types it exports), and the ring drawing's view of the DHT, which comes
 * from `node.inspect().ring`.
 */
import type { DhtApi as WeftDht, WeftNode } from '../browser.ts'
import type { FilesApi } from '../files/types.ts'

export type { SyncApi, SyncChange, WeftNode } from '../browser.ts'
export type {
  FileDownload,
  FileInfo,
  FileManifest,
  FileProgress,
  FilesApi,
  StoredFileInfo,
} from '../files/types.ts'

/** `node.files`, or undefined from a library build without it (the panel then says so). */
export function filesOf(node: WeftNode): FilesApi | undefined {
  const files: FilesApi | undefined = node.files
  return files && typeof files.add === 'function' ? files : undefined
}

/** The DHT panel's view: the node's DHT, with the ring (successors, predecessor, fingers) beside it. */
export interface DhtApi extends WeftDht {
  successors(): string[]
  predecessor(): string | null
  fingers(): string[]
}

/** The DHT of `node` for the panel, its ring read from inspect() at each call. */
export function dhtOf(node: WeftNode): DhtApi {
  const ring = () => node.inspect().ring
  const { dht } = node
  return {
    put: (key, value) => dht.put(key, value),
    get: (key, opts) => dht.get(key, opts),
    getRecord: (key, opts) => dht.getRecord(key, opts),
    delete: (key) => dht.delete(key),
    provide: (key) => dht.provide(key),
    findProviders: (key) => dht.findProviders(key),
    lookup: (key, opts) => dht.lookup(key, opts),
    successors: () => ring().successors,
    predecessor: () => ring().predecessor,
    fingers: () => ring().fingers,
  }
}

/** Call a method, tolerating its failure (drawing helpers must never break the page). */
export function tryCall<T>(fn: (() => T) | undefined): T | undefined {
  if (!fn) return undefined
  try {
    return fn()
  } catch {
    return undefined
  }
}
