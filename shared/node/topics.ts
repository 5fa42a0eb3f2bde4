/**
 * The mesh topics a node uses itself, one set for the browser node, the
 * Node peer and the simulator. Application topics may not start with NUL,
 * so they never meet these.
 */
import { SYNC_TOPIC } from '../sync/sync.ts'

export { SYNC_TOPIC }

/** Is `topic` one of the node's own (reserved: it starts with NUL)? */
export function isInternalTopic(topic: string): boolean {
  return topic.charCodeAt(0) === 0
}
