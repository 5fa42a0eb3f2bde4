/**
 * The simulator's own trivial protocol: plain flooding with a seen-set.
 * The origin sends to all its neighbours, a receiver relays to all but the
 * sender, nobody relays twice. Used to prove the simulator, and as the
 * baseline the mesh protocol is measured against.
 */
import type { ProtocolNode } from '../protocol.ts'
import type { SimDeps } from './sim.ts'

export interface FloodMsg {
  id: string
  hops: number
}

export interface FloodNode extends ProtocolNode<FloodMsg> {
  originate(id: string): void
  /** message id -> hop count at first receipt */
  readonly received: Map<string, number>
  duplicates: number
}

export function createFlood(deps: SimDeps<FloodMsg>): FloodNode {
  const received = new Map<string, number>()
  const node: FloodNode = {
    received,
    duplicates: 0,
    originate(id) {
      received.set(id, 0)
      for (const n of deps.neighbours()) deps.send(n, { id, hops: 1 })
    },
    handle(from, msg) {
      if (received.has(msg.id)) {
        node.duplicates++
        return
      }
      received.set(msg.id, msg.hops)
      for (const n of deps.neighbours()) if (n !== from) deps.send(n, { id: msg.id, hops: msg.hops + 1 })
    },
    tick() {},
  }
  return node
}
