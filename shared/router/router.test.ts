/**
 * The router with stub hosts (test/router-stub.ts): links, next hops, loss
 * and time are the test's. Three nodes a, b, c; unless a test links them
 * otherwise, a–b and b–c are linked and a reaches c through b.
 */
import { describe, expect, it } from 'vitest'
import { lineNet, real, type Sent, type StubNet } from '../../test/router-stub.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import type { Value } from '../types.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import {
  type Envelope,
  envelopeSigned,
  MAX_TTL,
  parseInnerMsg,
  type RouteMsg,
  routeMsgValue,
} from './messages.ts'

const line = lineNet

/** Run `p` to completion, flushing the network and moving the clock by `step` until it settles. */
async function settle<T>(net: StubNet, p: Promise<T>, step = 100, maxMs = 60_000): Promise<T> {
  let done = false
  const out = p.finally(() => {
    done = true
  })
  out.catch(() => {})
  await net.flush()
  for (let t = 0; !done && t < maxMs; t += step) await net.advance(step)
  return out
}

/** The promise, with its rejection observed (the test looks at it later). */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {})
  return p
}

const isEnvelope = (m: Sent): m is Sent & { msg: Envelope } => m.msg.t === 'fwd'
const kinds = (ms: Sent[]) => ms.map((m) => m.msg.t)
const stat = (n: { router: { counters: Record<string, number> } }, k: string) => n.router.counters[k] ?? 0

describe('router: sending', () => {
  it('over a direct link, messages go bare and reach the subscribers with the sender named', async () => {
    const { net, a, b } = line()
    const got: unknown[] = []
    b.router.onMessage((m) => got.push(m))
    await a.router.send(b.id, 'news', { x: 1 })
    await net.flush()
    expect(kinds(net.delivered)).toEqual(['msg'])
    expect(got).toEqual([{ from: a.id, topic: 'news', data: { x: 1 }, hops: 1 }])
  })

  it('to itself, a message reaches its own subscribers at once (hops 0), and a request runs its own handler', async () => {
    const { net, a } = line()
    const got: unknown[] = []
    a.router.onMessage((m) => got.push(m))
    a.router.serve('twice', (x) => (x as number) * 2)
    await a.router.send(a.id, 'me', 1)
    expect(got).toEqual([{ from: a.id, topic: 'me', data: 1, hops: 0 }])
    expect(await a.router.request(a.id, 'twice', 21)).toBe(42)
    expect(net.queue).toHaveLength(0)
  })

  it('without a direct link, a request goes in an envelope signed by its source, hop by hop, and is answered', async () => {
    const { net, a, b, c } = line()
    c.router.serve('add', (d, meta) => {
      const { x, y } = d as { x: number; y: number }
      return { sum: x + y, from: meta.from }
    })
    const answer = await settle(net, a.router.request(c.id, 'add', { x: 2, y: 40 }))
    expect(answer).toEqual({ sum: 42, from: a.id })
    const envelopes = net.delivered.filter(isEnvelope)
    // a -> b -> c, and the answer c -> b -> a: every hop an envelope, the middle one passed on.
    expect(envelopes.map((m) => `${m.from[0]}>${m.to[0]}`)).toEqual(['a>b', 'b>c', 'c>b', 'b>a'])
    expect(envelopes[1]?.msg.ttl).toBe(MAX_TTL - 1)
    expect(stat(b, 'route.forwarded')).toBe(2)
    expect(stat(c, 'route.delivered')).toBe(1)
    expect(stat(a, 'route.delivered')).toBe(1)
  })

  it('a handler that returns nothing answers null; one that throws answers RemoteError; no handler, RemoteError too', async () => {
    const { net, a, c } = line()
    c.router.serve('nothing', () => undefined)
    c.router.serve('fail', () => {
      throw new Error('broken here')
    })
    expect(await settle(net, a.router.request(c.id, 'nothing', null))).toBeNull()
    const thrown = await settle(net, a.router.request(c.id, 'fail', null)).catch((e: Error) => e)
    expect(thrown).toMatchObject({ name: 'RemoteError', message: 'broken here' })
    const none = await settle(net, a.router.request(c.id, 'nobody', null)).catch((e: Error) => e)
    expect(none).toMatchObject({ name: 'RemoteError', message: 'no handler for nobody' })
  })

  it('a message larger than maxMessageBytes is refused before it is signed (MessageTooLargeError)', async () => {
    const { net, a, c } = line(1, { maxMessageBytes: 1000 })
    const err = await a.router.send(c.id, 't', new Uint8Array(2000)).catch((e: Error) => e)
    expect(err).toMatchObject({ name: 'MessageTooLargeError' })
    const req = await settle(net, a.router.request(c.id, 'm', new Uint8Array(2000))).catch((e: Error) => e)
    expect(req).toMatchObject({ name: 'MessageTooLargeError' })
    expect(net.delivered).toHaveLength(0)
  })

  it('with no hop at all, the source opens a link to the destination and sends bare over it', async () => {
    const { net, a, c } = line()
    a.hops.delete(c.id)
    c.router.serve('ping', () => 'pong')
    expect(await settle(net, a.router.request(c.id, 'ping', null))).toBe('pong')
    expect(a.connects).toEqual([c.id])
    expect(kinds(net.delivered)).toEqual(['req', 'res'])
  })
})

