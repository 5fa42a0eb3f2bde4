/**
 * Link setups that peers start: their link-setup signals (signal-data.ts)
 * and the first frames of relay sessions they announce, admitted within
 * bounds and handed to the dialer.
 *
 * Anyone registered with the signal server can start a setup, so they are
 * bounded apart from this node's own dials and open links: at most
 * MAX_INBOUND pending at once, of which peers the signal server never
 * sampled for us ("strangers") hold at most MAX_INBOUND_STRANGERS; never
 * past `maxLinks` (but for a ring neighbour, RING_EXTRA_LINKS); a peer whose setup failed waits INBOUND_BACKOFF_MS. A
 * peer's offers to upgrade its relayed link to WebRTC: UPGRADE_BACKOFF_MS
 * after one failed (its quick retry comes later: upgrades.ts), and MAX_OFFERS
 * per relayed link, what an honest offerer sends at most. A
 * refusal is answered ('full') within a small budget, so a flood cannot make
 * this node flood the server; the rest are dropped and counted.
 *
 * A `relay` signal from a peer we have no setup with is only noted
 * (MAX_PENDING_RELAYS, PENDING_RELAY_MS): the setup, and its inbound slot,
 * begin with the peer's hello, the small first frame of the session. An
 * honest peer sends it right behind the signal; anything else as a first
 * frame is dropped unread (`drop.before-auth`) and the peer backs off.
 */
import { NoRouteError } from '../../shared/errors.ts'
import { bump, type Counters } from '../../shared/protocol.ts'
import { isHandshakePiece } from '../links/link.ts'
import { relaySid } from '../links/relay.ts'
import type { SignalClient } from '../signal-client.ts'
import type { Clock } from './clock.ts'
import type { Dial, Dialer } from './dialer.ts'
import type { LinkTable } from './link-table.ts'
import type { NodeConfig } from './options.ts'
import {
  fromOfferer,
  isOffer,
  parseSignalData,
  relayPipeOf,
  type SignalData,
  startsSession,
} from './signal-data.ts'
import { MAX_OFFERS, UPGRADE_BACKOFF_MS } from './upgrades.ts'

/** Link setups that peers started (their signals) pending at once. */
const MAX_INBOUND = 16
/** ...of which peers the signal server never sampled for us may hold at most this many. */
const MAX_INBOUND_STRANGERS = 8
/**
 * A node at `maxLinks` still admits this many more for peers that are (or
 * would become) its ring neighbours: a node its neighbours all refuse is
 * off the ring, and cannot even answer a request that reached it.
 */
const RING_EXTRA_LINKS = 2
/** Relay sessions peers announced and have not spoken on yet, remembered at most. */
const MAX_PENDING_RELAYS = 256
const PENDING_RELAY_MS = 5000
/** A peer whose inbound setup failed may not start another for this long. */
const INBOUND_BACKOFF_MS = 30_000
/** Peers remembered in a backoff map at most (the oldest entry goes first). */
export const MAX_BACKOFF = 4096
/** Refusals ('full') we answer: a burst, then so many per second; beyond, signals are dropped unanswered. */
const REFUSE_BURST = 8
const REFUSALS_PER_SEC = 2

export interface InboundDeps {
  readonly id: string
  readonly config: NodeConfig
  readonly counters: Counters
  readonly clock: Clock
  readonly dialer: Dialer
  readonly links: LinkTable
  readonly signalClient: SignalClient
  /** Did the signal server sample `peer` for us (see MAX_INBOUND_STRANGERS)? */
  isSampled(peer: string): boolean
  /** Is `peer` this node's ring neighbour, or would it become one (it may pass maxLinks by RING_EXTRA_LINKS)? */
  ringNeighbour(peer: string): boolean
  /** `peer` and this node cannot link: one runs relay 'never', the other relay 'force'. */
  relayMismatch(peer: string): void
  /** The node is closed: signals are ignored. */
  closed(): boolean
}

