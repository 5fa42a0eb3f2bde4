/**
 * Routed unicast in the product, on real nodes (an in-process signal server,
 * relay links, real keys): the router of shared/router as the overlay node
 * hosts it. A `noroute` from a ring whose view lags a join must not lose the
 * message (the node opens a link through the signal server and sends the
 * same envelope over it), and a second copy of a signed envelope (that
 * resend, or a replay, however late and after however many others) must not
 * run a handler twice. The router's own rules are tested on stub hosts in
 * shared/router/router.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  type Envelope,
  envelopeSigned,
  type InnerMsg,
  MAX_TTL,
  routeMsgValue,
} from '../shared/router/messages.ts'
import type { Value } from '../shared/types.ts'
import { type Frame, Kind } from '../shared/wire/frame.ts'
import { encodeValue } from '../shared/wire/value.ts'
import { createSignalServer, type SignalServer } from '../signal-server/index.ts'
import { until } from '../test/until.ts'
import { NodeFacade } from './facade.ts'
import { joinOverlay } from './index.ts'
import type { Link } from './links/link.ts'
import type { OverlayNode } from './overlay.ts'

/** An envelope `from` signs for `dst` at time `w`, as its router would. */
async function envelope(from: OverlayNode, dst: string, inner: InnerMsg, w = Date.now()): Promise<Envelope> {
  const body = encodeValue(routeMsgValue(inner))
  const nonce = crypto.getRandomValues(new Uint8Array(8))
  // Signed as its router signs: with the core's keyring, in the network's scope.
  const sig = await from.core.keys.sign(envelopeSigned(from.id, dst, nonce, w, body))
  return {
    t: 'fwd',
    src: from.id,
    dst,
    ttl: MAX_TTL,
    nonce,
    signedAt: w,
    publicKey: from.identity.publicKey,
    sig,
    body,
  }
}

/** d receives `env` from a while d's clock reads `at` (the replay window is judged before any await). */
function arriveAt(env: Envelope, at: number): Promise<void> {
  const clock = vi.spyOn(Date, 'now').mockReturnValue(at)
  try {
    return d.core.handle(a.id, { kind: Kind.Route, msg: env })
  } finally {
    clock.mockRestore()
  }
}

const stat = (n: OverlayNode, k: string) => n.stats()[k] ?? 0

let server: SignalServer
let a: OverlayNode
let d: OverlayNode
const calls: number[] = []

beforeAll(async () => {
  server = await createSignalServer({ port: 0, host: '127.0.0.1', log: () => {} })
  const opts = { signal: server.address, network: 'routing', relay: 'force' as const }
  a = NodeFacade.internals(await joinOverlay(opts))
  d = NodeFacade.internals(await joinOverlay(opts))
  await until('a and d linked', () => a.links.get(d.id)?.state === 'open')
  d.handle('count', (n) => {
    calls.push(n as number)
    return (n as number) * 2
  })
})

afterAll(async () => {
  await Promise.all([a?.close(), d?.close()])
  await server?.close()
})

describe('routed unicast', () => {
  it('a request the ring answers with noroute goes again over a link through the server, and runs once', async () => {
    // A ring node b that a has a link to and that lies before d: a's router sends the request
    // into the ring through it (the stand-in link takes the frame), and b's view has no d.
    const b = (BigInt(`0x${a.id}`) + 1n).toString(16).padStart(40, '0')
    // The links a's core is offered (its open peers, and on-demand sends) are stood in for.
    const { links, manager } = a
    const { openPeers } = links
    const { sendVia } = manager
    const intoRing: Frame[] = []
    links.openPeers = () => [b]
    manager.sendVia = (to, frame) => {
      if (to === b) intoRing.push(frame)
      else sendVia.call(manager, to, frame)
    }
    // Once a is on the ring (its join may still run under load) and has no link to d, its way
    // to d is through b.
    await until('a on the ring', () => a.core.onRing(), 30_000)
    a.links.get(d.id)?.close('test')
    await until('a without a link to d', () => a.links.get(d.id) === undefined)
    expect(a.core.nextHop(d.id)).toEqual({ via: b, open: true })
    const before = a.stats()
    const answer = a.request(d.id, 'count', 1, { timeoutMs: 10_000 })
    // The envelope, not whatever else a's core sends b meanwhile (Chord's upkeep asks b too, under load).
    const envelopeTo = () =>
      intoRing.find((f) => f.kind === Kind.Route && (f.body as Record<string, Value>).t === 'fwd')
    await until('the envelope to go into the ring', () => envelopeTo() !== undefined, 2000)
    links.openPeers = openPeers
    manager.sendVia = sendVia
    const sent = envelopeTo()?.body as Record<string, Value>
    expect(sent.dst).toBe(d.id)
    // b answers: no way to d from here (naming the envelope).
    await a.core.handle(b, {
      kind: Kind.Route,
      msg: { t: 'noroute', dst: d.id, nonce: sent.n as Uint8Array },
    })
    expect(await answer).toBe(2)
    expect(calls.filter((c) => c === 1)).toHaveLength(1)
    expect(stat(a, 'route.redial')).toBe((before['route.redial'] ?? 0) + 1)
    expect(a.links.get(d.id)?.state).toBe('open')
  })

  it('a request right after a closed its link: d takes the new link at once, not after the goodbye', async () => {
    // a dials again before d has read a's goodbye; d must not ignore the new session as a duplicate.
    a.links.get(d.id)?.close('test')
    await until('a without a link to d', () => a.links.get(d.id) === undefined)
    expect(await a.request(d.id, 'count', 2, { timeoutMs: 8000 })).toBe(4)
    expect(calls.filter((c) => c === 2)).toHaveLength(1)
  })

  it('a second copy of a delivered envelope (a resend after noroute, or a replay) is dropped, not run again', async () => {
    await until('a and d linked', () => a.links.get(d.id)?.state === 'open')
    const link = a.links.get(d.id) as Link
    const dropped = stat(d, 'drop.route.again')
    const got: unknown[] = []
    d.subscribe('once', (x) => got.push(x))
    // The same message sent twice is two envelopes (each has its own nonce): both are delivered.
    const sent = [
      await envelope(a, d.id, { t: 'msg', topic: 'once', data: 'x' }),
      await envelope(a, d.id, { t: 'msg', topic: 'once', data: 'x' }),
      await envelope(a, d.id, { t: 'req', id: 7_000_002, method: 'count', data: 3 }),
    ]
    const over = (env: Envelope) => link.send({ kind: Kind.Route, body: routeMsgValue(env) })
    for (const env of sent) await over(env)
    await until('the request to run', () => calls.includes(3))
    await until('both messages', () => got.length === 2)
    // All three again (as after a lying noroute), and the last once more (a replay by hand).
    for (const env of sent) await over(env)
    await over(sent[2] as Envelope)
    await until('the copies to be dropped', () => stat(d, 'drop.route.again') >= dropped + 4, 5000)
    expect(got).toEqual(['x', 'x'])
    expect(calls.filter((c) => c === 3)).toHaveLength(1)
    expect(stat(d, 'drop.route.again')).toBe(dropped + 4)
  })
})

