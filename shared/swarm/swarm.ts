/**
 * Swarming: files cut into hash-verified pieces, fetched from many peers at
 * once and served to others, BitTorrent-style (PROTOCOL-swarm.md).
 *
 * `createSwarm(deps, options)` is one node's swarm for every file it holds
 * or fetches. The host gives it a way to send to a peer (a direct link,
 * opened on demand), a store, the DHT's provide/findProviders, the clock
 * through `tick(now)`, and every message from peers through `handle` after
 * `parse`. It owns no timers and no links.
 *
 * The parts, one concept each:
 * - manifest.ts, uri.ts: content addressing (piece hashes, the manifest
 *   whose hash is the id, the weft: link);
 * - messages.ts: the wire, validated once at the boundary;
 * - file-swarm.ts: one file's peers, have-maps, availability, requests;
 * - peers.ts: joining (hello/bye), candidates, peer exchange;
 * - download.ts, picker.ts: what to ask whom, verification, endgame,
 *   timeouts, the end of a download; download-state.ts its own state;
 * - upload.ts: upload slots, serving pieces and manifests;
 * - store.ts: where files are kept (the host's, or memory).
 *
 * This file holds the file table (files with live state: downloads, and
 * files peers asked about lately, loaded from the store on demand and
 * forgotten when idle), the per-peer message budget, dispatch by message
 * type, and the public operations (add, get, list, remove).
 */
import { bytesEqual, sha256 } from '../bytes.ts'
import { bump, type Counters } from '../protocol.ts'
import { TokenBucket } from '../token-bucket.ts'
import { addCandidates, dialMore } from './candidates.ts'
import type { DropOptions, SwarmContext } from './context.ts'
import {
  abortDownload,
  closeDownload,
  emitProgress,
  fail,
  fileInfo,
  finish,
  installManifest,
  onBusy,
  onHave,
  onMeta,
  onNoPiece,
  onPiece,
  provide,
  tickDownload,
} from './download.ts'
import { downloadHandle } from './download-handle.ts'
import { DownloadState } from './download-state.ts'
import { AbortError } from './errors.ts'
import { FileSwarm } from './file-swarm.ts'
import {
  type ByteSource,
  buildManifest,
  bytesSource,
  parseManifest,
  pieceHash,
  verifyManifest,
} from './manifest.ts'
import { parseSwarmMsg, type SwarmMsg } from './messages.ts'
import {
  type Download,
  type FileInfo,
  type GetOptions,
  resolveSwarmOptions,
  type StoredFileInfo,
  type Swarm,
  type SwarmDeps,
  type SwarmOptions,
} from './options.ts'
import { dropPeer, onBye, onHello, onNoFile, onPex, tickPeers } from './peers.ts'
import { onCancel, onMetaRequest, onRequest, Uploads } from './upload.ts'
import { type FileRef, parseFileRef } from './uri.ts'

/** The DHT key under which a file's providers are announced. */
export function providerKey(id: string): string {
  return `weft-file/${id}`
}

interface PeerBudget {
  bucket: TokenBucket
  dropped: number
}

