/**
 * Routed unicast and request/response between any two nodes of a network
 * (frame Kind 3; the grammar and the rules are in PROTOCOL-route.md).
 *
 * Over a direct link a message goes as it is: the link is authenticated, so
 * its peer is the sender. Without one, the message travels hop by hop in an
 * envelope its source signs (with its clock, `signedAt`), so nodes on the way
 * can neither forge nor alter it; each hop passes it to the next one the host
 * names (`deps.nextHop`: a direct link, else an open link closer on the
 * ring, else Chord's next hop). Only the destination checks the signature.
 *
 * What keeps it reliable, and what keeps it at most once:
 *
 * - the outbox (outbox.ts): envelopes the source sent are kept briefly. A hop
 *   whose part of the ring has no place for the destination (a view that
 *   lags a join) answers `noroute`; the source then opens a link to the
 *   destination outside the ring (`deps.connect`: the browser node through
 *   the signal server, the simulator at once) and sends the same envelope
 *   over it. A link-setup signal goes again another way instead
 *   (`deps.resendSignal`).
 * - retries: a request unanswered after `retryMs` is sent again (the same
 *   envelope, or the same request over the direct link), then after twice as
 *   long each time, for `retryWindowMs` at most; the first answer wins.
 * - the replay window (shared/mesh/seen-cache.ts): the destination delivers
 *   an envelope only if its signed time is recent and its signature is new,
 *   so a copy (that resend, a retry, a replay by a node on the path) is
 *   dropped, however late and after however many others.
 * - the served memory (served.ts): a request is remembered by its source and
 *   id; a copy does not run the handler again but gets the kept answer.
 *
 * Pending requests time out by `tick(now)`; the host drives time (no timers
 * here). Every drop is counted by reason.
 */
import { toHex } from '../bytes.ts'
import { ClosedError, MessageTooLargeError, NoRouteError, RemoteError, TimeoutError } from '../errors.ts'
import type { Keyring } from '../identity/keys.ts'
import { isPublicKey } from '../identity/keys.ts'
import { type Admission, SeenCache } from '../mesh/seen-cache.ts'
import { bump, type Counters, type ProtocolNode } from '../protocol.ts'
import { isValue, type Value } from '../types.ts'
import { decodeValueResult, encodeValue } from '../wire/value.ts'
import {
  type AnswerMsg,
  type Envelope,
  envelopeSigned,
  type InnerMsg,
  MAX_ERROR_MESSAGE,
  MAX_TTL,
  NONCE_BYTES,
  parseInnerMsg,
  ROUTE_MAX_AGE_MS,
  ROUTE_MAX_SKEW_MS,
  type RouteMsg,
  routeMsgValue,
} from './messages.ts'
import { Outbox, type OutboxOptions } from './outbox.ts'
import { type Served, ServedMemory, type ServedOptions } from './served.ts'

/** The way toward a destination, as the host sees it now. */
export interface Hop {
  /** The next node: the destination itself when linked to it. */
  via: string
  /** Is a link to `via` open now? (A closed one is opened on demand by `sendVia`.) */
  open: boolean
}

export interface RouterDeps {
  /** This node's id. */
  readonly id: string
  /** Signs our envelopes and checks others' (the host refuses keys below the network's puzzle). */
  readonly keys: Keyring
  now(): number
  /** Uniform in [0, 1): nonces and the first request id. */
  random(): number
  /**
   * The next hop toward `dst`: `dst` itself when a link to it is open; else
   * an open link strictly closer to `dst` on the ring; else the ring's next
   * hop (which never passes `dst`). Null when this node knows no way (it is
   * not on a ring, or its part of the ring has no place for `dst`).
   */
  nextHop(dst: string): Hop | null
  /**
   * Send over the open link to `to`. A rejection (too large, link closed)
   * reaches the caller of send/request; with no open link it may be dropped.
   */
  send(to: string, msg: RouteMsg): void | Promise<void>
  /** Send over the link to `to`, opening one on demand; best effort, never throws. */
  sendVia(to: string, msg: RouteMsg): void
  /** Open a link to `to` outside the ring; resolves once it is open, rejects when it cannot be. */
  connect(to: string): Promise<void>
  /** A link-setup signal from `from` (routed, or over the link with it: `overLink`). */
  onSignal?(from: string, data: Value, overLink: boolean): void
  /** A link-setup signal the ring could not place: send it to `dst` another way (the signal server). */
  resendSignal?(dst: string, data: Value): void
}

