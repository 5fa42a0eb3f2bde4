/** What every entry point (Node and browser) exports besides joinOverlay. */

export type { DhtRecord, LookupResult } from '../shared/chord/chord.ts'
export {
  AccessDeniedError,
  ClosedError,
  LeaseHeldError,
  MessageTooLargeError,
  NoRouteError,
  RemoteError,
  SignalError,
  TimeoutError,
  UnsupportedError,
  ValueTooLargeError,
  WeftError,
} from '../shared/errors.ts'
export { QuotaExceededError } from '../shared/sync/errors.ts'
export type { Value } from '../shared/types.ts'
export type {
  DhtApi,
  Handler,
  JoinOptions,
  NodeEvents,
  PeerSummary,
  Subscriber,
  SyncApi,
} from './overlay.ts'
export { OverlayNode } from './overlay.ts'
export type { SignalState, SignalStatus } from './signal-client.ts'
