/**
 * The router's `sendVia(to, msg, unreachable)` callback as the browser
 * node's connection manager calls it: later, when the on-demand dial toward
 * the hop has failed (possibly because the node closed: transport.failAll).
 * Deps are written out here (not test/router-stub.ts) so the test holds the
 * callback until it wants the dial to fail.
 */
import { describe, expect, it } from 'vitest'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { mulberry32 } from '../sim/prng.ts'
import { type Envelope, MAX_TTL, type RouteMsg } from './messages.ts'
import { createRouter } from './router.ts'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const C = 'c'.repeat(40)
const X = 'e'.repeat(40)

/** Node b: every way on goes through x, whose link is "open" or opens on demand; dials toward x fail only when the test says. */
function hostB(open: boolean) {
  const sent: { to: string; msg: RouteMsg }[] = []
  const held: (() => void)[] = []
  const connects: string[] = []
  const router = createRouter({
    id: B,
    keys: createFakeKeyring(B),
    now: () => 1_000_000,
    random: mulberry32(7),
    nextHop: () => ({ via: X, open }),
    send: (to, msg) => void sent.push({ to, msg }),
    sendVia(to, msg, unreachable) {
      sent.push({ to, msg })
      if (unreachable) held.push(unreachable)
    },
    connect: async (to) => void connects.push(to),
  })
  /** The dials toward x fail now (as transport.failAll does when the node closes). */
  const failDials = async () => {
    for (const fn of held.splice(0)) fn()
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0))
  }
  return { router, sent, connects, failDials }
}

describe('router: a hop unreachable after the node closed', () => {
  it('a forwarded envelope whose dial fails after close gets no noroute (nothing is signed or sent)', async () => {
    const b = hostB(false)
    const envelope: Envelope = {
      t: 'fwd',
      src: A,
      dst: C,
      ttl: MAX_TTL,
      nonce: new Uint8Array(8).fill(1),
      signedAt: 1_000_000,
      publicKey: createFakeKeyring(A).publicKey,
      sig: new Uint8Array(64).fill(2),
      body: new Uint8Array([0x90]),
    }
    await b.router.handle(A, envelope)
    expect(b.sent).toHaveLength(1)
    b.router.close()
    await b.failDials()
    expect(b.sent).toHaveLength(1)
    expect(b.router.counters['route.originated'] ?? 0).toBe(0)
  })

  it('our own envelope whose dial fails after close opens no link (no redial)', async () => {
    const b = hostB(true)
    await b.router.send(C, 't', 1)
    expect(b.sent).toHaveLength(1)
    b.router.close()
    await b.failDials()
    expect(b.connects).toEqual([])
    expect(b.router.counters['route.redial'] ?? 0).toBe(0)
  })

  it('before close, both still happen (noroute to the source; a redial of our own)', async () => {
    const b = hostB(true)
    await b.router.send(C, 't', 1)
    await b.failDials()
    expect(b.connects).toEqual([C])
  })
})
