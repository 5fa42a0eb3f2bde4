/**
 * The swarm's dependencies (what the host gives it), its options with their
 * defaults, and the types its callers meet.
 */
import type { Counters, ProtocolNode } from '../protocol.ts'
import type { ByteSource, Manifest, Sha256 } from './manifest.ts'
import type { SwarmMsg } from './messages.ts'
import type { PieceStore } from './store.ts'
import type { FileRef } from './uri.ts'

export interface SwarmDeps {
  /** This node's id. */
  readonly id: string
  /**
   * Send to a peer over a direct link, opened on demand (pieces are never
   * routed hop by hop). May resolve when the message has left (after
   * backpressure): an upload slot is held until then. A rejection means the
   * message did not go.
   */
  send(to: string, msg: SwarmMsg): void | Promise<void>
  now(): number
  /** Uniform in [0, 1). */
  random(): number
  /** Where files are kept. */
  readonly store: PieceStore
  /** SHA-256. @default WebCrypto */
  sha256?: Sha256
  /** Nodes that provide a file (the DHT's findProviders of providerKey(id)). */
  findProviders?(file: string): Promise<string[]>
  /** Announce that this node provides a file (the DHT's provide of providerKey(id)). */
  provide?(file: string): void | Promise<void>
}

export interface SwarmOptions {
  /** Piece size of files this node adds. @default 262_144 (PIECE_SIZE) */
  pieceSize?: number
  /** Most requests in flight to one peer. @default 4 */
  pipeline?: number
  /** Peers a download dials up to. @default 8 */
  targetPeers?: number
  /** Most peers of one file, dialled and accepted. @default 24 */
  maxPeers?: number
  /** Pieces this node uploads at once, all files and peers together. @default 8 */
  uploadSlots?: number
  /** A request unanswered this long goes to another peer. @default 15_000 */
  requestTimeoutMs?: number
  /** Timeouts in a row (no piece between) after which a peer is dropped. @default 3 */
  maxTimeouts?: number
  /** A hello unanswered this long: the candidate failed. @default 10_000 */
  helloTimeoutMs?: number
  /** A manifest request unanswered this long goes to another peer. @default 10_000 */
  metaTimeoutMs?: number
  /** No manifest this long after a download starts: NotFoundError (IntegrityError if every source lied). @default 30_000 */
  findTimeoutMs?: number
  /** No connected peer has any piece we lack for this long: NotFoundError (IntegrityError if only liars had them). @default 60_000 */
  stallTimeoutMs?: number
  /** Ask the DHT for providers again this often while below targetPeers (sooner, from 1 s doubling, while no peer at all). @default 30_000 */
  lookupIntervalMs?: number
  /** Peer exchange with every peer this often. @default 30_000 */
  pexIntervalMs?: number
  /** Most peers one piece is requested from at once in the endgame. @default 3 */
  endgameMax?: number
  /** In the endgame, a piece is asked of another peer only once its request is this old. @default 1_000 */
  endgameAfterMs?: number
  /** First wait after a `busy` with nothing in flight; doubles to busyBackoffMaxMs. @default 250 */
  busyBackoffMs?: number
  /** @default 4_000 */
  busyBackoffMaxMs?: number
  /** Messages one peer may send us (hello, req, meta-req, pex, cancel, ...) per second. @default 64 */
  peerMsgPerSec?: number
  /** ... and in one burst. @default 128 */
  peerMsgBurst?: number
  /** Messages dropped over that budget after which the peer is dropped from every swarm here. @default 256 */
  floodLimit?: number
  /** Candidate peers remembered per file. @default 256 */
  maxCandidates?: number
  /** Files with live swarm state at once (the rest wait in the store). @default 64 */
  maxActiveFiles?: number
  /** Files one peer may join here as a newcomer (its further hellos: bye busy). @default 16 */
  maxFilesPerPeer?: number
  /** A file with no peers and no download leaves memory after this long. @default 300_000 */
  idleFileMs?: number
  /** Peers banned per file (bad data), remembered. @default 1_024 */
  maxBanned?: number
  /** Hash a piece read from the store again before serving it. @default true */
  verifyOnServe?: boolean
  /** An upload whose send has not settled after this long frees its slot anyway. @default 60_000 */
  uploadTimeoutMs?: number
  /** Window of the download rate (bytesPerSec). @default 5_000 */
  rateWindowMs?: number
}

export type ResolvedSwarmOptions = Required<SwarmOptions>

