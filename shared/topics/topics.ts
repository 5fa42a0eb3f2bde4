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
 * - tree repair: our parent's link closes, or it sends DETACH (it left, or stopped
 *   being the root): we join again at once. A root that no longer owns the key
 *   (a node joined between) orphans its children unless it subscribes too.
 * - publish: sign (publication.ts), deliver here if subscribed, send to our
 *   tree neighbours (from outside the tree: INJECT at the root). Each tree
 *   node checks a PUB once (only from a tree neighbour, else
 *   `drop.not-tree`), delivers, and forwards to its other tree neighbours.
 * - repair (repair.ts): every tree node keeps 30 s of publications; a new
 *   tree neighbour gets a digest of ids at once and pulls what it lacks, and
 *   ids a neighbour is not known to have are announced in rounds while the
 *   topic is busy (an intact tree, or a quiet topic: no repair frame).
 *
 * Bounds and trust: PROTOCOL-topics.md. A member can withhold a publication
 * from its subtree (its repair then comes from another neighbour, if any);
 * it cannot forge, alter or replay one.
 */
import { SeenCache } from '../mesh/seen-cache.ts'
import { bump, type Counters, PEER_FAULTS } from '../protocol.ts'
import type { Value } from '../types.ts'
import {
  type JoinReq,
  joinReqValue,
  MAX_AVOID,
  MAX_HOPS_FIELD,
  MAX_RECENT,
  type PubMsg,
  parseInject,
  parseJoinReq,
  parseJoinRes,
  parseTopicMsg,
} from './messages.ts'
import { createPublications } from './publication.ts'
import { createRepair, handOver } from './repair.ts'
import { TopicTree } from './root.ts'
import {
  DEFAULTS,
  INJECT_METHOD,
  JOIN_METHOD,
  MAX_AGE_MS,
  MAX_SKEW_MS,
  type Membership,
  type Resolved,
  type Topics,
  type TopicsDeps,
  type TopicsOptions,
} from './types.ts'

