/**
 * One node's protocols, composed once: the mesh (broadcast), the sync table
 * and presence on top of it, the Chord ring and the router (routed unicast
 * and requests). The browser node and the Node peer (client/overlay.ts) and the
 * simulator (sim-net.ts) all build a node with `createNodeCore`, so the
 * simulator runs the wiring the product runs: the same topics, the same
 * dispatch, the same checks.
 *
 * What the core does, and the host does not:
 *
 * - keys: every protocol verifies others' signatures through one keyring
 *   that refuses keys below the network's identity puzzle
 *   (`drop.identity.puzzle`); our own key must meet it. Everything it
 *   signs or checks is scoped to the network's name, so an identity's
 *   record, entry or broadcast in one network cannot be replayed in another.
 * - dispatch: a frame body from a peer becomes a typed message once
 *   (`parse`, messages.ts) and goes to its protocol (`handle`). Sync's
 *   anti-entropy is taken from mesh neighbours only (`drop.sync.not-mesh`:
 *   sync forgets the per-peer state, budget included, of any other peer),
 *   and so are presence's pulls and dumps (`drop.presence.not-mesh`).
 * - topics: sync updates travel as mesh broadcasts on SYNC_TOPIC, presence
 *   records on PRESENCE_TOPIC (topics.ts); other broadcasts and routed messages go to the application's
 *   subscribers (`subscribe`).
 * - routing: the next hop toward a node is a direct link, else an open link
 *   closer on the ring (greedy), else Chord's next hop (`nextHop`).
 * - time and links: `tick(now)` drives every protocol; `meshUp`/`meshDown`
 *   when a link starts or stops carrying the mesh; `linkDown` when any link
 *   closes. On close the host calls `presence.leave()` and keeps its links
 *   about a second, so the leave record spreads (PROTOCOL-presence.md).
 * - counters: `stats()`, every protocol's counters by name.
 *
 * The host gives what it alone knows: links (which are open, which carry the
 * mesh), sending over them, opening one (on demand, or outside the ring),
 * the clock and randomness, and link-setup signals.
 */
import { id160, utf8 } from '../bytes.ts'
import { type Chord, type ChordDeps, type ChordOptions, createChord } from '../chord/chord.ts'
import { between, betweenRightIncl } from '../chord/ring.ts'
import { type Keyring, scopedKeyring } from '../identity/keys.ts'
import { checkPuzzleBits, DEFAULT_PUZZLE_BITS, meetsPuzzle } from '../identity/puzzle.ts'
import { createMesh, type Mesh, type MeshDelivery, type MeshOptions } from '../mesh/mesh.ts'
import { createPresence, type Presence, type PresenceOptions } from '../presence/presence.ts'
import { bump, type Counters } from '../protocol.ts'
import type { Hop, Router, RouterOptions } from '../router/options.ts'
import { createRouter } from '../router/router.ts'
import { parseSyncMsg } from '../sync/messages.ts'
import { createSync, type Sync, type SyncOptions } from '../sync/sync.ts'
import { createTopics, type Topics, type TopicsOptions } from '../topics/topics.ts'
import type { Value } from '../types.ts'
import { Kind } from '../wire/frame.ts'
import { type NodeMsg, parseNodeMsg } from './messages.ts'
import { isInternalTopic, PRESENCE_TOPIC, SYNC_TOPIC } from './topics.ts'