export class Inbound {
  /** Peers whose inbound setup failed -> refuse their next one before this time. */
  readonly inboundBackoff = new Map<string, number>()
  /** Relay sessions peers announced, waiting for their hello (MAX_PENDING_RELAYS), oldest first. */
  readonly pendingRelays = new Map<string, { sid: number; mesh: boolean; at: number }>()
  /** Setups taken to replace an open link, an upgrade or a new link (MAX_OFFERS; gone with the link). */
  private readonly upgradesTaken = new WeakMap<object, number>()
  /** Per peer, the last unknown relay session we told it of (relay-gone), so we tell it once. */
  private readonly goneTold = new Map<string, number>()
  private refuseTokens = REFUSE_BURST
  private refuseAt: number

  constructor(private readonly deps: InboundDeps) {
    this.refuseAt = deps.clock.now()
  }

  /**
   * A link-setup signal from `from`; `overLink` when it came over the link we have with `from`,
   * `viaServer` when through the signal server (the setup's answers then go back that way).
   */
  onSignal(from: string, raw: unknown, overLink = false, viaServer = false): void {
    const { config, counters, dialer, links } = this.deps
    if (this.deps.closed()) return
    const s = parseSignalData(raw)
    if (!s) return bump(counters, 'drop.signal')
    if (s.t === 'probe') return bump(counters, 'signal.probe')
    if (s.t === 'relay-gone') return this.onRelayGone(from, s.sid)
    if (s.t === 'refuse') return this.onRefuse(from, s.reason)
    // The answering side's proof, into our WebRTC attempt with it (it starts and replaces nothing).
    if (s.t === 'proof') return dialer.feedProof(from, s.p)
    if (s.t === 'rtc' && s.r) return this.onReplay(from, s, viaServer)
    const linked = links.get(from)
    // WebRTC signals over an open relay link upgrade it to a direct one (not when relays are forced).
    const upgrade = s.t === 'rtc' && linked?.transport === 'relay' && config.relay !== 'force'
    // A new link while one is open: the peer left that one (its goodbye still on the way), or the
    // server made the signal up. The open link stays until the new one has opened, authenticated
    // (dialer.ts linkOpen): only the peer can end it. (Over that very link it cannot be stale.)
    const supersedes = linked?.state === 'open' && !upgrade ? linked : undefined
    if (supersedes && (overLink || !startsSession(s, supersedes))) return
    let d = dialer.dials.get(from)
    if (!d) {
      if (s.t === 'relay' && config.relay !== 'never') return this.notePendingRelay(from, s)
      // A setup starts with an offer (or, from an earlier version's higher id, a `dial`): an answer
      // or candidate of no setup, or a lower id's `dial`, starts nothing (either used to leave a
      // setup with no timer, holding an inbound slot for good).
      if (config.relay !== 'force' && s.t === 'rtc' && !fromOfferer(s))
        return bump(counters, 'drop.signal.no-offer')
      if (config.relay !== 'force' && s.t === 'dial' && from < this.deps.id)
        return bump(counters, 'drop.signal.wrong-dial')
      const relayed = upgrade && linked?.state === 'open' ? linked : undefined
      const replaced = relayed ?? supersedes
      if (!this.mayReplace(replaced, relayed ? 'upgrade' : 'supersede')) return
      if (!this.admit(from, upgrade || supersedes !== undefined)) return
      d = this.newDial(from, s.mesh)
      if (replaced) this.upgradesTaken.set(replaced, (this.upgradesTaken.get(replaced) ?? 0) + 1)
      if (relayed) {
        // The offer replaces the open relayed link if it opens; if not, that link stays.
        d.upgrade = true
        d.mesh = relayed.localMesh
        bump(counters, 'upgrade.offered')
      }
    } else d.mesh ||= s.mesh
    if (supersedes) d.supersedes = supersedes
    // A peer that signals through the server may not be on the ring yet (a newcomer): answers
    // routed over the overlay would be lost, or come back as `noroute` a detour later.
    if (viaServer) d.viaServer = true
    switch (s.t) {
      case 'dial':
        // The peer asks us to offer (an earlier version's higher id does).
        if (config.relay === 'force') return dialer.startRelay(d)
        if (!d.pipe && !d.relay) dialer.startWebRtc(d, true)
        return
      case 'rtc':
        if (config.relay === 'force') return dialer.startRelay(d)
        if (d.relay) return
        if (fromOfferer(s)) {
          if (d.pipe && d.offerer) {
            // Glare: we offered too. The lower id's offer wins; the loser answers the winner's.
            if (this.deps.id < from) {
              // The peer waits for our offer: if it never had it, the replay is what it answers.
              if (isOffer(s)) dialer.replayOffer(d)
              return bump(counters, 'drop.signal.glare')
            }
            this.yieldGlare(d)
          }
          if (!d.pipe) dialer.startWebRtc(d, false)
        } else if (!d.pipe) return bump(counters, 'drop.signal.no-offer') // an answer to no offer of ours
        dialer.feedRtc(d, s)
        return
      case 'relay':
        if (config.relay === 'never') {
          // The peer offers only a relayed link: it runs relay 'force' (or gave up on WebRTC).
          this.deps.relayMismatch(from)
          dialer.failDial(
            d,
            new NoRouteError(
              from,
              `${from} links only through the signal server's relay (it runs relay: 'force'), and this node has relay: 'never'`,
            ),
          )
          void this.deps.signalClient.signal(from, { t: 'refuse', reason: 'no-relay' }).catch(() => {})
          return
        }
        return dialer.startRelay(d, s.sid)
    }
  }

