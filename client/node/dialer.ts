/**
 * The dialer: opens links, over WebRTC or the signal server's relay, and
 * takes them through the link handshake (client/links/link.ts) into the
 * node's link table.
 *
 * Who offers: the side that dials makes the WebRTC offer at once (a newcomer
 * offers to the peers the server introduced: no round trip to ask them
 * first, join time, issue 14). Glare, both ends dialling each other at once:
 * the lower id's offer wins; the higher id drops its own attempt and answers
 * (inbound.ts). Signals from the offering side carry `o: true`, so the ICE
 * candidates of a losing offer are told apart and dropped. The winner sends
 * its offer and candidates again, once, when it drops the loser's offer
 * (`replayOffer`): the loser may never have had them. That happens when the
 * offer went to an earlier session of the same identity (a page reloaded
 * while a stabilisation round dialled the old one, and the server still had
 * its socket); without the replay both ends waited for the relay fallback. When no direct
 * link opens within `directTimeoutMs` (or the attempt fails first), or
 * either end runs with relay 'force', both ends switch to a relay link
 * through the signal server; with relay 'never' the dial fails instead
 * (NoRouteError, saying why the direct attempt failed).
 *
 * Relay sessions: the side that starts one picks its id (`sid`) and
 * announces it in a `relay` signal; the other side adopts it. When both
 * start at once, the lower id's session wins. A setup restarts its relay at
 * most MAX_RELAY_SESSIONS times, and one whose peer says nothing over it is
 * given up (INBOUND_SILENT_MS / OWN_SILENT_MS).
 *
 * Upgrades: a link that fell back to the relay (a busy machine can push a
 * WebRTC setup past its deadline) is tried over WebRTC again later, by its
 * lower id (`upgrade`, scheduled by upgrades.ts); the other end takes the
 * offer over the open relayed link as such (inbound.ts). If it opens, the
 * link table swaps it in and the relayed one closes ('upgraded'); if not,
 * nothing changes (no relay fallback for an upgrade).
 *
 * Signals go through the overlay once this node is on the ring (the
 * router), else through the signal server. Setups peers start (their
 * signals) are admitted by inbound.ts and then run here like our own.
 */
import { AccessDeniedError, NoRouteError } from '../../shared/errors.ts'
import type { Identity } from '../../shared/identity/keys.ts'
import { bump, type Counters } from '../../shared/protocol.ts'
import { isValue, type Value } from '../../shared/types.ts'
import type { Kind } from '../../shared/wire/frame.ts'
import type { HandshakeOptions } from '../links/handshake.ts'
import { ACCESS_DENIED, Link, type LinkOptions } from '../links/link.ts'
import { createRelayPipe, type RelayPipe } from '../links/relay.ts'
import {
  createWebRtcPipe,
  describeRtcError,
  rtcErrorKey,
  type SimplePeerCtor,
  type WebRtcPipe,
} from '../links/webrtc.ts'
import type { SignalClient } from '../signal-client.ts'
import {
  type AttemptHello,
  addHello,
  answerAhead,
  attemptHello,
  carriesHello,
  linkHello,
  sendProof,
  takeHello,
  takeProof,
} from './attempt-hello.ts'
import type { Clock } from './clock.ts'
import { setBounded } from './inbound.ts'
import type { LinkTable, NodeLink } from './link-table.ts'
import type { NodeConfig } from './options.ts'
import { parseSignalData, rtcDropKey, type SignalData } from './signal-data.ts'
import { markPhase } from './timeline.ts'

/** An inbound relay setup that has not opened a link by then is given up (the handshake takes a few round trips). */
const INBOUND_RELAY_MS = 8000
/** ...and one of ours. */
const OWN_RELAY_MS = 15_000
/**
 * A relay setup whose peer has sent nothing at all by then is given up: an honest peer sends
 * its hello right behind its `relay` signal, or as soon as ours reaches it. Sooner for setups
 * the peer started (it holds an inbound slot); for our own dials it frees the connection
 * manager from peers that never answer (throw-away identities in a bootstrap sample).
 */
const INBOUND_SILENT_MS = 3000
const OWN_SILENT_MS = 6000
/**
 * Relay sessions one setup may go through (each new `relay` signal from the peer restarts the
 * handshake; an honest peer restarts at most once, when both ends started one at the same time).
 */
const MAX_RELAY_SESSIONS = 3
/** Signals of our offer kept for a replay (the offer and its ICE candidates: a handful). */
const MAX_SENT_SIGNALS = 16

import type { Dial } from './dial.ts'

export type { Dial }