export interface RouterOptions {
  /** Largest inner message (MessagePack bytes) sent in an envelope. @default 4_194_304 (4 MiB) */
  maxMessageBytes?: number
  /** How long a request waits for its answer unless told. @default 10_000 */
  requestTimeoutMs?: number
  /** An unanswered request is sent again after this long, then after twice as long each time. 0: never. @default 1_000 */
  retryMs?: number
  /** Longest gap between two sends of a request. @default 2_000 */
  maxRetryGapMs?: number
  /** A request is sent again only this long after its first send (the served memory must cover it). @default 30_000 */
  retryWindowMs?: number
  /** A request larger than this (MessagePack bytes) is sent once: a copy costs its size on every hop. @default 65_536 */
  maxRetryBytes?: number
  /** Envelopes kept for a resend after `noroute`. @default 15 s, 128 destinations, 4 MiB, 256 per destination */
  outbox?: Partial<OutboxOptions>
  /** Envelope signatures remembered (the replay window narrows past it). @default 8_192 */
  seenMax?: number
  /** The replay window's past. @default 120_000 (ROUTE_MAX_AGE_MS) */
  maxAgeMs?: number
  /** The replay window's future: the clock skew allowed. @default 60_000 (ROUTE_MAX_SKEW_MS) */
  maxSkewMs?: number
  /** Requests served here, remembered for copies. @default 60 s, 8,192 entries, 1,024 per source, 4 MiB of answers (256 KiB each), resent at most 8 times, 500 ms apart */
  served?: Partial<ServedOptions>
  /** After a `noroute` for a node, `preferServer(node)` holds this long. @default 60_000 */
  serverSignalsMs?: number
}

export type RequestHandler = (
  data: Value,
  meta: { from: string },
) => Value | undefined | Promise<Value | undefined>
export type MessageListener = (m: { from: string; topic: string; data: Value; hops: number }) => void

export interface Router extends ProtocolNode<RouteMsg> {
  /** A route message over the link with `from` (parsed by parseRouteMsg). */
  handle(from: string, msg: RouteMsg): Promise<void>
  tick(now: number): void
  /** The link to `peer` closed: requests waiting for its answer fail (NoRouteError). */
  linkDown(peer: string): void
  /** Deliver `data` to the subscribers of `topic` at node `to` (ourselves included: hops 0). */
  send(to: string, topic: string, data: Value): Promise<void>
  /** Call `method` at node `to`: its handler's answer, RemoteError, NoRouteError or TimeoutError. */
  request(to: string, method: string, data: Value, opts?: { timeoutMs?: number }): Promise<Value>
  /** Answer requests for `method` (one handler per method, the last wins); returns the undo. */
  serve(method: string, fn: RequestHandler): () => void
  /** Called with every unicast message delivered here. */
  onMessage(fn: MessageListener): () => void
  /** Send a link-setup signal to `to` over the ring, in an envelope. */
  signal(to: string, data: Value): Promise<void>
  /** Can a signal to `to` go over the ring now (a hop is open and no `noroute` came for it lately)? */
  canSignal(to: string): boolean
  /** Fail every pending request (ClosedError); later calls fail too. */
  close(): void
  /** Traffic and drops by name (PROTOCOL-route.md). */
  readonly counters: Counters
  /** Entries held in each bounded memory. */
  sizes(): RouterSizes
}

export interface RouterSizes {
  pending: number
  outbox: number
  outboxBytes: number
  seen: number
  served: number
  servedBytes: number
}

interface Pending {
  to: string
  request: Extract<InnerMsg, { t: 'req' }>
  resolve: (v: Value) => void
  reject: (e: Error) => void
  deadline: number
  timeoutMs: number
  firstSent: number
  /** When the next copy goes (Infinity while the first send is under way). */
  retryAt: number
  gap: number
  /** The envelope it went in, if it went over the ring (a retry sends the very same). */
  envelope: Envelope | undefined
  sending: boolean
  /** Small enough to be sent again (maxRetryBytes). */
  retries: boolean
}

/** An envelope kept in the outbox, and what a noroute does with it. */
interface Kept {
  envelope: Envelope
  requestId: number | undefined
  /** A link-setup signal: it goes again another way, not over a link. */
  signal: Value | undefined
}

