/**
 * What other instances send this one through the cluster (ClusterEvents),
 * already authenticated and parsed (inter-server.ts): a node registered
 * again elsewhere, a signal or relay frame for a node registered here, and a
 * relay frame of a sender registered here that the target's instance dropped.
 * A signal or frame for a target here is held to the same congestion check
 * (packets and bytes) as a local sender's, and counted the same way; the
 * answer to a signal (and to a dropped frame) goes back to the sender's
 * instance.
 */
import type { ClusterEvents } from '../cluster.ts'
import { type Connections, enqueued, holdable, RELAY_PACKET_BYTES, sendSignal } from '../connections.ts'
import { inc, type ServerCounters } from '../metrics.ts'

/** `session(socketId)`: the host cache session of a socket here (the cluster's naming). */
export function remoteEvents(
  conns: Connections,
  counters: ServerCounters,
  session: (socketId: string) => string,
): ClusterEvents {
  return {
    replace(network, id, newSession) {
      const c = conns.get(network, id)
      if (c && session(c.socket.id) !== newSession) conns.replace(c)
    },

    signal(network, to, from, data) {
      const target = conns.get(network, to)
      // Unlinked the moment it left (before its host cache entry is gone): never 'ok' for a departed node.
      if (!target) {
        inc(counters.rejected, 'remote-unknown-peer')
        return 'unknown-peer'
      }
      if (conns.congested(target)) {
        inc(counters.rejected, 'congested-remote')
        return 'congested'
      }
      enqueued(target, sendSignal(target.socket, from, data))
      counters.signalsRemote++
      return 'ok'
    },

    relay(network, to, from, frame) {
      const target = conns.get(network, to)
      if (!target) {
        inc(counters.relayErrors, 'remote-unknown-peer')
        return 'unknown-peer'
      }
      if (conns.congested(target)) {
        inc(counters.relayErrors, 'congested-remote')
        return 'congested'
      }
      // A view into the Redis message it came in: copied when it waits (holdable).
      const held = holdable(target, frame)
      target.socket.emit('relay', { from, frame: held })
      enqueued(target, held.buffer.byteLength + RELAY_PACKET_BYTES)
      counters.relayFramesRemote++
      return null
    },

    relayError(network, to, from, reason) {
      const c = conns.get(network, from)
      if (!c) return
      const now = Date.now()
      // Same price as a local refusal: an event token, and a strike when there is none (no double count
      // in relayErrors: the target's instance counted the drop).
      if (!c.events.take(1, now)) {
        inc(counters.rejected, 'rate-limited')
        conns.strike(c, now)
        return
      }
      c.socket.emit('relay-error', { to, reason })
    },
  }
}
