/**
 * `node.files`: files shared by many nodes at once, BitTorrent-style
 * (shared/swarm, PROTOCOL-swarm.md). The types an application meets; the
 * swarm itself loads on first use (client/files/lazy.ts), so a page that
 * never touches files does not load it.
 */

import type { FileInfo, PieceEvent, Progress, StoredFileInfo } from '../../shared/swarm/options.ts'

/**
 * What `add` and `list` say about a file (`id`: 64 hex characters, the
 * SHA-256 of its manifest; `uri`: its `weft:` link), and a file held here,
 * whole or in part (`complete`, `have` of `total` pieces): the swarm's own.
 */
export type { FileInfo, StoredFileInfo }

/** A download's figures: pieces held of the total, connected peers, bytes per second over 5 s. */
export type FileProgress = Progress

/** A piece kept, and the peer it came from (for a piece map). */
export type FilePieceEvent = PieceEvent

/** The file's description, once fetched and checked against the id. */
export interface FileManifest {
  size: number
  pieceSize: number
  pieces: number
  name?: string
  type?: string
}

export interface FileGetOptions {
  /** Aborting stops the download (pieces held stay, and are served): AbortError. */
  signal?: AbortSignal
}

/** One download, as `node.files.get` returns it: it starts at once. */
export interface FileDownload {
  readonly id: string
  /** Called on every piece and every change of peers; returns the function that stops listening. */
  on(event: 'progress', fn: (p: FileProgress) => void): () => void
  /** Called with every piece kept and the peer it came from. */
  on(event: 'piece', fn: (e: FilePieceEvent) => void): () => void
  progress(): FileProgress
  /** The have-map (one bit per piece, piece 0 the high bit of byte 0), once the manifest is here. */
  bits(): Uint8Array | undefined
  manifest(): FileManifest | undefined
  /** Resolves when every piece is here; rejects NotFoundError, IntegrityError, AbortError, StorageFullError, ClosedError. */
  done(): Promise<FileInfo>
  /** The whole file, once done. */
  bytes(): Promise<Uint8Array>
  /** The whole file as a Blob of the file's type, once done. */
  blob(): Promise<Blob>
  /** The file in order, each piece as soon as it is here. */
  stream(): ReadableStream<Uint8Array>
  /** Stop; done() rejects AbortError. Pieces held stay, and are served. */
  abort(reason?: string): void
}

/** `node.files`. */
export interface FilesApi {
  /** Cut, hash and keep a file, announce it, and serve it. */
  add(data: Blob | Uint8Array, opts?: { name?: string; type?: string }): Promise<FileInfo>
  /** Fetch a file by its `weft:` link or id; resumes with the pieces held. TypeError for a malformed link. */
  get(uriOrId: string, opts?: FileGetOptions): FileDownload
  /** Files held here, whole or in part. */
  list(): Promise<StoredFileInfo[]>
  /** Stop any download of it, stop serving it, and delete it. */
  remove(id: string): Promise<void>
  /** Bytes of files kept here, and the limit (`files.maxBytes`). */
  usage(): Promise<{ used: number; limit: number }>
}
