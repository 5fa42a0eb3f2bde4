/**
 * The production transport (transport.ts): links over WebRTC (simple-peer)
 * or the signal server's relay, set up through the signal server (socket.io)
 * or, once the node is on the ring, through the overlay. The signal server
 * is also the bootstrap: it registers the node and samples live peers.
 *
 * The parts: the signalling client (../signal-client.ts), the dialer
 * (dialer.ts: our setups, and the peers' once admitted) and inbound
 * admission (inbound.ts).
 */
import { NoRouteError } from '../../shared/errors.ts'
import { bump } from '../../shared/protocol.ts'
import type { PeerInfo } from '../../shared/signal-events.ts'
import type { Value } from '../../shared/types.ts'
import type { SimplePeerCtor } from '../links/webrtc.ts'
import { type IoFactory, type Preconnection, SignalClient, type SignalState } from '../signal-client.ts'
import { Dialer } from './dialer.ts'
import { Inbound } from './inbound.ts'
import type { NodeLink } from './link-table.ts'
import type { Transport, TransportHost } from './transport.ts'
import { Upgrades } from './upgrades.ts'

export interface SignalTransportOptions {
  SimplePeer: SimplePeerCtor
  io: IoFactory
  /** Signal server URLs, tried in order. */
  servers: string[]
  /** How long the first join keeps trying the servers. */
  joinTimeoutMs?: number
  /** The connection to the first server, opened beforehand (signal-client.ts, `preconnect`). */
  preconnection?: Preconnection
  /** Called as each registration goes out (signal-client.ts). */
  onRegisterSent?: () => void
}

/** How many peers heard through the server are remembered (a stalled link to one is checked there). */
const SERVER_PEERS_MAX = 512

export class SignalTransport implements Transport {
  readonly signalClient: SignalClient
  readonly dialer: Dialer
  readonly inbound: Inbound
  private readonly upgrades: Upgrades
  /** Peers whose signals came through this server lately (SERVER_PEERS_MAX, oldest out): registered here. */
  private readonly serverPeers = new Set<string>()
  /** WebRTC links whose stall is checked with the server, and what they had received then (probe). */
  private readonly probing = new Map<string, { link: NodeLink; bytesIn: number }>()

  constructor(
    private readonly host: TransportHost,
    opts: SignalTransportOptions,
  ) {
    const { config, counters, clock, identity, links } = host
    this.signalClient = new SignalClient({
      servers: opts.servers,
      // The server is told the name's hash, never the name or anything of the secret: members and
      // non-members of a name meet there, and the links keep them apart (AccessDeniedError).
      network: host.networkTag,
      identity,
      io: opts.io,
      ...(opts.joinTimeoutMs === undefined ? {} : { joinTimeoutMs: opts.joinTimeoutMs }),
      ...(opts.preconnection ? { preconnection: opts.preconnection } : {}),
      ...(opts.onRegisterSent ? { onRegisterSent: opts.onRegisterSent } : {}),
    })
    this.dialer = new Dialer({
      identity,
      config,
      puzzleBits: host.puzzleBits,
      counters,
      clock,
      SimplePeer: opts.SimplePeer,
      signalClient: this.signalClient,
      links,
      validators: host.validators,
      overlay: host.overlay,
      linkSecurity: () => host.linkSecurity(),
      learnBox: (link) => host.learnBox(link),
      accessDenied: (peer) => host.accessDenied(peer),
      opened: (link) => {
        this.watchStall(link)
        host.opened(link)
      },
      upgraded: (link, old) => {
        this.watchStall(link)
        host.upgraded(link, old)
      },
      closed: (link, reason) => host.closed(link, reason),
      failed: (peer, inbound) => {
        host.failed(peer)
        this.inbound.failed(peer, inbound)
      },
    })
    this.inbound = new Inbound({
      id: identity.id,
      config,
      counters,
      clock,
      dialer: this.dialer,
      links,
      signalClient: this.signalClient,
      isSampled: (peer) => host.isSampled(peer),
      ringNeighbour: (peer) => host.ringNeighbour(peer),
      relayMismatch: (peer) => host.relayMismatch(peer),
      closed: () => host.isClosed(),
    })
    // (A try may take 2 × directTimeoutMs: the dialer's timer for an upgrade.)
    const setupMs = 2 * config.directTimeoutMs
    this.upgrades = new Upgrades(identity.id, links, this.dialer, setupMs, {
      setupMs,
      now: () => clock.now(),
      counters,
    })
  }

  get dials(): Dialer['dials'] {
    return this.dialer.dials
  }

  get state(): SignalState {
    return this.signalClient.state
  }

  get connected(): boolean {
    return this.signalClient.connected
  }

