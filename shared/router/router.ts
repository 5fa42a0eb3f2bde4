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
 *   (`deps.resendSignal`). A destination that refuses that link as full
 *   does not fail a request at once (requests.ts).
 * - retries: a request unanswered after `retryMs` is sent again (the same
 *   envelope, or the same request over the direct link), then after twice as
 *   long each time, for `retryWindowMs` at most; the first answer wins.
 * - the replay window (shared/mesh/seen-cache.ts): the destination delivers
 *   an envelope only if its signed time is recent and its signature is new,
 *   so a copy (that resend, a retry, a replay by a node on the path) is
 *   dropped, however late and after however many others.
 * - the served memory (responder.ts, served.ts): a request is remembered by
 *   its source and id; a copy does not run the handler again but gets the
 *   kept answer.
 *
 * Pending requests time out by `tick(now)`; the host drives time (no timers
 * here). Every drop is counted by reason.
 *
 * Sealed envelopes (option `seal`; PROTOCOL-route.md, "Sealed envelopes"):
 * the body of a message, request or signal is sealed to the destination's
 * box key, the answer under the request's session; a hop reads the head
 * only; `noroute` stays plain (it names only what the head shows).
 *
 * This file sends, forwards and receives; the rest, one concept each:
 * messages.ts (the wire, parsed once), options.ts (deps, options and their
 * defaults, the interface), requests.ts (the source's side of a request),
 * pending.ts (requests waiting for answers, their timeouts and copies), responder.ts and served.ts (handlers, and requests
 * run here), outbox.ts (envelopes kept for a resend after noroute),
 * sealing.ts (box keys and records, sealing and opening).
 */
import { toHex } from '../bytes.ts'
import { SEALED_TAG } from '../crypto/seal.ts'
import { ClosedError, MessageTooLargeError, NoRouteError, RemoteError } from '../errors.ts'
import { isPublicKey } from '../identity/keys.ts'
import { type Admission, SeenCache } from '../mesh/seen-cache.ts'
import { bump, type Counters } from '../protocol.ts'
import type { Value } from '../types.ts'
import { decodeValueResult, encodeValue } from '../wire/value.ts'
import {
  type AnswerMsg,
  type Envelope,
  envelopeAad,
  envelopeSigned,
  type InnerMsg,
  MAX_TTL,
  parseInnerMsg,
  randomNonce,
  routeMsgValue,
} from './messages.ts'
import {
  type MessageListener,
  type Router,
  type RouterDeps,
  type RouterOptions,
  resolveRouterOptions,
} from './options.ts'
import { Outbox } from './outbox.ts'
import { PendingRequests } from './pending.ts'
import { asNoRoute, createRequests } from './requests.ts'
import { createResponder } from './responder.ts'
import { createSealing, type ReplySeal } from './sealing.ts'

export { BOX_METHOD } from './sealing.ts'

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

export function createRouter(deps: RouterDeps, options: RouterOptions = {}): Router {
  const self = deps.id
  const o = resolveRouterOptions(options)
  const counters: Counters = {}
  const outbox = new Outbox<Kept>(o.outbox)
  const seen = new SeenCache(o.seenMax, o.maxAgeMs, o.maxSkewMs)
  const responder = createResponder({ served: o.served, now: () => deps.now(), counters })
  const listeners = new Set<MessageListener>()
  const pending = new PendingRequests(o)
  /** Nodes a noroute named lately -> until when their signals should go another way. */
  const serverSignals = new Map<string, number>()
  let closed = false
  // The source's side of requests: copies, and refusals that may pass (requests.ts).
  const requests = createRequests({
    self,
    o,
    pending,
    count: (key) => count(key),
    now: () => deps.now(),
    random: () => deps.random(),
    isClosed: () => closed,
    callHere: (method, data) => responder.call(method, data, self),
    deliverTo: (to, request) => deliverTo(to, request),
    passOn: (envelope) => passOn(envelope),
  })
  const requestOf = requests.request

  const count = (key: string) => bump(counters, key)
  const failed = (key: string) => () => count(key)
  // Sealing (o.seal): box keys and records, sealing and opening (sealing.ts).
  const sealing = o.seal
    ? createSealing(
        {
          keys: deps.keys,
          now: () => deps.now(),
          counters,
          request: (to, method, data, opts) => requestOf(to, method, data, opts),
          waiting: (id) => pending.has(id),
        },
        // A box request waits as long as a request may be sent again (retryWindowMs): the message or
        // request waiting for the key keeps its own deadline, and a settling ring must not fail it sooner.
        Math.max(o.requestTimeoutMs, o.retryWindowMs),
      )
    : undefined

  // ---------------------------------------------------------------- sending

  /**
   * Get `inner` to node `to`: over a direct link when one is open; else in a
   * signed envelope over the ring when a hop toward `to` is open; else over a
   * link opened now. Resolves to the envelope when it went in one. `seal`:
   * an answer to a sealed request goes sealed under its session.
   */
  async function deliverTo(to: string, inner: InnerMsg, seal?: ReplySeal): Promise<Envelope | undefined> {
    const hop = deps.nextHop(to)
    if (hop?.open && hop.via === to) {
      await deps.send(to, inner)
      return undefined
    }
    if (hop?.open) return forward(to, inner, seal)
    await deps.connect(to)
    await deps.send(to, inner)
    return undefined
  }

  /** Wrap `inner` in a signed envelope from this node to `dst` (sealed when it may be), keep it in the outbox, and pass it on. */
  async function forward(dst: string, inner: InnerMsg, seal?: ReplySeal): Promise<Envelope> {
    let body = encodeValue(routeMsgValue(inner))
    if (body.length > o.maxMessageBytes) throw new MessageTooLargeError(body.length, o.maxMessageBytes)
    const n = randomNonce(() => deps.random())
    // Whole milliseconds on the wire (the simulator's clock has fractions).
    const signedAt = Math.floor(deps.now())
    let re: Uint8Array | undefined
    if (seal && (inner.t === 'res' || inner.t === 'err')) {
      body = await seal.sealReply(body, envelopeAad(self, dst, n, signedAt))
      re = seal.re
    } else if (sealing?.sealable(dst, inner)) {
      body = await sealing.seal(dst, inner, body, envelopeAad(self, dst, n, signedAt), n)
    }
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
      ...(re ? { re } : {}),
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
   * closer to dst, so an envelope cannot circle. With no hop, or one whose
   * link cannot be opened, this node has no way on for dst: noroute.
   */
  function passOn(envelope: Envelope): void {
    const hop = deps.nextHop(envelope.dst)
    if (!hop || hop.via === self) return noWayOn(envelope)
    // A hop whose link cannot be opened (its dial failed, or it refused us) is no way on either.
    // (Told later: once closed, for instance by the closing itself, nothing more goes out.)
    deps.sendVia(hop.via, envelope, () => {
      if (closed) return
      count('route.hop-unreachable')
      noWayOn(envelope)
    })
  }

  /** No way on from here for `envelope`: its source is told (noroute), or, ours, tries another way. */
  function noWayOn(envelope: Envelope): void {
    count('route.noroute')
    if (envelope.src === self) return noRoute(envelope.dst, envelope.nonce)
    forward(envelope.src, { t: 'noroute', dst: envelope.dst, nonce: envelope.nonce }).catch(
      failed('route.noroute-failed'),
    )
  }

  /**
   * The ring found no way to `dst` for the envelope with nonce `n` (only a
   * node that saw it can name it). Its view may lag a join, so this is
   * not the end: a link-setup signal goes again another way, anything else
   * over a link to `dst` opened outside the ring, and later signals to `dst`
   * avoid the ring for a while. Only if that link fails do the requests fail
   * (NoRouteError; a refusal as full, only once no copy is left to send). A
   * lying noroute costs at most one link: the destination drops a second copy.
   */
  function noRoute(dst: string, n: Uint8Array): void {
    serverSignals.delete(dst)
    serverSignals.set(dst, deps.now() + o.serverSignalsMs)
    if (serverSignals.size > o.outbox.maxDsts) {
      const oldest = serverSignals.keys().next()
      if (!oldest.done) serverSignals.delete(oldest.value)
    }
    const wanted = toHex(n)
    const taken = outbox.take(dst, deps.now(), (k) => toHex(k.envelope.nonce) === wanted)
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
          if (requestId !== undefined && requests.keptAfterRedial(requestId, dst, err)) continue
          const p = requestId === undefined ? undefined : pending.take(requestId, dst)
          if (p) p.reject(asNoRoute(dst, err))
          else count('route.lost')
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
    if (seen.has(key)) return again(envelope)
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
    if (seen.has(key)) return again(envelope)
    seen.add(envelope.src, key, envelope.signedAt)
    const body = sealing ? await sealing.unseal(envelope) : { plain: envelope.body }
    if (!body) return
    const v = decodeValueResult(body.plain)
    const inner = v ? parseInnerMsg(v.value) : null
    if (!inner) return count('drop.route.body')
    // A sealed reply answers a request; anything else in one is refused.
    if (body.reply && inner.t !== 'res' && inner.t !== 'err') return count('drop.route.body')
    count('route.delivered')
    const reply = (m: AnswerMsg) => deliverTo(envelope.src, m, body.seal).then(() => {})
    await onInner(envelope.src, inner, reply, lastHop === envelope.src, key)
  }

  /**
   * A copy of an envelope delivered before: dropped; if it was a request that
   * has answered, the answer goes again (sealed again under the request's
   * session when it came sealed: the copy is opened for it).
   */
  function again(e: Envelope): void {
    count('drop.route.again')
    const key = toHex(e.sig.subarray(0, 16))
    const resend = (seal?: ReplySeal) => (m: AnswerMsg) => deliverTo(e.src, m, seal).then(() => {})
    if (e.body[0] !== SEALED_TAG || !sealing) return responder.copy(e.src, key, resend())
    sealing
      .unseal(e)
      .then(
        (body) => body?.seal && responder.copy(e.src, key, resend(body.seal)),
        failed('route.reply-failed'),
      )
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
        responder.answer(from, m, reply, sigKey).catch(failed('route.reply-failed'))
        return
      case 'res':
      case 'err': {
        const p = pending.take(m.id, from)
        if (!p) return count('drop.route.unexpected-answer')
        if (m.t === 'res') p.resolve(m.data)
        else p.reject(new RemoteError(m.message))
        return
      }
    }
  }

  sealing?.serve(responder)

  return {
    get counters() {
      // The sealing parts count their own (seal.*, box.*, drop.seal.*, drop.box.*).
      return sealing ? { ...sealing.counters(), ...counters } : counters
    },

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
      sealing?.tick(now)
      outbox.prune(now)
      seen.expire(now)
      responder.prune(now)
      for (const [peer, until] of serverSignals) if (until <= now) serverSignals.delete(peer)
      pending.tick(now, requests.sendAgain)
    },

    linkDown(peer) {
      pending.failTo(peer, () => new NoRouteError(peer, `link to ${peer} closed before the answer`))
    },

    async send(to, topic, data) {
      if (closed) throw new ClosedError()
      if (to === self) {
        for (const fn of [...listeners]) fn({ from: self, topic, data, hops: 0 })
        return
      }
      await deliverTo(to, { t: 'msg', topic, data })
    },

    request: requestOf,

    boxRecord: () => sealing?.boxRecord(),

    learnBox(id, record) {
      sealing?.learn(id, record)
    },

    serve: (method, fn) => responder.serve(method, fn),

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
      pending.failAll(() => new ClosedError())
    },

    sizes() {
      const box = outbox.size
      const mem = responder.size
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
