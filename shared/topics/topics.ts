/**
 * Topic multicast: `publish(topic, data)` reaches every node subscribed to
 * `topic` and as few others as possible (PROTOCOL-topics.md).
 *
 * One tree per topic, rooted at the node that owns the topic's key on the
 * Chord ring (as in Scribe), but built from direct links between members
 * rather than from the routing path: the root keeps the member list (soft
 * state, root.ts) and places each newcomer under the shallowest member with
 * room, so a topic of 20 subscribers is a tree of 21 nodes (the root may not
 * subscribe) at most 3 hops deep, and a publication costs about one message
 * per subscriber. Broadcast (the mesh) stays network-wide.
 *
 * - join: look up the key's owner, ask it (routed request JOIN) for a parent,
 *   ATTACH to that parent over a link. The parent refuses when it is not in
 *   the tree or full; we ask again, avoiding it. Every `refreshMs` we JOIN
 *   again naming our parent: the root's entry stays, or a new root learns us.
 * - repair: our parent's link closes, or it sends DETACH (it left, or stopped
 *   being the root): we join again at once. A root that no longer owns the key
 *   (a node joined between) orphans its children unless it subscribes too.
 * - publish: sign (publication.ts), deliver here if subscribed, send to our
 *   tree neighbours; a node outside the tree (not joined yet) sends it to the
 *   root (routed request INJECT) instead. Each tree node checks the
 *   signature and the replay window once, delivers, and forwards to its
 *   other tree neighbours. A PUB from a node that is not our tree neighbour
 *   for that topic is dropped (`drop.not-tree`).
 *
 * Bounds: topics joined, topics rooted here, members per topic, children per
 * node, payload bytes, ids remembered (the mesh's seen-cache and its replay
 * window). Trust: a member can withhold a publication from its subtree (as
 * any relay can); it cannot forge or alter one, nor replay it.
 */

import { SeenCache } from '../mesh/seen-cache.ts'
import { bump, type Counters, type ProtocolNode, type SignedProtocolDeps } from '../protocol.ts'
import type { Value } from '../types.ts'
import {
  type JoinReq,
  joinReqValue,
  MAX_AVOID,
  MAX_HOPS_FIELD,
  type PubMsg,
  parseInject,
  parseJoinReq,
  parseJoinRes,
  parseTopicMsg,
  type TopicMsg,
} from './messages.ts'
import { createPublications } from './publication.ts'
import { TopicTree } from './root.ts'

export const JOIN_METHOD = '\u0000topics.join'
export const INJECT_METHOD = '\u0000topics.inject'

export interface TopicsDeps extends SignedProtocolDeps<TopicMsg> {
  /** Send over the link to `to`, opening one on demand. */
  send(to: string, msg: TopicMsg): void
  /** The node that owns a ring position now. */
  lookup(pos: string): Promise<string>
  /** Do we own this ring position now? */
  owns(pos: string): boolean
  /** A routed request (the router's). */
  request(to: string, method: string, data: Value, opts?: { timeoutMs?: number }): Promise<Value>
  /** Serve a routed request method (the router's); the handler sees the verified origin. */
  serve(method: string, fn: (data: Value, meta: { from: string }) => Promise<Value | undefined>): () => void
  /** A topic's ring position. */
  keyPosition(topic: string): string | Promise<string>
  /** A publication for the application (we subscribe to `topic`). */
  deliver(topic: string, data: Value, meta: { from: string; hops: number }): void
}

export interface TopicsOptions {
  /** Children the root places under one node. @default 4 */
  fanout?: number
  /** How often a member renews its place with the root. @default 30_000 */
  refreshMs?: number
  /** A JOIN's routed request waits this long. @default 10_000 */
  joinTimeoutMs?: number
  /** An ATTACH unanswered this long counts as refused. @default 5_000 */
  attachTimeoutMs?: number
  /** Longest wait between two JOIN attempts after failures. @default 30_000 */
  maxBackoffMs?: number
  /** Topics this node subscribes to at most. @default 256 */
  maxTopics?: number
  /** Topics this node is the root of at most. @default 1_024 */
  maxRooted?: number
  /** Members per topic at the root. @default 1_024 */
  maxMembers?: number
  /** Children this node adopts, over all topics. @default 256 */
  maxChildren?: number
  /** Largest signed publication (bytes). @default 1_048_576 */
  maxPayloadBytes?: number
  /** Publication ids remembered (the replay window narrows past it). @default 8_192 */
  seenMax?: number
}

type Resolved = Required<TopicsOptions>

