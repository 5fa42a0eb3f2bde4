/**
 * The connection manager: which links the node keeps.
 *
 * - Mesh links: it aims for `targetPeers` (at most `maxPeers`), dialling
 *   candidates at random (MAX_DIALS at a time); dead links are replaced.
 * - Candidates come from the signal server's bootstrap samples (asked again
 *   every SAMPLE_MS, or sooner when the pool runs dry) and from peer
 *   exchange: neighbours tell each other who their mesh neighbours are, at
 *   link open, then when it changes (looked at every PEX_MS) or at least
 *   every PEX_REFRESH_MS (Gnutella's pong caching, BitTorrent's PEX): a
 *   quiet network does not repeat itself every 15 s (issue 14, idle cost).
 *   What neighbours say is also the node's view of the topology around it.
 * - Roles: a link asks to carry the mesh (`role`); the other end agrees
 *   while it has room, so a link is a mesh link on both ends or on neither.
 *   Past `maxPeers`, the newest mesh links go back to on-demand duty.
 * - On-demand links (Chord's fingers, routed hops) open when a frame needs
 *   them (`sendVia`, with a bounded queue while they open and a dial budget,
 *   since peers choose those ids), count against one budget (`maxLinks`)
 *   with the mesh links, and close when idle (AUX_IDLE_MS) or over budget,
 *   least recently used first; never the links the ring needs.
 * - A peer whose dial failed, or that said goodbye, is not dialled again for
 *   a while (backoff).
 */
import { bump, type Counters } from '../../shared/protocol.ts'
import type { PeerInfo } from '../../shared/signal-events.ts'
import type { Frame } from '../../shared/wire/frame.ts'
import type { LinkControl } from '../links/link.ts'
import type { Clock } from './clock.ts'
import { setBounded } from './inbound.ts'
import type { LinkTable, NodeLink } from './link-table.ts'
import type { NodeConfig } from './options.ts'
import type { Transport } from './transport.ts'

/** How often the manager looks at its links. */
export const MANAGE_MS = 1000
/** How often neighbours are told our mesh neighbours. */
export const PEX_MS = 15_000
/** An unchanged peer exchange is repeated this often (it tells the neighbour we are still its view). */
const PEX_REFRESH_MS = 120_000
/** How often the signal server is asked for a fresh sample. */
const SAMPLE_MS = 20_000
/** An on-demand link unused this long closes. */
const AUX_IDLE_MS = 60_000
const MAX_CANDIDATES = 256
/** Mesh dials started per round. */
const MAX_DIALS = 4
/** Peers named in one peer exchange. */
const PEX_PEERS = 32
/** Peers the signal server sampled for us, remembered (bounded) to keep inbound slots for them. */
export const MAX_SAMPLED = 1024
/** Frames queued for a peer while an on-demand link to it opens. */
const MAX_VIA_QUEUE = 64
/**
 * Links that traffic from peers (Chord, forwarded messages) may make this node
 * open on demand: a burst, then so many per second. Peers choose those ids (a
 * Chord `route` names the origin to answer), and each dial costs signal-server
 * events: without a budget, a stream of made-up ids gets this node dropped by
 * the server as abusive.
 */
const VIA_DIAL_BURST = 32
const VIA_DIALS_PER_SEC = 8

export interface ConnectionDeps {
  readonly id: string
  readonly config: NodeConfig
  readonly counters: Counters
  readonly clock: Clock
  readonly random: () => number
  readonly links: LinkTable
  /** Link setups: ours, and those under way. */
  readonly dialer: Pick<Transport, 'dials' | 'dial'>
  /** The signal server, for fresh samples of live peers. */
  readonly bootstrap: { readonly connected: boolean; peers(): Promise<PeerInfo[]> }
  /** Peers the ring needs links to (never closed as idle). */
  neededLinks(): Set<string>
  /** Every round: the link setups' own housekeeping (inbound.ts). */
  expire(now: number): void
  /** A link now carries the mesh, or no longer does. */
  meshRole(link: NodeLink): void
  closed(): boolean
}

export class ConnectionManager {
  /** Candidate peers -> when we last heard of them. */
  readonly candidates = new Map<string, number>()
  /** Peers whose dial failed -> do not retry before this time. */
  readonly backoff = new Map<string, number>()
  /** Peers the signal server sampled for us (bootstrap candidates), oldest first. */
  readonly sampled = new Set<string>()
  /** Each neighbour's own mesh neighbours, from peer exchange. */
  readonly neighbourLinks = new Map<string, string[]>()
  /** What our last peer exchange on each open link said, and when (one entry per link: dropped with it). */
  private readonly pexSent = new Map<string, { list: string; at: number }>()
  /** Frames waiting for an on-demand link to open. */
  readonly viaQueue = new Map<string, Frame[]>()
  /** Who is told when a queued frame's link cannot be opened, by peer (at most one per queued frame). */
  private readonly viaUnreachable = new Map<string, (() => void)[]>()
  private lastSample = 0
  private viaDialTokens = VIA_DIAL_BURST
  private viaDialAt: number