export interface DialerDeps {
  readonly identity: Identity
  readonly config: NodeConfig
  readonly puzzleBits: number
  readonly counters: Counters
  readonly clock: Clock
  readonly SimplePeer: SimplePeerCtor
  readonly signalClient: SignalClient
  readonly links: LinkTable
  /** Validators for the bodies of the node's frame kinds (they parse each body once: host.ts). */
  readonly validators: Partial<Record<Kind, (body: Value) => boolean>>
  /** Link-setup signals over the overlay (the router), once this node is on the ring. */
  readonly overlay: { canSignal(peer: string): boolean; signal(peer: string, data: Value): Promise<void> }
  /** A link finished its handshake and the link table took it. */
  opened(link: NodeLink): void
  /** A direct link replaced the open relayed link `old` to its peer (the peer stays connected). */
  upgraded(link: NodeLink, old: NodeLink): void
  /** A link that had opened closed. */
  closed(link: NodeLink, reason: string): void
  /** A setup failed (`inbound`: one the peer started). */
  failed(peer: string, inbound: boolean): void
  /**
   * What every link of this node carries in its handshake: the network as the server knows it
   * (its tag), a private network's keys, and our box record for sealed envelopes (the router's).
   */
  linkSecurity(): Pick<LinkOptions, 'network' | 'networkKeys' | 'box'>
  /** A peer's box record, from its link hello: sealed envelopes to it need no fetch. */
  learnBox(link: Link): void
  /** `peer` refused us (or we it) for the network's secret. */
  accessDenied(peer: string): void
}

/** How long a peer that refused us for the network's secret is not asked again. */
const DENIED_MS = 60_000

export class Dialer {
  /** Setups under way, by peer. */
  readonly dials = new Map<string, Dial>()
  /** Peers that refused us for the network's secret -> until when a dial to them fails at once. */
  private readonly deniedBy = new Map<string, number>()

  constructor(private readonly deps: DialerDeps) {}

  /** Open a link to `peer` (or join the setup under way); resolves with it once open. */
  dial(peer: string, mesh: boolean): Promise<NodeLink> {
    const open = this.deps.links.get(peer)
    if (open?.state === 'open') return Promise.resolve(open)
    // A peer that refused us for the network's secret lately (it would not even answer now).
    if ((this.deniedBy.get(peer) ?? 0) > this.deps.clock.now())
      return Promise.reject(new AccessDeniedError(peer))
    const existing = this.dials.get(peer)
    if (existing) {
      existing.mesh ||= mesh
      existing.inbound = false // we want this link too
      return new Promise((resolve, reject) => existing.waiters.push({ resolve, reject }))
    }
    markPhase('dial')
    const d: Dial = { peer, mesh, inbound: false, relays: 0, started: this.deps.clock.now(), waiters: [] }
    this.dials.set(peer, d)
    const p = new Promise<NodeLink>((resolve, reject) => d.waiters.push({ resolve, reject }))
    if (this.deps.config.relay === 'force') this.startRelay(d)
    else this.startWebRtc(d, true)
    return p
  }

  /**
   * Try WebRTC for `peer`, whose open link is relayed (we are the lower id,
   * so we offer). False when there is nothing to upgrade or a setup with the
   * peer is under way.
   */
  upgrade(peer: string): boolean {
    const open = this.deps.links.get(peer)
    if (open?.state !== 'open' || open.transport !== 'relay' || this.dials.has(peer)) return false
    if (this.deps.config.relay !== 'auto' || !(this.deps.identity.id < peer)) return false
    bump(this.deps.counters, 'upgrade.tried')
    const d: Dial = {
      peer,
      mesh: open.localMesh,
      inbound: false,
      upgrade: true,
      relays: 0,
      started: this.deps.clock.now(),
      waiters: [],
    }
    this.dials.set(peer, d)
    this.startWebRtc(d, true)
    return true
  }

  /**
   * Send a link-setup signal: through the overlay once this node is on the
   * ring and a hop toward `peer` is open (the server is then needed only to
   * enter and for relay), else through the signal server. After the ring
   * answered `noroute` for `peer`, its signals go through the server for a
   * while (the router's canSignal). A setup whose peer signalled through
   * the server answers through the server (it may not be on the ring yet).
   */
  signalTo(peer: string, data: SignalData): Promise<void> {
    const { config, counters, overlay } = this.deps
    if (
      config.overlaySignals !== false &&
      this.dials.get(peer)?.viaServer !== true &&
      data.t !== 'relay' &&
      data.t !== 'refuse' &&
      overlay.canSignal(peer) &&
      isValue(data)
    ) {
      bump(counters, 'signal.overlay')
      return overlay.signal(peer, data)
    }
    bump(counters, 'signal.server')
    return this.deps.signalClient.signal(peer, data)
  }