  /**
   * `from` refused our setup with it. The signal server may have made the refusal up (it passes
   * every signal), so it ends at most that one setup (the peer then waits its dial backoff):
   * 'no-relay' only a setup that offered the peer a relay session it has not spoken on (not a
   * WebRTC attempt, which a peer running relay 'never' would take), and it is a mismatch the
   * first join reports (entry.ts) only when this node runs relay 'force', the relay its only way.
   */
  private onRefuse(from: string, reason: string): void {
    const { config, counters, dialer } = this.deps
    const d = dialer.dials.get(from)
    const noRelay = reason === 'no-relay'
    if (!d || (noRelay && (!d.relay || (d.link?.stats.bytesIn ?? 0) > 0)))
      return bump(counters, 'drop.signal.refuse')
    const force = config.relay === 'force'
    if (noRelay && force) this.deps.relayMismatch(from)
    const why = !noRelay
      ? `${from} refused: ${reason}`
      : `${from} takes direct links only (it runs relay: 'never'), and ${force ? "this node has relay: 'force'" : 'no direct link opened'}`
    dialer.failDial(d, new NoRouteError(from, why, reason))
  }

  /**
   * A replayed offer or candidate (dialer.ts replayOffer): the peer won a glare and sends its offer
   * again in case we never had it. It counts only where we still offer to the peer ourselves
   * (we never had it: we yield and answer it, as in a glare); into a setup that answers the peer
   * already, its candidates go on and its offer is a duplicate. Anything else starts nothing:
   * no setup, and never does it supersede an open link.
   */
  private onReplay(from: string, s: SignalData & { t: 'rtc' }, viaServer: boolean): void {
    const { config, counters, dialer } = this.deps
    const d = dialer.dials.get(from)
    const offer = isOffer(s)
    if (!d?.pipe || config.relay === 'force' || d.relay || !(from < this.deps.id))
      return bump(counters, 'drop.signal.replay')
    if (viaServer) d.viaServer = true
    if (d.offerer) {
      // Our offer lost the glare and theirs never reached us: yield to it now.
      if (!offer) return bump(counters, 'drop.signal.replay')
      this.yieldGlare(d)
      dialer.startWebRtc(d, false)
    } else if (offer) return bump(counters, 'drop.signal.replay-duplicate')
    dialer.feedRtc(d, s)
  }

  /** Our offer lost the glare: give our attempt up (the caller answers the peer's offer). */
  private yieldGlare(d: Dial): void {
    bump(this.deps.counters, 'link.glare-yield')
    const mine = d.pipe
    delete d.pipe
    mine?.close('glare')
  }

