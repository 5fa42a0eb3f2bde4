/**
 * The node's host: it hosts the node's protocols, one composition of mesh,
 * sync, presence, Chord and router (shared/node, `createNodeCore`, the same the
 * simulator runs), and gives them what only the environment has: links, the
 * clock, and link-setup signals.
 *
 * The parts, one concept each:
 * - transport.ts: where links come from. Production: signal-transport.ts,
 *   links over WebRTC or the signal server's relay, set up by dialer.ts
 *   (with inbound.ts and signal-data.ts); or a transport given in `Env`
 *   (an in-memory test network), with the `Clock` given to the constructor;
 * - connections.ts: which links to keep (targets, candidates, PEX, idle and
 *   budget closing) and on-demand sends;
 * - link-table.ts: the open links, one per peer;
 * - persistence.ts: the table and DHT snapshots;
 * - entry.ts: the first link and the Chord ring;
 * - this file: the glue. Each frame a link accepts is parsed once, by the
 *   core's parser inside the link's validator (within the link's decode
 *   budget), and the typed message goes to the core; links coming up, going
 *   down and changing mesh role are told to the core; the clock drives the
 *   core's tick.
 *
 * The public API (what `joinOverlay` returns) is a facade over this host.
 */
import { deriveNetworkKeys, type NetworkKeys, networkTag } from '../../shared/crypto/network.ts'
import { ClosedError, NoRouteError } from '../../shared/errors.ts'
import type { Identity } from '../../shared/identity/keys.ts'
import { checkPuzzleBits, DEFAULT_PUZZLE_BITS } from '../../shared/identity/puzzle.ts'
import { createNodeCore, type NodeCore, type NodeMsg, nodeMsgBody } from '../../shared/node/index.ts'
import type { Presence } from '../../shared/presence/presence.ts'
import { bump, type Counters } from '../../shared/protocol.ts'
import type { PeerInfo } from '../../shared/signal-events.ts'
import type { Value } from '../../shared/types.ts'
import { type Frame, Kind } from '../../shared/wire/frame.ts'
import { Emitter } from '../emitter.ts'
import type { Link } from '../links/link.ts'
import { type ContentSealer, contentSealer, privateTable } from '../private-content.ts'
import type { SignalClient, SignalState } from '../signal-client.ts'
import { noStorage } from '../storage.ts'
import type { NodeEvents } from '../weft-node.ts'
import { type Clock, realClock, type TimerId } from './clock.ts'
import { ConnectionManager, MANAGE_MS, PEX_MS } from './connections.ts'
import type { Dialer } from './dialer.ts'
import { Entry } from './entry.ts'
import type { Inbound } from './inbound.ts'
import { LinkTable, type NodeLink } from './link-table.ts'
import { type Env, type JoinOptions, type NodeConfig, resolveConfig } from './options.ts'
import { Persistence } from './persistence.ts'
import { SignalTransport } from './signal-transport.ts'
import { Strikes } from './strikes.ts'
import { markPhase } from './timeline.ts'
import type { Transport } from './transport.ts'

/** close() waits at most this long for the successor to take our records. */
const LEAVE_TIMEOUT_MS = 5000
/** How often the core's protocols are ticked. */
const TICK_MS = 100
/**
 * close() keeps the links this long after presence's leave record went out:
 * the mesh relays it from them and repairs lost copies (GRAFT after 500 ms),
 * so every node sees the leave at once rather than after the crash bound.
 */
const PRESENCE_LINGER_MS = 1000

/**
 * A protocol the host carries beside the core's, attached after start: the
 * files swarm (client/files/engine.ts), which loads on first use so a page
 * without files does not pay for it. Its frames (of `kind`) are parsed by
 * the link's validator like the core's; before it is attached they are
 * dropped (`drop.frame.invalid`).
 */
export interface HostedProtocol<M = unknown> {
  readonly kind: Kind
  parse(body: Value): M | null
  handle(from: string, msg: M): Promise<void>
  tick(now: number): void
  linkDown(peer: string): void
  close(): void
  readonly counters: Counters
}