  /** A link-setup signal the ring could not place goes through the signal server. */
  resendSignal(dst: string, data: Value): void {
    const s = parseSignalData(data)
    if (!s) return bump(this.deps.counters, 'drop.signal')
    this.deps.signalClient.signal(dst, s).catch((err: Error) => {
      const d = this.dials.get(dst)
      if (d) this.failDial(d, err instanceof NoRouteError ? err : new NoRouteError(dst, err.message))
    })
  }

  startWebRtc(d: Dial, initiator: boolean): void {
    markPhase(initiator ? 'rtc-offer' : 'rtc-answer')
    const { config, identity } = this.deps
    // This attempt's hello (attempt-hello.ts): it rides on our offer or answer.
    const hello = attemptHello(this.wantsMesh(d))
    // Signals leave in order; an offer or answer waits for the hello (its keys: ~1 ms).
    let out = Promise.resolve()
    const pipe = createWebRtcPipe({
      SimplePeer: this.deps.SimplePeer,
      initiator,
      ...(config.wrtc ? { wrtc: config.wrtc } : {}),
      // Ours if given, else the signal server's (its TURN credentials are renewed as they age).
      iceServers: config.iceServers ?? this.deps.signalClient.iceServers ?? [],
      sendSignal: (s) => {
        const data: SignalData & { t: 'rtc' } = {
          t: 'rtc',
          s: s as object,
          mesh: d.mesh,
          ...(initiator ? { o: true } : {}),
        }
        const withHello = carriesHello(data, hello, initiator)
        // (Kept for a replay as it is emitted: the hello goes into it in place.)
        if (initiator && d.pipe === pipe && d.sent && d.sent.length < MAX_SENT_SIGNALS) d.sent.push(data)
        const current = () => d.pipe === pipe && this.dials.get(d.peer) === d
        out = out
          .then(async () => {
            if (withHello) await addHello(data, hello, { identity, ...this.deps.linkSecurity() })
            if (!current()) return // superseded (glare, relay fallback) or failed meanwhile
            this.sendRtc(d, pipe, data)
            // Our answer went with our hello: both fingerprints are known, our proof can be made,
            // and sent after it (the offering side's link then opens as its channel does).
            if (!withHello || initiator) return
            answerAhead(hello, this.handshake(d), pipe.fingerprints())
            sendProof(hello, (proof) => current() && this.sendRtc(d, pipe, proof))
          })
          .catch(() => bump(this.deps.counters, 'signal.send-failed'))
      },
    })
    d.pipe = pipe
    d.hello = hello
    d.offerer = initiator
    d.replayed = false
    if (initiator) d.sent = []
    else delete d.sent
    this.armFallback(d)
    pipe.opened.then(
      () => {
        if (this.dials.get(d.peer) !== d || d.pipe !== pipe) return pipe.close('superseded')
        markPhase('channel-open')
        this.attachLink(d, pipe, hello)
      },
      (err: unknown) => {
        // A failed direct attempt falls back to the relay at the timer (or now, if it failed fast).
        if (this.dials.get(d.peer) !== d || d.pipe !== pipe || d.relay) return
        d.error = describeRtcError(err)
        bump(this.deps.counters, `dial.webrtc-failed.${rtcErrorKey(err)}`)
        this.fallBack(d)
      },
    )
  }

  /** A WebRTC signal of the peer into the attempt under way (the hello it carried is kept). */
  feedRtc(d: Dial, s: SignalData & { t: 'rtc' }): void {
    if (!d.pipe) return
    // (A second offer or answer, a renegotiation, candidates past the bound: dropped by the pipe.)
    if (!d.pipe.signal(s.s)) return bump(this.deps.counters, rtcDropKey(s))
    takeHello(d.hello, s, d.offerer === true, this.deps.counters)
    if (d.offerer && !d.hello?.answer) answerAhead(d.hello, this.handshake(d), d.pipe.fingerprints())
  }

  /** The peer's proof by signal, into our offer's attempt with it that waits for its channel. */
  feedProof(from: string, p: string): void {
    const d = this.dials.get(from)
    if (!d?.offerer || !d.pipe || d.link) return bump(this.deps.counters, 'drop.signal.proof')
    takeProof(d.hello, p, this.handshake(d), this.deps.counters)
  }

  /** What a link with `d.peer` is checked and proven with. */
  private handshake(d: Dial): HandshakeOptions {
    const { identity, counters, puzzleBits } = this.deps
    return { identity, peer: d.peer, counters, puzzleBits, ...this.deps.linkSecurity() }
  }