export interface NodeCoreDeps {
  /** This node's id (40 lowercase hex characters). */
  readonly id: string
  /** This node's keys (real ones, or the simulator's fakes). */
  readonly keys: Keyring
  /** Milliseconds; a virtual clock in the simulator. */
  now(): number
  /** Uniform in [0, 1); seeded in the simulator. */
  random(): number
  /**
   * Send over the open link to `to`; with none open it is dropped (the host
   * counts it). A rejection reports a failure the sender can act on
   * (MessageTooLargeError, a link that closed).
   */
  send(to: string, m: NodeMsg): void | Promise<void>
  /**
   * Send over the link to `to`, opening one on demand (Chord's fingers, a routed hop); best effort.
   * `unreachable`: called if that link cannot be opened (the router's RouterDeps.sendVia).
   */
  sendVia(to: string, m: NodeMsg, unreachable?: () => void): void
  /** Open a link to `to` outside the ring (the signal server); resolves once it is open. */
  connect(to: string): Promise<void>
  /** Nodes with an open link now (mesh or not). */
  linked(): Iterable<string>
  isLinked(peer: string): boolean
  /** Nodes whose link carries the mesh now. */
  meshNeighbours(): string[]
  /** A link-setup signal from `from`, routed or over the link with it (`overLink`). */
  onSignal?(from: string, data: Value, overLink: boolean): void
  /** A link-setup signal the ring could not place: send it to `dst` another way (the signal server). */
  resendSignal?(dst: string, data: Value): void
  /** An application callback (a subscriber) threw: the host reports it. @default ignored (counted) */
  reportError?(err: unknown): void
  /** A key's ring position (the simulator's synchronous SHA-256). @default WebCrypto */
  keyPosition?: ChordDeps['keyPosition']
  /** Where the core counts (the host's own bag, so one bag holds the node's counters). @default a bag of its own */
  counters?: Counters
  /** A linked peer sent what no honest node sends (SignedProtocolDeps.misbehaved). @default ignored */
  misbehaved?(peer: string, what: string): void
}

export interface NodeCoreOptions {
  /**
   * The network's identity puzzle (shared/identity/puzzle.ts): signatures
   * by keys below it are refused, and our own key must meet it.
   * @default 10 (DEFAULT_PUZZLE_BITS)
   */
  puzzleBits?: number
  /** The network's name: signatures are over `weft-scope/1\n` ‖ name ‖ `\n` ‖ the rest. @default '' */
  network?: string
  mesh?: MeshOptions
  sync?: SyncOptions
  chord?: ChordOptions
  router?: RouterOptions
  /**
   * Presence's options, or false for a node without presence (a simulator
   * testing another protocol, which need not pay for the announcements).
   * @default {}
   */
  presence?: PresenceOptions | false
  /**
   * Topic multicast's options (shared/topics/), or false for a node that
   * neither joins topic trees nor serves as a root (publish then fails).
   * @default {}
   */
  topics?: TopicsOptions | false
}

export type Subscriber = (data: Value, meta: { from: string; hops: number }) => void

export interface NodeCore {
  readonly id: string
  /** The keyring every protocol uses: ours, refusing others' keys below the puzzle. */
  readonly keys: Keyring
  readonly mesh: Mesh
  readonly sync: Sync
  readonly chord: Chord
  readonly router: Router
  /** Who is present in the network (null when built with `presence: false`). */
  readonly presence: Presence | null
  /** Topic multicast (null when built with `topics: false`). */
  readonly topics: Topics | null
  /** The core's own counters, in the host's bag when it gave one (the protocols keep theirs; `stats()` has them all). */
  readonly counters: Counters
  /** A decoded frame body of `kind` from a peer: typed, or null when it breaks its protocol's grammar. */
  parse(kind: number, body: Value): NodeMsg | null
  /** A message from linked node `from`, to its protocol. */
  handle(from: string, m: NodeMsg): Promise<void>
  tick(now: number): Promise<void>
  /** The link to `peer` carries the mesh now. */
  meshUp(peer: string): Promise<void>
  /** The link to `peer` no longer carries the mesh (it may stay open). */
  meshDown(peer: string): Promise<void>
  /** The link to `peer` closed. */
  linkDown(peer: string): Promise<void>
  /** Broadcast `data` on `topic` to every node (ourselves included); resolves to the broadcast's id. */
  broadcast(topic: string, data: Value): Promise<string>
  /** Multicast `data` to the subscribers of `topic` (ourselves included, if we subscribe); resolves to its id. */
  publish(topic: string, data: Value): Promise<string>
  /**
   * Called with broadcasts and publications on `topic` and unicast messages
   * to it; the first subscriber of an application topic joins its multicast
   * tree, the last one's undo leaves it. Returns the undo.
   */
  subscribe(topic: string, fn: Subscriber): () => void
  /** Links this node must keep open: the ring's (Chord) and its topic trees'. */
  neededLinks(): Set<string>
  /** The next hop toward `dst` (see the header), or null. */
  nextHop(dst: string): Hop | null
  /** Is this node on a ring with others (a successor other than itself)? */
  onRing(): boolean
  /** Resolves once the work the core started on its own (sync and presence broadcasts, their handling) has finished. */
  settled(): Promise<void>
  /** Every counter of every protocol: `mesh.*`, `sync.*`, `dht.*`, `presence.*`, the router's and the core's. */
  stats(): Record<string, number>
  /** Pending requests fail (ClosedError). The host leaves the ring before, if it wants to. */
  close(): void
}