export type { Topics, TopicsDeps, TopicsInfo, TopicsOptions } from './types.ts'
export { INJECT_METHOD, JOIN_METHOD }
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
  /** Every tree node's recent publications, and the digest / pull that repairs its neighbours (repair.ts). */
  const repair = createRepair({
    now: deps.now,
    send: (to, msg) => deps.send(to, msg),
    counters,
    neighbours: (topic) => treeOf(topic),
    has: (id) => seen.has(id),
  })
  /** Ring positions of topics, cached (bounded). */
  const positions = new Map<string, string>()
  let closed = false

  /**
   * Are we the root of `topic` (the owner of its position)? Our own range says
   * so, or, while it is unknown or settling (no predecessor yet), our own
   * lookup does.
   */
  async function isRoot(topic: string): Promise<boolean> {
    const pos = await position(topic)
    if (deps.owns(pos)) return true
    return (await deps.lookup(pos).catch(() => null)) === self
  }
  let nextOwnerCheck = 0

  async function position(topic: string): Promise<string> {
    const hit = positions.get(topic)
    if (hit !== undefined) return hit
    const pos = await deps.keyPosition(topic)
    positions.set(topic, pos)
    if (positions.size > 4_096) positions.delete(positions.keys().next().value as string)
    return pos
  }

  const childCount = (p?: string) => [...children.values()].reduce((n, s) => n + (p ? +s.has(p) : s.size), 0)

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
        // What the topic carried just before we came: checked like any publication, at most once.
        for (const r of res.recent)
          void receive(topic, { type: 'pub', topic, payload: r.payload, sig: r.sig, hops: 1 }, null)
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
    repair.arrived(id)
    // Every tree node keeps the last seconds' publications: the root for a newcomer's JOIN, all to repair neighbours.
    const entry =
      rooted.has(topic) || joined.has(topic) ? repair.remember(topic, id, m.payload, m.sig, m.hops) : null
    if (from !== null) entry?.have.add(from)
    if (joined.has(topic)) {
      bump(counters, 'delivered')
      deps.deliver(topic, data, { from: origin, hops: m.hops })
    }
    if (m.hops >= MAX_HOPS_FIELD) return
    const next: PubMsg = { ...m, hops: m.hops + 1 }
    for (const peer of treeOf(topic)) {
      entry?.have.add(peer)
      if (peer === from || peer === origin) continue
      bump(counters, 'forwarded')
      deps.send(peer, next)
    }
  }

  async function receive(topic: string, m: PubMsg, from: string | null): Promise<boolean> {
    const r = await pubs.check(topic, m.payload, m.sig)
    if (!r.ok) {
      bump(counters, `drop.${r.reason}`)
      if (from !== null && PEER_FAULTS.has(r.reason)) deps.misbehaved?.(from, `topics.${r.reason}`)
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
    if (!(await isRoot(req.topic))) {
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
    if (req.parent !== null) return { p: parent }
    return { p: parent, r: repair.recent(req.topic, MAX_RECENT).map((r) => [r.payload, r.sig]) }
  })

  deps.serve(INJECT_METHOD, async (data) => {
    const inj = parseInject(data)
    if (!inj) throw new Error('malformed publication')
    // The root, or any node in the tree, can start a publication on its way.
    if (!inTree(inj.topic)) {
      if (!(await isRoot(inj.topic))) throw new Error('not the root')
      if (!ensureRoot(inj.topic)) throw new Error('too many topics here')
    }
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
      if (!rooted.has(topic)) {
        orphan(topic)
        repair.forget(topic)
      }
    },

    async publish(topic, data) {
      const s = await pubs.sign(topic, data)
      bump(counters, 'published')
      const m: PubMsg = { type: 'pub', topic, payload: s.payload, sig: s.sig, hops: 0 }
      const pos = await position(topic)
      // The owner of the key is the root, tree or not yet: it keeps the publication for newcomers.
      if (!inTree(topic) && deps.owns(pos)) ensureRoot(topic)
      accept(s.id, { topic, origin: self, time: s.body.time, data }, m, null)
      if (inTree(topic)) return s.id
      // Outside the tree: the root spreads it (it checks it like any other). While the ring
      // settles, a lookup may name a node that does not see itself as the owner yet: ask again.
      for (let attempt = 1; ; attempt++) {
        const root = await deps.lookup(pos)
        try {
          if (root === self) {
            if (ensureRoot(topic) && !joined.has(topic)) repair.remember(topic, s.id, m.payload, m.sig, 0)
          } else
            await deps.request(
              root,
              INJECT_METHOD,
              { t: topic, p: s.payload, s: s.sig },
              { timeoutMs: opt.joinTimeoutMs },
            )
          return s.id
        } catch (err) {
          if (attempt >= 3) throw err
          bump(counters, 'inject.retry')
        }
      }
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
        case 'ihave':
        case 'iwant': {
          if (!treeOf(topic).includes(from)) return void bump(counters, 'drop.not-tree')
          if (msg.type === 'ihave') repair.onIHave(from, msg)
          else repair.onIWant(from, msg)
          return
        }
        case 'attach': {
          const mine = childrenOf(topic)
          const member = inTree(topic) || (deps.owns(await position(topic)) && ensureRoot(topic) !== null)
          const full = mine.size >= opt.fanout + 2 || childCount() >= opt.maxChildren
          const room = mine.has(from) || (!full && childCount(from) < opt.maxChildTopics)
          const ok = member && room && joined.get(topic)?.parent !== from
          if (ok) mine.add(from)
          else {
            bump(counters, 'attach.refused')
            if (mine.size === 0) children.delete(topic)
          }
          deps.send(from, { type: 'attached', topic, ok })
          // Our digest at once: what crossed the tree while the child was away or joining (it pulls what it lacks).
          if (ok) repair.announce(topic, from)
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
            // And ours to the parent: what our subtree carried while it was cut off.
            repair.announce(topic, from)
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
      repair.tick(now)
      for (const [topic, m] of joined) {
        if (m.busy || now < m.due) continue
        if (m.state === 'attaching') {
          bump(counters, 'attach.timeout')
          rejoin(m, m.parent ?? undefined)
        }
        void runJoin(topic, m)
      }
      const checkOwner = now >= nextOwnerCheck
      if (checkOwner) nextOwnerCheck = now + opt.refreshMs / 6
      for (const [topic, tree] of rooted) {
        tree.expire(now - 3 * opt.refreshMs)
        // A tree with no member, no child, no recent publication and no subscriber here holds nothing:
        // let it go, or topics JOINed once (or ATTACHed) and left would fill maxRooted for good.
        const empty = tree.members.size === 0 && !joined.has(topic) && !children.has(topic)
        if (empty && repair.recent(topic, 1).length === 0) {
          rooted.delete(topic)
          continue
        }
        // Ownership is checked every few seconds (a lookup when our range is unsure), not every tick.
        if (!checkOwner || (await isRoot(topic))) continue
        // The key moved to another node: stop being the root; our children join the new one.
        rooted.delete(topic)
        bump(counters, 'root.handoff')
        if (!joined.has(topic)) {
          // What we took as the root may have reached nobody yet (a publication injected while the ring
          // settled): the new root gets it, and spreads what its tree lacks.
          const list = repair.recent(topic, MAX_RECENT)
          const inject = (root: string, v: Value) =>
            deps.request(root, INJECT_METHOD, v, { timeoutMs: opt.joinTimeoutMs })
          void handOver(list, topic, async () => deps.lookup(await position(topic)), self, inject, counters)
          repair.forget(topic)
          orphan(topic)
        } else {
          const m = joined.get(topic) as Membership
          if (m.parent === null) rejoin(m)
        }
      }
    },

    linkDown(peer) {
      repair.peerGone(peer)
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