/** What a refusal by the replay window counts as. */
const WINDOW_DROP: Record<Exclude<Admission, 'ok'>, string> = {
  tooOld: 'drop.route.too-old',
  future: 'drop.route.future',
  forgotten: 'drop.route.forgotten',
}

const DEFAULT_OUTBOX: OutboxOptions = {
  keepMs: 15_000,
  maxDsts: 128,
  maxBytes: 4 * 1024 * 1024,
  maxPerDst: 256,
}
const DEFAULT_SERVED: ServedOptions = {
  keepMs: 60_000,
  maxEntries: 8_192,
  maxPerSource: 1_024,
  maxBytes: 4 * 1024 * 1024,
  maxAnswerBytes: 256 * 1024,
  resendGapMs: 500,
  maxResends: 8,
}

export function createRouter(deps: RouterDeps, options: RouterOptions = {}): Router {
  const self = deps.id
  const o = {
    maxMessageBytes: options.maxMessageBytes ?? 4 * 1024 * 1024,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    retryMs: options.retryMs ?? 1_000,
    maxRetryGapMs: options.maxRetryGapMs ?? 2_000,
    retryWindowMs: options.retryWindowMs ?? 30_000,
    maxRetryBytes: options.maxRetryBytes ?? 65_536,
    serverSignalsMs: options.serverSignalsMs ?? 60_000,
  }
  const counters: Counters = {}
  const outboxOptions = { ...DEFAULT_OUTBOX, ...options.outbox }
  const outbox = new Outbox<Kept>(outboxOptions)
  const seen = new SeenCache(
    options.seenMax ?? 8_192,
    options.maxAgeMs ?? ROUTE_MAX_AGE_MS,
    options.maxSkewMs ?? ROUTE_MAX_SKEW_MS,
  )
  const served = new ServedMemory({ ...DEFAULT_SERVED, ...options.served })
  const handlers = new Map<string, RequestHandler>()
  const listeners = new Set<MessageListener>()
  const pending = new Map<number, Pending>()
  /** Nodes a noroute named lately -> until when their signals should go another way. */
  const serverSignals = new Map<string, number>()
  // Request ids start at random, so a restarted node's ids do not meet its old ones in a served memory.
  let nextRequestId = Math.floor(deps.random() * 2 ** 40)
  let closed = false

  const count = (key: string) => bump(counters, key)
  const failed = (key: string) => () => count(key)

  function nonce(): Uint8Array {
    const n = new Uint8Array(NONCE_BYTES)
    for (let i = 0; i < NONCE_BYTES; i += 2) {
      const r = Math.floor(deps.random() * 65_536)
      n[i] = r >>> 8
      n[i + 1] = r & 0xff
    }
    return n
  }

  // ---------------------------------------------------------------- sending

  /**
   * Get `inner` to node `to`: over a direct link when one is open; else in a
   * signed envelope over the ring when a hop toward `to` is open; else over a
   * link opened now. Resolves to the envelope when it went in one.
   */
  async function deliverTo(to: string, inner: InnerMsg): Promise<Envelope | undefined> {
    const hop = deps.nextHop(to)
    if (hop?.open && hop.via === to) {
      await deps.send(to, inner)
      return undefined
    }
    if (hop?.open) return forward(to, inner)
    await deps.connect(to)
    await deps.send(to, inner)
    return undefined
  }

  /** Wrap `inner` in a signed envelope from this node to `dst`, keep it in the outbox, and pass it on. */
  async function forward(dst: string, inner: InnerMsg): Promise<Envelope> {
    const body = encodeValue(routeMsgValue(inner))
    if (body.length > o.maxMessageBytes) throw new MessageTooLargeError(body.length, o.maxMessageBytes)
    const n = nonce()
    // Whole milliseconds on the wire (the simulator's clock has fractions).
    const signedAt = Math.floor(deps.now())
    const sig = await deps.keys.sign(envelopeSigned(self, dst, n, signedAt, body))
    count('route.originated')
    const envelope: Envelope = {
      t: 'fwd',
      src: self,
      dst,
      ttl: MAX_TTL,
      nonce: n,
      signedAt,
      publicKey: deps.keys.publicKey,
      sig,
      body,
    }
    // Kept for a resend should the ring answer noroute (a noroute itself is not sent again).
    if (inner.t !== 'noroute')
      outbox.keep(
        dst,
        {
          envelope,
          requestId: inner.t === 'req' ? inner.id : undefined,
          signal: inner.t === 'sig' ? inner.data : undefined,
        },
        body.length,
        deps.now(),
      )
    passOn(envelope)
    return envelope
  }

  /**
   * One hop closer: over an open link that makes progress, else toward the
   * ring's next hop (a link opened on demand). Both only ever move strictly
   * closer to dst, so an envelope cannot circle. With no hop, this node's
   * part of the ring has no place for dst: noroute.
   */
  function passOn(envelope: Envelope): void {
    const hop = deps.nextHop(envelope.dst)
    if (!hop || hop.via === self) {
      count('route.noroute')
      if (envelope.src === self) return noRoute(envelope.dst, envelope.nonce)
      forward(envelope.src, { t: 'noroute', dst: envelope.dst, nonce: envelope.nonce }).catch(
        failed('route.noroute-failed'),
      )
      return
    }
    deps.sendVia(hop.via, envelope)
  }

  /**
   * The ring found no way to `dst` for the envelope with nonce `n` (all we
   * sent to `dst` when `n` is not given). Its view may lag a join, so this is
   * not the end: a link-setup signal goes again another way, anything else
   * over a link to `dst` opened outside the ring, and later signals to `dst`
   * avoid the ring for a while. Only if that link fails do the requests fail
   * (NoRouteError). A lying noroute costs at most one link: the destination
   * drops a second copy.
   */
  function noRoute(dst: string, n?: Uint8Array): void {
    serverSignals.delete(dst)
    serverSignals.set(dst, deps.now() + o.serverSignalsMs)
    if (serverSignals.size > outboxOptions.maxDsts) {
      const oldest = serverSignals.keys().next()
      if (!oldest.done) serverSignals.delete(oldest.value)
    }
    const wanted = n && toHex(n)
    const taken = outbox.take(dst, deps.now(), wanted ? (k) => toHex(k.envelope.nonce) === wanted : undefined)
    const again: Kept[] = []
    for (const k of taken) {
      if (k.signal === undefined) {
        again.push(k)
        continue
      }
      count('signal.noroute-server')
      deps.resendSignal?.(dst, k.signal)
    }
    if (again.length === 0) return
    count('route.redial')
    deps.connect(dst).then(
      () => {
        for (const { envelope } of again)
          Promise.resolve(deps.send(dst, envelope)).catch(failed('route.lost'))
      },
      (err: unknown) => {
        for (const { requestId } of again) {
          const p = requestId === undefined ? undefined : pending.get(requestId)
          if (requestId === undefined || p?.to !== dst) {
            count('route.lost')
            continue
          }
          pending.delete(requestId)
          p.reject(asNoRoute(dst, err))
        }
      },
    )
  }

  // ---------------------------------------------------------------- receiving

  /** An envelope that arrived over the link with `lastHop`. */
  async function onEnvelope(envelope: Envelope, lastHop: string): Promise<void> {
    if (envelope.dst !== self) {
      if (envelope.ttl <= 0) return count('drop.route.ttl')
      count('route.forwarded')
      return passOn({ ...envelope, ttl: envelope.ttl - 1 })
    }
    // At most once: a copy (a resend after noroute, a retry, a replay by a node on the path) is
    // dropped while remembered; once forgotten (the replay window), its signed time is refused.
    const key = toHex(envelope.sig.subarray(0, 16))
    if (seen.has(key)) return again(envelope.src, key)
    const admission = seen.admit(envelope.src, key, envelope.signedAt, deps.now())
    if (admission !== 'ok') return count(WINDOW_DROP[admission])
    // End to end: the source's key must hash to its id and sign these exact bytes.
    const ok =
      isPublicKey(envelope.publicKey) &&
      (await deps.keys.idOf(envelope.publicKey)) === envelope.src &&
      (await deps.keys.verify(
        envelope.publicKey,
        envelopeSigned(envelope.src, envelope.dst, envelope.nonce, envelope.signedAt, envelope.body),
        envelope.sig,
      ))
    if (!ok) return count('drop.route.forged')
    // Two copies may have passed the check above while the signature was checked.
    if (seen.has(key)) return again(envelope.src, key)
    seen.add(envelope.src, key, envelope.signedAt)
    const v = decodeValueResult(envelope.body)
    const inner = v ? parseInnerMsg(v.value) : null
    if (!inner) return count('drop.route.body')
    count('route.delivered')
    const reply = (m: AnswerMsg) => deliverTo(envelope.src, m).then(() => {})
    await onInner(envelope.src, inner, reply, lastHop === envelope.src, key)
  }

  /** A copy of an envelope delivered before: dropped; if it was a request that has answered, the answer goes again. */
  function again(src: string, key: string): void {
    count('drop.route.again')
    const e = served.bySignature(src, key)
    if (e) resendAnswer(e, (m) => deliverTo(src, m).then(() => {}))
  }

  function resendAnswer(e: Served, reply: (m: AnswerMsg) => Promise<void>): void {
    if (!e.done) return count('route.request-running')
    if (!e.answer || !served.mayResend(e, deps.now())) return count('route.answer-not-resent')
    count('route.answer-resent')
    reply(e.answer).catch(failed('route.reply-failed'))
  }

  /**
   * A message from `from` (a linked peer, or the checked source of an
   * envelope: `sigKey` names the envelope); `overLink` when it came over our
   * link with `from`.
   */
  async function onInner(
    from: string,
    m: InnerMsg,
    reply: (m: AnswerMsg) => Promise<void>,
    overLink: boolean,
    sigKey: string | undefined,
  ): Promise<void> {
    switch (m.t) {
      case 'msg':
        for (const fn of [...listeners]) fn({ from, topic: m.topic, data: m.data, hops: 1 })
        return
      case 'sig':
        deps.onSignal?.(from, m.data, overLink)
        return
      case 'noroute':
        noRoute(m.dst, m.nonce)
        return
      case 'req':
        // The handler is the application's: it may take its time, and nothing waits for it here.
        serveRequest(from, m, reply, sigKey).catch(failed('route.reply-failed'))
        return
      case 'res':
      case 'err': {
        const p = pending.get(m.id)
        if (!p || p.to !== from) return count('drop.route.unexpected-answer')
        pending.delete(m.id)
        if (m.t === 'res') p.resolve(m.data)
        else p.reject(new RemoteError(m.message))
        return
      }
    }
  }

  async function serveRequest(
    from: string,
    m: Extract<InnerMsg, { t: 'req' }>,
    reply: (m: AnswerMsg) => Promise<void>,
    sigKey: string | undefined,
  ): Promise<void> {
    const known = served.get(from, m.id)
    if (known) {
      count('route.request-again')
      return resendAnswer(known, reply)
    }
    let answer: AnswerMsg
    if (!handlers.has(m.method)) {
      // Nothing runs, so nothing is remembered: a copy gets the same answer.
      answer = { t: 'err', id: m.id, code: 'no-handler', message: `no handler for ${m.method}` }
    } else {
      const e = served.start(from, m.id, sigKey, deps.now())
      try {
        answer = { t: 'res', id: m.id, data: await callHandler(m.method, m.data, from) }
      } catch (err) {
        answer = {
          t: 'err',
          id: m.id,
          code: 'remote',
          message: errorMessage(err).slice(0, MAX_ERROR_MESSAGE - 96),
        }
      }
      served.finish(e, answer, encodeValue(routeMsgValue(answer)).length)
    }
    await reply(answer).catch(failed('route.reply-failed'))
  }

  async function callHandler(method: string, data: Value, from: string): Promise<Value> {
    const h = handlers.get(method)
    if (!h) throw new RemoteError(`no handler for ${method}`)
    const out = await h(data, { from })
    const v = out === undefined ? null : out
    if (!isValue(v)) throw new TypeError(`handler for ${method} returned a value weft cannot carry`)
    return v
  }

  // ---------------------------------------------------------------- requests

  function retry(id: number, p: Pending, now: number): void {
    p.retryAt = now + p.gap
    p.gap = Math.min(p.gap * 2, o.maxRetryGapMs)
    count('route.retry')
    if (p.envelope) return passOn({ ...p.envelope, ttl: MAX_TTL })
    p.sending = true
    deliverTo(p.to, p.request).then(
      (envelope) => {
        p.sending = false
        if (envelope) p.envelope = envelope
      },
      () => {
        p.sending = false
        if (pending.get(id) === p) count('route.retry-failed')
      },
    )
  }

  function expire(now: number): void {
    for (const [id, p] of pending) {
      if (now >= p.deadline) {
        pending.delete(id)
        p.reject(new TimeoutError(`request ${p.request.method} to ${p.to} timed out after ${p.timeoutMs} ms`))
        continue
      }
      if (p.retries && !p.sending && now >= p.retryAt && now - p.firstSent < o.retryWindowMs)
        retry(id, p, now)
    }
  }

  return {
    counters,

    async handle(from, msg) {
      if (closed) return
      if (msg.t === 'fwd') return onEnvelope(msg, from)
      const reply = async (m: AnswerMsg) => {
        // Over the link it came on; when that has closed, the source has given up already.
        const hop = deps.nextHop(from)
        if (hop?.open && hop.via === from) await deps.send(from, m)
        else count('route.reply-no-link')
      }
      await onInner(from, msg, reply, true, undefined)
    },

    tick(now) {
      outbox.prune(now)
      seen.expire(now)
      served.prune(now)
      for (const [peer, until] of serverSignals) if (until <= now) serverSignals.delete(peer)
      expire(now)
    },

    linkDown(peer) {
      for (const [id, p] of pending) {
        if (p.to !== peer) continue
        pending.delete(id)
        p.reject(new NoRouteError(peer, `link to ${peer} closed before the answer`))
      }
    },

    async send(to, topic, data) {
      if (closed) throw new ClosedError()
      if (to === self) {
        for (const fn of [...listeners]) fn({ from: self, topic, data, hops: 0 })
        return
      }
      await deliverTo(to, { t: 'msg', topic, data })
    },

    request(to, method, data, opts = {}) {
      if (closed) return Promise.reject(new ClosedError())
      if (to === self) return callHandler(method, data, self)
      const timeoutMs = opts.timeoutMs ?? o.requestTimeoutMs
      const id = nextRequestId++
      const now = deps.now()
      const request: Extract<InnerMsg, { t: 'req' }> = { t: 'req', id, method, data }
      const bytes = encodeValue(routeMsgValue(request)).length
      if (bytes > o.maxMessageBytes) return Promise.reject(new MessageTooLargeError(bytes, o.maxMessageBytes))
      return new Promise<Value>((resolve, reject) => {
        const p: Pending = {
          to,
          request,
          resolve,
          reject,
          deadline: now + timeoutMs,
          timeoutMs,
          firstSent: now,
          retryAt: Number.POSITIVE_INFINITY,
          gap: o.retryMs,
          envelope: undefined,
          sending: true,
          retries: o.retryMs > 0 && bytes <= o.maxRetryBytes,
        }
        pending.set(id, p)
        deliverTo(to, request).then(
          (envelope) => {
            p.sending = false
            p.envelope = envelope
            p.retryAt = deps.now() + p.gap
            p.gap = Math.min(p.gap * 2, o.maxRetryGapMs)
          },
          (err: unknown) => {
            if (pending.get(id) !== p) return
            pending.delete(id)
            reject(
              err instanceof MessageTooLargeError || err instanceof NoRouteError ? err : asNoRoute(to, err),
            )
          },
        )
      })
    },

    serve(method, fn) {
      handlers.set(method, fn)
      return () => {
        if (handlers.get(method) === fn) handlers.delete(method)
      }
    },

    onMessage(fn) {
      listeners.add(fn)
      return () => void listeners.delete(fn)
    },

    async signal(to, data) {
      await forward(to, { t: 'sig', data })
    },

    canSignal(to) {
      return !serverSignals.has(to) && deps.nextHop(to)?.open === true
    },

    close() {
      closed = true
      for (const p of pending.values()) p.reject(new ClosedError())
      pending.clear()
    },

    sizes() {
      const box = outbox.size
      const mem = served.size
      return {
        pending: pending.size,
        outbox: box.entries,
        outboxBytes: box.bytes,
        seen: seen.size,
        served: mem.entries,
        servedBytes: mem.bytes,
      }
    },
  }
}

function asNoRoute(to: string, err: unknown): NoRouteError {
  return err instanceof NoRouteError ? err : new NoRouteError(to, `no route to ${to}: ${errorMessage(err)}`)
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