describe('router: at most once, and again when lost', () => {
  it('a lost request goes again after retryMs as the very same envelope; the handler runs once', async () => {
    const { net, a, c } = line()
    let runs = 0
    c.router.serve('once', () => ++runs)
    const p = quiet(a.router.request(c.id, 'once', null))
    await net.flush((m) => m.to === c.id) // the envelope dies on its last hop
    expect(runs).toBe(0)
    const first = net.delivered.find(isEnvelope)?.msg
    expect(await settle(net, p)).toBe(1)
    expect(runs).toBe(1)
    expect(stat(a, 'route.retry')).toBe(1)
    const atC = net.delivered.filter((m) => m.to === c.id).filter(isEnvelope)
    expect(atC).toHaveLength(1)
    expect(atC[0]?.msg.sig).toEqual(first?.sig)
  })

  it('a lost answer: the copy of the request gets the kept answer again, without running the handler', async () => {
    const { net, a, c } = line()
    let runs = 0
    c.router.serve('once', () => ++runs)
    const p = quiet(a.router.request(c.id, 'once', null))
    let answers = 0
    // The first answer is lost on its way from b to a.
    await net.flush((m) => m.from === net.node('b'.repeat(40)).id && m.to === a.id && answers++ === 0)
    expect(runs).toBe(1)
    expect(await settle(net, p)).toBe(1)
    expect(runs).toBe(1)
    expect(stat(c, 'drop.route.again')).toBe(1)
    expect(stat(c, 'route.answer-resent')).toBe(1)
  })

  it('a copy that arrives while the handler runs is ignored; the one answer arrives', async () => {
    const { net, a, c } = line()
    let runs = 0
    let finish: (v: Value) => void = () => {}
    c.router.serve('slow', () => {
      runs++
      return new Promise<Value>((r) => {
        finish = r
      })
    })
    const p = quiet(a.router.request(c.id, 'slow', null))
    await net.flush()
    await net.advance(1000) // the retry: the same envelope reaches c while the handler runs
    expect(stat(a, 'route.retry')).toBe(1)
    expect(stat(c, 'route.request-running')).toBe(1)
    finish('done')
    expect(await settle(net, p)).toBe('done')
    expect(runs).toBe(1)
  })

  it('over a direct link, a copy of a bare request (same source and id) is recognised too', async () => {
    const { net, a, b } = line()
    let runs = 0
    b.router.serve('once', () => ++runs)
    const p = quiet(a.router.request(b.id, 'once', null))
    let answers = 0
    await net.flush((m) => m.msg.t === 'res' && answers++ === 0)
    expect(await settle(net, p)).toBe(1)
    expect(runs).toBe(1)
    expect(stat(b, 'route.request-again')).toBe(1)
    expect(stat(b, 'route.answer-resent')).toBe(1)
  })

  it('an unanswered request is sent again after 1 s, then every 2 s, for 30 s after its first send', async () => {
    const { net, a, c } = line()
    c.router.serve('never', () => new Promise<Value>(() => {}))
    const p = quiet(a.router.request(c.id, 'never', null, { timeoutMs: 60_000 }))
    await net.flush()
    const sentAt: number[] = []
    for (let t = 0; t < 60_000; t += 100) {
      const before = stat(a, 'route.retry')
      await net.advance(100)
      if (stat(a, 'route.retry') > before) sentAt.push(t + 100)
    }
    expect(sentAt).toEqual(Array.from({ length: 15 }, (_, i) => 1000 + 2000 * i))
    // Every copy reached c and was recognised as the request already running.
    expect(stat(c, 'route.request-running')).toBe(15)
    await expect(p).rejects.toMatchObject({ name: 'TimeoutError' })
  })

  it('a request larger than maxRetryBytes is sent once', async () => {
    const { net, a, c } = line(1, { maxRetryBytes: 1000 })
    c.router.serve('never', () => new Promise<Value>(() => {}))
    const small = quiet(a.router.request(c.id, 'never', new Uint8Array(900), { timeoutMs: 10_000 }))
    const large = quiet(a.router.request(c.id, 'never', new Uint8Array(1100), { timeoutMs: 10_000 }))
    await net.flush()
    await net.advance(1000)
    // Only the small one went again (and c recognised the copy).
    expect(stat(a, 'route.retry')).toBe(1)
    expect(stat(c, 'route.request-running')).toBe(1)
    await net.advance(9000)
    await expect(small).rejects.toMatchObject({ name: 'TimeoutError' })
    await expect(large).rejects.toMatchObject({ name: 'TimeoutError' })
  })

  it('times out by tick(now): TimeoutError after timeoutMs, not before', async () => {
    const { net, a, c } = line()
    c.router.serve('never', () => new Promise<Value>(() => {}))
    let settled = false
    const p = quiet(a.router.request(c.id, 'never', null, { timeoutMs: 5000 }))
    p.catch(() => {}).finally(() => {
      settled = true
    })
    await net.flush()
    await net.advance(4900)
    expect(settled).toBe(false)
    await net.advance(100)
    await expect(p).rejects.toMatchObject({ name: 'TimeoutError' })
    expect(a.router.sizes().pending).toBe(0)
  })

  it('a request whose link to its destination closes fails at once with NoRouteError', async () => {
    const { net, a, b } = line()
    b.router.serve('never', () => new Promise<Value>(() => {}))
    const p = quiet(a.router.request(b.id, 'never', null))
    await net.flush()
    net.unlink(a.id, b.id)
    await expect(p).rejects.toMatchObject({ name: 'NoRouteError' })
  })

  it('close() fails what is pending with ClosedError, and later calls too', async () => {
    const { net, a, c } = line()
    const p = quiet(a.router.request(c.id, 'x', null))
    await net.flush((m) => m.to === c.id)
    a.router.close()
    await expect(p).rejects.toMatchObject({ name: 'ClosedError' })
    await expect(a.router.request(c.id, 'x', null)).rejects.toMatchObject({ name: 'ClosedError' })
    await expect(a.router.send(c.id, 't', 1)).rejects.toMatchObject({ name: 'ClosedError' })
  })

  it('an answer from another node than the one asked is dropped', async () => {
    const { net, a, b, c } = line()
    c.router.serve('slow', () => new Promise<Value>(() => {}))
    const p = quiet(a.router.request(c.id, 'slow', null, { timeoutMs: 1000 }))
    await net.flush()
    const env = net.delivered.find((m) => m.to === c.id)?.msg as Envelope
    const req = parseInnerMsg(decodeValue(env.body) ?? null)
    if (req?.t !== 'req') throw new Error('no request')
    // b answers in c's place, over its direct link with a.
    await a.router.handle(b.id, { t: 'res', id: req.id, data: 'forged' })
    expect(stat(a, 'drop.route.unexpected-answer')).toBe(1)
    await net.advance(1000)
    await expect(p).rejects.toMatchObject({ name: 'TimeoutError' })
  })
})

