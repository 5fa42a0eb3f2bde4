/**
 * `node.files` as the node carries it from the start: a small front that
 * loads the swarm (engine.ts, with its store) on first use. In the ESM
 * build the engine is a chunk of its own, so a page that never touches
 * files never fetches it; the IIFE build (weft.js) has it inline.
 *
 * `get` answers at once (a link is checked here, TypeError when malformed)
 * with a download whose listeners, abort and promises are held until the
 * engine is there.
 */
import { ClosedError } from '../../shared/errors.ts'
import { parseFileRef } from '../../shared/swarm/uri.ts'
import type { FilesEngine } from './engine.ts'
import type { FileDownload, FileGetOptions, FilePieceEvent, FileProgress, FilesApi } from './types.ts'

export interface FilesFront extends FilesApi {
  /** The engine, loading it if need be (tests and the node's stats). */
  engine(): Promise<FilesEngine>
  /** The engine if it has loaded. */
  readonly loaded: FilesEngine | undefined
}

const NO_PROGRESS: FileProgress = { have: 0, total: 0, peers: 0, bytesPerSec: 0, bytes: 0, size: 0 }

export function lazyFiles(load: () => Promise<FilesEngine>, isClosed: () => boolean): FilesFront {
  let loading: Promise<FilesEngine> | undefined
  let loaded: FilesEngine | undefined
  const engine = (): Promise<FilesEngine> => {
    if (isClosed()) return Promise.reject(new ClosedError())
    if (!loading) {
      const p = load().then((e) => {
        loaded = e
        return e
      })
      // A failed load (a store that cannot open) is told to its callers; the next call tries again.
      p.catch(() => {
        if (loading === p) loading = undefined
      })
      loading = p
    }
    return loading
  }
  return {
    engine,
    get loaded() {
      return loaded
    },
    add: async (data, opts) => (await engine()).add(data, opts),
    list: async () => (await engine()).list(),
    remove: async (id) => (await engine()).remove(id),
    usage: async () => (await engine()).usage(),
    get(uriOrId: string, opts: FileGetOptions = {}): FileDownload {
      if (typeof uriOrId !== 'string')
        throw new TypeError('files.get takes a weft: link or a file id (a string)')
      const ref = parseFileRef(uriOrId)
      if (typeof ref === 'string') throw new TypeError(ref)
      if (isClosed()) throw new ClosedError()
      if (loaded) return loaded.get(uriOrId, opts.signal)
      return pendingDownload(
        ref.id,
        engine().then((e) => e.get(uriOrId, opts.signal)),
      )
    },
  }
}

/** A download whose engine is still loading: listeners and an abort wait for it. */
function pendingDownload(id: string, inner: Promise<FileDownload>): FileDownload {
  let d: FileDownload | undefined
  let aborted: { reason?: string } | undefined
  const listeners: {
    event: 'progress' | 'piece'
    fn: (e: never) => void
    undo?: () => void
    off?: boolean
  }[] = []
  // A load that failed surfaces through done() and bytes(); nothing is left unhandled.
  inner.then(
    (got) => {
      d = got
      for (const l of listeners) if (!l.off) l.undo = onOf(got, l.event, l.fn)
      if (aborted) got.abort(aborted.reason)
    },
    () => {},
  )
  const after = <T>(fn: (x: FileDownload) => Promise<T>) => inner.then(fn)
  return {
    id,
    on: ((event: 'progress' | 'piece', fn: (e: never) => void) => {
      if (d) return onOf(d, event, fn)
      const l: (typeof listeners)[number] = { event, fn }
      listeners.push(l)
      return () => {
        l.off = true
        l.undo?.()
      }
    }) as FileDownload['on'],
    progress: () => d?.progress() ?? { ...NO_PROGRESS },
    bits: () => d?.bits(),
    manifest: () => d?.manifest(),
    done: () => after((x) => x.done()),
    bytes: () => after((x) => x.bytes()),
    blob: () => after((x) => x.blob()),
    stream: () => {
      let s: ReadableStreamDefaultReader<Uint8Array> | undefined
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            s ??= (await inner).stream().getReader()
            const r = await s.read()
            if (r.done) controller.close()
            else controller.enqueue(r.value)
          } catch (err) {
            controller.error(err)
          }
        },
        cancel: async () => s?.cancel(),
      })
    },
    abort(reason?: string) {
      if (d) d.abort(reason)
      else aborted = reason === undefined ? {} : { reason }
    },
  }
}

/** `d.on` for either event (its overloads take one literal each). */
function onOf(d: FileDownload, event: 'progress' | 'piece', fn: (e: never) => void): () => void {
  return event === 'piece'
    ? d.on('piece', fn as (e: FilePieceEvent) => void)
    : d.on('progress', fn as (p: FileProgress) => void)
}