export class NodeHost extends Emitter<NodeEvents> {
  readonly id: string
  readonly network: string
  readonly identity: Identity
  readonly config: NodeConfig
  /** One bag for the node: the core's drops (identity puzzle, sync off the mesh, ...) beside the links'. */
  readonly counters: Counters = {}
  readonly clock: Clock
  /** The node's protocols (mesh, sync, Chord, router), composed once: shared/node. */
  readonly core: NodeCore
  readonly links = new LinkTable()
  /** Where links come from (transport.ts): the signal server's, or one given in Env. */
  readonly transport: Transport
  readonly manager: ConnectionManager
  readonly persistence: Persistence
  /** The first link and the ring (entry.ts). */
  readonly entry: Entry
  /** The network's identity puzzle (JoinOptions.puzzleBits). */
  readonly puzzleBits: number
  /** Who is present (shared/presence): the core's, which the host always builds. */
  protected readonly presenceNode: Presence
  /** The network as the signal server knows it: a hash of its name (shared/crypto/network.ts). */
  readonly networkTag: string
  /** A private network's keys (JoinOptions.secret), derived at start. */
  networkKeys: NetworkKeys | undefined
  /** Its content sealing, and the table as the application sees it (client/private-content.ts). */
  content: ContentSealer | undefined
  privTable: ReturnType<typeof privateTable> | undefined
  private readonly secret: string | undefined
  protected readonly env: Env
  private readonly timers: TimerId[] = []
  private closed = false
  /**
   * Frame bodies the link checked with the core's parser, and the typed message it made (the link's
   * validators answer yes or no, within its decode budget): onFrame takes the message from here, so
   * each body is parsed once. Weak: a body the link dropped leaves nothing behind.
   */
  private readonly parsed = new WeakMap<object, NodeMsg>()
  /** Protocols attached beside the core's (attach), by frame kind; and their parsed messages, as `parsed`. */
  private readonly hosted = new Map<Kind, HostedProtocol>()
  private readonly hostedParsed = new WeakMap<object, unknown>()
  readonly strikes: Strikes