describe('router: noroute', () => {
  it('a hop whose part of the ring has no place answers noroute; the source sends the same envelope over a link of its own', async () => {
    const { net, a, b, c } = line()
    let runs = 0
    c.router.serve('once', () => ++runs)
    // b knows no way on to c (its view lags): it says so.
    net.unlink(b.id, c.id)
    c.hops.delete(a.id)
    const p = quiet(a.router.request(c.id, 'once', null))
    expect(await settle(net, p)).toBe(1)
    expect(stat(b, 'route.noroute')).toBe(1)
    expect(stat(a, 'route.redial')).toBe(1)
    expect(a.connects).toEqual([c.id])
    const atC = net.delivered.filter((m) => m.to === c.id)
    expect(atC.map((m) => `${m.from[0]} ${m.msg.t}`)).toEqual(['a fwd'])
    expect(runs).toBe(1)
  })

  it('when that link cannot be opened either, the request fails with NoRouteError (not a timeout)', async () => {
    const { net, a, b, c } = line()
    net.unlink(b.id, c.id)
    a.unreachable.add(c.id)
    const p = quiet(a.router.request(c.id, 'x', null, { timeoutMs: 60_000 }))
    await net.flush()
    await expect(p).rejects.toMatchObject({ name: 'NoRouteError' })
  })

  // c is full for a's first dial (its ring view has no room for a yet); the dial at the next copy goes through.
  for (const path of ['after a noroute', 'with no hop at all'] as const)
    it(`a destination that refuses us as full is asked again at the next copy, routed anew, and answers (${path})`, async () => {
      const { net, a, b, c } = line()
      let runs = 0
      c.router.serve('once', () => ++runs)
      if (path === 'after a noroute') {
        net.unlink(b.id, c.id)
        c.hops.delete(a.id)
      } else a.hops.delete(c.id) // a dials c itself at once (deliverTo)
      a.full.set(c.id, 1)
      const p = quiet(a.router.request(c.id, 'once', null))
      expect(await settle(net, p)).toBe(1)
      expect(a.connects).toEqual([c.id, c.id])
      expect(stat(a, 'route.retry-refused')).toBe(1)
      expect(stat(a, 'route.retry')).toBe(1)
      expect(runs).toBe(1)
    })

  // Over the ring (b answers noroute, a redials c), and with no hop at all (a dials c at once).
  for (const path of ['after a noroute', 'with no hop at all'] as const)
    it(`a destination full at every copy fails the request with its refusal once no copy is left (${path})`, async () => {
      const { net, a, b, c } = line()
      if (path === 'after a noroute') {
        net.unlink(b.id, c.id)
        c.hops.delete(a.id)
      } else a.hops.delete(c.id)
      a.full.set(c.id, 1000)
      const started = net.now
      const p = quiet(a.router.request(c.id, 'x', null, { timeoutMs: 5000 }))
      const err = await settle(net, p).catch((e: unknown) => e)
      expect(err).toMatchObject({ name: 'NoRouteError', refused: 'full' })
      // Copies at 1 s and 3 s (gaps 1 s, 2 s); one at 5 s would be past the deadline: failed then, not timed out.
      expect(a.connects).toHaveLength(3)
      expect(net.now - started).toBeLessThan(5000)
    })

  it('a hop that cannot open the link on toward the destination answers noroute; the source dials it itself', async () => {
    const { net, a, b, c } = line()
    let runs = 0
    c.router.serve('once', () => ++runs)
    // b's way on to c is a link it would open on demand, and that dial fails (c refuses b, say).
    net.unlink(b.id, c.id)
    b.hops.set(c.id, c.id)
    b.unreachable.add(c.id)
    c.hops.delete(a.id)
    const p = quiet(a.router.request(c.id, 'once', null, { timeoutMs: 5000 }))
    expect(await settle(net, p)).toBe(1)
    expect(stat(b, 'route.hop-unreachable')).toBe(1)
    expect(stat(a, 'route.redial')).toBe(1)
    expect(a.connects).toEqual([c.id])
    expect(runs).toBe(1)
  })

  it('a lying noroute costs one link: the destination drops the second copy of what it had', async () => {
    const { net, a, b, c } = line()
    const got: Value[] = []
    c.router.onMessage((m) => void got.push(m.data))
    await a.router.send(c.id, 'x', 1)
    await a.router.send(c.id, 'x', 2)
    await net.flush()
    expect(got).toEqual([1, 2])
    // b, on the path, claims there was no way on for the first envelope it passed: a sends that one
    // again over a link to c.
    const seen = net.delivered.find((s) => s.to === b.id && s.msg.t === 'fwd')?.msg
    if (seen?.t !== 'fwd') throw new Error('b passed no envelope')
    await a.router.handle(b.id, { t: 'noroute', dst: c.id, nonce: seen.nonce })
    await net.flush()
    expect(a.connects).toEqual([c.id])
    expect(got).toEqual([1, 2])
    expect(stat(c, 'drop.route.again')).toBe(1)
  })

  it('a noroute naming no envelope we sent (from a node off the path) makes us redial nothing', async () => {
    const { net, a, b, c } = line()
    const got: Value[] = []
    c.router.onMessage((m) => void got.push(m.data))
    await a.router.send(c.id, 'x', 1)
    await net.flush()
    await a.router.handle(b.id, { t: 'noroute', dst: c.id, nonce: new Uint8Array(8) })
    await net.flush()
    expect(a.connects).toEqual([])
    expect(got).toEqual([1])
    expect(stat(c, 'drop.route.again')).toBe(0)
  })

  it('a signal the ring cannot place goes again another way, and signals to that node avoid the ring for 60 s', async () => {
    const { net, a, b, c } = line()
    net.unlink(b.id, c.id)
    expect(a.router.canSignal(c.id)).toBe(true)
    await a.router.signal(c.id, { t: 'dial', mesh: false })
    await net.flush()
    expect(a.resentSignals).toEqual([{ dst: c.id, data: { t: 'dial', mesh: false } }])
    expect(a.connects).toEqual([]) // a signal is not sent over a link of its own
    expect(a.router.canSignal(c.id)).toBe(false)
    net.link(b.id, c.id)
    await net.advance(60_000)
    expect(a.router.canSignal(c.id)).toBe(true)
  })

  it('a routed signal reaches the host with its checked source; over the link with that source it says so', async () => {
    const { net, a, b, c } = line()
    await a.router.signal(c.id, { t: 'rtc' })
    await net.flush()
    expect(c.signals).toEqual([{ from: a.id, data: { t: 'rtc' }, overLink: false }])
    await a.router.signal(b.id, { t: 'rtc' })
    await net.flush()
    expect(b.signals).toEqual([{ from: a.id, data: { t: 'rtc' }, overLink: true }])
  })
})