  constructor(private readonly deps: ConnectionDeps) {
    this.viaDialAt = deps.clock.now()
  }

  /** The signal server gave a sample now (registration, or a request). */
  sampledNow(): void {
    this.lastSample = this.deps.clock.now()
  }

  /** Peers from the signal server's samples: candidates, and remembered as sampled (inbound.ts). */
  addSampled(peers: PeerInfo[]): void {
    for (const p of peers) {
      this.sampled.delete(p.id)
      this.sampled.add(p.id)
    }
    while (this.sampled.size > MAX_SAMPLED) {
      const oldest = this.sampled.values().next().value
      if (oldest === undefined) break
      this.sampled.delete(oldest)
    }
    this.addCandidates(peers)
  }

  addCandidates(peers: PeerInfo[]): void {
    const now = this.deps.clock.now()
    for (const p of peers) {
      if (p.id === this.deps.id) continue
      this.candidates.delete(p.id)
      this.candidates.set(p.id, now)
    }
    while (this.candidates.size > MAX_CANDIDATES) {
      const oldest = this.candidates.keys().next().value
      if (oldest === undefined) break
      this.candidates.delete(oldest)
    }
  }

  /** A link opened: its peer is no longer in backoff, and hears who our neighbours are. */
  opened(link: NodeLink): void {
    this.backoff.delete(link.peer)
    const peers = this.pexFor(link.peer)
    this.pexSent.set(link.peer, { list: peers.join(), at: this.deps.clock.now() })
    void link.sendControl({ t: 'pex', peers })
  }

  /** A link that was open closed (the host runs a round of `manage` after). */
  forget(link: NodeLink, reason: string): void {
    if (reason.startsWith('bye:')) {
      // It left (or closed the link on purpose): do not spend dials on it for a while.
      this.candidates.delete(link.peer)
      this.backoff.set(link.peer, this.deps.clock.now() + 60_000)
    }
    this.neighbourLinks.delete(link.peer)
    this.pexSent.delete(link.peer)
  }

  /** A dial failed: not again for a while. */
  dialFailed(peer: string): void {
    setBounded(this.backoff, peer, this.deps.clock.now() + 30_000)
  }

  /** A link control message (after the handshake): peer exchange, or a mesh role request. */
  onControl(link: NodeLink, c: LinkControl): void {
    if (c.t === 'pex') {
      this.neighbourLinks.set(link.peer, c.peers)
      const now = this.deps.clock.now()
      this.addCandidates(c.peers.map((id) => ({ id, lastSeen: now })))
    } else if (c.t === 'role') {
      // The other end asks to carry the mesh on this link: agree while we have room, so the link
      // becomes a mesh link on both ends (a one-sided wish would leave it out of the mesh).
      if (c.mesh && !link.localMesh && this.deps.links.meshNeighbours().length < this.deps.config.maxPeers)
        link.setMesh(true)
      this.deps.meshRole(link)
    }
  }

  /** Tell every neighbour our mesh neighbours when they changed, or every PEX_REFRESH_MS (looked at every PEX_MS). */
  sendPex(): void {
    const now = this.deps.clock.now()
    for (const l of this.deps.links.values()) {
      if (l.state !== 'open') continue
      const peers = this.pexFor(l.peer)
      const list = peers.join()
      const last = this.pexSent.get(l.peer)
      if (last && last.list === list && now - last.at < PEX_REFRESH_MS) continue
      this.pexSent.set(l.peer, { list, at: now })
      void l.sendControl({ t: 'pex', peers })
    }
  }

  private pexFor(peer: string): string[] {
    return this.deps.links
      .meshNeighbours()
      .filter((p) => p !== peer)
      .slice(0, PEX_PEERS)
  }

