/**
 * The swarm's named errors: public ones, so they live in shared/errors.ts
 * with the rest (API.md, "Errors"); re-exported here for the swarm's modules.
 */
export { AbortError, IntegrityError, NotFoundError, StorageFullError } from '../errors.ts'