const DEFAULTS: Resolved = {
  fanout: 4,
  refreshMs: 30_000,
  joinTimeoutMs: 10_000,
  attachTimeoutMs: 5_000,
  maxBackoffMs: 30_000,
  maxTopics: 256,
  maxRooted: 1_024,
  maxMembers: 1_024,
  maxChildren: 256,
  maxPayloadBytes: 1_048_576,
  seenMax: 8_192,
}
/** The replay window (as the mesh's). */
const MAX_AGE_MS = 120_000
const MAX_SKEW_MS = 60_000

interface Membership {
  state: 'joining' | 'attaching' | 'attached'
  parent: string | null
  avoid: string[]
  /** When the next JOIN may go (joining), the ATTACH times out (attaching), or the refresh is due (attached). */
  due: number
  backoff: number
  busy: boolean
}

export interface TopicsInfo {
  topic: string
  state: Membership['state'] | 'root'
  parent: string | null
  children: string[]
}

export interface Topics extends ProtocolNode<TopicMsg> {
  /** Join `topic`'s tree (idempotent). */
  join(topic: string): void
  /** Leave `topic`'s tree: our children are told to join again. */
  leave(topic: string): void
  /** Sign and send a publication; resolves to its id once it is on its way. */
  publish(topic: string, data: Value): Promise<string>
  tick(now: number): Promise<void>
  /** The link to `peer` closed: a lost parent means joining again; a lost child leaves our set. */
  linkDown(peer: string): void
  /** Nodes we have tree links with (they must stay open). */
  neighbours(): Set<string>
  info(): TopicsInfo[]
  readonly counters: Counters
  close(): void
}