describe('router: what a node on the path can and cannot do', () => {
  /** The envelope `send` makes for c, taken off its last hop (c does not get it). */
  async function capture(net: StubNet, send: () => Promise<void>): Promise<Envelope> {
    await send()
    let env: Envelope | undefined
    await net.flush((m) => {
      if (!isEnvelope(m) || m.to !== 'c'.repeat(40)) return false
      env = m.msg
      return true
    })
    if (!env) throw new Error('no envelope')
    return env
  }

  it('an altered body, source, time or key is refused (drop.route.forged); the real one is delivered once', async () => {
    const { net, a, b, c } = line()
    const got: Value[] = []
    c.router.onMessage((m) => void got.push(m.data))
    const env = await capture(net, () => a.router.send(c.id, 't', 'real'))
    const forged: RouteMsg[] = [
      { ...env, body: encodeValue(routeMsgValue({ t: 'msg', topic: 't', data: 'fake' })) },
      { ...env, signedAt: env.signedAt + 1 },
      { ...env, src: b.id },
      { ...env, sig: new Uint8Array(64) },
    ]
    for (const m of forged) await c.router.handle(b.id, m)
    expect(stat(c, 'drop.route.forged')).toBe(4)
    await c.router.handle(b.id, env)
    await c.router.handle(b.id, { ...env, ttl: 3 }) // ttl is not signed: a copy all the same
    expect(got).toEqual(['real'])
    expect(stat(c, 'drop.route.again')).toBe(1)
  })

  it('a node may sign only as itself: an envelope from b claiming a as source fails', async () => {
    const { net, a, b, c } = line()
    // (b is linked to c, so a message would go bare: a signal always goes in an envelope.)
    const env = await capture(net, () => b.router.signal(c.id, 'x'))
    await c.router.handle(b.id, { ...env, src: a.id })
    expect(stat(c, 'drop.route.forged')).toBe(1)
  })

  it('an envelope passed on with ttl 0 is dropped', async () => {
    const { net, a, b, c } = line()
    const env = await capture(net, () => a.router.send(c.id, 't', 'x'))
    await b.router.handle(a.id, { ...env, ttl: 0 })
    expect(stat(b, 'drop.route.ttl')).toBe(1)
    expect(net.queue).toHaveLength(0)
    expect(stat(c, 'route.delivered')).toBe(0)
  })

  it('an envelope whose body is not one inner message (or is another envelope) is dropped after its check', async () => {
    const { net, a, b, c } = line()
    const env = await capture(net, () => a.router.send(c.id, 't', 'x'))
    const keys = createFakeKeyring(a.id)
    for (const inner of [{ t: 'fwd' }, { t: 'msg', topic: '' }, [1, 2]] as Value[]) {
      const body = encodeValue(inner)
      const sig = await keys.sign(envelopeSigned(a.id, c.id, env.nonce, net.now, body))
      await c.router.handle(b.id, { ...env, signedAt: net.now, body, sig })
    }
    expect(stat(c, 'drop.route.body')).toBe(3)
  })
})