  /** Does this node want the link of `d` in the mesh? (An upgrade keeps the relayed link's role: it still counts.) */
  private wantsMesh(d: Dial): boolean {
    const { config, links } = this.deps
    return d.mesh && (d.upgrade === true || links.meshNeighbours().length < config.maxPeers)
  }

  private sendRtc(d: Dial, pipe: WebRtcPipe, data: SignalData): void {
    this.signalTo(d.peer, data).catch((err: Error) => {
      if (err instanceof NoRouteError && d.pipe === pipe) this.failDial(d, err)
    })
  }

  /**
   * Send our offer of `d` and its candidates so far again, marked as a replay
   * (once per offer): the peer offered too and lost the glare, so it waits
   * for ours, which may have gone to an earlier session of its identity.
   * A peer that had it ignores the replayed offer (inbound.ts).
   */
  replayOffer(d: Dial): void {
    const pipe = d.pipe
    if (!pipe || !d.offerer || d.replayed || !d.sent?.length) return
    d.replayed = true
    bump(this.deps.counters, 'signal.offer-replayed')
    for (const s of d.sent) this.sendRtc(d, pipe, { ...s, r: true })
  }

  private armFallback(d: Dial): void {
    const { clock } = this.deps
    clock.clearTimeout(d.timer)
    // An upgrade is not in a hurry (the relayed link carries the traffic meanwhile).
    const ms = this.deps.config.directTimeoutMs * (d.upgrade ? 2 : 1)
    d.timer = clock.setTimeout(() => this.fallBack(d), ms)
  }

  private fallBack(d: Dial): void {
    if (this.dials.get(d.peer) !== d || d.relay) return
    const { config, counters } = this.deps
    // An upgrade, or a setup that would replace a direct link still open, is for a direct link or
    // nothing: a relayed one (the server's to carry or drop) never takes a direct link's place. (Once
    // that link is gone, its goodbye come or found dead, the setup is like any other.)
    const old = d.supersedes
    const replacesDirect =
      old?.transport === 'webrtc' && old.state === 'open' && this.deps.links.get(d.peer) === old
    if (d.upgrade || replacesDirect) {
      bump(counters, d.upgrade ? 'upgrade.failed' : 'dial.supersede-failed')
      return this.failDial(
        d,
        new NoRouteError(d.peer, `no direct link to ${d.peer}: ${d.error ?? 'timeout'}`),
      )
    }
    if (!d.error) bump(counters, 'dial.webrtc-timeout')
    if (config.relay === 'never') {
      const why =
        d.error ??
        (d.pipe
          ? `WebRTC did not connect within ${config.directTimeoutMs} ms (ICE ${d.pipe.iceState()})`
          : `no WebRTC offer from the peer within ${config.directTimeoutMs} ms`)
      return this.failDial(d, new NoRouteError(d.peer, `no direct link to ${d.peer}: ${why}`))
    }
    bump(counters, 'dial.relay-fallback')
    this.startRelay(d)
  }

  /**
   * Open the relay link of a dial. The side that starts it picks the session
   * id and announces it (`sid` undefined); the other side adopts the
   * announced one. When both start at once, the lower id's session wins.
   */
  startRelay(d: Dial, sid?: number): void {
    const { clock, counters, signalClient } = this.deps
    if (d.relay) {
      if (sid === undefined || d.relay.sid === sid || this.deps.identity.id < d.peer) return
      if (d.relays >= MAX_RELAY_SESSIONS) {
        bump(counters, 'drop.signal.relay-restarts')
        return this.failDial(d, new NoRouteError(d.peer, `${d.peer} restarted its relay too often`))
      }
      // They (the lower id) started one too: adopt theirs.
      d.link?.close('relay-restart')
      d.relay.close('relay-restart')
      delete d.relay
      delete d.link
    }
    d.pipe?.close('relay-instead')
    delete d.pipe
    clock.clearTimeout(d.timer)
    // The handshake over the relay should finish in a few round trips through the server (sooner
    // for a setup the peer started: anyone can start one, and it holds an inbound slot meanwhile).
    d.relays++
    d.timer = clock.setTimeout(
      () => this.failDial(d, new NoRouteError(d.peer, `relay link to ${d.peer} did not open`)),
      d.inbound ? INBOUND_RELAY_MS : OWN_RELAY_MS,
    )
    const announce = sid === undefined
    const relay = createRelayPipe({
      signal: signalClient,
      peer: d.peer,
      sid: sid ?? crypto.getRandomValues(new Uint32Array(1))[0] ?? 0,
    })
    d.relay = relay
    if (announce)
      signalClient
        .signal(d.peer, { t: 'relay', mesh: d.mesh, sid: relay.sid })
        .catch((err: Error) => this.failDial(d, err))
    this.attachLink(d, relay)
    const link = d.link
    clock.setTimeout(
      () => {
        if (this.dials.get(d.peer) !== d || d.link !== link || (link?.stats.bytesIn ?? 0) > 0) return
        bump(counters, d.inbound ? 'dial.inbound-silent' : 'dial.silent')
        this.failDial(d, new NoRouteError(d.peer, `${d.peer} said nothing over the relay`))
      },
      d.inbound ? INBOUND_SILENT_MS : OWN_SILENT_MS,
    )
  }

