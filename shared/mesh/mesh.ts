/**
 * The mesh: network-wide broadcast by topic, with de-duplication, origin
 * signatures and Plumtree's epidemic broadcast tree.
 *
 * The base is p2p.today's three rules: the origin sends to its neighbours, a
 * receiver relays to all but the one it came from, nobody relays what it has
 * seen (a seen-cache bounded in entries and age), and a hop limit stops
 * runaways. Plain flooding by those rules sends every
 * broadcast over every link, once or twice: about degree − 1 payloads per
 * node. Plumtree (Leitão, Pereira, Rodrigues, "Epidemic Broadcast Trees",
 * SRDS 2007) keeps the rules but splits each node's links in two sets:
 *
 * - eager links carry the full payload at once (the three rules, on them);
 * - lazy links carry only IHAVE announcements (message ids, batched per
 *   tick).
 *
 * Every link starts eager (linkUp). A node that receives a payload it has
 * already seen answers PRUNE, and both ends make that link lazy. After the
 * first broadcast the eager links form a spanning tree, shared by every
 * origin, and a broadcast costs N − 1 payload sends whoever sends it. When a
 * tree link breaks (a crash, a partition, a lost message) the nodes below it
 * still hear IHAVEs on their lazy links; an id heard of but not received
 * within `graftTimeoutMs` is fetched with GRAFT from an announcer, which also
 * makes that link eager again: the tree repairs itself where it broke. A node
 * left with no eager link GRAFTs one of its lazy links at once (an empty
 * GRAFT) to join the tree again.
 *
 * Concurrent broadcasts. As published, every duplicate prunes at once. When
 * several origins broadcast at the same moment, a link can bring one message
 * first and another as a duplicate; pruning on the duplicate cuts the first
 * one's tree, and a burst of 8 broadcasts on a fresh 256-node mesh leaves a
 * forest of ~40 pieces held together by GRAFTs (bench/sim-mesh.ts). Two
 * changes keep the tree whole:
 *
 * - the prune rule: messages are ranked by id. A duplicate of m over link L
 *   prunes L only if L has not lately (`treeMemoryMs`) brought this node
 *   first a message ranked before m. The node at the other end applies the
 *   same rule to the PRUNE (which names m) and refuses it with an empty
 *   GRAFT if L brought it an earlier-ranked message first. Both ends agree,
 *   and the tree of the earliest-ranked message of a burst is never cut, so
 *   the burst leaves exactly that tree;
 * - the PRUNE waits `pruneDelayMs`, so every message of a burst has crossed
 *   its links before any link is judged.
 *
 * Announcements. Round 0 goes to lazy links, and to the link the payload came
 * from, as an acknowledgement. Later rounds (`announceRounds`, every
 * `announceRepeatMs`) go to eager links that have not acknowledged: a
 * payload pushed on a tree link and lost is announced again until the child
 * has it or GRAFTs it. Over reliable channels this costs N − 1 ids per
 * broadcast and nothing more; it is what keeps coverage at 1.0 when the
 * transport loses messages (the simulator's loss, a link that dies with
 * messages in flight). One round is Plumtree as published.
 *
 * Trust. Each broadcast carries the origin's public key and id and the time
 * it was signed, and is signed over its exact bytes (messages.ts); the id of
 * a broadcast comes from its signature. A copy is checked in this order,
 * cheapest first: shape, size and hop count; duplicate (seen-cache, then
 * pending verification: the same bytes arriving while a check runs are
 * merged, never delivered twice); then decoding, the replay window (the
 * signed time within `maxAgeMs` before and `maxSkewMs` after the local
 * clock, and above the seen-cache's floor, seen-cache.ts), origin id =
 * idOf(key), and the signature. Only then is it recorded as seen, delivered
 * and relayed. A replay, however late and after however many others, is
 * either still in the seen-cache or refused by the window. Whatever fails is dropped and
 * counted by reason (`drop.*` counters). Every table a neighbour can make
 * grow (pending checks, missing ids, cached payloads, the seen-cache) is
 * bounded in entries, bytes and age.
 */