  /**
   * Send a frame to `to` over its link, opening one on demand (bounded queue while it opens).
   * `unreachable` is called if the dial fails (not when the frame is dropped under load).
   */
  sendVia(to: string, frame: Frame, unreachable?: () => void): void {
    const { counters, dialer } = this.deps
    const l = this.deps.links.get(to)
    if (l?.state === 'open') {
      l.send(frame).catch(() => bump(counters, 'send.failed'))
      return
    }
    let q = this.viaQueue.get(to)
    if (q) {
      if (q.length >= MAX_VIA_QUEUE) return bump(counters, 'send.queue-full')
      q.push(frame)
      if (unreachable) this.viaUnreachable.get(to)?.push(unreachable)
      return
    }
    if (!dialer.dials.has(to) && !this.takeViaDial()) return bump(counters, 'send.dial-rate')
    q = [frame]
    this.viaQueue.set(to, q)
    this.viaUnreachable.set(to, unreachable ? [unreachable] : [])
    dialer.dial(to, false).then(
      (link) => {
        const frames = this.viaQueue.get(to) ?? []
        this.viaQueue.delete(to)
        this.viaUnreachable.delete(to)
        for (const f of frames) link.send(f).catch(() => bump(counters, 'send.failed'))
      },
      () => {
        const told = this.viaUnreachable.get(to) ?? []
        this.viaQueue.delete(to)
        this.viaUnreachable.delete(to)
        bump(counters, 'send.link-failed')
        for (const fn of told) fn()
      },
    )
  }

  /** A token of the on-demand dial budget (VIA_DIAL_BURST, refilled at VIA_DIALS_PER_SEC). */
  private takeViaDial(): boolean {
    const now = this.deps.clock.now()
    this.viaDialTokens = Math.min(
      VIA_DIAL_BURST,
      this.viaDialTokens + ((now - this.viaDialAt) / 1000) * VIA_DIALS_PER_SEC,
    )
    this.viaDialAt = now
    if (this.viaDialTokens < 1) return false
    this.viaDialTokens--
    return true
  }

  /** One round (every MANAGE_MS, and when a link closes): dial, promote, sample, close idle links. */
  manage(): void {
    if (this.deps.closed()) return
    const { config, dialer, links, bootstrap } = this.deps
    const now = this.deps.clock.now()
    const mesh = links.meshNeighbours()
    // Our own dials only: link setups that peers started must not stop us dialling (inbound.ts).
    const dialling = [...dialer.dials.values()].filter((d) => d.mesh && !d.inbound).length
    const want = config.targetPeers - mesh.length - dialling
    if (want > 0) {
      const pool = [...this.candidates.keys()].filter(
        (id) => !links.has(id) && !dialer.dials.has(id) && (this.backoff.get(id) ?? 0) <= now,
      )
      this.shuffle(pool)
      for (const id of pool.slice(0, Math.min(want, MAX_DIALS))) {
        dialer.dial(id, true).catch(() => {
          this.candidates.delete(id)
        })
      }
      // An existing on-demand link can be promoted instead of opening a new one.
      // Links we have that are not mesh links yet: ask (again) to carry the mesh on them; the
      // other end agrees once it has room (it may have been full when the link opened). Those
      // whose peer exchange named the fewest mesh neighbours first, the rest in random order:
      // always asking the same full peers first left a node with links to peers with room
      // outside the mesh for good.
      const promotable = [...links.values()].filter((l) => l.state === 'open' && !l.isMesh)
      this.shuffle(promotable)
      const load = (l: NodeLink) => this.neighbourLinks.get(l.peer)?.length ?? 0
      promotable.sort((a, b) => load(a) - load(b))
      for (const l of promotable.slice(0, want)) {
        if (!l.localMesh) l.setMesh(true)
        else void l.sendControl({ t: 'role', mesh: true })
      }
      if (pool.length < want && bootstrap.connected && now - this.lastSample > 2000) this.sample(now)
    } else if (mesh.length > config.maxPeers) {
      // Too many: hand the newest extra links back to on-demand duty.
      const extra = [...links.values()].filter((l) => l.isMesh).sort((a, b) => b.openedAt - a.openedAt)
      for (const l of extra.slice(0, mesh.length - config.maxPeers)) l.setMesh(false)
    }
    if (now - this.lastSample > SAMPLE_MS && bootstrap.connected) this.sample(now)
    // Idle on-demand links close; over budget, the least recently used go first; never those the ring needs.
    const needed = this.deps.neededLinks()
    const aux = [...links.values()].filter((l) => !l.isMesh && l.state === 'open' && !needed.has(l.peer))
    for (const l of aux) if (now - l.lastUsed > AUX_IDLE_MS) l.close('idle')
    const over = links.size - config.maxLinks
    if (over > 0) {
      aux.sort((a, b) => a.lastUsed - b.lastUsed)
      for (const l of aux.slice(0, over)) l.close('budget')
    }
    // Expire stale dial backoffs.
    for (const [id, until] of this.backoff) if (until <= now) this.backoff.delete(id)
    this.deps.expire(now)
  }

  /** Ask the signal server for a fresh sample of live peers. */
  private sample(now: number): void {
    this.lastSample = now
    this.deps.bootstrap.peers().then(
      (ps) => this.addSampled(ps),
      () => {},
    )
  }

  private shuffle<T>(xs: T[]): void {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(this.deps.random() * (i + 1))
      const t = xs[i] as T
      xs[i] = xs[j] as T
      xs[j] = t
    }
  }
}