export function resolveSwarmOptions(o: SwarmOptions = {}): ResolvedSwarmOptions {
  const r: ResolvedSwarmOptions = {
    pieceSize: o.pieceSize ?? 262_144,
    pipeline: o.pipeline ?? 4,
    targetPeers: o.targetPeers ?? 8,
    maxPeers: o.maxPeers ?? 24,
    uploadSlots: o.uploadSlots ?? 8,
    requestTimeoutMs: o.requestTimeoutMs ?? 15_000,
    maxTimeouts: o.maxTimeouts ?? 3,
    helloTimeoutMs: o.helloTimeoutMs ?? 10_000,
    metaTimeoutMs: o.metaTimeoutMs ?? 10_000,
    findTimeoutMs: o.findTimeoutMs ?? 30_000,
    stallTimeoutMs: o.stallTimeoutMs ?? 60_000,
    lookupIntervalMs: o.lookupIntervalMs ?? 30_000,
    pexIntervalMs: o.pexIntervalMs ?? 30_000,
    endgameMax: o.endgameMax ?? 3,
    endgameAfterMs: o.endgameAfterMs ?? 1_000,
    busyBackoffMs: o.busyBackoffMs ?? 250,
    busyBackoffMaxMs: o.busyBackoffMaxMs ?? 4_000,
    peerMsgPerSec: o.peerMsgPerSec ?? 64,
    peerMsgBurst: o.peerMsgBurst ?? 128,
    floodLimit: o.floodLimit ?? 256,
    maxCandidates: o.maxCandidates ?? 256,
    maxActiveFiles: o.maxActiveFiles ?? 64,
    maxFilesPerPeer: o.maxFilesPerPeer ?? 16,
    idleFileMs: o.idleFileMs ?? 300_000,
    maxBanned: o.maxBanned ?? 1_024,
    verifyOnServe: o.verifyOnServe ?? true,
    uploadTimeoutMs: o.uploadTimeoutMs ?? 60_000,
    rateWindowMs: o.rateWindowMs ?? 5_000,
  }
  for (const [k, v] of Object.entries(r)) {
    if (typeof v !== 'number') continue
    const zeroOk = k === 'endgameAfterMs'
    if (!(v > 0 || (zeroOk && v === 0)) || !Number.isFinite(v))
      throw new RangeError(`swarm option ${k} must be a positive number`)
  }
  return r
}

/** What `add` and `list` say about a file. */
export interface FileInfo {
  id: string
  uri: string
  size: number
  name?: string
  type?: string
}

export interface StoredFileInfo extends FileInfo {
  /** Every piece is here. */
  complete: boolean
  /** Pieces here, of `total`. */
  have: number
  total: number
}

/** A download's figures: pieces held of the total, connected peers, the recent rate. */
export interface Progress {
  /** Pieces held (verified). */
  have: number
  /** Pieces in the file (0 until the manifest is known). */
  total: number
  /** Peers of this file connected now. */
  peers: number
  /** Bytes received per second over the last rateWindowMs. */
  bytesPerSec: number
  /** Bytes held. */
  bytes: number
  /** File size (0 until the manifest is known). */
  size: number
}

/** A piece kept, and the peer that sent it. */
export interface PieceEvent {
  index: number
  from: string
}

/** The part of AbortSignal a download uses (browsers and Node have it; shared/ declares no DOM). */
export interface AbortSignalLike {
  readonly aborted: boolean
  addEventListener(type: 'abort', fn: () => void, opts?: { once?: boolean }): void
  removeEventListener(type: 'abort', fn: () => void): void
}

export interface GetOptions {
  signal?: AbortSignalLike
}

/** One download, as `get` returns it: starts at once. */
export interface Download {
  readonly id: string
  /** The verified manifest, once here. */
  manifest(): Manifest | undefined
  progress(): Progress
  /** Our have-map (a copy), for a piece map; undefined before the manifest. */
  bits(): Uint8Array | undefined
  /** Called on every piece and every change of peers; returns the undo. */
  on(event: 'progress', fn: (p: Progress) => void): () => void
  /** Called with every piece kept, and the peer it came from (a piece map). */
  on(event: 'piece', fn: (e: PieceEvent) => void): () => void
  /** Resolves when every piece is here; rejects NotFoundError, IntegrityError, AbortError, StorageFullError. */
  done(): Promise<FileInfo>
  /** The whole file, once done. */
  bytes(): Promise<Uint8Array>
  /** The pieces in order, each as soon as it is here (for a stream). */
  pieces(): AsyncIterableIterator<Uint8Array>
  /** Stop (pieces held stay, and are served); done() rejects AbortError. */
  abort(reason?: string): void
}

export interface Swarm extends ProtocolNode<SwarmMsg> {
  /** Cut, hash and keep a file, and serve it. */
  add(data: Uint8Array | ByteSource, opts?: { name?: string; type?: string }): Promise<FileInfo>
  /** Fetch a file by link or id (resuming what the store holds). TypeError for a malformed link. */
  get(ref: string | FileRef, opts?: GetOptions): Download
  list(): Promise<StoredFileInfo[]>
  /** Stop any download of it, leave its swarm, and delete it from the store. */
  remove(id: string): Promise<void>
  /** Peers that may have a file (the host's own lookups, hints). */
  addPeers(file: string, peers: string[]): void
  /** A validated swarm message from a peer (see parse). */
  handle(from: string, msg: SwarmMsg): Promise<void>
  /** Validate a decoded body from a peer; refusals are counted (drop.swarm.<reason>). */
  parse(v: unknown): SwarmMsg | null
  tick(now: number): void
  /** The link to a peer closed: it leaves every swarm here, its requests go elsewhere. */
  linkDown(peer: string): void
  /** Announce every file the store holds (call once at start; the DHT refreshes its records). */
  provideAll(): Promise<void>
  /** Stop every download (AbortError) and leave every swarm. */
  close(): void
  /** Traffic and refusals by name (PROTOCOL-swarm.md). */
  readonly counters: Counters
  /** Sizes of the bounded tables, for tests and stats. */
  sizes(): SwarmSizes
}

export interface SwarmSizes {
  files: number
  peers: number
  candidates: number
  banned: number
  uploads: number
  peerBudgets: number
}
