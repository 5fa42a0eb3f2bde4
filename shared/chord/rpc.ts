/**
 * Requests and their answers. A request carries an id `r` chosen here; its
 * answer must echo `r` and come from the node asked (a recursive lookup's
 * `routed`, which any node on the path may send, is matched by `r` alone;
 * its `err`, the first hop's own or passed back by it, only from the first
 * hop).
 * Nothing waits on a timer: `expire(now)`, called from the node's tick,
 * fails every request past its deadline with null, and the owner of the
 * failure detector hears of each silent node (`onTimeout`). At most
 * `maxPending` requests are in flight; more fail at once
 * (`drop.pendingFull`), so a peer that never answers cannot make us hold
 * more. A request whose node the host cannot reach (the link it tried to
 * open failed) fails at once, as a timeout would (`rpc.unreachable`): a
 * node that left is not waited on for the whole timeout, twice. Request
 * ids count up, except a recursive lookup's: as any node may answer it,
 * its id is drawn at random, so a neighbour cannot answer it by guessing
 * the next id from those of the requests we send it.
 */
import { bump } from '../protocol.ts'
import type { ChordMsg, ChordReply } from './messages.ts'
import type { ChordContext } from './options.ts'

export interface RequestOptions {
  /** Accept a `routed` answer from any node (a recursive lookup's); any other answer only from `to`. */
  anyFrom?: boolean
  /** @default requestTimeoutMs */
  timeoutMs?: number
  /** Called when the request fails because its deadline passed (not when it could not be sent). */
  onTimeout?: () => void
}

export interface Rpc {
  /** Send a request and wait for its answer; null on timeout or when too many are in flight. */
  request(to: string, make: (r: number) => ChordMsg, opts?: RequestOptions): Promise<ChordMsg | null>
  /** An answer from `from`: settles the request it names, or is dropped (`drop.unexpectedReply`). */
  onReply(from: string, msg: ChordReply): void
  /** Is request `r` one we sent `from` and still wait for? */
  expects(from: string, r: number): boolean
  /** Fail the requests whose deadline has passed. */
  expire(now: number): void
}

interface Pending {
  /** Who must answer (a recursive lookup's `routed`: whoever ends it, when `anyFrom`). */
  to: string
  anyFrom: boolean
  deadline: number
  done: (m: ChordMsg | null) => void
  /** The requester's `onTimeout`. */
  timedOut: (() => void) | undefined
}

/** `onTimeout(to)`: a request to `to` went unanswered (the failure detector's input). */
export function createRpc(ctx: ChordContext, onTimeout: (to: string) => void): Rpc {
  const { deps, o, counters } = ctx
  const pending = new Map<number, Pending>()
  let nextRid = 1
  /** No pending deadline is earlier than this: expire has nothing to do before it (ticks outnumber timeouts). */
  let earliest = Number.POSITIVE_INFINITY

  /** A request id far above the counted ones, not in use (the counted one if the draw is: a stub's fixed random). */
  function unguessable(): number {
    const r = 2 ** 32 + Math.floor(deps.random() * (Number.MAX_SAFE_INTEGER - 2 ** 32))
    return pending.has(r) ? nextRid++ : r
  }

  return {
    request(to, make, opts = {}) {
      if (pending.size >= o.maxPending) {
        bump(counters, 'drop.pendingFull')
        return Promise.resolve(null)
      }
      const r = opts.anyFrom ? unguessable() : nextRid++
      const deadline = deps.now() + (opts.timeoutMs ?? o.requestTimeoutMs)
      if (deadline < earliest) earliest = deadline
      return new Promise((resolve) => {
        pending.set(r, {
          to,
          anyFrom: opts.anyFrom === true,
          deadline,
          timedOut: opts.onTimeout,
          done: (m) => {
            if (m === null && !opts.anyFrom) {
              bump(counters, 'rpc.timeout')
              onTimeout(to)
            }
            resolve(m)
          },
        })
        ctx.send(to, make(r), () => {
          const p = pending.get(r)
          if (!p) return // answered or expired already
          pending.delete(r)
          bump(counters, 'rpc.unreachable')
          p.done(null)
        })
      })
    },

    onReply(from, msg) {
      const p = pending.get(msg.r)
      if (!p || (p.to !== from && !(p.anyFrom && msg.t === 'routed'))) {
        bump(counters, 'drop.unexpectedReply')
        return
      }
      pending.delete(msg.r)
      p.done(msg)
    },

    expects: (from, r) => pending.get(r)?.to === from,

    expire(now) {
      if (now < earliest) return
      let next = Number.POSITIVE_INFINITY
      for (const [r, p] of pending) {
        if (p.deadline > now) {
          if (p.deadline < next) next = p.deadline
          continue
        }
        pending.delete(r)
        p.timedOut?.()
        p.done(null)
      }
      earliest = Math.min(next, earliest > now ? earliest : Number.POSITIVE_INFINITY)
    },
  }
}