  constructor(env: Env, opts: JoinOptions, clock: Clock = realClock) {
    super()
    this.env = env
    this.clock = clock
    this.config = resolveConfig(opts)
    this.identity = env.identity
    this.id = env.identity.id
    const puzzleBits = checkPuzzleBits(opts.puzzleBits ?? DEFAULT_PUZZLE_BITS)
    this.puzzleBits = puzzleBits
    this.network = this.config.network
    this.networkTag = networkTag(this.network)
    this.secret = opts.secret
    const { counters, links } = this
    const random = env.random ?? Math.random
    const drop = (peer: string) => links.get(peer)?.close('misbehaved')
    this.strikes = new Strikes({ now: () => clock.now(), drop, counters })
    // Throws (TypeError) when our own key does not meet the network's puzzle.
    this.core = createNodeCore(
      {
        id: this.id,
        keys: env.identity,
        now: () => clock.now(),
        random,
        send: (to, m) => this.sendOpen(to, m),
        sendVia: (to, m, unreachable) => this.manager.sendVia(to, frameOf(m), unreachable),
        connect: async (to) => void (await this.transport.dial(to, false)),
        linked: () => links.openPeers(),
        isLinked: (peer) => links.isOpen(peer),
        meshNeighbours: () => links.meshNeighbours(),
        onSignal: (from, data, overLink) => this.transport.onSignal(from, data, overLink),
        resendSignal: (dst, data) => this.transport.resendSignal(dst, data),
        reportError: (err) =>
          queueMicrotask(() => {
            throw err
          }),
        counters,
        misbehaved: (peer, what) => this.strikes.strike(peer, what),
      },
      {
        puzzleBits,
        network: this.network,
        router: {
          maxMessageBytes: this.config.maxMessageBytes,
          requestTimeoutMs: this.config.requestTimeoutMs,
          // Envelopes sealed to their destination: the nodes that forward them read the head only.
          seal: true,
        },
        // One hop may need a link opened first (signalling, ICE, the key proof).
        chord: { requestTimeoutMs: 8000 },
        presence: opts.presence?.intervalMs === undefined ? {} : { intervalMs: opts.presence.intervalMs },
      },
    )
    if (!this.core.presence) throw new Error('the core was built without presence')
    this.presenceNode = this.core.presence
    this.presenceNode.onPresence((e) => this.emit('presence', e))
    const isClosed = () => this.closed
    const host = {
      identity: this.identity,
      config: this.config,
      puzzleBits,
      networkTag: this.networkTag,
      linkSecurity: () => ({
        network: this.networkTag,
        ...(this.networkKeys ? { networkKeys: this.networkKeys } : {}),
        // Our box record in the hello: a peer that later routes to us can seal at once.
        box: () => this.core.router.boxRecord(),
      }),
      learnBox: (link: Link) => {
        if (link.remoteBox) this.core.router.learnBox(link.peer, link.remoteBox)
      },
      accessDenied: (peer: string) => this.entry.accessDenied(peer),
      counters,
      clock,
      links,
      validators: {
        [Kind.Mesh]: this.validator(Kind.Mesh),
        [Kind.Route]: this.validator(Kind.Route),
        [Kind.Sync]: this.validator(Kind.Sync),
        [Kind.Chord]: this.validator(Kind.Chord),
        [Kind.Presence]: this.validator(Kind.Presence),
        [Kind.Topic]: this.validator(Kind.Topic),
        [Kind.Swarm]: this.hostedValidator(Kind.Swarm),
      },
      overlay: this.core.router,
      opened: (link: NodeLink) => this.linkOpened(link),
      upgraded: (link: NodeLink, old: NodeLink) => this.linkUpgraded(link, old),
      closed: (link: NodeLink, reason: string) => this.linkClosed(link, reason),
      failed: (peer: string) => this.manager.dialFailed(peer),
      sampled: (peers: PeerInfo[]) => this.manager.addSampled(peers),
      isSampled: (peer: string) => this.manager.sampled.has(peer),
      ringNeighbour: (peer: string) => this.core.chord.ringNeighbour(peer),
      relayMismatch: (peer: string) => this.entry.relayMismatch(peer),
      signalState: (state: SignalState) => this.emit('signal', state),
      isClosed,
    }
    this.transport = env.transport
      ? env.transport(host)
      : new SignalTransport(host, {
          SimplePeer: env.SimplePeer,
          io: env.io,
          servers: Array.isArray(opts.signal) ? opts.signal : [opts.signal],
          ...(opts.timeoutMs === undefined ? {} : { joinTimeoutMs: opts.timeoutMs }),
          ...(env.preconnection ? { preconnection: env.preconnection } : {}),
          ...(env.prewarm && this.config.relay !== 'force' ? { onRegisterSent: env.prewarm } : {}),
        })
    this.manager = new ConnectionManager({
      id: this.id,
      config: this.config,
      counters,
      clock,
      random,
      links,
      dialer: this.transport,
      bootstrap: this.transport,
      neededLinks: () => this.core.neededLinks(),
      expire: (now) => this.transport.expire(now),
      meshRole: (link) => this.meshRole(link),
      closed: isClosed,
    })
    this.entry = new Entry({
      id: this.id,
      config: this.config,
      counters,
      clock,
      links,
      chord: this.core.chord,
      onLinkOpen: (fn) => this.on('peer:connect', fn),
      closed: isClosed,
    })
    this.persistence = new Persistence({
      storage: env.storage ?? noStorage,
      network: this.network,
      sync: this.core.sync,
      chord: this.core.chord,
      counters,
      clock,
      persistDht: this.config.persistDht === true,
    })
  }

  /** Connect to a signal server and open the first links. */
  async start(): Promise<void> {
    if (this.secret !== undefined) {
      this.networkKeys = await deriveNetworkKeys(this.network, this.secret)
      this.content = contentSealer(this.networkKeys)
      // Before the saved table is imported, so its versions are opened too.
      this.privTable = privateTable(this.core.sync, this.id, this.content)
    }
    // The table as this node last saw it (read while the node registers and dials; in before
    // joinOverlay resolves), then reconciled with the network by anti-entropy, which merges.
    const loading = this.persistence.load() // never rejects (a failed read is no snapshot)
    const peers = await this.transport.start()
    markPhase('registered')
    this.manager.sampledNow()
    // Dial the sampled peers now, not at the first round a second later (join time, issue 14).
    this.manager.manage()
    await loading
    markPhase('loaded')
    this.timers.push(this.clock.setInterval(() => this.tick(), TICK_MS))
    this.timers.push(this.clock.setInterval(() => this.manager.manage(), MANAGE_MS))
    this.timers.push(this.clock.setInterval(() => this.manager.sendPex(), PEX_MS))
    await this.entry.enter(peers)
    markPhase('joined')
  }

