/**
 * `node.files` for real: one node's swarm (shared/swarm, PROTOCOL-swarm.md)
 * hosted beside the core's protocols. This module is loaded on the first
 * use of `node.files` (client/files/lazy.ts), so in the ESM build it is a
 * chunk of its own (weft-files.mjs) that pages without files never fetch.
 *
 * What the host gives the swarm:
 * - its frames (Kind.Swarm) over direct links, opened on demand (WebRTC or
 *   the relay; never routed hop by hop: a piece would cost its size on
 *   every hop), each parsed once by the link's validator;
 * - the DHT's provider records for `weft-file/<id>` (trackerless finding);
 * - the clock through the host's tick, links going down, close;
 * - a store: IndexedDB in browsers, a folder for a Node peer, else memory.
 */
import { ClosedError } from '../../shared/errors.ts'
import type { SwarmMsg } from '../../shared/swarm/messages.ts'
import type { Download, FileInfo, StoredFileInfo, Swarm, SwarmOptions } from '../../shared/swarm/options.ts'
import { createMemoryStore, lyingStore, type PieceStore } from '../../shared/swarm/store.ts'
import { createSwarm, providerKey } from '../../shared/swarm/swarm.ts'
import type { Value } from '../../shared/types.ts'
import { Kind } from '../../shared/wire/frame.ts'
import type { NodeHost } from '../node/host.ts'
import { idbPieceStore } from './idb-store.ts'
import type { FileDownload, FileManifest, FileProgress } from './types.ts'

/** What a Node process without a folder keeps in memory at most. */
export const MEMORY_STORE_BYTES = 256 * 1024 * 1024

export interface FilesEngine {
  readonly swarm: Swarm
  add(data: Blob | Uint8Array, opts?: { name?: string; type?: string }): Promise<FileInfo>
  get(ref: string, signal: AbortSignal | undefined): FileDownload
  list(): Promise<StoredFileInfo[]>
  remove(id: string): Promise<void>
  usage(): Promise<{ used: number; limit: number }>
}

/**
 * Where files are kept: 'indexeddb' (browsers: idb-store.ts, opened here so
 * it is part of this chunk), a store of the host's (a folder for a Node peer
 * with dataDir), or memory when none is given.
 */
export type FileStoreSpec = 'indexeddb' | ((maxBytes: number | undefined) => Promise<PieceStore>)

export async function createFilesEngine(
  host: NodeHost,
  spec: FileStoreSpec | undefined,
  random: () => number,
  maxBytes: number | undefined,
  test: { lie?: boolean; swarm?: SwarmOptions } = {},
): Promise<FilesEngine> {
  const kept =
    spec === 'indexeddb'
      ? await idbPieceStore(maxBytes === undefined ? {} : { maxBytes })
      : spec
        ? await spec(maxBytes)
        : createMemoryStore({ maxBytes: maxBytes ?? MEMORY_STORE_BYTES })
  const swarm = createSwarm(
    {
      id: host.id,
      send: (to, msg) => host.sendDirect(to, { kind: Kind.Swarm, body: msg as unknown as Value }),
      now: () => host.clock.now(),
      random,
      store: test.lie ? lyingStore(kept) : kept,
      findProviders: async (file) => {
        await host.ringReady
        return host.core.chord.findProviders(providerKey(file))
      },
      provide: async (file) => {
        await host.ringReady
        await host.core.chord.provide(providerKey(file))
      },
    },
    test.lie ? { ...test.swarm, verifyOnServe: false } : test.swarm,
  )
  host.attach({
    kind: Kind.Swarm,
    parse: (body) => swarm.parse(body),
    handle: (from, msg) => swarm.handle(from, msg as SwarmMsg),
    tick: (now) => swarm.tick(now),
    linkDown: (peer) => swarm.linkDown(peer),
    close: () => swarm.close(),
    counters: swarm.counters,
  })
  // What the store holds from earlier sessions is served again.
  swarm.provideAll().catch(() => {})
  const open = () => {
    if (host.isClosed) throw new ClosedError()
  }
  return {
    swarm,
    async add(data, opts) {
      open()
      if (data instanceof Uint8Array) return swarm.add(data, opts)
      if (typeof Blob !== 'undefined' && data instanceof Blob) {
        const blob = data
        const type = opts?.type ?? (blob.type || undefined)
        const name = opts?.name ?? fileNameOf(blob)
        return swarm.add(
          {
            size: blob.size,
            read: async (start, end) => new Uint8Array(await blob.slice(start, end).arrayBuffer()),
          },
          { ...(name === undefined ? {} : { name }), ...(type === undefined ? {} : { type }) },
        )
      }
      throw new TypeError('files.add takes a Blob (or File) or a Uint8Array')
    },
    get(ref, signal) {
      open()
      return fileDownload(swarm.get(ref, signal ? { signal } : {}))
    },
    list: async () => {
      open()
      return swarm.list()
    },
    remove: async (id) => {
      open()
      await swarm.remove(id)
      // Its provider record is no longer refreshed, and expires.
      host.core.chord.unprovide(providerKey(id))
    },
    usage: async () => {
      open()
      return kept.usage()
    },
  }
}

/** A File's name, when the Blob is one. */
function fileNameOf(blob: Blob): string | undefined {
  const name = (blob as { name?: unknown }).name
  return typeof name === 'string' && name !== '' ? name : undefined
}

/** The swarm's download, as the application meets it (types.ts): blob() and stream() beside bytes(). */
export function fileDownload(d: Download): FileDownload {
  return {
    id: d.id,
    on: d.on as FileDownload['on'],
    progress: (): FileProgress => d.progress(),
    bits: () => d.bits(),
    manifest: (): FileManifest | undefined => {
      const m = d.manifest()
      if (!m) return undefined
      return {
        size: m.size,
        pieceSize: m.pieceSize,
        pieces: m.pieces,
        ...(m.name === undefined ? {} : { name: m.name }),
        ...(m.type === undefined ? {} : { type: m.type }),
      }
    },
    done: () => d.done(),
    bytes: () => d.bytes(),
    async blob() {
      const bytes = await d.bytes()
      return new Blob([bytes as Uint8Array<ArrayBuffer>], { type: d.manifest()?.type ?? '' })
    },
    stream() {
      const it = d.pieces()
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            const r = await it.next()
            if (r.done) controller.close()
            else controller.enqueue(r.value)
          } catch (err) {
            controller.error(err)
          }
        },
        async cancel() {
          await it.return?.(undefined)
        },
      })
    },
    abort: (reason) => d.abort(reason),
  }
}
