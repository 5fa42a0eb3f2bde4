/**
 * Where a node's links come from: the seam between the node (its host, the
 * connection manager, the protocols) and the way links are made.
 *
 * The host builds its transport with a `TransportFactory`, giving it a
 * `TransportHost`: the node's identity, options, clock and counters, its
 * link table, the validators a link runs on each frame body (they parse it
 * once for the core: host.ts), link-setup signalling over the overlay, and
 * callbacks for what happens. The transport answers `dial`, reports every
 * link it opened into the table (`opened`, after `links.adopt`) and every
 * open link that closed (`closed`), and gives bootstrap samples of live
 * peers.
 *
 * Production: `SignalTransport` (signal-transport.ts), WebRTC and relay
 * links set up through the signal server. An in-memory test network gives
 * its own factory in `Env.transport` (links are `NodeLink`s), with a virtual
 * `Clock` as the host's third constructor argument: the node runs whole,
 * with no signal server and no timers of its own.
 */
import type { Identity } from '../../shared/identity/keys.ts'
import type { Counters } from '../../shared/protocol.ts'
import type { PeerInfo } from '../../shared/signal-events.ts'
import type { Value } from '../../shared/types.ts'
import type { Kind } from '../../shared/wire/frame.ts'
import type { Link, LinkOptions } from '../links/link.ts'
import type { SignalState } from '../signal-client.ts'
import type { Clock } from './clock.ts'
import type { LinkTable, NodeLink } from './link-table.ts'
import type { NodeConfig } from './options.ts'

/** What the node gives its transport. */
export interface TransportHost {
  readonly identity: Identity
  readonly config: NodeConfig
  /** The network's identity puzzle (links refuse keys below it). */
  readonly puzzleBits: number
  /** The network as the bootstrap knows it: a hash of its name (shared/crypto/network.ts). */
  readonly networkTag: string
  /** What every link carries in its handshake (dialer.ts's DialerDeps.linkSecurity). */
  linkSecurity(): Pick<LinkOptions, 'network' | 'networkKeys' | 'box'>
  /** A link opened with a box record in its hello: the router keeps it. */
  learnBox(link: Link): void
  /** `peer` refused us (or we it) for the network's secret. */
  accessDenied(peer: string): void
  readonly counters: Counters
  readonly clock: Clock
  readonly links: LinkTable
  /** Checks for the bodies of the node's frame kinds: a link drops a frame whose body fails. */
  readonly validators: Partial<Record<Kind, (body: Value) => boolean>>
  /** Link-setup signals over the overlay (the router), once the node is on the ring. */
  readonly overlay: { canSignal(peer: string): boolean; signal(peer: string, data: Value): Promise<void> }
  /** A link the table took (`links.adopt` added it) is open. */
  opened(link: NodeLink): void
  /** A direct link replaced the open relayed link `old` (links.adopt): the peer stays connected. */
  upgraded(link: NodeLink, old: NodeLink): void
  /** A link that had opened closed. */
  closed(link: NodeLink, reason: string): void
  /** A link setup with `peer` failed: not dialled again for a while. */
  failed(peer: string): void
  /** The bootstrap sampled these peers for us (registration). */
  sampled(peers: PeerInfo[]): void
  /** Did the bootstrap sample `peer` for us? (Peers it never did are strangers.) */
  isSampled(peer: string): boolean
  /** Is `peer` this node's ring neighbour (or would it become one)? See Inbound's link budget. */
  ringNeighbour(peer: string): boolean
  /** `peer` and this node cannot link: one runs relay 'never', the other relay 'force'. */
  relayMismatch(peer: string): void
  /** Where the node stands with its bootstrap (the signal servers) changed. */
  signalState(state: SignalState): void
  isClosed(): boolean
}

/** A link setup under way, as the connection manager sees it. */
export interface DialView {
  readonly mesh: boolean
  /** Started by the peer, not by us. */
  readonly inbound: boolean
}

/** What the node needs of a transport. */
export interface Transport {
  /** Link setups under way, by peer. */
  readonly dials: ReadonlyMap<string, DialView>
  /** Where the node stands with its bootstrap. */
  readonly state: SignalState
  /** The bootstrap answers now (fresh samples can be asked for). */
  readonly connected: boolean
  /** Register with the bootstrap: resolves with a first sample of live peers (none: we are alone). */
  start(): Promise<PeerInfo[]>
  /** A fresh sample of live peers. */
  peers(): Promise<PeerInfo[]>
  /** Open a link to `peer` (or join the setup under way); resolves with it once open. */
  dial(peer: string, mesh: boolean): Promise<NodeLink>
  /** A link-setup signal that came over the overlay (`overLink`: over our link with `from`). */
  onSignal(from: string, data: Value, overLink: boolean): void
  /** A link-setup signal the ring could not place: send it another way. */
  resendSignal(dst: string, data: Value): void
  /** The connection manager's round: expire what the transport keeps for a while. */
  expire(now: number): void
  /** The transport's counters for node.stats(). */
  stats(): Record<string, number>
  /** Every setup under way fails with `err` (the node closes). */
  failAll(err: Error): void
  /** Leave the bootstrap. */
  close(): void
}

export type TransportFactory = (host: TransportHost) => Transport