  /** Resolves once this node is on a Chord ring (joined through a peer, or the first one). */
  get ringReady(): Promise<void> {
    return this.entry.ringReady
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** Throws ClosedError once the node is closed. */
  assertOpen(): void {
    if (this.closed) throw new ClosedError()
  }

  /** The signal server's transport (this package's tests reach its parts); throws over another. */
  private get production(): SignalTransport {
    if (!(this.transport instanceof SignalTransport)) throw new TypeError('this node has another transport')
    return this.transport
  }

  get signalClient(): SignalClient {
    return this.production.signalClient
  }

  get dialer(): Dialer {
    return this.production.dialer
  }

  get inbound(): Inbound {
    return this.production.inbound
  }

  // ------------------------------------------------------------------ links

  /** Take `link`'s frames and control messages. */
  private listen(link: NodeLink): void {
    // A protocol handler that throws must not become an unhandled rejection (it would end a Node process).
    link.on('frame', (f) => {
      this.onFrame(link, f).catch(() => bump(this.counters, 'frame.error'))
    })
    link.on('control', (c) => this.manager.onControl(link, c))
  }

  private linkOpened(link: NodeLink): void {
    this.listen(link)
    if (link.isMesh) this.core.meshUp(link.peer).catch(() => {})
    this.emit('peer:connect', { id: link.peer })
    this.manager.opened(link)
  }

  /** A direct link took the place of a relayed one: the same peer, no departure, no new arrival. */
  private linkUpgraded(link: NodeLink, old: NodeLink): void {
    this.listen(link)
    if (link.isMesh !== old.isMesh) this.meshRole(link)
  }

  private linkClosed(link: NodeLink, reason: string): void {
    bump(this.counters, `link.closed.${reason.split(':')[0]}`)
    if (!this.links.remove(link)) return
    this.strikes.forget(link.peer)
    this.manager.forget(link, reason)
    // Requests waiting for its answer fail; it leaves the mesh.
    this.core.linkDown(link.peer).catch(() => {})
    for (const h of this.hosted.values()) h.linkDown(link.peer)
    this.emit('peer:disconnect', { id: link.peer })
    if (!this.closed) this.manager.manage()
  }

  /** A link's mesh role changed (or was confirmed): the core follows. */
  private meshRole(link: NodeLink): void {
    if (link.isMesh) this.core.meshUp(link.peer).catch(() => {})
    else this.core.meshDown(link.peer).catch(() => {})
  }

  /**
   * A message of the core over the open link to `to`. With none open it is
   * not sent (`send.no-link`) and the promise rejects, as it does when the
   * link refuses it (MessageTooLargeError): the router tells its caller.
   */
  private sendOpen(to: string, m: NodeMsg): Promise<void> {
    const l = this.links.get(to)
    if (l?.state !== 'open') {
      bump(this.counters, 'send.no-link')
      return Promise.reject(new NoRouteError(to, `no open link to ${to}`))
    }
    return l.send(frameOf(m))
  }

  /** A frame from `link`, checked by the link with the core's parser (see `parsed`): to its protocol. */
  private async onFrame(link: NodeLink, f: Frame): Promise<void> {
    if (this.closed) return
    const hosted = this.hosted.get(f.kind)
    if (hosted) {
      const msg = typeof f.body === 'object' && f.body !== null ? this.hostedParsed.get(f.body) : undefined
      if (msg === undefined) return bump(this.counters, 'drop.kind')
      return hosted.handle(link.peer, msg)
    }
    const m = typeof f.body === 'object' && f.body !== null ? this.parsed.get(f.body) : undefined
    if (!m || m.kind !== f.kind) return bump(this.counters, 'drop.kind')
    await this.core.handle(link.peer, m)
  }

  /** The link's validator for a kind of the core: parse, and keep the typed message for onFrame. */
  private validator(kind: NodeMsg['kind']): (body: Value) => boolean {
    return (body) => {
      const m = this.core.parse(kind, body)
      if (m && typeof body === 'object' && body !== null) this.parsed.set(body, m)
      return m !== null
    }
  }

  /** The link's validator for a hosted protocol's kind: its parser once attached, else a drop. */
  private hostedValidator(kind: Kind): (body: Value) => boolean {
    return (body) => {
      const hosted = this.hosted.get(kind)
      const m = hosted?.parse(body) ?? null
      if (m !== null && typeof body === 'object' && body !== null) this.hostedParsed.set(body, m)
      return m !== null
    }
  }

  /** Carry a protocol beside the core's (see HostedProtocol). One per kind. */
  attach(p: HostedProtocol): void {
    this.assertOpen()
    if (this.hosted.has(p.kind)) throw new TypeError(`a protocol of kind ${p.kind} is attached already`)
    this.hosted.set(p.kind, p)
  }

  /**
   * A frame of a hosted protocol to `to` over a direct link, opened on
   * demand (WebRTC or the relay); resolves once it is handed to the link
   * (after backpressure).
   */
  async sendDirect(to: string, frame: Frame): Promise<void> {
    const open = this.links.get(to)
    const link = open?.state === 'open' ? open : await this.transport.dial(to, false)
    await link.send(frame)
  }

  // ------------------------------------------------------------------ time

  private tick(): void {
    if (this.closed) return
    const now = this.clock.now()
    this.core.tick(now).catch(() => bump(this.counters, 'tick.error'))
    for (const h of this.hosted.values()) {
      try {
        h.tick(now)
      } catch {
        bump(this.counters, 'tick.error')
      }
    }
    this.persistence.tick(now)
    // Two nodes that started alone at once each made a ring: the one still alone joins through a neighbour.
    this.entry.checkAlone(now)
  }

  // ------------------------------------------------------------------ stats and close

  /** Links, traffic, the signal server's figures, and every protocol's counters. */
  stats(): Record<string, number> {
    const open = [...this.links.values()].filter((l) => l.state === 'open')
    return {
      peers: open.length,
      meshPeers: this.links.meshNeighbours().length,
      relayPeers: open.filter((l) => l.transport === 'relay').length,
      ...this.links.totals(),
      ...this.transport.stats(),
      ...this.core.stats(),
      ...this.networkKeys?.counters,
      ...Object.assign({}, ...[...this.hosted.values()].map((h) => h.counters)),
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    const leaving = this.clock.now()
    const onMesh = this.links.meshNeighbours().length > 0
    await Promise.all([
      // Presence's leave record: every node drops us now rather than after the crash bound.
      this.presenceNode.leave().catch(() => bump(this.counters, 'presence.leave-failed')),
      // Chord's voluntary departure: our records go to our successor (acknowledged) before the links close.
      Promise.race([
        this.core.chord.leave().catch(() => bump(this.counters, 'dht.leave-failed')),
        this.clock.sleep(LEAVE_TIMEOUT_MS),
      ]),
    ])
    // The links stay a moment for the mesh to relay and repair the leave record.
    const linger = PRESENCE_LINGER_MS - (this.clock.now() - leaving)
    if (onMesh && linger > 0) await this.clock.sleep(linger)
    this.closed = true
    for (const t of this.timers) this.clock.clearInterval(t)
    this.core.close()
    for (const h of this.hosted.values()) h.close()
    this.transport.failAll(new ClosedError())
    const hadLinks = this.links.size > 0
    for (const l of [...this.links.values()]) l.close('node-closed')
    // Goodbyes are written; give them a moment on the wire before the caller tears the page down.
    if (hadLinks) await this.clock.sleep(150)
    this.transport.close()
    await this.persistence.close()
    this.env.release?.()
    this.emit('closed', undefined)
    this.removeAll()
  }
}

/** The frame a message of the core travels in. */
function frameOf(m: NodeMsg): Frame {
  return { kind: m.kind, body: nodeMsgBody(m) }
}