const SETTLED: Promise<void> = Promise.resolve()

export function createNodeCore(deps: NodeCoreDeps, options: NodeCoreOptions = {}): NodeCore {
  const self = deps.id
  const counters: Counters = deps.counters ?? {}
  const count = (key: string) => () => bump(counters, key)
  const puzzleBits = checkPuzzleBits(options.puzzleBits ?? DEFAULT_PUZZLE_BITS)
  if (!meetsPuzzle(deps.keys.publicKey, puzzleBits))
    throw new TypeError(`this identity does not meet the network's puzzle (puzzleBits ${puzzleBits})`)
  const scoped = scopedKeyring(deps.keys, options.network ?? '')
  const keys: Keyring = {
    ...scoped,
    verify: async (pk, data, sig) => {
      if (meetsPuzzle(pk, puzzleBits)) return scoped.verify(pk, data, sig)
      bump(counters, 'drop.identity.puzzle')
      return false
    },
  }
  const misbehaved = (peer: string, what: string) => deps.misbehaved?.(peer, what)
  const base = { id: self, keys, now: () => deps.now(), random: () => deps.random(), misbehaved }
  const subscribers = new Map<string, Set<Subscriber>>()
  /** Work the core started on its own, for settled(). */
  const inflight = new Set<Promise<unknown>>()
  const track = (p: Promise<unknown>) => {
    inflight.add(p)
    void p.finally(() => inflight.delete(p))
  }

  const mesh = createMesh(
    {
      ...base,
      neighbours: () => deps.meshNeighbours(),
      send: (to, msg) => sendOpen(to, { kind: Kind.Mesh, msg }),
    },
    options.mesh,
  )
  const sync = createSync(
    {
      ...base,
      neighbours: () => deps.meshNeighbours(),
      send: (to, msg) => sendOpen(to, { kind: Kind.Sync, msg }),
      broadcast: (msg) => track(mesh.broadcast(SYNC_TOPIC, msg).catch(count('sync.broadcast-failed'))),
    },
    options.sync,
  )
  const chord = createChord(
    {
      ...base,
      send: (to, msg, unreachable) => {
        if (to !== self) deps.sendVia(to, { kind: Kind.Chord, msg }, unreachable)
      },
      linked: (peer) => deps.isLinked(peer),
      ...(deps.keyPosition ? { keyPosition: deps.keyPosition } : {}),
    },
    options.chord,
  )
  const router = createRouter(
    {
      ...base,
      nextHop,
      send: (to, msg) => deps.send(to, { kind: Kind.Route, msg }),
      sendVia: (to, msg, unreachable) => deps.sendVia(to, { kind: Kind.Route, msg }, unreachable),
      connect: (to) => deps.connect(to),
      ...(deps.onSignal ? { onSignal: deps.onSignal } : {}),
      ...(deps.resendSignal ? { resendSignal: deps.resendSignal } : {}),
    },
    options.router,
  )
  const presence: Presence | null =
    options.presence === false
      ? null
      : createPresence(
          {
            ...base,
            neighbours: () => deps.meshNeighbours(),
            send: (to, msg) => sendOpen(to, { kind: Kind.Presence, msg }),
            // Presence awaits it and counts a failure (`presence.broadcastFailed`).
            broadcast: (record) => mesh.broadcast(PRESENCE_TOPIC, record),
            // A node reported crashed: if it is a ring neighbour, Chord checks on it at its fast pace.
            suspect: (id) => chord.peerDown(id),
          },
          options.presence,
        )

  const keyPosition = deps.keyPosition
  const topics: Topics | null =
    options.topics === false
      ? null
      : createTopics(
          {
            ...base,
            send: (to, msg) => {
              if (to !== self) deps.sendVia(to, { kind: Kind.Topic, msg })
            },
            lookup: async (pos) => (await chord.lookup(pos)).node,
            owns: (pos) => {
              // The key's successor owns it: it lies in (predecessor, us]. Alone, we own every key.
              if (!onRing()) return true
              const pred = chord.predecessor()
              return pred !== null && betweenRightIncl(pos, pred, self)
            },
            request: (to, method, data, opts) => router.request(to, method, data, opts),
            serve: (method, fn) => router.serve(method, fn),
            keyPosition: (topic) => {
              const s = `weft-topic:${topic}`
              return keyPosition ? keyPosition(s) : id160(utf8(s))
            },
            deliver: (topic, data, meta) => void deliver(topic, data, meta),
          },
          options.topics,
        )

  /** Mesh and sync talk to linked neighbours only; a failure is theirs to get over (counted). */
  function sendOpen(to: string, m: NodeMsg): void {
    Promise.resolve(deps.send(to, m)).catch(count('send.failed'))
  }

  function onRing(): boolean {
    return !chord.successors().every((s) => s === self)
  }

  function nextHop(dst: string): Hop | null {
    if (deps.isLinked(dst)) return { via: dst, open: true }
    // Greedy over open links: the linked node that most closely precedes dst, strictly closer than us.
    // It gets through while Chord's views are still settling, and never passes dst, so nothing circles.
    if (onRing()) {
      let best: string | null = null
      for (const peer of deps.linked()) {
        if (!between(peer, self, dst)) continue
        if (best === null || between(peer, best, dst)) best = peer
      }
      if (best !== null) return { via: best, open: true }
    }
    const via = chord.nextHop(dst)
    return via === null || via === self ? null : { via, open: deps.isLinked(via) }
  }

  function deliver(topic: string, data: Value, meta: { from: string; hops: number }): boolean {
    const subs = subscribers.get(topic)
    if (!subs) return false
    for (const fn of [...subs]) {
      try {
        fn(data, meta)
      } catch (err) {
        bump(counters, 'subscriber.threw')
        deps.reportError?.(err)
      }
    }
    return true
  }

  mesh.onDeliver((d: MeshDelivery) => {
    if (d.topic === SYNC_TOPIC) {
      if (d.hops === 0) return // our own: the table has it already
      const m = parseSyncMsg(d.data)
      if (!m) return bump(counters, 'drop.sync-broadcast')
      track(sync.handleBroadcast(d.origin, m).catch(count('sync.error')))
      return
    }
    if (d.topic === PRESENCE_TOPIC) {
      // Our own record is ours already; another's is checked again by presence (it passes it on in dumps).
      if (d.hops === 0) return
      if (!presence) return bump(counters, 'drop.internal-topic')
      track(presence.handleBroadcast(d.origin, d.data).catch(count('presence.error')))
      return
    }
    if (isInternalTopic(d.topic)) return bump(counters, 'drop.internal-topic')
    deliver(d.topic, d.data, { from: d.origin, hops: d.hops })
  })
  router.onMessage((m) => {
    if (!deliver(m.topic, m.data, { from: m.from, hops: m.hops })) bump(counters, 'unicast.no-subscriber')
  })

  const tickError = count('tick.error')

  async function meshDown(peer: string): Promise<void> {
    presence?.linkDown(peer)
    await Promise.all(
      [mesh.linkDown(peer), sync.linkDown?.(peer)].map((p) => Promise.resolve(p).catch(tickError)),
    )
  }

  return {
    id: self,
    keys,
    mesh,
    sync,
    chord,
    router,
    presence,
    topics,
    counters,

    parse: parseNodeMsg,

    async handle(from, m) {
      switch (m.kind) {
        case Kind.Mesh:
          return mesh.handle(from, m.msg)
        case Kind.Route:
          return router.handle(from, m.msg)
        case Kind.Sync:
          if (!deps.meshNeighbours().includes(from)) return bump(counters, 'drop.sync.not-mesh')
          return sync.handle(from, m.msg)
        case Kind.Chord:
          return chord.handle(from, m.msg)
        case Kind.Presence:
          if (!presence || !deps.meshNeighbours().includes(from))
            return bump(counters, 'drop.presence.not-mesh')
          return presence.handle(from, m.msg)
        case Kind.Topic:
          if (!topics) return bump(counters, 'drop.topics.off')
          return topics.handle(from, m.msg)
      }
    },

    async tick(now) {
      await Promise.all(
        [mesh.tick(now), sync.tick(now), chord.tick(now)].map((p) => Promise.resolve(p).catch(tickError)),
      )
      // Our links are live nodes: one between us and a ring neighbour means a second ring to merge.
      chord.consider(deps.linked())
      router.tick(now)
      try {
        presence?.tick(now)
      } catch {
        tickError()
      }
      // Trees are joined once the ring is there: alone, a node would root every topic, then hand them all off.
      if (topics && onRing()) await Promise.resolve(topics.tick(now)).catch(tickError)
    },

    async meshUp(peer) {
      await Promise.all(
        [mesh.linkUp(peer), sync.linkUp?.(peer)].map((p) => Promise.resolve(p).catch(tickError)),
      )
      // After the mesh knows the link: a join's first record then goes out over it.
      presence?.linkUp(peer)
    },

    meshDown,

    async linkDown(peer) {
      router.linkDown(peer)
      topics?.linkDown(peer)
      // A ring neighbour's link died: Chord leaves its idle back-off to check on it.
      chord.peerDown(peer)
      // Presence reports a mesh neighbour lost if it stays away (before meshDown: it asks whether
      // the link carried the mesh).
      presence?.linkClosed(peer)
      await meshDown(peer)
    },

    broadcast: (topic, data) => mesh.broadcast(topic, data),

    publish(topic, data) {
      if (!topics) return Promise.reject(new Error('topic multicast is off on this node'))
      return topics.publish(topic, data)
    },

    subscribe(topic, fn) {
      let set = subscribers.get(topic)
      if (!set) {
        // First: it throws past the topics a node may join, before anything changed.
        if (topics && !isInternalTopic(topic)) topics.join(topic)
        set = new Set()
        subscribers.set(topic, set)
      }
      const mine = set
      mine.add(fn)
      return () => {
        mine.delete(fn)
        if (mine.size === 0 && subscribers.get(topic) === mine) {
          subscribers.delete(topic)
          if (topics && !isInternalTopic(topic)) topics.leave(topic)
        }
      }
    },

    neededLinks() {
      const need = chord.neededLinks()
      if (topics) for (const peer of topics.neighbours()) need.add(peer)
      return need
    },

    nextHop,
    onRing,

    settled() {
      // Hosts and simulators ask after every event: when nothing runs, no promise is made.
      if (inflight.size === 0) return presence ? presence.settled() : SETTLED
      return (async () => {
        for (;;) {
          if (presence) await presence.settled()
          if (inflight.size === 0) return
          await Promise.all([...inflight])
        }
      })()
    },

    stats() {
      const out: Record<string, number> = {
        ...prefixed('mesh.', mesh.counters),
        ...prefixed('sync.', sync.counters),
        ...prefixed('dht.', chord.counters),
        ...(presence ? prefixed('presence.', presence.counters) : {}),
        ...(topics ? prefixed('topics.', topics.counters) : {}),
        dhtRecords: chord.storedKeys(),
        syncEntries: sync.size().live,
      }
      // The router's names and the core's (or the host's) are distinct; were one in both, it is the sum.
      for (const bag of [router.counters, counters])
        for (const [k, v] of Object.entries(bag)) out[k] = (out[k] ?? 0) + v
      return out
    },

    close() {
      topics?.close()
      router.close()
    },
  }
}

function prefixed(prefix: string, c: Counters): Counters {
  const out: Counters = {}
  for (const [k, v] of Object.entries(c)) out[prefix + k] = v
  return out
}