describe('router: the replay window', () => {
  /** An envelope from a to c with the message `data` (a number), signed at `at`. */
  async function signedAt(at: number, data: number): Promise<Envelope> {
    const [a, c] = ['a'.repeat(40), 'c'.repeat(40)]
    const keys = createFakeKeyring(a)
    const body = encodeValue(routeMsgValue({ t: 'msg', topic: 't', data }))
    const nonce = new Uint8Array(8).fill(data % 256)
    const sig = await keys.sign(envelopeSigned(a, c, nonce, at, body))
    return {
      t: 'fwd',
      src: a,
      dst: c,
      ttl: MAX_TTL,
      nonce,
      signedAt: at,
      publicKey: keys.publicKey,
      sig,
      body,
    }
  }

  it('an envelope replayed after 130 s is refused as too old, having left the memory; one 60 s ahead is refused as future', async () => {
    const { net, b, c } = line()
    const got: Value[] = []
    c.router.onMessage((m) => void got.push(m.data))
    const env = await signedAt(net.now, 1)
    await c.router.handle(b.id, env)
    expect(c.router.sizes().seen).toBe(1)
    await net.advance(130_000)
    expect(c.router.sizes().seen).toBe(0)
    await c.router.handle(b.id, env)
    expect(stat(c, 'drop.route.too-old')).toBe(1)
    await c.router.handle(b.id, await signedAt(net.now + 60_001, 2))
    expect(stat(c, 'drop.route.future')).toBe(1)
    await c.router.handle(b.id, await signedAt(net.now + 59_000, 3))
    expect(got).toEqual([1, 3])
  })

  it('an envelope replayed after more others than the memory holds is refused as forgotten; later ones still pass', async () => {
    const { net, b, c } = line(1, { seenMax: 64 })
    const got: Value[] = []
    c.router.onMessage((m) => void got.push(m.data))
    const victim = await signedAt(net.now, 0)
    await c.router.handle(b.id, victim)
    for (let i = 1; i <= 100; i++) await c.router.handle(b.id, await signedAt(net.now + i, i))
    expect(c.router.sizes().seen).toBe(64)
    await c.router.handle(b.id, victim)
    expect(stat(c, 'drop.route.forgotten')).toBe(1)
    expect(got.filter((x) => x === 0)).toHaveLength(1)
    await c.router.handle(b.id, await signedAt(net.now + 200, 200))
    expect(got.at(-1)).toBe(200)
  })
})

