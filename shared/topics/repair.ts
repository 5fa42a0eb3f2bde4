/**
 * Topic repair: every tree node's history of recent publications, and the
 * lazy push that gives a tree neighbour what it missed (as Plumtree's IHAVE /
 * GRAFT, PROTOCOL-topics.md "Repair").
 *
 * - History: the publications of the last `HISTORY_MS` (30 s) per topic, at
 *   most MAX_DIGEST_IDS (32) of them, MAX_RECENT_BYTES (4 MiB) over all
 *   topics. The root answers a first JOIN from it.
 * - Who has what: for each entry, the tree neighbours known to have it (it
 *   came from them, we sent it to them, they announced or pulled it). An
 *   intact tree forwards every publication over every edge, so nothing is
 *   missing and no repair frame goes: the repair costs nothing while the tree
 *   holds, and nothing at all on a quiet topic.
 * - Digest (IHAVE): to a new tree neighbour at once (a child we adopt; a
 *   parent that adopted us), both ways, with the ids it is not known to have;
 *   and, while a topic has history, in rounds at 1 s after a publication then
 *   backing off (2, 4, 8, 16, 30 s; a new publication starts again at 1 s),
 *   to each neighbour only the ids it is not known to have (an id is
 *   announced once per neighbour), so a round usually sends nothing. The
 *   rounds stop when the history empties.
 * - Pull (IWANT): a node that lacks an announced id (not in its seen-cache)
 *   asks the announcer for it, once per id while the ask is pending (2 s; then
 *   another announcer may be asked); the announcer answers with the PUB, which
 *   is checked like any other (verified once, delivered at most once) and
 *   forwarded along the tree.
 *
 * Bounds (a hostile neighbour cannot make a node pull or send without bound):
 * ids per digest (MAX_DIGEST_IDS, larger is malformed); pulls asked per peer
 * (token bucket PULL_IDS_PER_S, excess ids ignored and counted), pending pulls
 * (MAX_PENDING); pulls served per peer (PULL_IDS_PER_S ids and
 * PULL_BYTES_PER_S bytes, excess dropped and counted); a pull for an id we do
 * not hold is dropped and counted; IHAVE / IWANT from a node that is not our
 * tree neighbour for that topic is dropped (`drop.not-tree`, by the caller).
 */

import { fromHex, toHex } from '../bytes.ts'
import { bump, type Counters } from '../protocol.ts'
import { TokenBucket } from '../token-bucket.ts'
import type { Value } from '../types.ts'
import {
  ID_BYTES,
  type IHaveMsg,
  type IWantMsg,
  MAX_DIGEST_IDS,
  MAX_HOPS_FIELD,
  type TopicMsg,
} from './messages.ts'

/** How long a tree node keeps a publication to repair its neighbours (and answer a first JOIN). */
export const HISTORY_MS = 30_000
/** Bytes of history a node keeps, over all its topics. */
export const MAX_RECENT_BYTES = 4_194_304
/** First digest round after a publication; the gap then doubles up to HISTORY_MS. */
export const DIGEST_FIRST_MS = 1_000
/** Ids a node asks one peer for, and serves to one peer, per second (burst: twice that). */
export const PULL_IDS_PER_S = 32
/** Bytes of pulled publications a node serves one peer per second (burst: twice that). */
export const PULL_BYTES_PER_S = 1_048_576
/** Pulls asked and not answered yet, over all topics. */
export const MAX_PENDING = 256
/** A pull unanswered this long may go to another announcer. */
export const PULL_TIMEOUT_MS = 2_000

export interface Entry {
  id: string
  payload: Uint8Array
  sig: Uint8Array
  hops: number
  at: number
  /** Tree neighbours known to have it. */
  have: Set<string>
}

export interface RepairDeps {
  now(): number
  send(to: string, msg: TopicMsg): void
  counters: Counters
  /** Our tree neighbours for `topic` (parent and children). */
  neighbours(topic: string): string[]
  /** Have we taken this publication already (the seen-cache)? */
  has(id: string): boolean
}

/** A token bucket per peer: `rate` per second, up to twice that saved. */
class Budget {
  private readonly buckets = new Map<string, TokenBucket>()
  constructor(private readonly rate: number) {}
  take(peer: string, n: number, now: number): boolean {
    let b = this.buckets.get(peer)
    if (!b) {
      if (this.buckets.size >= 1_024) this.buckets.delete(this.buckets.keys().next().value as string)
      b = new TokenBucket(this.rate, 2 * this.rate, now)
      this.buckets.set(peer, b)
    }
    return b.take(n, now)
  }
  drop(peer: string): void {
    this.buckets.delete(peer)
  }
}

function splitIds(ids: Uint8Array): string[] {
  const out: string[] = []
  for (let i = 0; i < ids.length; i += ID_BYTES) out.push(toHex(ids.subarray(i, i + ID_BYTES)))
  return out
}

function joinIds(ids: string[]): Uint8Array {
  const out = new Uint8Array(ids.length * ID_BYTES)
  for (let i = 0; i < ids.length; i++)
    out.set(fromHex(ids[i] as string) ?? new Uint8Array(ID_BYTES), i * ID_BYTES)
  return out
}

