/**
 * An in-memory transport (client/node/transport.ts's seam) for whole nodes
 * with no signal server, no WebRTC and no socket. Links are pairs of
 * NodeLinks that pass each frame through the wire encoding and the
 * receiving node's validators, as a real link does; a dial links both ends
 * at once, and the network itself plays the bootstrap (every node it holds
 * is in every sample).
 *
 * Plain (`new MemNet()`): frames arrive a microtask later, on real time.
 * With a virtual clock (`new MemNet({ clock, seed, loss, latencyMs })`, as
 * network.ts builds it) each frame is a timer of that clock:
 * - latency: each frame takes a delay drawn from [min, max] ms, but never
 *   overtakes an earlier frame of the same link (data channels are ordered);
 * - loss: each protocol frame is dropped with probability `loss` (link
 *   controls, the mesh-role handshake, are never dropped: a data channel is
 *   reliable; loss stands for what the real network loses around it);
 * - partitions (`partition`): links between groups close (reason
 *   'partition') and dials between them fail until `heal`;
 * - crashes (`crash`): the node's links close at the far ends (reason
 *   'crash'), as when a tab is killed, and nobody reaches it again.
 * Loss and latency come from PRNGs seeded from `seed` (one per concern), so
 * the same seed gives the same sequence of decisions.
 */

import { Emitter } from '../../client/emitter.ts'
import type { LinkControl, LinkEvents, LinkState } from '../../client/links/link.ts'
import { linkControlValue } from '../../client/links/link-control.ts'
import type { LinkStats, NodeLink } from '../../client/node/link-table.ts'
import type { DialView, Transport, TransportHost } from '../../client/node/transport.ts'
import { bump } from '../../shared/protocol.ts'
import type { PeerInfo } from '../../shared/signal-events.ts'
import { deriveSeed, mulberry32, type Rng } from '../../shared/sim/prng.ts'
import type { Frame } from '../../shared/wire/frame.ts'
import { decodeValue, encodeValue } from '../../shared/wire/value.ts'
import type { VirtualClock } from './clock.ts'

/** One frame as the network decided its fate (`MemNet.onFrame`). */
export interface FrameEvent {
  from: string
  to: string
  /** The frame kind (shared/wire/frame.ts), or 'control' for a link control. */
  kind: Frame['kind'] | 'control'
  /** Lost to `loss` (never delivered). */
  dropped: boolean
  /** Its delay in ms (0 without a virtual clock, or when dropped). */
  delayMs: number
  /** The frame body's encoded bytes (a control: its MessagePack bytes). */
  bytes: number
}

export interface MemNetOptions {
  /** Frames become timers of this clock (with latency); without it they arrive a microtask later. */
  clock?: VirtualClock
  /** Seeds loss and latency. @default 1 */
  seed?: number
  /** Probability that a protocol frame is dropped, 0 to <1. @default 0 */
  loss?: number
  /** Delay of each frame, [min, max] ms (only with `clock`). @default [0, 0] */
  latencyMs?: readonly [number, number]
}

/** The network's own counters. */
export interface MemNetStats {
  /** Frames and controls handed to a link. */
  sent: number
  /** Lost to `loss`. */
  dropped: number
  /** Arrived at an open link. */
  delivered: number
  /** Links closed by a partition or a crash. */
  cut: number
  /** Dials refused: across a partition, or to a crashed or absent node. */
  refused: number
}

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
  /** When the last frame sent on this end arrives (frames keep their order). */
  lastDue = 0

  constructor(
    readonly peer: string,
    private readonly host: TransportHost,
    public localMesh: boolean,
    private readonly net: MemNet,
  ) {
    super()
    this.openedAt = this.lastUsed = host.clock.now()
  }

  get isMesh(): boolean {
    return this.localMesh && this.remoteMesh
  }

  /** The id of this end's node. */
  get self(): string {
    return this.host.identity.id
  }

  async send(frame: Frame): Promise<void> {
    if (this.state !== 'open') throw new Error('link closed')
    const bytes = encodeValue(frame.body)
    this.lastUsed = this.host.clock.now()
    this.stats.messagesOut++
    this.stats.bytesOut += bytes.length
    const to = this.other
    this.net.carry(this, frame.kind, bytes.length, () => to?.receive(frame.kind, bytes))
  }

  private receive(kind: Frame['kind'], bytes: Uint8Array): void {
    if (this.state !== 'open') return
    this.net.arrived()
    this.stats.messagesIn++
    this.stats.bytesIn += bytes.length
    const body = decodeValue(bytes)
    const valid = this.host.validators[kind]
    if (body === null || !valid?.(body)) return bump(this.host.counters, 'drop.mem.invalid')
    this.emit('frame', { kind, body })
  }

  async sendControl(c: LinkControl): Promise<void> {
    const to = this.other
    this.net.carry(this, 'control', encodeValue(linkControlValue(c)).length, () => to?.control(c))
  }

  private control(c: LinkControl): void {
    if (this.state !== 'open') return
    this.net.arrived()
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

  /** This end dies with its node (a crash): closed without a word to the node. */
  kill(): void {
    this.state = 'closed'
  }
}

