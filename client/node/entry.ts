/**
 * How a node enters its network, after the signal server registered it:
 *
 * - the first link: `joinOverlay` resolves once one link is open; if none
 *   opens in time the node is still joined (and keeps trying), unless the
 *   only peers that answered cannot link with it at all (relay 'never'
 *   against relay 'force'): then it says so (NoRouteError);
 * - the Chord ring: joined through a linked peer (any member will do), or
 *   started when none answers (or when the node is alone in the network);
 * - two nodes that started alone at once each made a ring: the one still
 *   alone later joins through a neighbour (`checkAlone`, on the host's tick).
 */
import type { Chord } from '../../shared/chord/index.ts'
import { AccessDeniedError, NoRouteError } from '../../shared/errors.ts'
import { bump, type Counters } from '../../shared/protocol.ts'
import type { PeerInfo } from '../../shared/signal-events.ts'
import type { Clock } from './clock.ts'
import { MAX_SAMPLED } from './connections.ts'
import type { LinkTable } from './link-table.ts'
import type { NodeConfig } from './options.ts'

/** How often a node that is alone on its ring looks for a ring to join. */
const RING_CHECK_MS = 5000

export interface EntryDeps {
  readonly id: string
  readonly config: NodeConfig
  readonly counters: Counters
  readonly clock: Clock
  readonly links: LinkTable
  readonly chord: Chord
  /** Call `fn` when a link opens; returns the unsubscribe. */
  onLinkOpen(fn: () => void): () => void
  closed(): boolean
}

export class Entry {
  /** Resolves once this node is on a Chord ring (joined through a peer, or the first one). */
  ringReady: Promise<void> = Promise.resolve()
  private lastRingCheck = 0
  /**
   * Until the first join has its link: peers that cannot link with us (relayMismatch). From the
   * start, as the first dials go out at registration and a refusal can come before `enter`.
   */
  private mismatched: Set<string> | undefined = new Set()
  /** Likewise: peers that refused us for the network's secret. */
  private denied: Set<string> | undefined = new Set()
  private onMismatch: (() => void) | undefined

  constructor(private readonly deps: EntryDeps) {}

  /** Registered, with these peers offered: the first link, then the ring. */
  async enter(peers: PeerInfo[]): Promise<void> {
    if (peers.length === 0) {
      // Alone in the network: this node starts the ring.
      this.mismatched = undefined
      this.denied = undefined
      this.ringReady = this.deps.chord.join(null)
      await this.ringReady
      return
    }
    await this.firstLink(peers)
    this.ringReady = this.joinRing()
  }

  /**
   * `peer` and this node cannot link: one runs relay 'never', the other relay 'force'. Counted;
   * during the first join, noted so that joinOverlay can say so (see firstLink).
   */
  relayMismatch(peer: string): void {
    bump(this.deps.counters, 'dial.relay-mismatch')
    if (this.mismatched && this.mismatched.size < MAX_SAMPLED) {
      this.mismatched.add(peer)
      this.onMismatch?.()
    }
  }

  /**
   * `peer` refused us for the network's secret (or we refused it). During the first join, noted
   * so that joinOverlay can fail with AccessDeniedError when every peer of the sample does.
   */
  accessDenied(peer: string): void {
    if (this.denied && this.denied.size < MAX_SAMPLED) {
      this.denied.add(peer)
      this.onMismatch?.()
    }
  }

  /** On the host's tick: a node alone on its own ring joins through a neighbour (every RING_CHECK_MS). */
  checkAlone(now: number): void {
    if (now - this.lastRingCheck <= RING_CHECK_MS) return
    this.lastRingCheck = now
    const { chord, id } = this.deps
    // Alone: no successor but ourselves and nobody has joined through us (no predecessor).
    const pred = chord.predecessor()
    const alone = chord.successors().every((s) => s === id) && (pred === null || pred === id)
    const via = this.deps.links.openPeers()[0]
    if (alone && via && via < id) this.ringReady = chord.join(via).catch(() => {})
  }

  /**
   * Resolve once one link is open; if none opens in time we are still joined
   * (and keep trying), unless the only peers that answered cannot link with
   * us (relay 'never' against relay 'force'): then say so.
   */
  private async firstLink(peers: PeerInfo[]): Promise<void> {
    const { clock, config, links } = this.deps
    const mismatched = this.mismatched ?? new Set<string>()
    this.mismatched = mismatched
    const denied = this.denied ?? new Set<string>()
    this.denied = denied
    const relay = config.relay
    // Dialled at registration, the first link may be open already (an in-memory transport, a
    // preconnected server): its open event has passed, so waiting for one would wait for the timer.
    if (links.openPeers().length > 0) {
      this.mismatched = undefined
      this.denied = undefined
      return
    }
    try {
      await new Promise<void>((resolve, reject) => {
        const finish = (err?: Error) => {
          off()
          clock.clearTimeout(t)
          this.onMismatch = undefined
          if (err) reject(err)
          else resolve()
        }
        const cannotLink = () =>
          new NoRouteError(
            [...mismatched][0] as string,
            `relay: '${relay}' cannot reach this network: ${mismatched.size} of the ${peers.length} ` +
              `peers the signal server offered ${relay === 'never' ? "link only through its relay (they run relay: 'force')" : "take direct links only (they run relay: 'never')"}; ` +
              `with relay: 'auto' this node links with both`,
          )
        const off = this.deps.onLinkOpen(() => finish())
        // Every peer of the sample refused us for that: no link is coming.
        // Or every one refused us for the network's secret (or could not link): we are not let in.
        const refused = () =>
          denied.size > 0 ? new AccessDeniedError([...denied][0] as string) : cannotLink()
        this.onMismatch = () => {
          if (peers.every((p) => mismatched.has(p.id) || denied.has(p.id))) finish(refused())
        }
        const t = clock.setTimeout(
          () =>
            finish(
              links.openPeers().length === 0 && mismatched.size + denied.size > 0 ? refused() : undefined,
            ),
          config.directTimeoutMs + 10_000,
        )
        // Refusals that came before the join got here (the dials went out at registration).
        this.onMismatch()
      })
    } finally {
      this.mismatched = undefined
      this.denied = undefined
    }
  }

  /** Join the Chord ring through a linked peer (any member will do), or start one if none answers. */
  private async joinRing(): Promise<void> {
    const { chord, clock, id } = this.deps
    for (const p of this.deps.links.openPeers()) {
      try {
        await chord.join(p)
        // join() returns before stabilization fills the successor list; until then a get has
        // nobody to ask, so the ring counts as ready once a successor is known (or after 5 s).
        const until = clock.now() + 5000
        while (!this.deps.closed() && clock.now() < until && chord.successors().every((s) => s === id))
          await clock.sleep(50)
        return
      } catch {
        bump(this.deps.counters, 'dht.join-failed')
      }
    }
    await chord.join(null)
  }
}
