/**
 * Where a node keeps files: the interface the host implements (IndexedDB or
 * OPFS in browsers, a folder for weft-peer) and an in-memory one for tests
 * and the simulator.
 *
 * The swarm writes only verified data: a manifest after its hash matched the
 * id, a piece after its hash matched the manifest. A store still may lose or
 * corrupt bytes (a disk, another tab), so the swarm hashes a piece again
 * before it serves it. Each call may answer synchronously or with a promise.
 */
import { StorageFullError } from './errors.ts'

type Awaitable<T> = T | Promise<T>

/** One file as the store holds it. */
export interface StoredFile {
  id: string
  /** Pieces held. */
  pieces: number
  /** Bytes held (manifest and pieces). */
  bytes: number
}

export interface PieceStore {
  /** The manifest's bytes, or undefined when this file is not here. */
  getManifest(id: string): Awaitable<Uint8Array | undefined>
  /** Keep a file's manifest (first of its parts). StorageFullError past the limit. */
  putManifest(id: string, bytes: Uint8Array): Awaitable<void>
  /** Piece `index` of file `id`, or undefined. */
  getPiece(id: string, index: number): Awaitable<Uint8Array | undefined>
  /** Keep a piece (replacing one at the same index). StorageFullError past the limit. */
  putPiece(id: string, index: number, data: Uint8Array): Awaitable<void>
  /** Is piece `index` of file `id` here? */
  has(id: string, index: number): Awaitable<boolean>
  /** The indices of the pieces of `id` held, in any order (empty for an unknown file). */
  pieces(id: string): Awaitable<number[]>
  /** Every file with a manifest here. */
  list(): Awaitable<StoredFile[]>
  /** Forget a file: its manifest and its pieces. */
  remove(id: string): Awaitable<void>
  /** Bytes held and the limit (Infinity when none). */
  usage(): Awaitable<{ used: number; limit: number }>
}

export interface MemoryStoreOptions {
  /** Most bytes held, manifests and pieces. @default Infinity */
  maxBytes?: number
}

interface MemFile {
  manifest?: Uint8Array
  pieces: Map<number, Uint8Array>
  bytes: number
}

/** A PieceStore in memory (copies in and out, so callers cannot change what is kept). */
export function createMemoryStore(opts: MemoryStoreOptions = {}): PieceStore {
  const limit = opts.maxBytes ?? Number.POSITIVE_INFINITY
  const files = new Map<string, MemFile>()
  let used = 0
  const fileOf = (id: string): MemFile => {
    let f = files.get(id)
    if (!f) {
      f = { pieces: new Map(), bytes: 0 }
      files.set(id, f)
    }
    return f
  }
  const reserve = (f: MemFile, old: number, next: number): void => {
    const delta = next - old
    if (delta > 0 && used + delta > limit) throw new StorageFullError(delta, used, limit)
    used += delta
    f.bytes += delta
  }
  return {
    getManifest: (id) => files.get(id)?.manifest?.slice(),
    putManifest(id, bytes) {
      const f = fileOf(id)
      reserve(f, f.manifest?.length ?? 0, bytes.length)
      f.manifest = bytes.slice()
    },
    getPiece: (id, index) => files.get(id)?.pieces.get(index)?.slice(),
    putPiece(id, index, data) {
      const f = fileOf(id)
      reserve(f, f.pieces.get(index)?.length ?? 0, data.length)
      f.pieces.set(index, data.slice())
    },
    has: (id, index) => files.get(id)?.pieces.has(index) ?? false,
    pieces: (id) => [...(files.get(id)?.pieces.keys() ?? [])],
    list: () =>
      [...files]
        .filter(([, f]) => f.manifest !== undefined)
        .map(([id, f]) => ({ id, pieces: f.pieces.size, bytes: f.bytes })),
    remove(id) {
      const f = files.get(id)
      if (!f) return
      used -= f.bytes
      files.delete(id)
    },
    usage: () => ({ used, limit }),
  }
}

/**
 * A lying peer's store, for tests (the simulator's liars, a test hook in
 * browsers): every piece read has a byte flipped.
 */
export function lyingStore(store: PieceStore): PieceStore {
  return {
    ...store,
    async getPiece(id, index) {
      const data = await store.getPiece(id, index)
      if (data && data.length > 0) data[0] = (data[0] as number) ^ 0xff
      return data
    },
  }
}