/** A network of in-memory transports: a dial links the two ends at once. */
export class MemNet {
  readonly hosts = new Map<string, TransportHost>()
  /** Ids of crashed nodes: never reached again. */
  readonly crashed = new Set<string>()
  private readonly clock: VirtualClock | undefined
  private readonly loss: number
  private readonly latency: readonly [number, number]
  private readonly lossRng: Rng
  private readonly latencyRng: Rng
  /** Partition groups by node id; undefined: no partition. Ids in no group share one more group. */
  private groups: Map<string, number> | undefined
  private readonly counts: MemNetStats = { sent: 0, dropped: 0, delivered: 0, cut: 0, refused: 0 }
  /** Called with every frame's fate (tests, traces). */
  onFrame: ((e: FrameEvent) => void) | undefined

  constructor(opts: MemNetOptions = {}) {
    const { clock, seed = 1, loss = 0, latencyMs = [0, 0] } = opts
    if (!(loss >= 0 && loss < 1)) throw new RangeError(`loss must be in [0, 1), not ${loss}`)
    const [lo, hi] = latencyMs
    if (!(lo >= 0 && hi >= lo && Number.isFinite(hi)))
      throw new RangeError(`latencyMs must be [min, max] with 0 <= min <= max, not [${lo}, ${hi}]`)
    if ((lo > 0 || hi > 0) && !clock) throw new TypeError('latencyMs needs a virtual clock')
    this.clock = clock
    this.loss = loss
    this.latency = [lo, hi]
    this.lossRng = mulberry32(deriveSeed(seed, 'loss'))
    this.latencyRng = mulberry32(deriveSeed(seed, 'latency'))
  }

  stats(): MemNetStats {
    return { ...this.counts }
  }

  /** @internal a link hands over a frame (or a control): drop it, or deliver it after its delay. */
  carry(from: MemLink, kind: FrameEvent['kind'], bytes: number, deliver: () => void): void {
    this.counts.sent++
    const event = (dropped: boolean, delayMs: number) =>
      this.onFrame?.({ from: from.self, to: from.peer, kind, dropped, delayMs, bytes })
    if (kind !== 'control' && this.loss > 0 && this.lossRng() < this.loss) {
      this.counts.dropped++
      event(true, 0)
      return
    }
    const clock = this.clock
    if (!clock) {
      event(false, 0)
      queueMicrotask(deliver)
      return
    }
    const [lo, hi] = this.latency
    const delay = hi > lo ? lo + this.latencyRng() * (hi - lo) : lo
    const now = clock.now()
    const due = Math.max(now + delay, from.lastDue)
    from.lastDue = due
    event(false, due - now)
    clock.schedule(deliver, due - now, undefined, undefined)
  }

  /** @internal a frame reached an open link. */
  arrived(): void {
    this.counts.delivered++
    this.clock?.touch()
  }

  /** Are `a` and `b` on different sides of the partition? */
  apart(a: string, b: string): boolean {
    const g = this.groups
    return g !== undefined && (g.get(a) ?? -1) !== (g.get(b) ?? -1)
  }

  /** Split the network: nodes of different groups lose their links and cannot link again until `heal`. */
  partition(groups: readonly (readonly string[])[]): void {
    const g = new Map<string, number>()
    for (const [i, ids] of groups.entries())
      for (const id of ids) {
        if (g.has(id)) throw new TypeError(`node ${id} is in two groups`)
        g.set(id, i)
      }
    this.groups = g
    for (const host of this.hosts.values())
      for (const l of [...host.links.values()])
        if (this.apart(host.identity.id, l.peer)) {
          this.counts.cut++
          l.close('partition')
        }
  }

  /** The partition ends: nodes may link again (they do so by themselves, as their connection managers want). */
  heal(): void {
    this.groups = undefined
  }

  /** The node `id` stops at once: its links close at the far ends and nobody reaches it again. */
  crash(id: string): void {
    const host = this.hosts.get(id)
    this.crashed.add(id)
    this.hosts.delete(id)
    if (!host) return
    for (const l of [...host.links.values()]) {
      if (!(l instanceof MemLink)) continue
      l.kill()
      this.counts.cut++
      l.other?.close('crash')
    }
  }

  /** Live peers `id` may reach (the bootstrap's sample). */
  private reachable(id: string): string[] {
    return [...this.hosts.keys()].filter((p) => p !== id && !this.apart(id, p))
  }

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
        const peers = net.reachable(id).map((p) => ({ id: p, lastSeen: host.clock.now() }))
        net.hosts.set(id, host)
        host.sampled(peers)
        return peers
      },
      peers: async () => net.reachable(id).map((p) => ({ id: p, lastSeen: 0 })),
      async dial(peer, mesh): Promise<NodeLink> {
        const open = host.links.get(peer)
        if (open?.state === 'open') return open
        const there = net.hosts.get(peer)
        if (!there || there.isClosed() || net.crashed.has(id) || net.apart(id, peer)) {
          net.counts.refused++
          host.failed(peer)
          throw new Error(`no node ${peer} reachable`)
        }
        const room = (h: TransportHost) => h.links.meshNeighbours().length < h.config.maxPeers
        const ours = new MemLink(peer, host, mesh && room(host), net)
        const theirs = new MemLink(id, there, mesh && room(there), net)
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
