/**
 * Where a node keeps what should outlive it (the sync table; the DHT share
 * of an always-on peer): IndexedDB in browsers (browser.ts), a folder in
 * Node (`dataDir`), or nothing (memory only).
 */
import type { Value } from '../shared/types.ts'

export interface NodeStorage {
  load(name: string): Promise<Value | undefined>
  save(name: string, v: Value): Promise<void>
}

/** Keeps nothing: every run starts empty. */
export const noStorage: NodeStorage = {
  load: async () => undefined,
  save: async () => {},
}
