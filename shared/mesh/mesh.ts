/**
 * The mesh: network-wide broadcast by topic, with de-duplication, origin
 * signatures and Plumtree's epidemic broadcast tree.
 *
 * The base is p2p.today's three rules: the origin sends to its neighbours, a
 * receiver relays to all but the one it came from, nobody relays what it has
 * seen (a seen-cache bounded in entries and age), and a hop limit stops
 * runaways. Plain flooding by those rules sends every broadcast over every
 * link, once or twice: about degree − 1 payloads per node. Plumtree (Leitão,
 * Pereira, Rodrigues, "Epidemic Broadcast Trees", SRDS 2007) keeps the rules
 * but splits each node's links in two sets:
 *
 * - eager links carry the full payload at once (the three rules, on them);
 * - lazy links carry only IHAVE announcements (message ids, batched per
 *   tick).
 *
 * Every link starts eager (linkUp). A node that receives a payload it has
 * already seen answers PRUNE, and both ends make that link lazy. After the
 * first broadcast the eager links form a spanning tree, shared by every
 * origin, and a broadcast costs N − 1 payload sends whoever sends it. When a
 * tree link breaks, the nodes below it still hear IHAVEs on their lazy links
 * and GRAFT what they miss, which makes that link eager again: the tree
 * repairs itself where it broke.
 *
 * This file composes one node from its parts, one concept each:
 *
 * - receive.ts: checking a broadcast (size, hops, duplicate, replay window,
 *   origin, signature) and accepting it (trust, and the order of checks);
 * - push.ts: eager push and lazy push (the announcement rounds);
 * - tree.ts: PRUNE and the prune rule that keeps concurrent broadcasts'
 *   tree whole;
 * - optimise.ts: swapping a slow tree link for a faster lazy one (the
 *   paper's optimisation, judged on the traffic so the shared tree settles);
 * - routes.ts: per-origin routes, a shortest-hop tree of its own for an
 *   origin that broadcasts again and again, kept apart from the shared tree;
 * - repair.ts: IHAVE and GRAFT, the missing-message timers, rejoining;
 * - links.ts, and the bounded tables seen-cache.ts (the replay window),
 *   payload-cache.ts, missing.ts, pending.ts; messages.ts (the wire),
 *   options.ts (every option and its default).
 *
 * Messages from neighbours are parsed once (parseMeshMsg) and go to a
 * handler per type. Every table a neighbour can make grow is bounded in
 * entries, bytes and age; whatever is refused is counted by reason
 * (`drop.*`, PROTOCOL-mesh.md).
 */