export function createTopics(deps: TopicsDeps, options: TopicsOptions = {}): Topics {
  const opt: Resolved = { ...DEFAULTS, ...options }
  const self = deps.id
  const counters: Counters = {}
  const seen = new SeenCache(opt.seenMax, MAX_AGE_MS, MAX_SKEW_MS)
  const pubs = createPublications({ ...deps, seen, maxPayloadBytes: opt.maxPayloadBytes })
  const joined = new Map<string, Membership>()
  /** Children by topic (for topics we are a member or the root of). */
  const children = new Map<string, Set<string>>()
  /** Trees we are the root of. */
  const rooted = new Map<string, TopicTree>()
  /** Ring positions of topics, cached (bounded). */
  const positions = new Map<string, string>()
  let closed = false

  async function position(topic: string): Promise<string> {
    const hit = positions.get(topic)
    if (hit !== undefined) return hit
    const pos = await deps.keyPosition(topic)
    positions.set(topic, pos)
    if (positions.size > 4_096) positions.delete(positions.keys().next().value as string)
    return pos
  }

  const childCount = () => {
    let n = 0
    for (const s of children.values()) n += s.size
    return n
  }

  function childrenOf(topic: string): Set<string> {
    let s = children.get(topic)
    if (!s) {
      s = new Set()
      children.set(topic, s)
    }
    return s
  }

  /** Tree neighbours for `topic`: our parent and our children. */
  function treeOf(topic: string): string[] {
    const out = [...(children.get(topic) ?? [])]
    const parent = joined.get(topic)?.parent
    if (parent && joined.get(topic)?.state === 'attached') out.push(parent)
    return out
  }

  function inTree(topic: string): boolean {
    return rooted.has(topic) || joined.get(topic)?.state === 'attached'
  }

  function orphan(topic: string): void {
    const kids = children.get(topic)
    if (!kids) return
    for (const c of kids) deps.send(c, { type: 'detach', topic })
    bump(counters, 'orphaned', kids.size)
    children.delete(topic)
  }

  function rejoin(m: Membership, avoid?: string): void {
    if (avoid && !m.avoid.includes(avoid)) {
      m.avoid.push(avoid)
      if (m.avoid.length > MAX_AVOID) m.avoid.shift()
    }
    m.state = 'joining'
    m.parent = null
    m.due = deps.now()
  }

  async function runJoin(topic: string, m: Membership): Promise<void> {
    m.busy = true
    try {
      const pos = await position(topic)
      let parent: string
      if (deps.owns(pos)) {
        parent = self
      } else {
        const root = await deps.lookup(pos)
        const req: JoinReq = { topic, parent: m.state === 'attached' ? m.parent : null, avoid: m.avoid }
        const res = parseJoinRes(
          await deps.request(root, JOIN_METHOD, joinReqValue(req), { timeoutMs: opt.joinTimeoutMs }),
        )
        if (!res) throw new Error('bad answer')
        parent = res.parent
      }
      if (joined.get(topic) !== m || closed) return
      m.backoff = 0
      if (parent === self) {
        // We own the key: we are the top of the tree.
        ensureRoot(topic)
        if (m.state !== 'attached') bump(counters, 'attached.root')
        m.state = 'attached'
        m.parent = null
        m.due = deps.now() + opt.refreshMs
        return
      }
      if (m.state === 'attached' && m.parent === parent) {
        m.due = deps.now() + opt.refreshMs
        bump(counters, 'refreshed')
        return
      }
      if (m.state === 'attached' && m.parent !== null && m.parent !== parent)
        deps.send(m.parent, { type: 'detach', topic })
      m.state = 'attaching'
      m.parent = parent
      m.due = deps.now() + opt.attachTimeoutMs
      deps.send(parent, { type: 'attach', topic })
    } catch {
      bump(counters, 'join.failed')
      if (joined.get(topic) !== m) return
      m.backoff = Math.min(opt.maxBackoffMs, m.backoff === 0 ? 500 : m.backoff * 2)
      if (m.state !== 'attached') m.state = 'joining'
      m.due = deps.now() + m.backoff
    } finally {
      m.busy = false
    }
  }

  function ensureRoot(topic: string): TopicTree | null {
    let tree = rooted.get(topic)
    if (tree) return tree
    if (rooted.size >= opt.maxRooted) {
      bump(counters, 'drop.rooted-full')
      return null
    }
    tree = new TopicTree(self, opt.fanout, opt.maxMembers)
    rooted.set(topic, tree)
    return tree
  }

  /** Accept a checked publication: remember, deliver if we subscribe, forward along the tree. */
  function accept(
    id: string,
    signed: { topic: string; origin: string; time: number; data: Value },
    m: PubMsg,
    from: string | null,
  ): void {
    const { topic, origin, data } = signed
    seen.add(origin, id, signed.time)
    if (joined.has(topic)) {
      bump(counters, 'delivered')
      deps.deliver(topic, data, { from: origin, hops: m.hops })
    }
    if (m.hops >= MAX_HOPS_FIELD) return
    const next: PubMsg = { ...m, hops: m.hops + 1 }
    for (const peer of treeOf(topic)) {
      if (peer === from || peer === origin) continue
      bump(counters, 'forwarded')
      deps.send(peer, next)
    }
  }
  async function receive(topic: string, m: PubMsg, from: string | null): Promise<boolean> {
    const r = await pubs.check(topic, m.payload, m.sig)
    if (!r.ok) {
      bump(counters, `drop.${r.reason}`)
      return false
    }
    if (seen.has(r.id)) {
      bump(counters, 'duplicate')
      return true
    }
    accept(r.id, { topic, origin: r.body.origin, time: r.body.time, data: r.body.data }, m, from)
    return true
  }

  deps.serve(JOIN_METHOD, async (data, meta) => {
    const req = parseJoinReq(data)
    if (!req) throw new Error('malformed join')
    if (!deps.owns(await position(req.topic))) {
      bump(counters, 'join.not-root')
      throw new Error('not the root')
    }
    const tree = ensureRoot(req.topic)
    if (!tree) throw new Error('too many topics here')
    const parent = tree.join(meta.from, req.parent, req.avoid, deps.now())
    if (parent === null) {
      bump(counters, 'drop.members-full')
      throw new Error('topic full')
    }
    bump(counters, 'join.served')
    return { p: parent }
  })

  deps.serve(INJECT_METHOD, async (data) => {
    const inj = parseInject(data)
    if (!inj) throw new Error('malformed publication')
    if (!deps.owns(await position(inj.topic))) throw new Error('not the root')
    if (!ensureRoot(inj.topic)) throw new Error('too many topics here')
    bump(counters, 'injected')
    const ok = await receive(
      inj.topic,
      { type: 'pub', topic: inj.topic, payload: inj.payload, sig: inj.sig, hops: 0 },
      null,
    )
    if (!ok) throw new Error('publication refused')
    return null
  })

  return {
    counters,

    join(topic) {
      if (joined.has(topic)) return
      if (joined.size >= opt.maxTopics) throw new RangeError(`at most ${opt.maxTopics} topics`)
      joined.set(topic, {
        state: 'joining',
        parent: null,
        avoid: [],
        due: deps.now(),
        backoff: 0,
        busy: false,
      })
    },

    leave(topic) {
      const m = joined.get(topic)
      if (!m) return
      joined.delete(topic)
      if (m.parent !== null) deps.send(m.parent, { type: 'detach', topic })
      if (!rooted.has(topic)) orphan(topic)
    },

    async publish(topic, data) {
      const s = await pubs.sign(topic, data)
      bump(counters, 'published')
      const m: PubMsg = { type: 'pub', topic, payload: s.payload, sig: s.sig, hops: 0 }
      accept(s.id, { topic, origin: self, time: s.body.time, data }, m, null)
      if (inTree(topic)) return s.id
      // Outside the tree: the root spreads it (it checks it like any other).
      const pos = await position(topic)
      if (deps.owns(pos)) {
        ensureRoot(topic)
        return s.id
      }
      const root = await deps.lookup(pos)
      await deps.request(
        root,
        INJECT_METHOD,
        { t: topic, p: s.payload, s: s.sig },
        { timeoutMs: opt.joinTimeoutMs },
      )
      return s.id
    },

    async handle(from, raw) {
      const msg = parseTopicMsg(raw as Value)
      if (!msg) return void bump(counters, 'drop.malformed')
      const { topic } = msg
      switch (msg.type) {
        case 'pub': {
          const tree = treeOf(topic)
          if (!tree.includes(from)) return void bump(counters, 'drop.not-tree')
          bump(counters, 'received')
          await receive(topic, msg, from)
          return
        }
        case 'attach': {
          const mine = childrenOf(topic)
          const member = inTree(topic) || (deps.owns(await position(topic)) && ensureRoot(topic) !== null)
          const room = mine.has(from) || (mine.size < opt.fanout + 2 && childCount() < opt.maxChildren)
          const ok = member && room && joined.get(topic)?.parent !== from
          if (ok) mine.add(from)
          else {
            bump(counters, 'attach.refused')
            if (mine.size === 0) children.delete(topic)
          }
          deps.send(from, { type: 'attached', topic, ok })
          return
        }
        case 'attached': {
          const m = joined.get(topic)
          if (m?.state !== 'attaching' || m.parent !== from) return void bump(counters, 'drop.unasked')
          if (msg.ok) {
            m.state = 'attached'
            m.avoid = []
            m.due = deps.now() + opt.refreshMs
            bump(counters, 'attached')
          } else rejoin(m, from)
          return
        }
        case 'detach': {
          const m = joined.get(topic)
          if (m && m.parent === from) {
            bump(counters, 'detached')
            rejoin(m)
            return
          }
          const kids = children.get(topic)
          if (kids?.delete(from)) {
            if (kids.size === 0) children.delete(topic)
            rooted.get(topic)?.leave(from)
          }
          return
        }
      }
    },

    async tick(now) {
      if (closed) return
      if (seen.expire(now) > 0) bump(counters, 'seenExpired')
      for (const [topic, m] of joined) {
        if (m.busy || now < m.due) continue
        if (m.state === 'attaching') {
          bump(counters, 'attach.timeout')
          rejoin(m, m.parent ?? undefined)
        }
        void runJoin(topic, m)
      }
      for (const [topic, tree] of rooted) {
        tree.expire(now - 3 * opt.refreshMs)
        if (deps.owns(await position(topic))) continue
        // The key moved to another node: stop being the root; our children join the new one.
        rooted.delete(topic)
        bump(counters, 'root.handoff')
        if (!joined.has(topic)) orphan(topic)
        else {
          const m = joined.get(topic) as Membership
          if (m.parent === null) rejoin(m)
        }
      }
    },

    linkDown(peer) {
      for (const m of joined.values())
        if (m.parent === peer && m.state !== 'joining') {
          bump(counters, 'parent.lost')
          rejoin(m)
        }
      for (const [topic, kids] of children)
        if (kids.delete(peer)) {
          rooted.get(topic)?.leave(peer)
          if (kids.size === 0) children.delete(topic)
        }
    },

    neighbours() {
      const out = new Set<string>()
      for (const kids of children.values()) for (const c of kids) out.add(c)
      for (const m of joined.values()) if (m.parent !== null) out.add(m.parent)
      return out
    },

    info() {
      const topics = new Set([...joined.keys(), ...rooted.keys()])
      return [...topics].map((topic) => {
        const m = joined.get(topic)
        return {
          topic,
          state: m?.parent === null && rooted.has(topic) ? 'root' : (m?.state ?? 'root'),
          parent: m?.parent ?? null,
          children: [...(children.get(topic) ?? [])],
        }
      })
    },

    close() {
      closed = true
    },
  }
}
