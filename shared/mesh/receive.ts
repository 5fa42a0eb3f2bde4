/**
 * Receiving a broadcast: checks, then acceptance.
 *
 * Each broadcast carries the origin's public key and id and the time it was
 * signed, and is signed over its exact bytes (messages.ts); the id of a
 * broadcast comes from its signature. A copy is checked in this order,
 * cheapest first: size and hop count; duplicate (the seen-cache, then the
 * running checks: the same bytes arriving while a check runs are merged,
 * never delivered twice, pending.ts); then decoding, the replay window (the
 * signed time within `maxAgeMs` before and `maxSkewMs` after the local
 * clock, and above the floors of the seen-cache, seen-cache.ts), origin id =
 * idOf(key), and the signature. Only then is it recorded as seen, delivered
 * and relayed. A replay, however late and after however many others, is
 * either still in the seen-cache or refused by the window. Whatever fails is
 * dropped and counted by reason (`drop.*`).
 */
import { createIdCache } from '../identity/id-cache.ts'
import { bump, PEER_FAULTS } from '../protocol.ts'
import type { Value } from '../types.ts'
import type { MeshContext } from './context.ts'
import { type BroadcastBody, type GossipMsg, msgIdOf, parseBody } from './messages.ts'
import type { Optimiser } from './optimise.ts'
import { type CachedBroadcast, noteHave } from './payload-cache.ts'
import type { Candidate } from './pending.ts'
import type { Push } from './push.ts'
import type { Routes } from './routes.ts'
import type { Admission } from './seen-cache.ts'
import type { Tree } from './tree.ts'

/** Most node ids remembered per public key (idOf is a hash; the cache spares it). */

/** What a checked copy is: its body, or why it was dropped (the counter is `drop.<reason>`). */
type CheckResult =
  | { ok: true; body: BroadcastBody }
  | { ok: false; reason: 'badPayload' | Exclude<Admission, 'ok'> | 'originMismatch' | 'badSignature' }

/** A broadcast accepted here, as the application gets it. */
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

export interface Receive {
  onGossip(from: string, m: GossipMsg): Promise<void>
  /**
   * A verified broadcast seen for the first time (from a neighbour, or this
   * node's own with `from` undefined): record, cache, deliver, push on eager
   * links, queue announcements.
   */
  accept(
    id: string,
    body: BroadcastBody,
    copy: { payload: Uint8Array; sig: Uint8Array; hops: number; r?: true },
    from: string | undefined,
    alsoHave: Iterable<string>,
  ): void
}

export function createReceive(
  ctx: MeshContext,
  push: Push,
  tree: Tree,
  optimiser: Optimiser,
  routes: Routes,
  deliver: (d: MeshDelivery) => void,
): Receive {
  const { deps, opt, counters, links, seen, cache, missing, pending } = ctx
  const originOf = createIdCache(deps.keys)

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

  function accept(
    id: string,
    body: BroadcastBody,
    copy: { payload: Uint8Array; sig: Uint8Array; hops: number; r?: true },
    from: string | undefined,
    alsoHave: Iterable<string>,
  ): void {
    const now = deps.now()
    const evicted = seen.add(body.origin, id, body.time)
    if (evicted > 0) bump(counters, 'seenEvicted', evicted)
    // Whoever announced it has it: no payload and no IHAVE for them.
    const announced = missing.get(id)
    const announcers = announced ? [...announced.announcers] : []
    const announcedHops = announced ? [...announced.hops] : []
    const announcedRouted = announced ? [...announced.routed] : []
    // Asked for (GRAFT): its hops say nothing of the tree.
    const requested = (announced?.attempts ?? 0) > 0
    missing.delete(id)
    // A route of this node's for the origin, or a copy that travelled one (routes.ts): the shared
    // tree keeps out of it. A GRAFT's answer says which it is (`r`).
    const shared = from === undefined || routes.arrived(body.origin, id, from, requested, copy.r === true)
    const entry: CachedBroadcast = {
      id,
      origin: body.origin,
      from,
      payload: copy.payload,
      sig: copy.sig,
      hops: copy.hops,
      requested,
      routed: copy.r === true || routes.has(body.origin),
      viaRoute: !shared,
      at: now,
      haves: new Set(),
      grafted: new Map(),
      round: 0,
      nextAnnounceAt: now + opt.lazyDelayMs,
    }
    if (from !== undefined) {
      // Pushed here unasked: the tree reaches this node again (repair.ts).
      if (!requested) links.cut = false
      noteHave(entry, from)
      // Plumtree: whoever sent us a new message is on our tree (this also completes a GRAFT).
      if (shared && !optimiser.isStraggler(from, now)) links.makeEager(from)
      if (shared && links.has(from)) tree.noteFirst(from, id, now)
    }
    for (const p of alsoHave) noteHave(entry, p)
    for (const p of announcers) noteHave(entry, p)
    if (from !== undefined && !requested) {
      // Announced before it came: each announcer's hop count is a sample for the tree optimisation.
      announcers.forEach((p, i) => {
        const h = announcedHops[i] ?? -1
        if (h === 0 && p !== body.origin) bump(counters, 'drop.badIHaveHops')
        else if (h >= 0) {
          if (shared && !entry.routed && !announcedRouted[i]) optimiser.sample(from, p, copy.hops, h)
          routes.sample(body.origin, id, from, copy.hops, p, h)
        }
      })
    }
    cache.add(entry)
    deliver({ id, topic: body.topic, data: body.data, origin: body.origin, hops: copy.hops })
    if (copy.hops >= opt.maxHops) {
      bump(counters, 'hopLimitReached')
      return
    }
    push.relay(entry)
  }

  async function onGossip(from: string, m: GossipMsg): Promise<void> {
    bump(counters, 'payloadIn')
    if (m.payload.length > opt.maxPayloadBytes) return void bump(counters, 'drop.tooLarge')
    if (m.hops < 1 || m.hops > opt.maxHops) return void bump(counters, 'drop.badHops')
    const id = msgIdOf(m.sig)
    if (seen.has(id)) return duplicate(from, id, m.r === true, m.hops)

    const entered = pending.enter(id, m, from, deps.now())
    // Same bytes while the check runs: one check, one delivery; the sender is answered after.
    if (entered === 'merged') return void bump(counters, 'duplicatesPending')
    if (entered === 'candidates') return void bump(counters, 'drop.pendingCandidates')
    if (entered === 'full') return void bump(counters, 'drop.pendingFull')
    const { candidate: c, group } = entered

    const r = await check(c)
    pending.finish(id, group, c)
    if (!r.ok) {
      if (PEER_FAULTS.has(r.reason)) deps.misbehaved?.(from, `mesh.${r.reason}`)
      return void bump(counters, `drop.${r.reason}`)
    }
    if (seen.has(id)) {
      // Another copy with other bytes won the race (only an origin that signs twice with one nonce can do this).
      duplicate(from, id, m.r === true, m.hops)
      return
    }
    pending.settle(id, group)
    accept(id, r.body, c, from, c.dupFrom.keys())
    for (const [d, copy] of c.dupFrom) duplicate(d, id, copy.r, copy.hops)
  }

  /** A copy of an accepted broadcast (`routed`: pushed by the sender's route): the routes' business or the shared tree's. */
  function duplicate(from: string, id: string, routed: boolean, hops: number): void {
    const e = cache.get(id)
    if (e && routes.duplicate(e.origin, from, routed, hops, e.from, e.routed, e.hops)) {
      bump(counters, 'duplicates')
      noteHave(e, from)
      return
    }
    tree.duplicate(from, id)
  }

  return { onGossip, accept }
}