import { MessageTooLargeError } from '../errors.ts'
import { bump, type Counters, type ProtocolNode } from '../protocol.ts'
import type { Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import type { Batches, MeshContext } from './context.ts'
import { LinkSets } from './links.ts'
import {
  type BroadcastBody,
  bodyValue,
  type MeshMsg,
  msgIdOf,
  NONCE_BYTES,
  parseMeshMsg,
} from './messages.ts'
import { MissingTable } from './missing.ts'
import { createOptimiser } from './optimise.ts'
import { type MeshDeps, type MeshOptions, resolveMeshOptions } from './options.ts'
import { MAX_PEERS_PER_ENTRY, PayloadCache } from './payload-cache.ts'
import { PendingChecks } from './pending.ts'
import { createPush } from './push.ts'
import { createReceive, type MeshDelivery } from './receive.ts'
import { createRepair } from './repair.ts'
import { createRoutes } from './routes.ts'
import { SeenCache } from './seen-cache.ts'
import { createTree } from './tree.ts'

export type { MeshDeps, MeshOptions, ResolvedMeshOptions } from './options.ts'
export { resolveMeshOptions } from './options.ts'
export type { MeshDelivery } from './receive.ts'

export interface Mesh extends ProtocolNode<MeshMsg> {
  /** Sign and send a broadcast; resolves to its id. Throws MessageTooLargeError when the payload exceeds maxPayloadBytes. */
  broadcast(topic: string, data: Value): Promise<string>
  /** Called once per broadcast this node accepts, its own included (hops 0). Returns an unsubscribe function. */
  onDeliver(fn: (d: MeshDelivery) => void): () => void
  /** Traffic and drops, by name (see the header of this file and PROTOCOL-mesh.md). */
  readonly counters: Counters
  handle(from: string, msg: MeshMsg): void | Promise<void>
  tick(now: number): void
  /** A link opened: it starts eager (on the tree). */
  linkUp(peer: string): void
  /** A link closed: it leaves both sets, and stops being asked for missing ids. */
  linkDown(peer: string): void
  /** Links pushed to eagerly now (the tree), and links announced to. For tests and the demo. */
  eagerPeers(): string[]
  lazyPeers(): string[]
  /** Entries (and bytes) held in each bounded table, to watch memory. */
  sizes(): MeshSizes
}

export interface MeshSizes {
  seen: number
  cached: number
  cachedBytes: number
  missing: number
  pending: number
  pendingBytes: number
  announceQueue: number
  /** Per-origin routes of this node's own, and neighbours' route requests held (routes.ts). */
  routes: number
  routeRequests: number
}

/** The handler of each message type, taking that type's parsed message. */
type Handlers = {
  [K in MeshMsg['type']]: (from: string, m: Extract<MeshMsg, { type: K }>) => void | Promise<void>
}

export function createMesh(deps: MeshDeps, options: MeshOptions = {}): Mesh {
  const opt = resolveMeshOptions(options)
  const ctx: MeshContext = {
    deps,
    opt,
    counters: {},
    links: new LinkSets(deps.id),
    seen: new SeenCache(opt.seenMax, opt.maxAgeMs, opt.maxSkewMs),
    cache: new PayloadCache(opt.cacheMax, opt.cacheMaxBytes, opt.cacheTtlMs),
    missing: new MissingTable(opt.missingMax, opt.missingPerPeer, MAX_PEERS_PER_ENTRY),
    pending: new PendingChecks(opt.pendingMax, opt.pendingMaxBytes, opt.maxCandidates, MAX_PEERS_PER_ENTRY),
  }
  const { counters, links, seen, cache, missing, pending } = ctx
  const listeners = new Set<(d: MeshDelivery) => void>()

  function deliver(d: MeshDelivery): void {
    bump(counters, 'delivered')
    for (const fn of [...listeners]) {
      try {
        fn(d)
      } catch {
        // The application's own listener failed; the protocol carries on.
        bump(counters, 'listenerErrors')
      }
    }
  }

  const routes = createRoutes(ctx)
  const push = createPush(ctx, routes)
  const optimiser = createOptimiser(ctx, push)
  links.onMove = (peer) => optimiser.moved(peer)
  const tree = createTree(ctx, push, optimiser)
  const receive = createReceive(ctx, push, tree, optimiser, routes, deliver)
  const repair = createRepair(ctx, push, optimiser, routes)

  const handlers: Handlers = {
    gossip: receive.onGossip,
    ihave: repair.onIHave,
    graft: repair.onGraft,
    prune: tree.onPrune,
    route: routes.onRoute,
  }

  function removeLink(peer: string): void {
    tree.forget(peer)
    links.remove(peer)
    routes.forget(peer)
    missing.removePeer(peer)
  }

  /** Follow the host's link table even if a linkUp/linkDown went missing. */
  function reconcile(): void {
    const ns = deps.neighbours()
    // Every tick of every node: the usual case (the same members) allocates nothing.
    if (ns.length === links.size && ns.every((p) => links.has(p))) return
    const now = new Set(ns)
    for (const p of now) if (!links.has(p)) links.add(p)
    for (const p of links.all()) if (!now.has(p)) removeLink(p)
  }

  // Each tick's IHAVE and GRAFT batches, per peer (emptied after every tick).
  const ihaves: Batches = new Map()
  const grafts: Batches = new Map()

  return {
    counters,

    eagerPeers: () => [...links.eager],
    lazyPeers: () => [...links.lazy],
    sizes: () => ({
      seen: seen.size,
      cached: cache.size,
      cachedBytes: cache.bytes,
      missing: missing.size,
      pending: pending.size,
      pendingBytes: pending.bytes,
      announceQueue: push.queued,
      routes: routes.size.routes,
      routeRequests: routes.size.asked,
    }),

    async broadcast(topic, data) {
      if (typeof topic !== 'string') throw new TypeError('topic must be a string')
      if (topic.length > opt.maxTopicLength)
        throw new TypeError(`topic longer than ${opt.maxTopicLength} characters`)
      const nonce = new Uint8Array(NONCE_BYTES)
      for (let i = 0; i < NONCE_BYTES; i++) nonce[i] = Math.floor(deps.random() * 256)
      const time = Math.floor(deps.now())
      const body: BroadcastBody = { origin: deps.id, key: deps.keys.publicKey, topic, data, nonce, time }
      const payload = encodeValue(bodyValue(body))
      if (payload.length > opt.maxPayloadBytes)
        throw new MessageTooLargeError(payload.length, opt.maxPayloadBytes)
      const sig = await deps.keys.sign(payload)
      const id = msgIdOf(sig)
      bump(counters, 'originated')
      receive.accept(id, body, { payload, sig, hops: 0 }, undefined, [])
      return id
    },

    onDeliver(fn) {
      listeners.add(fn)
      return () => void listeners.delete(fn)
    },

    // Not async: only a gossip's checks need a promise (the simulator awaits only what is one).
    handle(from, msg) {
      if (typeof from !== 'string' || from === deps.id) return void bump(counters, 'drop.malformed')
      // The host's frame is untrusted whatever its static type: parsed here, once.
      const m = parseMeshMsg(msg as Value)
      if (!m) return void bump(counters, 'drop.malformed')
      // Each handler takes its own type; the table is keyed by that type, so the pairing is sound.
      const handler = handlers[m.type] as (from: string, m: MeshMsg) => void | Promise<void>
      return handler(from, m)
    },

    tick(now) {
      reconcile()
      seen.expire(now)
      cache.expire(now)
      if (pending.size > 0) {
        const expired = pending.expire(now, opt.pendingTtlMs)
        if (expired > 0) bump(counters, 'drop.pendingExpired', expired)
      }
      tree.prunesDue(now)
      push.announce(now, ihaves)
      if (missing.size > 0) repair.graftMissing(now, grafts)
      repair.rejoin(grafts)
      for (const [peer, ids] of ihaves) push.sendIds(peer, 'ihave', ids)
      for (const [peer, ids] of grafts) push.sendIds(peer, 'graft', ids)
      ihaves.clear()
      grafts.clear()
    },

    linkUp(peer) {
      links.add(peer)
    },

    linkDown(peer) {
      removeLink(peer)
    },
  }
}