  /** A frame through the server's relay: to the setup or link of its session, or a peer's first hello. */
  onRelayFrame(from: string, frame: Uint8Array): void {
    // By session id: a dial to a peer we already have a relay link with (a link-setup signal can
    // start one) must not take the open link's frames.
    const sid = relaySid(frame)
    const d = this.deps.dialer.dials.get(from)
    if (d?.relay?.sid === sid) return d.relay.deliver(frame)
    const l = this.deps.links.get(from)
    const pipe = l && relayPipeOf(l)
    if (pipe?.sid === sid) return pipe.deliver(frame)
    const pending = this.pendingRelays.get(from)
    if (pending?.sid === sid) return this.acceptRelay(from, pending, frame)
    bump(this.deps.counters, 'drop.relay-frame')
    // The peer speaks on a session we do not have: we closed it and our goodbye was lost (frames
    // lost with a server instance that died end a secure channel). Tell it, once per session and
    // within the refusals' budget, so its end closes now rather than at its heartbeat timeout.
    if (sid < 0 || this.goneTold.get(from) === sid || !this.answerBudget()) return
    setBounded(this.goneTold, from, sid)
    bump(this.deps.counters, 'relay.gone-sent')
    void this.deps.signalClient.signal(from, { t: 'relay-gone', sid }).catch(() => {})
  }

  /** `from` has no relay session `sid` with us: the link we run on it is dead (not one on another). */
  private onRelayGone(from: string, sid: number): void {
    const l = this.deps.links.get(from)
    if (l?.state !== 'open' || relayPipeOf(l)?.sid !== sid)
      return bump(this.deps.counters, 'drop.signal.relay-gone')
    l.close('relay-gone')
  }

  /**
   * Setups that would replace the open `link` (upgrades of a relayed one, new links superseding it),
   * MAX_OFFERS a link at most, ever: an honest peer's retries, and no endless churn from a server
   * making up its signals. (The caller counts a setup it starts in upgradesTaken.)
   */
  private mayReplace(link: object | undefined, kind: 'upgrade' | 'supersede'): boolean {
    if (!link || (this.upgradesTaken.get(link) ?? 0) < MAX_OFFERS) return true
    bump(this.deps.counters, `drop.signal.${kind}-budget`)
    return false
  }

  /**
   * A setup with `peer` failed; if the peer started it, it backs off (briefly while a link with
   * it is still open, after an upgrade or a setup to supersede it: the offerer's retry after a
   * failure for load comes 7-10 s later, and a reloaded peer's relay session may follow).
   */
  failed(peer: string, inbound: boolean): void {
    if (!inbound) return
    const ms = this.deps.links.get(peer)?.state === 'open' ? UPGRADE_BACKOFF_MS : INBOUND_BACKOFF_MS
    setBounded(this.inboundBackoff, peer, this.deps.clock.now() + ms)
  }

  /** Forget expired backoffs and relay sessions never spoken on (the connection manager's round). */
  expire(now: number): void {
    for (const [id, until] of this.inboundBackoff) if (until <= now) this.inboundBackoff.delete(id)
    for (const [id, p] of this.pendingRelays) {
      if (now - p.at <= PENDING_RELAY_MS) break // oldest first
      this.pendingRelays.delete(id)
      bump(this.deps.counters, 'drop.signal.relay-unanswered')
    }
  }

  private newDial(from: string, mesh: boolean): Dial {
    const d: Dial = {
      peer: from,
      mesh,
      inbound: true,
      relays: 0,
      started: this.deps.clock.now(),
      waiters: [],
    }
    this.deps.dialer.dials.set(from, d)
    return d
  }

  /**
   * May `from` start a link setup now? Not while it is in backoff after a
   * failed one, not past MAX_INBOUND pending (MAX_INBOUND_STRANGERS for peers
   * the server never sampled for us), and not past maxLinks (a ring
   * neighbour, not past maxLinks + RING_EXTRA_LINKS). A refusal is
   * answered ('full') within a small budget, so a flood cannot make this node
   * flood the server; the rest are dropped and counted.
   */
  private admit(from: string, replaces = false): boolean {
    const { clock, counters, dialer, links } = this.deps
    const now = clock.now()
    if ((this.inboundBackoff.get(from) ?? 0) > now) {
      bump(counters, 'drop.signal.inbound-backoff')
      return false
    }
    let inbound = 0
    let strangers = 0
    for (const d of dialer.dials.values()) {
      if (!d.inbound) continue
      inbound++
      if (!this.deps.isSampled(d.peer)) strangers++
    }
    const stranger = !this.deps.isSampled(from)
    let reason: string | undefined
    const held = links.size + dialer.dials.size
    const { maxLinks } = this.deps.config
    // (An upgrade, or a setup that supersedes the open link, replaces a link it counts already.)
    if (
      !replaces &&
      (held >= maxLinks + RING_EXTRA_LINKS || (held >= maxLinks && !this.deps.ringNeighbour(from)))
    )
      reason = 'links'
    else if (inbound >= MAX_INBOUND) reason = 'inbound'
    else if (stranger && strangers >= MAX_INBOUND_STRANGERS) reason = 'strangers'
    if (reason === undefined) return true
    bump(counters, `drop.signal.inbound-full.${reason}`)
    if (this.answerBudget())
      void this.deps.signalClient.signal(from, { t: 'refuse', reason: 'full' }).catch(() => {})
    return false
  }