import { bytesEqual, toHex } from '../bytes.ts'
import { MessageTooLargeError } from '../errors.ts'
import { DEFAULT_MAX_SKEW_MS } from '../hlc.ts'
import { bump, type Counters, type ProtocolNode, type SignedProtocolDeps } from '../protocol.ts'
import type { Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import {
  type BroadcastBody,
  bodyValue,
  MAX_HOPS_FIELD,
  MAX_IDS_PER_MSG,
  type MeshMsg,
  msgIdOf,
  NONCE_BYTES,
  parseBody,
  parseMeshMsg,
} from './messages.ts'
import { MissingTable } from './missing.ts'
import { type CachedBroadcast, MAX_PEERS_PER_ENTRY, noteHave, PayloadCache } from './payload-cache.ts'
import { SeenCache } from './seen-cache.ts'

export interface MeshDeps extends SignedProtocolDeps<MeshMsg> {
  /** Ids this node has a live link to now. */
  neighbours(): string[]
}

export interface MeshOptions {
  /** Most links a broadcast travels. A copy arriving with more hops is dropped; one at the limit is delivered but not relayed. @default 32 */
  maxHops?: number
  /**
   * Most ids in the seen-cache. Past it the oldest-dated go first and the
   * replay window narrows for their origins (seen-cache.ts). @default 20_000
   */
  seenMax?: number
  /**
   * The replay window's past: a broadcast signed longer ago than this, by
   * this node's clock, is refused (`drop.tooOld`); its id is remembered
   * until then. Must cover `maxSkewMs` plus the longest a broadcast travels.
   * @default 120_000
   */
  maxAgeMs?: number
  /**
   * Clock skew allowed between honest nodes: a broadcast signed further
   * ahead of this node's clock is refused (`drop.future`).
   * @default 60_000 (DEFAULT_MAX_SKEW_MS, as the table's)
   */
  maxSkewMs?: number
  /** Largest signed payload (MessagePack of the body) a node sends or accepts. @default 1_048_576 (1 MiB) */
  maxPayloadBytes?: number
  /** Longest topic, in UTF-16 code units. @default 256 */
  maxTopicLength?: number
  /** Least time an announcement waits before the tick that sends it in an IHAVE batch. @default 0 (the next tick) */
  lazyDelayMs?: number
  /** Time from the first IHAVE for a missing id to the first GRAFT. @default 500 */
  graftTimeoutMs?: number
  /** Time between GRAFTs to successive announcers while the id is still missing. @default 250 */
  graftRetryMs?: number
  /** GRAFTs sent for one missing id before giving up on it. @default 6 */
  maxGraftAttempts?: number
  /**
   * Announcement rounds per broadcast. Round 0 goes to lazy links (Plumtree's
   * lazy push) and, as an acknowledgement, to the link it came from; later
   * rounds go to eager links that have not acknowledged it. 1 is Plumtree as
   * published. @default 4
   */
  announceRounds?: number
  /** Time between announcement rounds. @default 1_000 */
  announceRepeatMs?: number
  /** Most broadcasts kept in full to answer GRAFTs. @default 1_024 */
  cacheMax?: number
  /** Most payload bytes kept to answer GRAFTs (raised to fit one maxPayloadBytes message). @default 16_777_216 (16 MiB) */
  cacheMaxBytes?: number
  /** How long a broadcast is kept to answer GRAFTs. @default 30_000 */
  cacheTtlMs?: number
  /** Most ids heard of (IHAVE) but not received. @default 4_096 */
  missingMax?: number
  /** Most missing ids one neighbour's announcements may create. @default 1_024 */
  missingPerPeer?: number
  /** Most broadcasts whose signature check is running at once. @default 256 */
  pendingMax?: number
  /** Most payload bytes waiting on signature checks (raised to fit one maxPayloadBytes message). @default 8_388_608 (8 MiB) */
  pendingMaxBytes?: number
  /** A signature check still running after this long is abandoned. @default 10_000 */
  pendingTtlMs?: number
  /** Different copies (same id, other bytes) checked for one id: forgeries race the genuine one. @default 4 */
  maxCandidates?: number
  /** GRAFT answers one neighbour gets for one broadcast. @default 3 */
  graftAnswersPerPeer?: number
  /**
   * A duplicate's PRUNE waits this long, so that when the link is judged the
   * trees of all concurrent broadcasts are known (see the header). 0 prunes
   * at once. @default 250
   */
  pruneDelayMs?: number
  /**
   * How long a link that brought this node a broadcast first counts as on
   * that broadcast's tree, for the prune rule. 0 turns the rule off: every
   * duplicate prunes, as in the paper. @default 2_000
   */
  treeMemoryMs?: number
}

export interface MeshDelivery {
  /** The broadcast's id (40 hex characters, from its signature). */
  id: string
  topic: string
  data: Value
  /** The origin's node id, checked against its key and signature. */
  origin: string
  /** Links travelled: 0 at the origin. */
  hops: number
}

export interface Mesh extends ProtocolNode<MeshMsg> {
  /** Sign and send a broadcast; resolves to its id. Throws MessageTooLargeError when the payload exceeds maxPayloadBytes. */
  broadcast(topic: string, data: Value): Promise<string>
  /** Called once per broadcast this node accepts, its own included (hops 0). Returns an unsubscribe function. */
  onDeliver(fn: (d: MeshDelivery) => void): () => void
  /** Traffic and drops, by name (see the header of this file and PROTOCOL-mesh.md). */
  readonly counters: Counters
  handle(from: string, msg: MeshMsg): Promise<void>
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
}

type Resolved = Required<MeshOptions>

const DEFAULTS: Resolved = {
  maxHops: 32,
  seenMax: 20_000,
  maxAgeMs: 120_000,
  maxSkewMs: DEFAULT_MAX_SKEW_MS,
  maxPayloadBytes: 1_048_576,
  maxTopicLength: 256,
  lazyDelayMs: 0,
  graftTimeoutMs: 500,
  graftRetryMs: 250,
  maxGraftAttempts: 6,
  announceRounds: 4,
  announceRepeatMs: 1_000,
  cacheMax: 1_024,
  cacheMaxBytes: 16_777_216,
  cacheTtlMs: 30_000,
  missingMax: 4_096,
  missingPerPeer: 1_024,
  pendingMax: 256,
  pendingMaxBytes: 8_388_608,
  pendingTtlMs: 10_000,
  maxCandidates: 4,
  graftAnswersPerPeer: 3,
  pruneDelayMs: 250,
  treeMemoryMs: 2_000,
}

export function resolveMeshOptions(options: MeshOptions = {}): Resolved {
  const o: Resolved = { ...DEFAULTS }
  for (const [k, v] of Object.entries(options)) if (v !== undefined) (o as Record<string, number>)[k] = v
  o.maxHops = Math.max(1, Math.min(MAX_HOPS_FIELD, Math.floor(o.maxHops)))
  o.announceRounds = Math.max(1, Math.floor(o.announceRounds))
  const oneMessage = o.maxPayloadBytes + 128
  o.cacheMaxBytes = Math.max(o.cacheMaxBytes, oneMessage)
  o.pendingMaxBytes = Math.max(o.pendingMaxBytes, oneMessage)
  return o
}

/** One copy of a broadcast waiting on its signature check, and the neighbours that sent these same bytes. */
interface Candidate {
  readonly payload: Uint8Array
  readonly sig: Uint8Array
  readonly hops: number
  readonly from: string
  readonly dupFrom: Set<string>
}

interface Pending {
  readonly candidates: Candidate[]
  readonly at: number
}

type CheckResult = { ok: true; body: BroadcastBody } | { ok: false; reason: string }

/** Most recent first deliveries remembered per link, for the prune rule. */
const FIRST_VIA_MAX = 16

/** Most node ids remembered per public key (idOf is a hash; the cache spares it). */
const ID_CACHE_MAX = 1_024

export function createMesh(deps: MeshDeps, options: MeshOptions = {}): Mesh {
  const opt = resolveMeshOptions(options)
  const counters: Counters = {}
  const eager = new Set<string>()
  const lazy = new Set<string>()
  const seen = new SeenCache(opt.seenMax, opt.maxAgeMs, opt.maxSkewMs)
  const cache = new PayloadCache(opt.cacheMax, opt.cacheMaxBytes, opt.cacheTtlMs)
  const missing = new MissingTable(opt.missingMax, opt.missingPerPeer, MAX_PEERS_PER_ENTRY)
  const pending = new Map<string, Pending>()
  let pendingBytes = 0
  const idOfKey = new Map<string, string>()
  // Broadcasts each link brought first, lately (the prune rule): link -> [id, local time][].
  const firstVia = new Map<string, [string, number][]>()
  // PRUNEs waiting for pruneDelayMs: link -> the earliest-ranked duplicate it brought, and when to judge.
  const pruneDue = new Map<string, { id: string; at: number }>()
  const listeners = new Set<(d: MeshDelivery) => void>()
  // Announcements due: round 0 after lazyDelayMs, later rounds every announceRepeatMs. Two FIFO
  // queues, each in deadline order, so a tick only looks at their heads.
  const firstRound: string[] = []
  const laterRounds: string[] = []
  const queueMax = opt.cacheMax * opt.announceRounds

  // --- links -------------------------------------------------------------

  function addLink(peer: string): void {
    if (peer === deps.id) return
    lazy.delete(peer)
    eager.add(peer)
  }

  function removeLink(peer: string): void {
    firstVia.delete(peer)
    pruneDue.delete(peer)
    eager.delete(peer)
    lazy.delete(peer)
    missing.removePeer(peer)
  }

  function isLink(peer: string): boolean {
    return eager.has(peer) || lazy.has(peer)
  }

  function makeEager(peer: string): void {
    if (!isLink(peer)) return
    lazy.delete(peer)
    eager.add(peer)
  }

  function makeLazy(peer: string): void {
    if (!isLink(peer)) return
    eager.delete(peer)
    lazy.add(peer)
  }

  /** Follow the host's link table even if a linkUp/linkDown went missing. */
  function reconcile(): void {
    const now = new Set(deps.neighbours())
    for (const p of now) if (!isLink(p)) addLink(p)
    for (const p of [...eager, ...lazy]) if (!now.has(p)) removeLink(p)
  }

  // --- sending -------------------------------------------------------------

  function sendGossip(to: string, e: CachedBroadcast, kind: 'Eager' | 'Graft'): void {
    deps.send(to, { type: 'gossip', payload: e.payload, sig: e.sig, hops: e.hops + 1 })
    bump(counters, 'payloadSent')
    bump(counters, `payloadSent${kind}`)
  }

  function sendIds(to: string, type: 'ihave' | 'graft', ids: string[]): void {
    // An empty GRAFT still goes out: it asks only to be pushed to.
    for (let i = 0; i < ids.length || (i === 0 && type === 'graft'); i += MAX_IDS_PER_MSG) {
      const chunk = ids.slice(i, i + MAX_IDS_PER_MSG)
      deps.send(to, { type, ids: chunk })
      bump(counters, `${type}Sent`)
      bump(counters, `${type}IdsSent`, chunk.length)
      bump(counters, 'controlSent')
    }
  }

  // --- accepting a broadcast -------------------------------------------------

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

  /** A verified broadcast seen for the first time: record, cache, deliver, push on eager links, queue announcements. */
  function accept(
    id: string,
    body: BroadcastBody,
    payload: Uint8Array,
    sig: Uint8Array,
    hops: number,
    from: string | undefined,
    alsoHave: Iterable<string>,
  ): void {
    const now = deps.now()
    const evicted = seen.add(body.origin, id, body.time)
    if (evicted > 0) bump(counters, 'seenEvicted', evicted)
    // Whoever announced it has it: no payload and no IHAVE for them.
    const announcers = missing.get(id)?.announcers ?? []
    missing.delete(id)
    const entry: CachedBroadcast = {
      id,
      from,
      payload,
      sig,
      hops,
      at: now,
      haves: new Set(),
      grafted: new Map(),
      round: 0,
      nextAnnounceAt: now + opt.lazyDelayMs,
    }
    if (from !== undefined) {
      noteHave(entry, from)
      // Plumtree: whoever sent us a new message is on our tree (this also completes a GRAFT).
      makeEager(from)
      if (isLink(from)) noteFirst(from, id, now)
    }
    for (const p of alsoHave) noteHave(entry, p)
    for (const p of announcers) noteHave(entry, p)
    cache.add(entry)
    deliver({ id, topic: body.topic, data: body.data, origin: body.origin, hops })
    if (hops >= opt.maxHops) {
      bump(counters, 'hopLimitReached')
      return
    }
    for (const p of eager) if (!entry.haves.has(p)) sendGossip(p, entry, 'Eager')
    if (cache.get(id) === entry) {
      firstRound.push(id)
      if (firstRound.length > queueMax) firstRound.shift()
    }
  }

  function noteFirst(peer: string, id: string, now: number): void {
    if (opt.treeMemoryMs <= 0) return
    const list = (firstVia.get(peer) ?? []).filter(([, t]) => now - t < opt.treeMemoryMs)
    list.push([id, now])
    if (list.length > FIRST_VIA_MAX) list.shift()
    firstVia.set(peer, list)
  }

  /**
   * Does the link to `peer` carry, lately, the tree of a broadcast that ranks
   * before `id`? Then a duplicate of `id` on it must not prune it.
   */
  function onEarlierTree(peer: string, id: string): boolean {
    const now = deps.now()
    for (const [other, t] of firstVia.get(peer) ?? [])
      if (other < id && now - t < opt.treeMemoryMs) return true
    return false
  }

  /** A payload we already accepted came again: the link is redundant for it; PRUNE it after `pruneDelayMs`. */
  function duplicate(from: string, id: string): void {
    bump(counters, 'duplicates')
    const e = cache.get(id)
    if (e) noteHave(e, from)
    if (!isLink(from)) return
    const due = pruneDue.get(from)
    if (!due) pruneDue.set(from, { id, at: deps.now() + opt.pruneDelayMs })
    else if (id < due.id) due.id = id // judged against the earliest-ranked duplicate
    if (opt.pruneDelayMs <= 0) prunesDue(deps.now())
  }

  function prunesDue(now: number): void {
    for (const [peer, { id, at }] of pruneDue) {
      if (at > now) continue
      pruneDue.delete(peer)
      if (!isLink(peer)) continue
      if (onEarlierTree(peer, id)) {
        bump(counters, 'pruneHeld')
        continue
      }
      makeLazy(peer)
      deps.send(peer, { type: 'prune', id })
      bump(counters, 'pruneSent')
      bump(counters, 'controlSent')
    }
  }

  function onPrune(from: string, id: string | undefined): void {
    bump(counters, 'pruneIn')
    if (id !== undefined && isLink(from) && onEarlierTree(from, id)) {
      // The link is on an earlier broadcast's tree from our side: stay on it (an empty GRAFT says so).
      bump(counters, 'pruneRefused')
      makeEager(from)
      sendIds(from, 'graft', [])
      return
    }
    makeLazy(from)
  }

  // --- checking a broadcast ----------------------------------------------

  async function originOf(key: Uint8Array): Promise<string> {
    const hex = toHex(key)
    const hit = idOfKey.get(hex)
    if (hit !== undefined) return hit
    const id = await deps.keys.idOf(key)
    idOfKey.set(hex, id)
    if (idOfKey.size > ID_CACHE_MAX) idOfKey.delete(idOfKey.keys().next().value as string)
    return id
  }

  async function check(c: Candidate): Promise<CheckResult> {
    const body = parseBody(c.payload, opt.maxTopicLength)
    if (!body) return { ok: false, reason: 'badPayload' }
    // The replay window, before the costly checks (a forged time fails the signature anyway).
    const admission = seen.admit(body.origin, msgIdOf(c.sig), body.time, deps.now())
    if (admission !== 'ok') return { ok: false, reason: admission }
    try {
      if ((await originOf(body.key)) !== body.origin) return { ok: false, reason: 'originMismatch' }
      if (!(await deps.keys.verify(body.key, c.payload, c.sig))) return { ok: false, reason: 'badSignature' }
    } catch {
      return { ok: false, reason: 'badSignature' }
    }
    return { ok: true, body }
  }

  function removeCandidate(id: string, p: Pending, c: Candidate): void {
    const i = p.candidates.indexOf(c)
    if (i < 0) return
    p.candidates.splice(i, 1)
    if (pending.get(id) === p) {
      pendingBytes -= c.payload.length
      if (p.candidates.length === 0) pending.delete(id)
    }
  }

  async function onGossip(from: string, m: { payload: Uint8Array; sig: Uint8Array; hops: number }) {
    bump(counters, 'payloadIn')
    if (m.payload.length > opt.maxPayloadBytes) return void bump(counters, 'drop.tooLarge')
    if (m.hops < 1 || m.hops > opt.maxHops) return void bump(counters, 'drop.badHops')
    const id = msgIdOf(m.sig)
    if (seen.has(id)) return duplicate(from, id)

    let p = pending.get(id)
    if (p) {
      for (const c of p.candidates) {
        if (bytesEqual(c.sig, m.sig) && bytesEqual(c.payload, m.payload)) {
          // Same bytes while the check runs: one check, one delivery; the sender is answered after.
          bump(counters, 'duplicatesPending')
          if (c.from !== from && c.dupFrom.size < MAX_PEERS_PER_ENTRY) c.dupFrom.add(from)
          return
        }
      }
      if (p.candidates.length >= opt.maxCandidates) return void bump(counters, 'drop.pendingCandidates')
    } else if (pending.size >= opt.pendingMax) {
      return void bump(counters, 'drop.pendingFull')
    }
    if (pendingBytes + m.payload.length > opt.pendingMaxBytes) return void bump(counters, 'drop.pendingFull')
    if (!p) {
      p = { candidates: [], at: deps.now() }
      pending.set(id, p)
    }
    const c: Candidate = { payload: m.payload, sig: m.sig, hops: m.hops, from, dupFrom: new Set() }
    p.candidates.push(c)
    pendingBytes += c.payload.length

    const r = await check(c)
    removeCandidate(id, p, c)
    if (!r.ok) return void bump(counters, `drop.${r.reason}`)
    if (seen.has(id)) {
      // Another copy with other bytes won the race (only an origin that signs twice with one nonce can do this).
      duplicate(from, id)
      return
    }
    // Other candidates for this id are now moot; their checks finish into the seen-cache.
    if (pending.get(id) === p) {
      for (const o of p.candidates) pendingBytes -= o.payload.length
      pending.delete(id)
    }
    accept(id, r.body, c.payload, c.sig, c.hops, from, c.dupFrom)
    for (const d of c.dupFrom) duplicate(d, id)
  }

  function onIHave(from: string, ids: string[]): void {
    bump(counters, 'ihaveIn')
    // With no eager link left nothing can come unasked: GRAFT at the next tick.
    const deadline = deps.now() + (eager.size === 0 ? 0 : opt.graftTimeoutMs)
    for (const id of ids) {
      if (seen.has(id)) {
        const e = cache.get(id)
        if (e) noteHave(e, from)
        continue
      }
      const r = missing.announce(id, from, deadline)
      if (r === 'full') bump(counters, 'drop.missingFull')
      else if (r === 'quota') bump(counters, 'drop.missingQuota')
    }
  }

  function onGraft(from: string, ids: string[]): void {
    bump(counters, 'graftIn')
    makeEager(from)
    for (const id of ids) {
      const e = cache.get(id)
      if (!e) {
        bump(counters, 'drop.graftUnknown')
        continue
      }
      if (e.hops >= opt.maxHops) {
        bump(counters, 'drop.graftHopLimit')
        continue
      }
      const n = e.grafted.get(from) ?? 0
      if (n >= opt.graftAnswersPerPeer || (n === 0 && e.grafted.size >= MAX_PEERS_PER_ENTRY)) {
        bump(counters, 'drop.graftRepeat')
        continue
      }
      e.grafted.set(from, n + 1)
      noteHave(e, from)
      sendGossip(from, e, 'Graft')
    }
  }

  // --- time ------------------------------------------------------------------

  function announce(now: number, batches: Map<string, string[]>): void {
    const add = (peer: string, id: string) => {
      let b = batches.get(peer)
      if (!b) {
        b = []
        batches.set(peer, b)
      }
      b.push(id)
    }
    const step = (queue: string[]) => {
      while (queue.length > 0) {
        const e = cache.get(queue[0] as string)
        if (e && e.nextAnnounceAt > now) break
        queue.shift()
        if (!e) continue
        if (e.round === 0) {
          // Plumtree's lazy push, and the acknowledgement that tells the sender not to repeat.
          for (const p of lazy) if (!e.haves.has(p)) add(p, e.id)
          if (opt.announceRounds > 1 && e.from !== undefined && isLink(e.from)) add(e.from, e.id)
        } else {
          // A payload pushed on an eager link may have been lost: announce it again until acknowledged.
          for (const p of eager) if (!e.haves.has(p)) add(p, e.id)
        }
        e.round++
        if (e.round < opt.announceRounds) {
          e.nextAnnounceAt = now + opt.announceRepeatMs
          laterRounds.push(e.id)
          if (laterRounds.length > queueMax) laterRounds.shift()
        }
      }
    }
    step(firstRound)
    step(laterRounds)
  }

  function graftMissing(now: number, batches: Map<string, string[]>): void {
    for (const e of missing.due(now)) {
      if (seen.has(e.id)) {
        missing.delete(e.id)
        continue
      }
      if (pending.has(e.id)) {
        e.deadline = now + opt.graftRetryMs
        continue
      }
      if (e.attempts >= opt.maxGraftAttempts || e.announcers.length === 0) {
        missing.delete(e.id)
        bump(counters, 'missingGaveUp')
        continue
      }
      const peer = e.announcers[e.attempts % e.announcers.length] as string
      e.attempts++
      e.deadline = now + opt.graftRetryMs
      makeEager(peer)
      let b = batches.get(peer)
      if (!b) {
        b = []
        batches.set(peer, b)
      }
      b.push(e.id)
    }
  }

  function expirePending(now: number): void {
    for (const [id, p] of pending) {
      if (now - p.at <= opt.pendingTtlMs) continue
      for (const c of p.candidates) pendingBytes -= c.payload.length
      pending.delete(id)
      bump(counters, 'drop.pendingExpired')
    }
  }

  return {
    counters,

    eagerPeers: () => [...eager],
    lazyPeers: () => [...lazy],
    sizes: () => ({
      seen: seen.size,
      cached: cache.size,
      cachedBytes: cache.bytes,
      missing: missing.size,
      pending: pending.size,
      pendingBytes,
      announceQueue: firstRound.length + laterRounds.length,
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
      accept(id, body, payload, sig, 0, undefined, [])
      return id
    },

    onDeliver(fn) {
      listeners.add(fn)
      return () => void listeners.delete(fn)
    },

    async handle(from, msg) {
      if (typeof from !== 'string' || from === deps.id) return void bump(counters, 'drop.malformed')
      const m = parseMeshMsg(msg as Value)
      if (!m) return void bump(counters, 'drop.malformed')
      switch (m.type) {
        case 'gossip':
          return onGossip(from, m)
        case 'ihave':
          return onIHave(from, m.ids)
        case 'graft':
          return onGraft(from, m.ids)
        case 'prune':
          return onPrune(from, m.id)
      }
    },

    tick(now) {
      reconcile()
      seen.expire(now)
      cache.expire(now)
      expirePending(now)
      prunesDue(now)
      const ihaves = new Map<string, string[]>()
      announce(now, ihaves)
      const grafts = new Map<string, string[]>()
      graftMissing(now, grafts)
      if (eager.size === 0 && lazy.size > 0) {
        // Cut off from the tree (its links pruned or gone): join it again through one lazy link.
        const peers = [...lazy]
        const peer = peers[Math.floor(deps.random() * peers.length)] as string
        makeEager(peer)
        if (!grafts.has(peer)) grafts.set(peer, [])
        bump(counters, 'rejoins')
      }
      for (const [peer, ids] of ihaves) sendIds(peer, 'ihave', ids)
      for (const [peer, ids] of grafts) sendIds(peer, 'graft', ids)
    },

    linkUp(peer) {
      addLink(peer)
    },

    linkDown(peer) {
      removeLink(peer)
    },
  }
}
