/** What every entry point (Node and browser) exports besides joinOverlay. */

export {
  AbortError,
  AccessDeniedError,
  ClosedError,
  IntegrityError,
  LeaseHeldError,
  MessageTooLargeError,
  NoRouteError,
  NotFoundError,
  RemoteError,
  SignalError,
  StorageFullError,
  TimeoutError,
  UnsupportedError,
  ValueTooLargeError,
  WeftError,
} from '../shared/errors.ts'
export { QuotaExceededError } from '../shared/sync/errors.ts'
export type {
  FileDownload,
  FileGetOptions,
  FileInfo,
  FileManifest,
  FilePieceEvent,
  FileProgress,
  FilesApi,
  StoredFileInfo,
} from './files/types.ts'
export type { JoinOptions } from './node/options.ts'
export type { SignalState, SignalStatus } from './signal-client.ts'
export type {
  DhtApi,
  DhtRecord,
  Handler,
  LookupResult,
  MessageMeta,
  NodeEvents,
  NodeInspection,
  PeerLink,
  PeerSummary,
  PresenceApi,
  PresenceEvent,
  PresenceInfo,
  Subscriber,
  SyncApi,
  SyncChange,
  Value,
  WeftNode,
} from './weft-node.ts'