export function createRepair(deps: RepairDeps) {
  const { counters } = deps
  /** History by topic, oldest first. */
  const history = new Map<string, Entry[]>()
  let bytes = 0
  /** Digest rounds: topic → next round and the gap after it. */
  const rounds = new Map<string, { at: number; gap: number }>()
  /** Pulls asked: id → when. */
  const pending = new Map<string, number>()
  const asked = new Budget(PULL_IDS_PER_S)
  const servedIds = new Budget(PULL_IDS_PER_S)
  const servedBytes = new Budget(PULL_BYTES_PER_S)

  function prune(topic: string, now: number): Entry[] {
    const list = history.get(topic) ?? []
    while (list.length > 0 && (list[0] as Entry).at < now - HISTORY_MS)
      bytes -= (list.shift() as Entry).payload.length
    return list
  }

  /** Send `peer` the ids of `topic`'s history it is not known to have (then it is: announced once). */
  function announce(topic: string, peer: string): void {
    const list = prune(topic, deps.now())
    const ids: string[] = []
    for (const e of list)
      if (!e.have.has(peer)) {
        ids.push(e.id)
        e.have.add(peer)
      }
    if (ids.length === 0) return
    bump(counters, 'repair.ihave.sent')
    deps.send(peer, { type: 'ihave', topic, ids: joinIds(ids.slice(-MAX_DIGEST_IDS)) })
  }

  return {
    /** Keep a checked publication (null when over the byte bound); a digest round is due in 1 s. */
    remember(topic: string, id: string, payload: Uint8Array, sig: Uint8Array, hops: number): Entry | null {
      const now = deps.now()
      const list = prune(topic, now)
      while (list.length >= MAX_DIGEST_IDS) bytes -= (list.shift() as Entry).payload.length
      if (bytes + payload.length > MAX_RECENT_BYTES) {
        bump(counters, 'recent.full')
        if (list.length === 0) history.delete(topic)
        return null
      }
      const e: Entry = { id, payload, sig, hops, at: now, have: new Set() }
      list.push(e)
      bytes += payload.length
      history.set(topic, list)
      const r = rounds.get(topic)
      if (!r || r.at > now + DIGEST_FIRST_MS)
        rounds.set(topic, { at: now + DIGEST_FIRST_MS, gap: DIGEST_FIRST_MS })
      else r.gap = DIGEST_FIRST_MS
      return e
    },

    /** The newest `max` publications of the history window (a first JOIN's answer). */
    recent(topic: string, max: number): Entry[] {
      return prune(topic, deps.now()).slice(-max)
    },

    forget(topic: string): void {
      for (const e of history.get(topic) ?? []) bytes -= e.payload.length
      history.delete(topic)
      rounds.delete(topic)
    },

    announce,

    /** An IHAVE from a tree neighbour: note what it has, pull what we lack (bounded). */
    onIHave(from: string, msg: IHaveMsg): void {
      const now = deps.now()
      bump(counters, 'repair.ihave.received')
      const byId = new Map((history.get(msg.topic) ?? []).map((e) => [e.id, e]))
      const want: string[] = []
      for (const id of splitIds(msg.ids)) {
        const mine = byId.get(id)
        if (mine) mine.have.add(from)
        if (deps.has(id)) continue
        const asking = pending.get(id)
        if (asking !== undefined && asking > now - PULL_TIMEOUT_MS) continue
        if (pending.size >= MAX_PENDING || !asked.take(from, 1, now)) {
          bump(counters, 'repair.pull.limited')
          continue
        }
        pending.set(id, now)
        want.push(id)
      }
      if (want.length === 0) return
      bump(counters, 'repair.iwant.sent')
      bump(counters, 'repair.pulled', want.length)
      deps.send(from, { type: 'iwant', topic: msg.topic, ids: joinIds(want) })
    },

    /** An IWANT from a tree neighbour: send what we hold of it, within its budget. */
    onIWant(from: string, msg: IWantMsg): void {
      const now = deps.now()
      const byId = new Map(prune(msg.topic, now).map((e) => [e.id, e]))
      for (const id of splitIds(msg.ids)) {
        const e = byId.get(id)
        if (!e) {
          bump(counters, 'drop.pull-unknown')
          continue
        }
        if (!servedIds.take(from, 1, now) || !servedBytes.take(from, e.payload.length, now)) {
          bump(counters, 'drop.pull-rate')
          continue
        }
        e.have.add(from)
        bump(counters, 'repair.served')
        deps.send(from, {
          type: 'pub',
          topic: msg.topic,
          payload: e.payload,
          sig: e.sig,
          hops: Math.min(MAX_HOPS_FIELD, e.hops + 1),
        })
      }
    },

    /** A publication arrived (pulled or not): its pull is no longer pending. */
    arrived(id: string): void {
      pending.delete(id)
    },

    peerGone(peer: string): void {
      asked.drop(peer)
      servedIds.drop(peer)
      servedBytes.drop(peer)
    },

    /** Digest rounds that are due; stale pending pulls go. */
    tick(now: number): void {
      for (const [id, at] of pending) if (at <= now - PULL_TIMEOUT_MS) pending.delete(id)
      for (const [topic, r] of rounds) {
        if (now < r.at) continue
        if (prune(topic, now).length === 0) {
          history.delete(topic)
          rounds.delete(topic)
          continue
        }
        for (const peer of deps.neighbours(topic)) announce(topic, peer)
        r.gap = Math.min(HISTORY_MS, r.gap * 2)
        r.at = now + r.gap
      }
    },

    /** Bytes held (for tests). */
    bytes: () => bytes,
  }
}

export type Repair = ReturnType<typeof createRepair>

/**
 * An old root's last publications go to the topic's new root (INJECT; it
 * drops what it has): one injected while the ring settled may have reached
 * nobody else yet.
 */
export async function handOver(
  list: readonly Entry[],
  topic: string,
  newRoot: () => Promise<string>,
  self: string,
  inject: (root: string, v: Value) => Promise<unknown>,
  counters: Counters,
): Promise<void> {
  if (list.length === 0) return
  try {
    const root = await newRoot()
    if (root === self) return
    for (const e of list) {
      await inject(root, { t: topic, p: e.payload, s: e.sig })
      bump(counters, 'root.handed-over')
    }
  } catch {
    bump(counters, 'root.hand-over-failed')
  }
}
