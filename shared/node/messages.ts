/**
 * What one node's protocols exchange over a link, as one tagged union by
 * frame kind: the boundary where a decoded frame body becomes a typed
 * message, once. Each protocol's own parser checks its shape
 * (PROTOCOL-mesh.md, PROTOCOL-route.md, PROTOCOL-sync.md, PROTOCOL-chord.md,
 * PROTOCOL-presence.md, PROTOCOL-topics.md);
 * the handlers take the typed message and never parse it again.
 */
import { type ChordMsg, parseChordMsg } from '../chord/messages.ts'
import { type MeshMsg, parseMeshMsg } from '../mesh/messages.ts'
import { type PresenceMsg, parsePresenceMsg } from '../presence/messages.ts'
import { parseRouteMsg, type RouteMsg, routeMsgValue } from '../router/messages.ts'
import { parseSyncMsg, type SyncMsg } from '../sync/messages.ts'
import { parseTopicMsg, type TopicMsg } from '../topics/messages.ts'
import type { Value } from '../types.ts'
import { Kind } from '../wire/frame.ts'

export type NodeMsg =
  | { kind: typeof Kind.Mesh; msg: MeshMsg }
  | { kind: typeof Kind.Route; msg: RouteMsg }
  | { kind: typeof Kind.Sync; msg: SyncMsg }
  | { kind: typeof Kind.Chord; msg: ChordMsg }
  | { kind: typeof Kind.Presence; msg: PresenceMsg }
  | { kind: typeof Kind.Topic; msg: TopicMsg }

/** The frame kinds a node's protocols use (Kind.Link is the link's own). */
export type NodeKind = NodeMsg['kind']

/** A decoded frame body of `kind` from a peer: the typed message, or null when it breaks its protocol's grammar. */
export function parseNodeMsg(kind: number, body: Value): NodeMsg | null {
  switch (kind) {
    case Kind.Mesh: {
      const msg = parseMeshMsg(body)
      return msg && { kind, msg }
    }
    case Kind.Route: {
      const msg = parseRouteMsg(body)
      return msg && { kind, msg }
    }
    case Kind.Sync: {
      const msg = parseSyncMsg(body)
      return msg && { kind, msg }
    }
    case Kind.Chord: {
      const msg = parseChordMsg(body)
      return msg && { kind, msg }
    }
    case Kind.Presence: {
      const msg = parsePresenceMsg(body)
      return msg && { kind, msg }
    }
    case Kind.Topic: {
      const msg = parseTopicMsg(body)
      return msg && { kind, msg }
    }
    default:
      return null
  }
}

/** The frame body of a message (its wire form). */
export function nodeMsgBody(m: NodeMsg): Value {
  return m.kind === Kind.Route ? routeMsgValue(m.msg) : m.msg
}
