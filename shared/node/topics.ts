/**
 * The mesh topics a node uses itself, one set for the browser node, the
 * Node peer and the simulator. Application topics may not start with NUL,
 * so they never meet these.
 */
import { PRESENCE_TOPIC } from '../presence/messages.ts'
import { SYNC_TOPIC } from '../sync/sync.ts'

export { PRESENCE_TOPIC, SYNC_TOPIC }

/** Is `topic` one of the node's own (reserved: it starts with NUL)? */
export function isInternalTopic(topic: string): boolean {
  return topic.charCodeAt(0) === 0
}