  async start(): Promise<PeerInfo[]> {
    const { host } = this
    const sc = this.signalClient
    sc.on('signal', ({ from, data }) => {
      this.serverPeers.delete(from)
      this.serverPeers.add(from)
      const oldest = this.serverPeers.values().next()
      if (this.serverPeers.size > SERVER_PEERS_MAX && !oldest.done) this.serverPeers.delete(oldest.value)
      this.inbound.onSignal(from, data, false, true)
    })
    sc.on('relay', ({ from, frame }) => this.inbound.onRelayFrame(from, frame))
    sc.on('relay-error', (e) => {
      bump(host.counters, `relay-error.${e.reason}`)
      // The server no longer knows the peer: a relay link to it is dead, whatever heartbeats say.
      const l = host.links.get(e.to)
      if (e.reason === 'unknown-peer' && l?.transport === 'relay') l.close('peer-gone')
    })
    sc.on('signal-error', (e) => {
      bump(host.counters, `signal-error.${e.reason}`)
      // A signal sent without an ack (quietSignals) found nobody: the dial it was for ends as a
      // rejected signal() would end it (other reasons leave the dial to its own timers).
      const d = this.dialer.dials.get(e.to)
      if (e.reason === 'unknown-peer' && d)
        this.dialer.failDial(d, new NoRouteError(e.to, `${e.to} is not registered with the signal server`))
      if (e.reason === 'unknown-peer') this.probeGone(e.to)
    })
    sc.on('registered', ({ peers }) => host.sampled(peers))
    sc.on('state', (s) => host.signalState(s))
    const onSignal = host.config.onSignal
    if (onSignal) sc.on('status', (st) => safeCall(() => onSignal(st)))
    return sc.start()
  }

  /**
   * A tab that is closed or crashes says no goodbye: its peers' ICE notices ~6-8 s later, and the
   * link's stall check waits `stallGraceMs` more for an answer (liveness.ts). The signal server saw
   * its WebSocket close at once. So when a WebRTC link to a peer registered here stalls, a `probe`
   * goes to it through the server (the peer does nothing with it); the server's `unknown-peer`
   * means the peer is gone, and the link closes then ('peer-gone'), unless something came over it
   * meanwhile. Only peers this server listed or whose signals came through it: one on another
   * server (several servers without a shared registry) is unknown here and may be well.
   */
  private watchStall(link: NodeLink): void {
    if (link.transport !== 'webrtc') return
    link.on('stall', () => {
      const { peer } = link
      const here = this.serverPeers.has(peer) || this.host.isSampled(peer)
      if (!here || !this.signalClient.connected) return
      this.probing.set(peer, { link, bytesIn: link.stats.bytesIn })
      bump(this.host.counters, 'link.stall-probe')
      this.signalClient.signal(peer, { t: 'probe' }).catch((err: unknown) => {
        if (err instanceof NoRouteError) this.probeGone(peer)
      })
    })
    link.on('close', () => {
      if (this.probing.get(link.peer)?.link === link) this.probing.delete(link.peer)
    })
  }

  /** The server does not know `peer`: a stalled link to it that has heard nothing since the probe closes. */
  private probeGone(peer: string): void {
    const p = this.probing.get(peer)
    if (!p) return
    this.probing.delete(peer)
    const { link, bytesIn } = p
    if (link.state === 'open' && link.stats.bytesIn === bytesIn && this.host.links.get(peer) === link)
      link.close('peer-gone')
  }

  peers(): Promise<PeerInfo[]> {
    return this.signalClient.peers()
  }

  dial(peer: string, mesh: boolean): Promise<NodeLink> {
    return this.dialer.dial(peer, mesh)
  }

  onSignal(from: string, data: Value, overLink: boolean): void {
    this.inbound.onSignal(from, data, overLink)
  }

  resendSignal(dst: string, data: Value): void {
    this.dialer.resendSignal(dst, data)
  }

  expire(now: number): void {
    this.inbound.expire(now)
    this.upgrades.round(now)
  }

  stats(): Record<string, number> {
    const sc = this.signalClient
    return {
      signalsOut: sc.stats.signalsOut,
      signalsIn: sc.stats.signalsIn,
      relayBytesOut: sc.stats.relayBytesOut,
      relayBytesIn: sc.stats.relayBytesIn,
      signalReconnects: sc.stats.reconnects,
      signalConnected: sc.connected ? 1 : 0,
      signalDropped: sc.stats.dropped,
    }
  }

  failAll(err: Error): void {
    this.dialer.failAll(err)
  }

  close(): void {
    this.signalClient.close()
  }
}

/** Call an application callback; what it throws is reported apart, not into our own work. */
function safeCall(fn: () => void): void {
  try {
    fn()
  } catch (err) {
    queueMicrotask(() => {
      throw err
    })
  }
}