describe('router: sealed envelopes (seal)', () => {
  const bytesOf = (m: RouteMsg) => encodeValue(routeMsgValue(m))
  function holds(hay: Uint8Array, text: string): boolean {
    const needle = new TextEncoder().encode(text)
    outer: for (let i = 0; i + needle.length <= hay.length; i++) {
      for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer
      return true
    }
    return false
  }

  it('the node that forwards an envelope reads none of the message, the request or the reply; the ends do', async () => {
    const { net, a, b, c } = line(1, { seal: true })
    const got: Value[] = []
    c.router.onMessage((m) => void got.push(m.data))
    c.router.serve('vault', (d) => (d === 'which drawer?' ? 'the left one, code 4711' : 'no'))
    await real(net, a.router.send(c.id, 'note', 'meet at the mill'))
    expect(await real(net, a.router.request(c.id, 'vault', 'which drawer?'))).toBe('the left one, code 4711')
    await real(net, new Promise((r) => setTimeout(r, 100)))
    expect(got).toEqual(['meet at the mill'])
    // Everything b passed on, whole (head and body), as b saw it.
    const passed = net.delivered.filter((m) => m.from === b.id || m.to === b.id)
    expect(passed.length).toBeGreaterThanOrEqual(8) // the box request and answer, the message, request, reply: two hops each
    for (const secret of ['meet at the mill', 'which drawer?', 'the left one, code 4711', 'vault'])
      expect(passed.some((m) => holds(bytesOf(m.msg), secret))).toBe(false)
    // Only the box exchange (a signed public record) went plain.
    const plain = passed.filter((m) => isEnvelope(m) && m.msg.body[0] !== 0x01 && m.msg.body[0] !== 0x02)
    expect(plain.map((m) => parseInnerMsg(decodeValue((m.msg as Envelope).body) as Value)?.t)).toEqual([
      'req',
      'req',
      'res',
      'res',
    ])
    // The reply is sealed under the request's session and names the request (re).
    expect(passed.some((m) => isEnvelope(m) && m.msg.body[0] === 0x02 && m.msg.re?.length === 8)).toBe(true)
    expect(stat(c, 'seal.opened')).toBe(2)
    // b, which holds no key to them, could not have opened them: its own router counts no opening.
    expect(stat(b, 'seal.opened')).toBe(0)
  })

  it('the box key is asked for as long as a request may be sent again, not only requestTimeoutMs', async () => {
    // A ring still settling after a join: every envelope to c is lost for its first 5 s.
    const { net, a, c } = line(1, { seal: true, requestTimeoutMs: 1000 })
    c.router.serve('echo', (d) => d)
    const start = net.now
    const lost = (m: Sent) => net.now - start < 5000 && isEnvelope(m) && m.to === c.id
    const answer = quiet(a.router.request(c.id, 'echo', 'hi', { timeoutMs: 20_000 }))
    let done = false
    answer.finally(() => {
      done = true
    })
    for (let t = 0; !done && t < 20_000; t += 250) {
      await net.advance(250, lost)
      await new Promise((r) => setTimeout(r, 2)) // the sealing is real WebCrypto
    }
    expect(await answer).toBe('hi')
    expect(net.now - start).toBeGreaterThan(5000)
    expect(stat(a, 'route.retry')).toBeGreaterThan(0)
  })

  it('a second message to the same node costs no new exchange: one box request, one session', async () => {
    const { net, a, c } = line(1, { seal: true })
    const got: Value[] = []
    c.router.onMessage((m) => void got.push(m.data))
    for (let i = 0; i < 5; i++) await real(net, a.router.send(c.id, 't', i))
    await real(net, new Promise((r) => setTimeout(r, 100)))
    expect(got).toEqual([0, 1, 2, 3, 4])
    expect(stat(a, 'seal.session')).toBe(1)
    expect(stat(a, 'seal.sealed')).toBe(5)
    expect(stat(c, 'seal.session-derived')).toBe(1)
    expect(stat(c, 'box.learned')).toBe(1) // a's record, carried by its box request
    expect(net.delivered.filter((m) => m.to === c.id && isEnvelope(m)).length).toBe(6) // one box request, five messages
  })

  it('a forwarding node cannot pass a sealed body off as its own, nor move it into another envelope', async () => {
    const { net, a, b, c } = line(1, { seal: true })
    const got: Value[] = []
    c.router.onMessage((m) => void got.push(m.data))
    await real(net, a.router.send(c.id, 't', 'first'))
    await real(net, new Promise((r) => setTimeout(r, 100)))
    expect(got).toEqual(['first'])
    // b keeps the next sealed envelope a sends to c, and does not pass it on.
    let kept: Envelope | undefined
    const sent = a.router.send(c.id, 't', 'pay bob 10')
    for (let i = 0; i < 500 && !kept; i++) {
      await net.flush((m) => {
        if (m.from !== b.id || m.to !== c.id || !isEnvelope(m) || m.msg.body[0] !== 0x01) return false
        kept = m.msg
        return true
      })
      await new Promise((r) => setTimeout(r, 2))
    }
    await sent
    if (!kept) throw new Error('no sealed envelope to keep')
    const env: Envelope = kept
    // Re-signed by b as its own (src b): the body does not open (its aad named a).
    const bKeys = createFakeKeyring(b.id)
    const asB = await bKeys.sign(envelopeSigned(b.id, c.id, env.nonce, env.signedAt, env.body))
    await c.router.handle(b.id, { ...env, src: b.id, publicKey: bKeys.publicKey, sig: asB })
    // Moved into another envelope of a's (the simulator's keys let anyone sign as a; real ones would
    // not): another nonce, so it does not open either.
    const aKeys = createFakeKeyring(a.id)
    const nonce = new Uint8Array(8).fill(7)
    const asA = await aKeys.sign(envelopeSigned(a.id, c.id, nonce, env.signedAt, env.body))
    await c.router.handle(b.id, { ...env, nonce, sig: asA })
    expect(stat(c, 'drop.route.sealed')).toBe(2)
    expect(stat(c, 'drop.seal.forged')).toBe(2)
    expect(got).toEqual(['first'])
    // And the envelope as a signed it still opens (it was only held back).
    await c.router.handle(b.id, env)
    expect(got).toEqual(['first', 'pay bob 10'])
  })
})