  private attachLink(d: Dial, pipe: WebRtcPipe | RelayPipe, hello?: AttemptHello): void {
    const { config, counters } = this.deps
    const start = hello && linkHello(hello)
    if (start?.early) bump(counters, 'link.hello-signalled')
    if (start?.earlyAnswer) bump(counters, 'link.proof-ahead')
    const link = new Link({
      ...start,
      ...this.handshake(d),
      pipe,
      // (The role our hello asked for, when it went with the offer or answer: the channel's says the same.)
      mesh: hello?.sent ? hello.mesh : this.wantsMesh(d),
      validators: this.deps.validators,
      maxMessageBytes: config.maxMessageBytes,
    })
    d.link = link
    link.on('open', () => this.linkOpen(d, link))
    // Opened on a signalled proof: the box record in the peer's channel hello comes after.
    link.on('box', () => this.deps.learnBox(link))
    link.on('close', (reason) => {
      if (d.link === link && this.dials.get(d.peer) === d) {
        if (reason === 'relay-restart' || reason === 'relay-instead') return
        // Closed during the handshake: a direct attempt may still fall back to the relay.
        bump(counters, `link.handshake-closed.${reason.split(':')[0]}`)
        d.error = `the link closed during its handshake: ${reason.slice(0, 100)}`
        delete d.link
        // Refused for the network's secret (by us, or the peer said so): no other way will do.
        if (reason === ACCESS_DENIED || reason === `bye:${ACCESS_DENIED}`) {
          setBounded(this.deniedBy, d.peer, this.deps.clock.now() + DENIED_MS)
          this.deps.accessDenied(d.peer)
          return this.failDial(d, new AccessDeniedError(d.peer))
        }
        if (pipe.transport === 'webrtc' && !d.relay) return this.fallBack(d)
        return this.failDial(d, new NoRouteError(d.peer, `link to ${d.peer} closed: ${reason}`))
      }
      this.deps.closed(link, reason)
    })
    link.start()
  }

  private linkOpen(d: Dial, link: Link): void {
    this.deps.clock.clearTimeout(d.timer)
    this.deps.learnBox(link)
    // The link this setup supersedes goes now, while the dial still holds the peer's place (the
    // departure runs a manager round, which must not dial the peer meanwhile).
    const old = d.supersedes
    if (old?.state === 'open' && this.deps.links.get(d.peer) === old) {
      bump(this.deps.counters, 'link.superseded')
      old.close('superseded')
    }
    if (this.dials.get(d.peer) === d) this.dials.delete(d.peer)
    // Keep one link per peer: a direct one beats a relayed one (link-table.ts).
    const { kept, added, replaced } = this.deps.links.adopt(link)
    if (replaced) {
      bump(this.deps.counters, 'link.upgraded')
      this.deps.upgraded(link, replaced)
    } else if (added) {
      bump(this.deps.counters, `link.opened.${link.transport}`)
      this.deps.opened(link)
    }
    for (const w of d.waiters) w.resolve(kept)
  }

  failDial(d: Dial, err: Error): void {
    if (this.dials.get(d.peer) !== d) return
    this.dials.delete(d.peer)
    this.deps.clock.clearTimeout(d.timer)
    d.pipe?.close('dial-failed')
    d.relay?.close('dial-failed')
    d.link?.close('dial-failed')
    bump(this.deps.counters, d.inbound ? 'dial.inbound-failed' : 'dial.failed')
    // (Our own failed upgrade is no reason not to dial the peer: it stays linked over the relay.)
    if (!d.upgrade || d.inbound) this.deps.failed(d.peer, d.inbound)
    for (const w of d.waiters) w.reject(err)
  }

  /** Every setup under way fails with `err` (the node closes). */
  failAll(err: Error): void {
    for (const d of [...this.dials.values()]) this.failDial(d, err)
  }
}
