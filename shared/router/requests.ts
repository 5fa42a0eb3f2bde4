/**
 * The source's side of a request (router.ts sends, forwards and receives):
 * it goes out, waits in pending.ts for its answer, and is copied while
 * unanswered (the same envelope, or the request again).
 *
 * A destination that refuses a link as full (NoRouteError `refused:
 * 'full'`) does not fail the request at once: a full node makes room for
 * its ring neighbours, and while the ring settles its view may not count us
 * yet. That refusal can come on the first send (no hop over the ring: the
 * source opens a link to the destination at once), on a copy, or on the
 * redial after a `noroute`. The request then waits for its next copy, which
 * goes in a new envelope, routed over the ring as the ring is by then; only
 * when no copy is due within the retry window and the deadline does it fail,
 * with that NoRouteError (at once, not at its deadline). Other refusals and
 * failures end it as before.
 */
import { AccessDeniedError, ClosedError, MessageTooLargeError, NoRouteError } from '../errors.ts'
import type { Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import { type Envelope, MAX_TTL, type RequestMsg, routeMsgValue } from './messages.ts'
import type { ResolvedRouterOptions } from './options.ts'
import type { PendingRequest, PendingRequests } from './pending.ts'

export interface RequestsDeps {
  readonly self: string
  readonly o: Pick<
    ResolvedRouterOptions,
    'requestTimeoutMs' | 'maxMessageBytes' | 'retryMs' | 'maxRetryBytes'
  >
  readonly pending: PendingRequests
  count(key: string): void
  now(): number
  random(): number
  isClosed(): boolean
  /** Run a request to this node itself. */
  callHere(method: string, data: Value): Promise<Value>
  /** Get the request to its destination (router.ts deliverTo): the envelope it went in, if any. */
  deliverTo(to: string, request: RequestMsg): Promise<Envelope | undefined>
  /** Pass an envelope on toward its destination (router.ts passOn). */
  passOn(envelope: Envelope): void
}

export interface Requests {
  /** Call `method` at `to` (Router.request). */
  request(to: string, method: string, data: Value, opts?: { timeoutMs?: number }): Promise<Value>
  /** A copy of an unanswered request is due (pending.ts tick). */
  sendAgain(p: PendingRequest): void
  /** The redial after a noroute for request `id` to `dst` failed with `err`: true when the request waits on. */
  keptAfterRedial(id: number, dst: string, err: unknown): boolean
}

export function createRequests(d: RequestsDeps): Requests {
  const { self, o, pending, count } = d
  // Request ids start at random, so a restarted node's ids do not meet its old ones in a served memory.
  let nextRequestId = Math.floor(d.random() * 2 ** 40)

  /** A refusal as full that may pass: `p` waits for its next copy (counted), if one is due in time. */
  function keptAfterRefusal(p: PendingRequest, err: unknown): boolean {
    if (!(err instanceof NoRouteError && err.refused === 'full') || !pending.keep(p, d.now())) return false
    count('route.retry-refused')
    return true
  }

  /** A copy of an unanswered request: the very same envelope, or the request again (bare, or in a new one). */
  function sendAgain(p: PendingRequest): void {
    count('route.retry')
    if (p.envelope) return d.passOn({ ...p.envelope, ttl: MAX_TTL })
    p.sending = true
    p.anew = false
    d.deliverTo(p.to, p.request).then(
      (envelope) => pending.sent(p, envelope, d.now()),
      (err: unknown) => {
        p.sending = false
        if (!pending.waiting(p)) return
        count('route.retry-failed')
        // A refusal with no copy left fails the request now, with why (not at its deadline).
        if (!keptAfterRefusal(p, err) && err instanceof NoRouteError && err.refused && pending.remove(p))
          p.reject(err)
      },
    )
  }

  function request(
    to: string,
    method: string,
    data: Value,
    opts: { timeoutMs?: number } = {},
  ): Promise<Value> {
    if (d.isClosed()) return Promise.reject(new ClosedError())
    if (to === self) return d.callHere(method, data)
    const timeoutMs = opts.timeoutMs ?? o.requestTimeoutMs
    const id = nextRequestId++
    const now = d.now()
    const req: RequestMsg = { t: 'req', id, method, data }
    const bytes = encodeValue(routeMsgValue(req)).length
    if (bytes > o.maxMessageBytes) return Promise.reject(new MessageTooLargeError(bytes, o.maxMessageBytes))
    return new Promise<Value>((resolve, reject) => {
      const p = pending.add({
        to,
        request: req,
        resolve,
        reject,
        deadline: now + timeoutMs,
        timeoutMs,
        firstSent: now,
        retries: o.retryMs > 0 && bytes <= o.maxRetryBytes,
      })
      d.deliverTo(to, req).then(
        (envelope) => pending.sent(p, envelope, d.now()),
        (err: unknown) => {
          p.sending = false
          if (keptAfterRefusal(p, err) || !pending.remove(p)) return
          reject(
            err instanceof MessageTooLargeError ||
              err instanceof NoRouteError ||
              err instanceof AccessDeniedError
              ? err
              : asNoRoute(to, err),
          )
        },
      )
    })
  }

  return {
    request,
    sendAgain,
    keptAfterRedial(id, dst, err) {
      const p = pending.get(id, dst)
      return p !== undefined && keptAfterRefusal(p, err)
    },
  }
}

/** `err` as the NoRouteError a caller gets (itself when it is one). */
export function asNoRoute(to: string, err: unknown): NoRouteError {
  if (err instanceof NoRouteError) return err
  return new NoRouteError(to, `no route to ${to}: ${err instanceof Error ? err.message : String(err)}`)
}
