/**
 * An in-memory transport (client/node/transport.ts's seam) for tests of
 * whole nodes with no signal server, no WebRTC and no socket. Links are pairs
 * of NodeLinks that pass each frame through the wire encoding and the
 * receiving node's validators, as a real link does; a dial links both ends at
 * once. Used by client/node/transport.test.ts and client/presence.test.ts.
 */

import { Emitter } from '../client/emitter.ts'
import type { LinkControl, LinkEvents, LinkState } from '../client/links/link.ts'
import type { LinkStats, NodeLink } from '../client/node/link-table.ts'
import type { DialView, Transport, TransportHost } from '../client/node/transport.ts'
import { bump } from '../shared/protocol.ts'
import type { PeerInfo } from '../shared/signal-events.ts'
import type { Frame } from '../shared/wire/frame.ts'
import { decodeValue, encodeValue } from '../shared/wire/value.ts'

/** One end of an in-memory link. */
export class MemLink extends Emitter<LinkEvents> implements NodeLink {
  readonly transport = 'relay' as const
  state: LinkState = 'handshake'
  readonly rtt = 1
  remoteMesh = false
  readonly openedAt: number
  lastUsed: number
  readonly stats: LinkStats = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
  other: MemLink | undefined

  constructor(
    readonly peer: string,
    private readonly host: TransportHost,
    public localMesh: boolean,
  ) {
    super()
    this.openedAt = this.lastUsed = host.clock.now()
  }

  get isMesh(): boolean {
    return this.localMesh && this.remoteMesh
  }

  async send(frame: Frame): Promise<void> {
    if (this.state !== 'open') throw new Error('link closed')
    const bytes = encodeValue(frame.body)
    this.lastUsed = this.host.clock.now()
    this.stats.messagesOut++
    this.stats.bytesOut += bytes.length
    const to = this.other
    queueMicrotask(() => to?.receive(frame.kind, bytes))
  }

  private receive(kind: Frame['kind'], bytes: Uint8Array): void {
    if (this.state !== 'open') return
    this.stats.messagesIn++
    this.stats.bytesIn += bytes.length
    const body = decodeValue(bytes)
    const valid = this.host.validators[kind]
    if (body === null || !valid?.(body)) return bump(this.host.counters, 'drop.mem.invalid')
    this.emit('frame', { kind, body })
  }

  async sendControl(c: LinkControl): Promise<void> {
    const to = this.other
    queueMicrotask(() => to?.control(c))
  }

  private control(c: LinkControl): void {
    if (this.state !== 'open') return
    if (c.t === 'role') this.remoteMesh = c.mesh
    this.emit('control', c)
  }

  setMesh(mesh: boolean): void {
    if (this.localMesh === mesh) return
    this.localMesh = mesh
    void this.sendControl({ t: 'role', mesh })
  }

  open(): void {
    this.state = 'open'
    this.emit('open', undefined)
  }

  close(reason = 'closed'): void {
    if (this.state === 'closed') return
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    this.emit('close', reason)
    if (wasOpen) this.host.closed(this, reason)
    this.other?.close(`bye:${reason}`)
  }
}

/** A network of in-memory transports: a dial links the two ends at once. */
export class MemNet {
  readonly hosts = new Map<string, TransportHost>()

  transport = (host: TransportHost): Transport => {
    const net = this
    const id = host.identity.id
    const dials = new Map<string, DialView>()
    const adopt = (h: TransportHost, link: MemLink): NodeLink => {
      const { kept, added } = h.links.adopt(link)
      if (added) h.opened(link)
      return kept
    }
    return {
      dials,
      state: 'registered',
      connected: true,
      async start(): Promise<PeerInfo[]> {
        const peers = [...net.hosts.keys()].map((p) => ({ id: p, lastSeen: host.clock.now() }))
        net.hosts.set(id, host)
        host.sampled(peers)
        return peers
      },
      peers: async () => [...net.hosts.keys()].filter((p) => p !== id).map((p) => ({ id: p, lastSeen: 0 })),
      async dial(peer, mesh): Promise<NodeLink> {
        const open = host.links.get(peer)
        if (open?.state === 'open') return open
        const there = net.hosts.get(peer)
        if (!there || there.isClosed()) {
          host.failed(peer)
          throw new Error(`no node ${peer}`)
        }
        const room = (h: TransportHost) => h.links.meshNeighbours().length < h.config.maxPeers
        const ours = new MemLink(peer, host, mesh && room(host))
        const theirs = new MemLink(id, there, mesh && room(there))
        ours.other = theirs
        theirs.other = ours
        ours.remoteMesh = theirs.localMesh
        theirs.remoteMesh = ours.localMesh
        ours.open()
        theirs.open()
        adopt(there, theirs)
        return adopt(host, ours)
      },
      onSignal: () => {},
      resendSignal: () => {},
      expire: () => {},
      stats: () => ({}),
      failAll: () => {},
      close: () => void net.hosts.delete(id),
    }
  }
}
