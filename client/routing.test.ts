/**
 * Routed unicast when the ring gets it wrong: a `noroute` from a ring whose
 * view lags a join must not lose the message, and a second copy of a signed
 * envelope (that resend, or a replay, however late and after however many
 * others) must not run a handler twice. Real nodes on an in-process signal
 * server, relay links (no WebRTC).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Identity } from '../shared/identity/keys.ts'
import type { Value } from '../shared/types.ts'
import { Kind } from '../shared/wire/frame.ts'
import { encodeValue } from '../shared/wire/value.ts'
import { createSignalServer, type SignalServer } from '../signal-server/index.ts'
import { joinOverlay } from './index.ts'
import type { Link } from './links/link.ts'
import type { OverlayNode } from './overlay.ts'
import { fwdSigned, MAX_TTL, type RouteMsg } from './rpc.ts'

type Fwd = Extract<RouteMsg, { t: 'fwd' }>
interface Internals {
  links: Map<string, Link>
  identity: Identity
  seenFwd: { size: number }
  passOn(env: Fwd): void
  forward(dst: string, inner: Value): Promise<void>
  noRoute(dst: string): void
  /** Where a `fwd` frame from a link goes once parsed. */
  onForward(env: Fwd, lastHop: string): Promise<void>
  /** Forgets what the routed memories keep no longer than `now` (the node's tick calls it). */
  pruneRouted(now: number): void
}
const inside = (n: OverlayNode) => n as unknown as Internals

/** An envelope `from` signs for `dst` at time `w`, exactly as its forward() would. */
async function envelope(from: OverlayNode, dst: string, inner: Value, w = Date.now()): Promise<Fwd> {
  const body = encodeValue(inner)
  const n = crypto.getRandomValues(new Uint8Array(8))
  const { identity } = inside(from)
  const sig = await identity.sign(fwdSigned(from.id, dst, n, w, body))
  return { t: 'fwd', src: from.id, dst, ttl: MAX_TTL, n, w, pk: identity.publicKey, sig, body }
}

/** d receives `env` from a's link while d's clock reads `at` (the check of the window reads the clock before any await). */
function arriveAt(env: Fwd, at: number): Promise<void> {
  const clock = vi.spyOn(Date, 'now').mockReturnValue(at)
  try {
    return inside(d).onForward(env, a.id)
  } finally {
    clock.mockRestore()
  }
}

const stat = (n: OverlayNode, k: string) => n.stats()[k] ?? 0

let server: SignalServer
let a: OverlayNode
let d: OverlayNode
const calls: number[] = []

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

