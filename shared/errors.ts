/**
 * The named errors of the public API. Callers test `err.name`, which is
 * stable; messages are for people.
 */

/** Base class: every weft error is a WeftError. */
export class WeftError extends Error {
  override name = 'WeftError'
}

/** A request got no answer in time. */
export class TimeoutError extends WeftError {
  override name = 'TimeoutError'
}

/**
 * No link and no route reaches the target node. `refused`: the node itself
 * would not take a link from us, and said why ('full': it has all the links
 * it takes; 'no-relay': it takes direct links only, and we can make none).
 */
export class NoRouteError extends WeftError {
  override name = 'NoRouteError'
  constructor(
    readonly to: string,
    message = `no route to ${to}`,
    readonly refused?: string,
  ) {
    super(message)
  }
}

/** The remote handler threw; `message` carries its message. */
export class RemoteError extends WeftError {
  override name = 'RemoteError'
}

/** A key is leased by another node until `expires` (ms since epoch, the owner's clock). */
export class LeaseHeldError extends WeftError {
  override name = 'LeaseHeldError'
  constructor(
    readonly key: string,
    readonly owner: string,
    readonly expires: number,
  ) {
    // biome-ignore lint/style/noRestrictedGlobals: formats the time it is given; reads no clock
    super(`key ${JSON.stringify(key)} is leased by ${owner} until ${new Date(expires).toISOString()}`)
  }
}

/** A value (or key) is larger than the table or DHT accepts. */
export class ValueTooLargeError extends WeftError {
  override name = 'ValueTooLargeError'
  constructor(
    readonly size: number,
    readonly limit: number,
    what = 'value',
  ) {
    super(`${what} of ${size} bytes exceeds the limit of ${limit} bytes`)
  }
}

/** An encoded message is larger than the configured maximum. */
export class MessageTooLargeError extends WeftError {
  override name = 'MessageTooLargeError'
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(`message of ${size} bytes exceeds the limit of ${limit} bytes`)
  }
}

/** No signal server reachable, or it refused us; `reason` is the server's code. */
export class SignalError extends WeftError {
  override name = 'SignalError'
  constructor(
    readonly reason: string,
    message = `signal server: ${reason}`,
  ) {
    super(message)
  }
}

/**
 * A link to a member of a private network was refused: this node has no
 * secret, or another one (`joinOverlay({ network, secret })`). `peer` is the
 * node that refused, when one is known.
 */
export class AccessDeniedError extends WeftError {
  override name = 'AccessDeniedError'
  constructor(
    readonly peer?: string,
    message = peer
      ? `access denied by ${peer}: this network needs another secret`
      : 'access denied: this network needs another secret',
  ) {
    super(message)
  }
}

/** The node was closed. */
export class ClosedError extends WeftError {
  override name = 'ClosedError'
  constructor(message = 'the node is closed') {
    super(message)
  }
}

/**
 * The environment lacks something weft needs (a browser feature: a secure
 * context, WebCrypto Ed25519, IndexedDB, CompressionStream, WebRTC);
 * `feature` names it, the message says what to do.
 */
export class UnsupportedError extends WeftError {
  override name = 'UnsupportedError'
  constructor(
    readonly feature: string,
    message: string,
  ) {
    super(message)
  }
}

/** Files (node.files): no provider of the file answered (none found, or none had what is missing) within the timeout. */
export class NotFoundError extends WeftError {
  override name = 'NotFoundError'
  constructor(
    readonly file: string,
    message = `no provider of ${file} found`,
  ) {
    super(message)
  }
}

/** Every source left for a part of the file sent data that failed its hash: no honest source remains. */
export class IntegrityError extends WeftError {
  override name = 'IntegrityError'
  constructor(
    readonly file: string,
    message = `no honest source of ${file} remains`,
  ) {
    super(message)
  }
}

/** The download was aborted (its AbortSignal, or the file was removed). */
export class AbortError extends WeftError {
  override name = 'AbortError'
  constructor(message = 'the download was aborted') {
    super(message)
  }
}

/** The store's limit would be passed: `needed` more bytes on top of `used`, with `limit` in all. */
export class StorageFullError extends WeftError {
  override name = 'StorageFullError'
  constructor(
    readonly needed: number,
    readonly used: number,
    readonly limit: number,
  ) {
    super(`storage limit: ${needed} more bytes on top of ${used} would pass the limit of ${limit} bytes`)
  }
}