describe('routed unicast: the replay window', () => {
  it('an envelope replayed after 130 s is refused (too old): its handler ran once', async () => {
    const t0 = Date.now()
    const env = await envelope(a, d.id, { t: 'req', id: 7_100_001, method: 'count', data: 11 }, t0)
    await arriveAt(env, t0)
    await until('the request to run', () => calls.includes(11))
    // 130 s on d's clock: its tick lets the envelope go from memory (its time left the window)...
    const held = d.core.router.sizes().seen
    d.core.router.tick(t0 + 130_000)
    expect(d.core.router.sizes().seen).toBeLessThan(held)
    // ...and the replay is refused by its signed time.
    const before = stat(d, 'drop.route.too-old')
    await arriveAt(env, t0 + 130_000)
    expect(stat(d, 'drop.route.too-old')).toBe(before + 1)
    await arriveAt(env, Date.now())
    expect(calls.filter((c) => c === 11)).toHaveLength(1)
  })

  it('an envelope replayed after 8,300 others is refused (forgotten): its handler ran once', async () => {
    const got: Value[] = []
    const off = d.subscribe('flood', (x) => void got.push(x))
    const victim = await envelope(a, d.id, { t: 'req', id: 7_100_002, method: 'count', data: 12 })
    await arriveAt(victim, Date.now())
    await until('the request to run', () => calls.includes(12))
    // 8,300 other envelopes, signed one after another after the victim (the memory holds 8,192).
    const flood = await Promise.all(
      Array.from({ length: 8_300 }, (_, i) =>
        envelope(a, d.id, { t: 'msg', topic: 'flood', data: i }, victim.signedAt + 1 + i),
      ),
    )
    for (const env of flood) await d.core.handle(a.id, { kind: Kind.Route, msg: env })
    expect(got).toHaveLength(8_300)
    expect(d.core.router.sizes().seen).toBe(8_192)
    const before = stat(d, 'drop.route.forgotten')
    await d.core.handle(a.id, { kind: Kind.Route, msg: victim })
    expect(stat(d, 'drop.route.forgotten')).toBe(before + 1)
    expect(calls.filter((c) => c === 12)).toHaveLength(1)
    // The window narrowed for a, it did not close: a new envelope is delivered.
    const after = await envelope(a, d.id, { t: 'msg', topic: 'flood', data: 'after' })
    await d.core.handle(a.id, { kind: Kind.Route, msg: after })
    expect(got.at(-1)).toBe('after')
    off()
  })

  it('an envelope dated beyond the allowed skew (60 s) is refused (future); within it, delivered', async () => {
    const got: Value[] = []
    const off = d.subscribe('early', (x) => void got.push(x))
    const now = Date.now()
    const before = stat(d, 'drop.route.future')
    await arriveAt(await envelope(a, d.id, { t: 'msg', topic: 'early', data: 1 }, now + 60_001), now)
    expect(stat(d, 'drop.route.future')).toBe(before + 1)
    await arriveAt(await envelope(a, d.id, { t: 'msg', topic: 'early', data: 2 }, now + 59_000), now)
    expect(got).toEqual([2])
    off()
  })

  it('a changed signed time breaks the signature', async () => {
    const env = await envelope(a, d.id, { t: 'msg', topic: 'x', data: 1 })
    const before = stat(d, 'drop.route.forged')
    await d.core.handle(a.id, { kind: Kind.Route, msg: { ...env, signedAt: env.signedAt + 1 } })
    expect(stat(d, 'drop.route.forged')).toBe(before + 1)
  })
})