beforeAll(async () => {
  server = await createSignalServer({ port: 0, host: '127.0.0.1', log: () => {} })
  const opts = { signal: server.address, network: 'routing', relay: 'force' as const }
  a = await joinOverlay(opts)
  d = await joinOverlay(opts)
  await until('a and d linked', () => inside(a).links.get(d.id)?.state === 'open')
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
    // The ring has no next hop for d (as when a's view has not seen d join yet), and a has no link to d.
    inside(a).links.get(d.id)?.close('test')
    await until('a without a link to d', () => inside(a).links.get(d.id) === undefined)
    const node = inside(a)
    const passOn = node.passOn
    node.passOn = (env) => {
      node.passOn = passOn
      node.noRoute(env.dst) // what passOn does when Chord has no hop
    }
    const before = a.stats()
    const answer = await node
      .forward(d.id, { t: 'req', id: 7_000_001, method: 'count', data: 1 })
      .then(() => until('the answer to arrive or fail', () => calls.includes(1), 8000))
    expect(answer).toBeUndefined()
    expect(calls.filter((c) => c === 1)).toHaveLength(1)
    expect(a.stats()['route.redial']).toBe((before['route.redial'] ?? 0) + 1)
    expect(inside(a).links.get(d.id)?.state).toBe('open')
  })

  it('a request right after a closed its link: d takes the new link at once, not after the goodbye', async () => {
    // a dials again before d has read a's goodbye; d must not ignore the new session as a duplicate.
    inside(a).links.get(d.id)?.close('test')
    await until('a without a link to d', () => inside(a).links.get(d.id) === undefined)
    expect(await a.request(d.id, 'count', 2, { timeoutMs: 8000 })).toBe(4)
    expect(calls.filter((c) => c === 2)).toHaveLength(1)
  })

  it('a second copy of a delivered envelope (a noroute after the fact, or a replay) is dropped, not run again', async () => {
    await until('a and d linked', () => inside(a).links.get(d.id)?.state === 'open')
    const link = inside(a).links.get(d.id) as Link
    const sent: Fwd[] = []
    const send = link.send.bind(link)
    link.send = (f) => {
      if (f.kind === Kind.Route && (f.body as { t?: string }).t === 'fwd') sent.push(f.body as unknown as Fwd)
      return send(f)
    }
    const dropped = d.stats()['drop.route.again'] ?? 0
    const got: unknown[] = []
    d.subscribe('once', (x) => got.push(x))
    // Routed to d (the direct link is d itself, so the envelope goes straight there). The same
    // message sent twice is two envelopes (each has its own nonce): both are delivered.
    await inside(a).forward(d.id, { t: 'msg', topic: 'once', data: 'x' })
    await inside(a).forward(d.id, { t: 'msg', topic: 'once', data: 'x' })
    await inside(a).forward(d.id, { t: 'req', id: 7_000_002, method: 'count', data: 3 })
    await until('the request to run', () => calls.includes(3))
    await until('both messages', () => got.length === 2)
    // A lying noroute: a sends what it kept again (three envelopes); d has them already.
    inside(a).noRoute(d.id)
    // And a replay of the last envelope by hand.
    await send({ kind: Kind.Route, body: sent.at(-1) as unknown as Value })
    await until('the copies to be dropped', () => (d.stats()['drop.route.again'] ?? 0) >= dropped + 4, 5000)
    expect(got).toEqual(['x', 'x'])
    expect(calls.filter((c) => c === 3)).toHaveLength(1)
    expect(d.stats()['drop.route.again']).toBe(dropped + 4)
    link.send = send
  })
})

describe('routed unicast: the replay window', () => {
  it('an envelope replayed after 130 s is refused (too old): its handler ran once', async () => {
    const t0 = Date.now()
    const env = await envelope(a, d.id, { t: 'req', id: 7_100_001, method: 'count', data: 11 }, t0)
    await arriveAt(env, t0)
    expect(calls.filter((c) => c === 11)).toHaveLength(1)
    // 130 s on d's clock: its tick lets the envelope go from memory (its time left the window)...
    const held = inside(d).seenFwd.size
    inside(d).pruneRouted(t0 + 130_000)
    expect(inside(d).seenFwd.size).toBeLessThan(held)
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
    expect(calls.filter((c) => c === 12)).toHaveLength(1)
    // 8,300 other envelopes, signed one after another after the victim (the memory holds 8,192).
    const flood = await Promise.all(
      Array.from({ length: 8_300 }, (_, i) =>
        envelope(a, d.id, { t: 'msg', topic: 'flood', data: i }, victim.w + 1 + i),
      ),
    )
    for (const env of flood) await inside(d).onForward(env, a.id)
    expect(got).toHaveLength(8_300)
    expect(inside(d).seenFwd.size).toBe(8_192)
    const before = stat(d, 'drop.route.forgotten')
    await inside(d).onForward(victim, a.id)
    expect(stat(d, 'drop.route.forgotten')).toBe(before + 1)
    expect(calls.filter((c) => c === 12)).toHaveLength(1)
    // The window narrowed for a, it did not close: a new envelope is delivered.
    await inside(d).onForward(await envelope(a, d.id, { t: 'msg', topic: 'flood', data: 'after' }), a.id)
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
    await inside(d).onForward({ ...env, w: env.w + 1 }, a.id)
    expect(stat(d, 'drop.route.forged')).toBe(before + 1)
  })
})
