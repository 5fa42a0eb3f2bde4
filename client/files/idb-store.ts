/**
 * A PieceStore in IndexedDB, for browsers: files survive a reload, and the
 * tabs of one origin share them.
 *
 * One database (`weft-files` by default), four object stores:
 *
 *   pieces     [id, index] → Uint8Array   a piece's bytes
 *   manifests  id → Uint8Array             a manifest's bytes
 *   files      id → { manifest, pieces, bytes }   what is held of each file
 *   meta       'used' → number             bytes held in all
 *
 * Every write is one readwrite transaction over the records it touches: it
 * reads the old size and the total, checks the limit, then writes the bytes
 * and both counts, or aborts and writes nothing (StorageFullError). IndexedDB
 * runs readwrite transactions with overlapping scopes one at a time, across
 * tabs too, so two tabs writing at once never lose a count, and the counts
 * are right after a reload without a scan. `pieces(id)` reads the keys of one
 * key range, [id, 0] to [id, ∞]: never the keys of other files. Writes are
 * idempotent (the same id and index are the same verified bytes), so two tabs
 * fetching one file only write a piece twice.
 *
 * Why IndexedDB and not OPFS: a piece is 256 KiB, a size IndexedDB keeps
 * well (Chromium writes values that large as blob files beside its
 * database), and one transaction updates the bytes and the counts together,
 * which OPFS cannot: a file per piece plus a separate index can disagree
 * after a crash. OPFS's fast path (synchronous access handles) works only in
 * a worker; from the page, each piece file is written through a
 * createWritable swap file. And it is not faster here: one write and one
 * read of 16 MiB in 64 pieces in Chromium (e2e/idb-store.spec.ts, last test;
 * four runs on a loaded 2-core machine) took 190–367 ms and 84–127 ms with
 * this store, 183–301 ms and 89–160 ms with a file per piece in OPFS.
 *
 * The limit: `maxBytes`, by default 1 GiB or half the origin's quota when
 * `navigator.storage.estimate()` says it is smaller.
 */
import { StorageFullError } from '../../shared/swarm/errors.ts'
import type { PieceStore, StoredFile } from '../../shared/swarm/store.ts'
import { isFileId } from '../../shared/swarm/uri.ts'

export interface IdbStoreOptions {
  /** The database's name. @default 'weft-files' */
  name?: string
  /** Most bytes held, manifests and pieces. @default 1 GiB, or half the quota when that is less */
  maxBytes?: number
}

/** An IndexedDB store; `close` lets go of the database (tests, or before deleting it). */
export interface IdbPieceStore extends PieceStore {
  close(): void
}

export const DEFAULT_IDB_NAME = 'weft-files'
export const DEFAULT_IDB_MAX_BYTES = 2 ** 30

const PIECES = 'pieces'
const MANIFESTS = 'manifests'
const FILES = 'files'
const META = 'meta'
const USED = 'used'

interface FileRecord {
  manifest: boolean
  pieces: number
  bytes: number
}

const isIndex = (i: unknown): i is number => Number.isSafeInteger(i) && (i as number) >= 0

function check(id: string, index?: number): void {
  if (!isFileId(id)) throw new TypeError('not a file id (64 lowercase hex characters)')
  if (index !== undefined && !isIndex(index)) throw new TypeError('a piece index is a non-negative integer')
}

const fileKeys = (id: string) => IDBKeyRange.bound([id, 0], [id, Number.POSITIVE_INFINITY])
const asBytes = (v: unknown) => (v instanceof Uint8Array ? v : undefined)
const asNumber = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0)
function asRecord(v: unknown): FileRecord {
  const r = (v ?? {}) as Partial<FileRecord>
  return { manifest: r.manifest === true, pieces: asNumber(r.pieces), bytes: asNumber(r.bytes) }
}

/** What a transaction ends with: its value, or the error to reject with instead of the abort's. */
interface Outcome<T> {
  value?: T
  error?: unknown
  /** What a write rejects with if the browser refuses it for want of quota. */
  full?: StorageFullError
}

function openDb(name: string): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name, 1)
    req.onupgradeneeded = () => {
      const db = req.result
      db.createObjectStore(PIECES)
      db.createObjectStore(MANIFESTS)
      db.createObjectStore(FILES)
      db.createObjectStore(META)
    }
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
    req.onblocked = () => reject(new Error(`IndexedDB ${name}: blocked by another tab's connection`))
  })
}

/** The origin's quota halved, capped at 1 GiB; 1 GiB when the browser does not say. */
async function defaultLimit(): Promise<number> {
  try {
    const est = await globalThis.navigator?.storage?.estimate?.()
    if (est?.quota && est.quota > 0) return Math.min(DEFAULT_IDB_MAX_BYTES, Math.floor(est.quota / 2))
  } catch {}
  return DEFAULT_IDB_MAX_BYTES
}

