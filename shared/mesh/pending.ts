/**
 * Broadcasts whose signature check is running (checks are asynchronous). The
 * same bytes arriving while their check runs join it (one check, one
 * delivery; the extra senders are answered after), and other bytes under the
 * same id are checked as further candidates: a forgery racing ahead of the
 * genuine copy cannot block it. Bounded in ids, candidates per id and
 * payload bytes; a check still running after the mesh's `pendingTtlMs` is
 * abandoned.
 */
import { bytesEqual } from '../bytes.ts'
import type { GossipMsg } from './messages.ts'

/** One copy of a broadcast waiting on its signature check, and the neighbours that sent these same bytes. */
export interface Candidate {
  readonly payload: Uint8Array
  readonly sig: Uint8Array
  readonly hops: number
  /** Pushed by a per-origin route (routes.ts). */
  readonly r?: true
  readonly from: string
  /** Neighbours that sent these same bytes while the check ran: each copy's hop count, and whether a route pushed it. */
  readonly dupFrom: Map<string, { hops: number; r: boolean }>
}

/** The candidates for one id, and when the first came. */
export interface PendingGroup {
  readonly candidates: Candidate[]
  readonly at: number
}

/** What became of a copy: a new candidate to check, or why not. */
export type Entered =
  | { candidate: Candidate; group: PendingGroup }
  | 'merged' // the same bytes are being checked already
  | 'candidates' // too many different copies of this id
  | 'full' // too many ids or bytes waiting

export class PendingChecks {
  private readonly groups = new Map<string, PendingGroup>()
  private total = 0

  constructor(
    readonly maxIds: number,
    readonly maxBytes: number,
    readonly maxCandidates: number,
    /** Most other senders remembered per candidate. */
    readonly maxPeers: number,
  ) {}

  get size(): number {
    return this.groups.size
  }

  get bytes(): number {
    return this.total
  }

  has(id: string): boolean {
    return this.groups.has(id)
  }

  /** A copy of broadcast `id` from `from` arrived: join a running check, or become a candidate. */
  enter(id: string, copy: GossipMsg, from: string, now: number): Entered {
    let group = this.groups.get(id)
    if (group) {
      for (const c of group.candidates) {
        if (bytesEqual(c.sig, copy.sig) && bytesEqual(c.payload, copy.payload)) {
          if (c.from !== from && c.dupFrom.size < this.maxPeers)
            c.dupFrom.set(from, { hops: copy.hops, r: copy.r === true })
          return 'merged'
        }
      }
      if (group.candidates.length >= this.maxCandidates) return 'candidates'
    } else if (this.groups.size >= this.maxIds) {
      return 'full'
    }
    if (this.total + copy.payload.length > this.maxBytes) return 'full'
    if (!group) {
      group = { candidates: [], at: now }
      this.groups.set(id, group)
    }
    const candidate: Candidate = {
      payload: copy.payload,
      sig: copy.sig,
      hops: copy.hops,
      ...(copy.r ? { r: true } : {}),
      from,
      dupFrom: new Map(),
    }
    group.candidates.push(candidate)
    this.total += candidate.payload.length
    return { candidate, group }
  }

  /** The check of `c` is over, whatever it found. */
  finish(id: string, group: PendingGroup, c: Candidate): void {
    const i = group.candidates.indexOf(c)
    if (i < 0) return
    group.candidates.splice(i, 1)
    if (this.groups.get(id) === group) {
      this.total -= c.payload.length
      if (group.candidates.length === 0) this.groups.delete(id)
    }
  }

  /** `id` was accepted: its other candidates are moot (their checks finish into the seen-cache). */
  settle(id: string, group: PendingGroup): void {
    if (this.groups.get(id) !== group) return
    for (const o of group.candidates) this.total -= o.payload.length
    this.groups.delete(id)
  }

  /** Abandon the checks that began more than `ttlMs` before `now`; returns how many ids went. */
  expire(now: number, ttlMs: number): number {
    let n = 0
    for (const [id, group] of this.groups) {
      if (now - group.at <= ttlMs) continue
      for (const c of group.candidates) this.total -= c.payload.length
      this.groups.delete(id)
      n++
    }
    return n
  }
}
