export { Bitfield } from './bitfield.ts'
export { AbortError, IntegrityError, NotFoundError, StorageFullError } from './errors.ts'
export * from './limits.ts'
export {
  type BuiltManifest,
  type ByteSource,
  buildManifest,
  bytesSource,
  encodeManifest,
  fileIdOf,
  isFileName,
  isMediaType,
  MANIFEST_VERSION,
  type Manifest,
  type ManifestDropReason,
  parseManifest,
  pieceCount,
  pieceHash,
  pieceLength,
  type Sha256,
  verifyManifest,
} from './manifest.ts'
export * from './messages.ts'
export type {
  AbortSignalLike,
  Download,
  FileInfo,
  GetOptions,
  PieceEvent,
  Progress,
  StoredFileInfo,
  Swarm,
  SwarmDeps,
  SwarmOptions,
  SwarmSizes,
} from './options.ts'
export { resolveSwarmOptions } from './options.ts'
export { pickPiece } from './picker.ts'
export { createMemoryStore, type MemoryStoreOptions, type PieceStore, type StoredFile } from './store.ts'
export { createSwarm, providerKey } from './swarm.ts'
export { type FileRef, fileUri, isFileId, parseFileRef } from './uri.ts'
