/**
 * A PieceStore in a folder, for weft-peer (Node): one folder per file,
 *
 *   <dir>/<fileId>/manifest     the manifest's bytes
 *   <dir>/<fileId>/<index>      piece `index` (decimal, no leading zeros)
 *
 * each written atomically (to `<name>.tmp`, then renamed over the name), so
 * a crash leaves the old bytes or the new, never half of them; stray .tmp
 * files are deleted when the store opens. Opening scans the folder once to
 * learn what is held and the bytes used; from then on the store keeps that
 * index in memory, so has, pieces, list and usage never touch the disk.
 * One process owns a folder (weft-peer's data folder).
 *
 * Writes and removals run one at a time, in order: the limit check and the
 * count are never raced, and a removal never interleaves with a write to the
 * same file. A put that would pass `maxBytes` rejects with StorageFullError
 * before anything is written. An id must be 64 lowercase hex characters and
 * an index a non-negative integer, so no id or index can name a path outside
 * `dir`: a put with any other rejects, a read answers "not here".
 *
 * No fsync: after a power loss a piece may come back empty or torn; the
 * swarm hashes every piece again before it serves it, and fetches it anew.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { StorageFullError } from '../../shared/swarm/errors.ts'
import type { PieceStore, StoredFile } from '../../shared/swarm/store.ts'
import { isFileId } from '../../shared/swarm/uri.ts'

export interface FolderStoreOptions {
  /** Most bytes held, manifests and pieces. @default 4 GiB */
  maxBytes?: number
}

export const DEFAULT_FOLDER_MAX_BYTES = 4 * 2 ** 30

/** weft-peer keeps files in `<data>/files`. */
export const PEER_FILES_FOLDER = 'files'

interface Held {
  /** The manifest's size, when one is here. */
  manifest: number | undefined
  /** Index → size. */
  pieces: Map<number, number>
  bytes: number
}

const MANIFEST = 'manifest'
const INDEX_NAME = /^(0|[1-9][0-9]{0,14})$/

const isIndex = (i: unknown): i is number => Number.isSafeInteger(i) && (i as number) >= 0

function checkId(id: string): void {
  if (!isFileId(id)) throw new TypeError('not a file id (64 lowercase hex characters)')
}

function checkIndex(index: number): void {
  if (!isIndex(index)) throw new TypeError('a piece index is a non-negative integer')
}

/** Read a file, or undefined when it is not there. A plain Uint8Array (not a Buffer). */
async function readOrUndefined(path: string): Promise<Uint8Array | undefined> {
  try {
    const b = await readFile(path)
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Open (creating it if need be) the store in `dir`, learning what it holds. */
export async function folderPieceStore(dir: string, opts: FolderStoreOptions = {}): Promise<PieceStore> {
  const limit = opts.maxBytes ?? DEFAULT_FOLDER_MAX_BYTES
  const held = new Map<string, Held>()
  let used = 0

  await mkdir(dir, { recursive: true })
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (!e.isDirectory() || !isFileId(e.name)) continue
    const h: Held = { manifest: undefined, pieces: new Map(), bytes: 0 }
    for (const p of await readdir(join(dir, e.name), { withFileTypes: true })) {
      const path = join(dir, e.name, p.name)
      if (!p.isFile()) continue
      if (p.name.endsWith('.tmp')) {
        await rm(path, { force: true }) // a write a crash cut short
        continue
      }
      const isPiece = INDEX_NAME.test(p.name)
      if (p.name !== MANIFEST && !isPiece) continue
      const { size } = await stat(path)
      if (isPiece) h.pieces.set(Number(p.name), size)
      else h.manifest = size
      h.bytes += size
    }
    if (h.manifest === undefined && h.pieces.size === 0) continue
    held.set(e.name, h)
    used += h.bytes
  }

  let chain: Promise<unknown> = Promise.resolve()
  /** Run `fn` after every write and removal queued before it. */
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn)
    chain = p.catch(() => {})
    return p
  }

  /** Write `data` as `<dir>/<id>/<name>`, `old` bytes replaced, within the limit. */
  const put = (
    id: string,
    name: string,
    data: Uint8Array,
    old: (h: Held) => number,
    keep: (h: Held) => void,
  ) =>
    serial(async () => {
      const h = held.get(id) ?? { manifest: undefined, pieces: new Map<number, number>(), bytes: 0 }
      const delta = data.length - old(h)
      if (delta > 0 && used + delta > limit) throw new StorageFullError(delta, used, limit)
      const folder = join(dir, id)
      const path = join(folder, name)
      await mkdir(folder, { recursive: true })
      try {
        await writeFile(`${path}.tmp`, data)
        await rename(`${path}.tmp`, path)
      } catch (err) {
        await rm(`${path}.tmp`, { force: true }).catch(() => {}) // a full disk keeps no half piece
        throw err
      }
      keep(h)
      h.bytes += delta
      used += delta
      held.set(id, h)
    })

  return {
    async getManifest(id) {
      if (held.get(id)?.manifest === undefined) return undefined
      return readOrUndefined(join(dir, id, MANIFEST))
    },
    async putManifest(id, bytes) {
      checkId(id)
      const copy = bytes.slice() // the caller may change its buffer before the queued write runs
      return put(
        id,
        MANIFEST,
        copy,
        (h) => h.manifest ?? 0,
        (h) => {
          h.manifest = copy.length
        },
      )
    },
    async getPiece(id, index) {
      if (!held.get(id)?.pieces.has(index)) return undefined
      return readOrUndefined(join(dir, id, String(index)))
    },
    async putPiece(id, index, data) {
      checkId(id)
      checkIndex(index)
      const copy = data.slice()
      return put(
        id,
        String(index),
        copy,
        (h) => h.pieces.get(index) ?? 0,
        (h) => {
          h.pieces.set(index, copy.length)
        },
      )
    },
    has: (id, index) => held.get(id)?.pieces.has(index) ?? false,
    pieces: (id) => [...(held.get(id)?.pieces.keys() ?? [])],
    list() {
      const out: StoredFile[] = []
      for (const [id, h] of held)
        if (h.manifest !== undefined) out.push({ id, pieces: h.pieces.size, bytes: h.bytes })
      return out
    },
    remove(id) {
      if (!isFileId(id)) return Promise.resolve()
      return serial(async () => {
        await rm(join(dir, id), { recursive: true, force: true })
        const h = held.get(id)
        if (!h) return
        used -= h.bytes
        held.delete(id)
      })
    },
    usage: () => ({ used, limit }),
  }
}

/** weft-peer's store: `<dataDir>/files`, at most `maxBytes` (4 GiB by default). */
export function peerPieceStore(dataDir: string, maxBytes?: number): Promise<PieceStore> {
  return folderPieceStore(join(dataDir, PEER_FILES_FOLDER), maxBytes === undefined ? {} : { maxBytes })
}