export function createSwarm(deps: SwarmDeps, options: SwarmOptions = {}): Swarm {
  const opts = resolveSwarmOptions(options)
  const counters: Counters = {}
  const files = new Map<string, FileSwarm>()
  const downloads = new Map<string, DownloadState>()
  const loading = new Map<string, Promise<FileSwarm | 'unknown' | 'full'>>()
  const budgets = new Map<string, PeerBudget>()
  /** Files added here this session (their pieces are the first copies: see upload.ts). */
  const origins = new Set<string>()
  let closed = false

  const ctx: SwarmContext = {
    deps,
    opts,
    counters,
    hash: deps.sha256 ?? sha256,
    files,
    downloads,
    uploads: new Uploads(),
    now: () => deps.now(),
    send(to, msg) {
      try {
        const r = deps.send(to, msg)
        if (r) r.catch(() => bump(counters, 'swarm.send-failed'))
      } catch {
        bump(counters, 'swarm.send-failed')
      }
    },
    dropPeer: (f, peer, reason, o?: DropOptions) => dropPeer(ctx, f, peer, reason, o),
  }

  /** Room for one more file with live state: forget an idle one if needed. */
  function makeRoom(force: boolean): boolean {
    if (files.size < opts.maxActiveFiles) return true
    for (const [id, f] of files)
      if (!f.download && f.peers.size === 0 && f.connecting.size === 0) {
        files.delete(id)
        return true
      }
    return force
  }

  /** A file's live state: loaded, or from the store (its manifest checked again), or new for a download. */
  function loadFile(id: string, create: boolean): Promise<FileSwarm | 'unknown' | 'full'> {
    const live = files.get(id)
    if (live) return Promise.resolve(live)
    const pending = loading.get(id)
    if (pending) return pending.then((f) => (typeof f !== 'string' || !create ? f : loadFile(id, true)))
    const p = (async (): Promise<FileSwarm | 'unknown' | 'full'> => {
      const bytes = await deps.store.getManifest(id)
      const m = bytes ? await verifyManifest(id, bytes, ctx.hash) : undefined
      const again = files.get(id)
      if (again) return again
      if ((!m || typeof m === 'string') && !create) return 'unknown'
      if (!makeRoom(create)) {
        bump(counters, 'swarm.files-full')
        return 'full'
      }
      const f = new FileSwarm(id, deps.now())
      if (bytes && m && typeof m !== 'string') {
        installManifest(ctx, f, m, bytes, await deps.store.pieces(id))
        if (origins.has(id)) f.markOrigin()
      } else if (bytes) bump(counters, 'swarm.store.bad-manifest')
      files.set(id, f)
      return f
    })()
    loading.set(id, p)
    const done = () => loading.delete(id)
    p.then(done, done)
    return p
  }

  /** Every message but pieces and haves (answers to our requests, one per piece) spends the peer's budget. */
  function spend(from: string): boolean {
    const now = deps.now()
    let b = budgets.get(from)
    if (!b) {
      b = { bucket: new TokenBucket(opts.peerMsgPerSec, opts.peerMsgBurst, now), dropped: 0 }
      budgets.set(from, b)
    }
    if (b.bucket.take(1, now)) return true
    bump(counters, 'drop.swarm.flood')
    if (++b.dropped === opts.floodLimit) {
      bump(counters, 'swarm.peer.flooder')
      for (const f of files.values()) if (f.peers.has(from)) dropPeer(ctx, f, from, 'flood', { ban: true })
    }
    return false
  }

  async function handle(from: string, msg: SwarmMsg): Promise<void> {
    try {
      await dispatch(from, msg)
    } catch {
      // A store that fails, or a bug: counted, never thrown into the host's receive loop.
      bump(counters, 'swarm.error')
    }
  }

  async function dispatch(from: string, msg: SwarmMsg): Promise<void> {
    if (closed || from === deps.id) return
    if (msg.t !== 'piece' && msg.t !== 'have' && !spend(from)) return
    bump(counters, `swarm.in.${msg.t}`)
    if (msg.t === 'hello') {
      const f = await loadFile(msg.file, false)
      if (closed) return
      if (f === 'full') return ctx.send(from, { t: 'bye', file: msg.file, reason: 'busy' })
      return onHello(ctx, f === 'unknown' ? null : f, from, msg)
    }
    const f = files.get(msg.file)
    if (!f) return void bump(counters, 'drop.swarm.unknown-file')
    f.lastActive = deps.now()
    if (msg.t === 'bye') return onBye(ctx, f, from, msg)
    if (msg.t === 'none' && msg.index === undefined) return onNoFile(ctx, f, from)
    const p = f.peers.get(from)
    if (!p) return void bump(counters, 'drop.swarm.not-member')
    switch (msg.t) {
      case 'meta-req':
        return onMetaRequest(ctx, f, p)
      case 'meta':
        return onMeta(ctx, f, from, msg)
      case 'have':
        return onHave(ctx, f, p, msg.index)
      case 'req':
        return onRequest(ctx, f, p, msg)
      case 'piece':
        return onPiece(ctx, f, p, msg)
      case 'cancel':
        return onCancel(ctx, f, p, msg.index)
      case 'busy':
        return onBusy(ctx, f, p, msg)
      case 'none':
        return onNoPiece(ctx, f, p, msg.index as number)
      case 'pex':
        return onPex(ctx, f, p, msg)
    }
  }

  function tick(now: number): void {
    if (closed) return
    const freed = ctx.uploads.tick(now)
    if (freed) bump(counters, 'swarm.upload.timeout', freed)
    for (const [peer, b] of budgets)
      if (b.dropped < opts.floodLimit && b.bucket.full(now)) budgets.delete(peer)
    for (const [id, f] of files) {
      const dl = f.download
      if (dl?.active) tickDownload(ctx, f, dl, now)
      tickPeers(ctx, f, now)
      if (!f.download && f.peers.size === 0 && now - f.lastActive >= opts.idleFileMs) files.delete(id)
    }
  }

  function linkDown(peer: string): void {
    budgets.delete(peer)
    for (const f of files.values()) {
      if (f.peers.has(peer)) dropPeer(ctx, f, peer, 'link-down', { silent: true, retry: true })
      else if (f.connecting.delete(peer)) dialMore(ctx, f)
    }
  }

  function get(ref: string | FileRef, getOpts: GetOptions = {}): Download {
    const given = typeof ref === 'object' && ref !== null
    const r = parseFileRef(given ? ref.id : ref)
    if (typeof r === 'string') throw new TypeError(r)
    const hints: FileRef = given ? { ...ref, id: r.id } : r
    let dl = downloads.get(r.id)
    if (!dl) {
      dl = new DownloadState(hints, deps.now(), opts.rateWindowMs)
      if (closed) closeDownload(ctx, dl)
      else {
        downloads.set(r.id, dl)
        void start(dl)
      }
    }
    const signal = getOpts.signal
    if (signal && dl.active) {
      const d = dl
      if (signal.aborted) abortDownload(ctx, d)
      else {
        const onAbort = () => abortDownload(ctx, d)
        signal.addEventListener('abort', onAbort, { once: true })
        const prev = d.unlisten
        d.unlisten = () => {
          prev?.()
          signal.removeEventListener('abort', onAbort)
        }
      }
    }
    return downloadHandle(ctx, dl)
  }

  async function start(dl: DownloadState): Promise<void> {
    let f: FileSwarm | 'unknown' | 'full'
    try {
      f = await loadFile(dl.id, true)
    } catch (err) {
      return fail(ctx, undefined, dl, err instanceof Error ? err : new Error(String(err)))
    }
    if (!dl.active || typeof f === 'string') return
    dl.file = f
    f.download = dl
    dl.changed()
    if (f.complete) return finish(ctx, f, dl)
    emitProgress(ctx, dl)
    tickDownload(ctx, f, dl, deps.now())
  }

  async function add(
    data: Uint8Array | ByteSource,
    o: { name?: string; type?: string } = {},
  ): Promise<FileInfo> {
    const source = data instanceof Uint8Array ? bytesSource(data) : data
    const built = await buildManifest(source, { ...o, pieceSize: opts.pieceSize, hash: ctx.hash })
    const { id, manifest: m, bytes } = built
    const existed = (await deps.store.getManifest(id)) !== undefined
    try {
      await deps.store.putManifest(id, bytes)
      for (let i = 0; i < m.pieces; i++) {
        const start = i * m.pieceSize
        const piece = await source.read(start, Math.min(m.size, start + m.pieceSize))
        // A source that changed between the two reads would store a piece its manifest does not describe.
        if (!bytesEqual(await ctx.hash(piece), pieceHash(m, i)))
          throw new Error(`piece ${i} changed while the file was being added`)
        await deps.store.putPiece(id, i, piece)
      }
    } catch (err) {
      if (!existed) await deps.store.remove(id)
      throw err
    }
    const f = files.get(id)
    if (f) {
      if (!f.manifest) installManifest(ctx, f, m, bytes, [])
      for (let i = 0; i < m.pieces; i++)
        if (f.gained(i)) for (const p of f.peers.values()) ctx.send(p.id, { t: 'have', file: id, index: i })
      f.markOrigin()
      if (f.download?.active) finish(ctx, f, f.download)
    }
    provide(ctx, id)
    origins.add(id)
    if (origins.size > opts.maxActiveFiles) origins.delete(origins.values().next().value as string)
    bump(counters, 'swarm.added')
    return fileInfo(id, m)
  }

  async function list(): Promise<StoredFileInfo[]> {
    const out: StoredFileInfo[] = []
    for (const s of await deps.store.list()) {
      const live = files.get(s.id)
      const bytes = live?.manifestBytes ?? (await deps.store.getManifest(s.id))
      const m = live?.manifest ?? (bytes ? parseManifest(bytes) : undefined)
      if (!m || typeof m === 'string') continue
      const have = live?.have?.count ?? Math.min(s.pieces, m.pieces)
      out.push({ ...fileInfo(s.id, m), complete: have === m.pieces, have, total: m.pieces })
    }
    return out
  }

  async function remove(id: string): Promise<void> {
    const dl = downloads.get(id)
    if (dl) fail(ctx, dl.file, dl, new AbortError('the file was removed'))
    const f = files.get(id)
    if (f) {
      for (const peer of [...f.peers.keys()]) dropPeer(ctx, f, peer, 'gone')
      files.delete(id)
    }
    for (const [key, u] of ctx.uploads.active) if (key.includes(`|${id}|`)) u.cancelled = true
    await deps.store.remove(id)
  }

  return {
    counters,
    add,
    get,
    list,
    remove,
    handle,
    tick,
    linkDown,
    parse(v) {
      const r = parseSwarmMsg(v)
      if (typeof r !== 'string') return r
      bump(counters, `drop.swarm.${r}`)
      return null
    },
    addPeers(file, peers) {
      const f = files.get(file)
      if (!f?.download?.active) return
      addCandidatesFrom(f, peers)
    },
    async provideAll() {
      if (!deps.provide) return
      for (const s of await deps.store.list()) provide(ctx, s.id)
    },
    close() {
      if (closed) return
      for (const dl of [...downloads.values()]) closeDownload(ctx, dl)
      for (const f of files.values()) for (const peer of [...f.peers.keys()]) dropPeer(ctx, f, peer, 'gone')
      files.clear()
      closed = true
    },
    sizes() {
      let peers = 0
      let candidates = 0
      let banned = 0
      for (const f of files.values()) {
        peers += f.peers.size
        candidates += f.candidates.size
        banned += f.banned.size
      }
      return {
        files: files.size,
        peers,
        candidates,
        banned,
        uploads: ctx.uploads.active.size,
        peerBudgets: budgets.size,
      }
    },
  }

  function addCandidatesFrom(f: FileSwarm, peers: string[]): void {
    addCandidates(ctx, f, peers)
    dialMore(ctx, f)
  }
}
