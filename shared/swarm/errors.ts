/**
 * The swarm's named errors. Callers test `err.name`. For now they live here;
 * the integration moves NotFoundError, IntegrityError and AbortError to
 * shared/errors.ts with the rest of the public ones (API.md, "Errors").
 */
import { WeftError } from '../errors.ts'

/** No provider of the file answered (none found, or none had what is missing) within the timeout. */
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