/** Open (creating it if need be) the store in IndexedDB database `opts.name`. */
export async function idbPieceStore(opts: IdbStoreOptions = {}): Promise<IdbPieceStore> {
  const name = opts.name ?? DEFAULT_IDB_NAME
  const limit = opts.maxBytes ?? (await defaultLimit())
  let db: Promise<IDBDatabase> | undefined
  const connect = (): Promise<IDBDatabase> => {
    if (!db) {
      const opening = openDb(name).then((d) => {
        // Another tab upgrading or deleting the database: step aside, and open again on the next call.
        d.onversionchange = () => {
          d.close()
          if (db === opening) db = undefined
        }
        d.onclose = () => {
          if (db === opening) db = undefined
        }
        return d
      })
      opening.catch(() => {
        if (db === opening) db = undefined
      })
      db = opening
    }
    return db
  }
  await connect()

  /** Run `body` in one transaction over `stores`; resolves once it has committed. */
  const run = async <T>(
    stores: string[],
    mode: IDBTransactionMode,
    body: (t: IDBTransaction, out: Outcome<T>) => void,
  ): Promise<T> => {
    const d = await connect()
    return new Promise<T>((resolve, reject) => {
      const t = d.transaction(stores, mode)
      const out: Outcome<T> = {}
      t.oncomplete = () => resolve(out.value as T)
      t.onabort = () => {
        // The origin's quota can run out below our limit (other data of the origin): the same clear error.
        const quota = t.error?.name === 'QuotaExceededError' ? out.full : undefined
        reject(out.error ?? quota ?? t.error ?? new Error('IndexedDB transaction aborted'))
      }
      body(t, out)
    })
  }
  const onValue = <V>(r: IDBRequest<V>, then: (v: V) => void) => {
    r.onsuccess = () => then(r.result)
  }

  /**
   * Write `bytes` under `key` of `store`, with the file's record and the total: in one transaction,
   * within the limit. `record` updates the file's record given whether the key was already there.
   */
  const write = (
    id: string,
    store: string,
    key: IDBValidKey,
    bytes: Uint8Array,
    record: (r: FileRecord, existed: boolean) => void,
  ) =>
    run<void>([store, FILES, META], 'readwrite', (t, out) => {
      const s = t.objectStore(store)
      const files = t.objectStore(FILES)
      const meta = t.objectStore(META)
      // Requests of one transaction succeed in the order they were made: the last one sees all three.
      const rec = files.get(id)
      const old = s.get(key)
      onValue(meta.get(USED), (u) => {
        const used = asNumber(u)
        const before = asBytes(old.result)
        const delta = bytes.length - (before?.length ?? 0)
        if (delta > 0 && used + delta > limit) {
          out.error = new StorageFullError(delta, used, limit)
          t.abort()
          return
        }
        const r = asRecord(rec.result)
        record(r, before !== undefined)
        r.bytes += delta
        out.full = new StorageFullError(delta, used, limit)
        try {
          s.put(bytes, key)
          files.put(r, id)
          meta.put(used + delta, USED)
        } catch (err) {
          out.error = (err as Error)?.name === 'QuotaExceededError' ? out.full : err
          t.abort()
        }
      })
    })

  const read = <V>(store: string, make: (s: IDBObjectStore) => IDBRequest, as: (v: unknown) => V) =>
    run<V>([store], 'readonly', (t, out) => {
      onValue(make(t.objectStore(store)), (v) => {
        out.value = as(v)
      })
    })

  return {
    async getManifest(id) {
      if (!isFileId(id)) return undefined
      return read(MANIFESTS, (s) => s.get(id), asBytes)
    },
    async putManifest(id, bytes) {
      check(id)
      // slice: a view's own bytes, not the whole buffer behind it (IndexedDB clones the buffer).
      await write(id, MANIFESTS, id, bytes.slice(), (r) => {
        r.manifest = true
      })
    },
    async getPiece(id, index) {
      if (!isFileId(id) || !isIndex(index)) return undefined
      return read(PIECES, (s) => s.get([id, index]), asBytes)
    },
    async putPiece(id, index, data) {
      check(id, index)
      await write(id, PIECES, [id, index], data.slice(), (r, existed) => {
        if (!existed) r.pieces++
      })
    },
    async has(id, index) {
      if (!isFileId(id) || !isIndex(index)) return false
      return read(
        PIECES,
        (s) => s.count([id, index]),
        (n) => n === 1,
      )
    },
    async pieces(id) {
      if (!isFileId(id)) return []
      return read(
        PIECES,
        (s) => s.getAllKeys(fileKeys(id)),
        (keys) => (keys as [string, number][]).map((k) => k[1]),
      )
    },
    list() {
      return run<StoredFile[]>([FILES], 'readonly', (t, out) => {
        const files = t.objectStore(FILES)
        const ids = files.getAllKeys()
        onValue(files.getAll(), (recs) => {
          out.value = []
          recs.forEach((v, i) => {
            const r = asRecord(v)
            const id = ids.result[i]
            if (r.manifest && typeof id === 'string')
              out.value?.push({ id, pieces: r.pieces, bytes: r.bytes })
          })
        })
      })
    },
    async remove(id) {
      if (!isFileId(id)) return
      await run<void>([PIECES, MANIFESTS, FILES, META], 'readwrite', (t) => {
        const files = t.objectStore(FILES)
        const meta = t.objectStore(META)
        const rec = files.get(id)
        onValue(meta.get(USED), (u) => {
          if (rec.result === undefined) return
          t.objectStore(PIECES).delete(fileKeys(id))
          t.objectStore(MANIFESTS).delete(id)
          files.delete(id)
          meta.put(Math.max(0, asNumber(u) - asRecord(rec.result).bytes), USED)
        })
      })
    },
    async usage() {
      return { used: await read(META, (s) => s.get(USED), asNumber), limit }
    },
    close() {
      const d = db
      db = undefined
      d?.then((x) => x.close()).catch(() => {})
    },
  }
}
