/** Errors of the sync table beyond the shared ones (LeaseHeldError, ValueTooLargeError). */
import { WeftError } from '../errors.ts'

/** A local write would take the table or this node's share of it past a configured bound. */
export class QuotaExceededError extends WeftError {
  override name = 'QuotaExceededError'
  constructor(
    readonly limit: 'entries' | 'bytes' | 'tableEntries' | 'tableBytes',
    readonly max: number,
  ) {
    super(`sync table: the ${limit} bound of ${max} would be exceeded`)
  }
}