  /** A token of the budget for answers nobody waits on (refusals, relay-gone): REFUSE_BURST, then REFUSALS_PER_SEC. */
  private answerBudget(): boolean {
    const now = this.deps.clock.now()
    this.refuseTokens = Math.min(
      REFUSE_BURST,
      this.refuseTokens + ((now - this.refuseAt) / 1000) * REFUSALS_PER_SEC,
    )
    this.refuseAt = now
    if (this.refuseTokens < 1) return false
    this.refuseTokens--
    return true
  }

  /** A peer announced a relay session: wait for its hello before setting anything up (MAX_PENDING_RELAYS). */
  private notePendingRelay(from: string, s: { sid: number; mesh: boolean }): void {
    const now = this.deps.clock.now()
    const { counters } = this.deps
    if ((this.inboundBackoff.get(from) ?? 0) > now) return bump(counters, 'drop.signal.inbound-backoff')
    // A new session replaces one the peer announced and never spoke on.
    if (this.pendingRelays.delete(from)) bump(counters, 'drop.signal.relay-unanswered')
    this.pendingRelays.set(from, { sid: s.sid, mesh: s.mesh, at: now })
    if (this.pendingRelays.size > MAX_PENDING_RELAYS) {
      const oldest = this.pendingRelays.keys().next().value
      if (oldest !== undefined) this.pendingRelays.delete(oldest)
      bump(counters, 'drop.signal.relay-pending-full')
    }
  }

  /**
   * The first frame of a relay session a peer announced: its hello (small,
   * uncompressed, Kind.Link) starts the setup, if an inbound slot is free;
   * anything else is dropped unread and the peer backs off.
   */
  private acceptRelay(from: string, p: { sid: number; mesh: boolean }, frame: Uint8Array): void {
    this.pendingRelays.delete(from)
    if (this.deps.closed()) return
    const { dialer } = this.deps
    if (!isHandshakePiece(frame.subarray(4))) {
      bump(this.deps.counters, 'drop.before-auth')
      setBounded(this.inboundBackoff, from, this.deps.clock.now() + INBOUND_BACKOFF_MS)
      return
    }
    const existing = dialer.dials.get(from)
    if (existing) {
      // We started a setup with it meanwhile: its session joins that one, as its signal would have.
      dialer.startRelay(existing, p.sid)
      if (existing.relay?.sid === p.sid) existing.relay.deliver(frame)
      return
    }
    // (A session other than the open link's, if any: it replaces that link once it opens.)
    const linked = this.deps.links.get(from)
    const supersedes = linked?.state === 'open' ? linked : undefined
    if (!this.mayReplace(supersedes, 'supersede') || !this.admit(from, supersedes !== undefined)) return
    const d = this.newDial(from, p.mesh)
    if (supersedes) {
      d.supersedes = supersedes
      this.upgradesTaken.set(supersedes, (this.upgradesTaken.get(supersedes) ?? 0) + 1)
    }
    dialer.startRelay(d, p.sid)
    d.relay?.deliver(frame)
  }
}

/** Set `key` in a map kept to MAX_BACKOFF entries (re-inserted keys move to the end; the oldest go). */
export function setBounded<K, V>(m: Map<K, V>, key: K, value: V): void {
  m.delete(key)
  m.set(key, value)
  if (m.size > MAX_BACKOFF) {
    const oldest = m.keys().next().value
    if (oldest !== undefined) m.delete(oldest)
  }
}
