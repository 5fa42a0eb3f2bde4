/**
 * Per-origin routes at one node (routes.ts), fed by hand. The node's shared
 * tree link E brings origin O's broadcasts at 5 hops; a lazy link L
 * announces them at 1 hop; C is a shared-tree child. Honest broadcasts come
 * from a real origin mesh; the hop field is not signed, so a test may set it
 * as a relay would.
 */
import { describe, expect, it } from 'vitest'
import type { MeshOptions } from './mesh.ts'
import { type MeshMsg, parseMeshMsg } from './messages.ts'
import { oneNode, relayed } from './one-node.ts'

const ME = 'a1'.repeat(20)
const E = 'b2'.repeat(20) // the shared tree's link towards O
const L = 'c3'.repeat(20) // a lazy link, nearer to O
const C = 'e5'.repeat(20) // a shared-tree child
const O = 'd4'.repeat(20) // the origin
const X = 'f6'.repeat(20) // a hostile neighbour
const M = '99'.repeat(20) // another lazy link

const node = (links: string[], options?: MeshOptions) => oneNode(ME, links, options)

/** A genuine broadcast by `origin`, as relayed to us at `hops` (and flagged as a route's push with `r`). */
const fromOrigin = (i: number, hops: number, r = false, origin = O) => relayed(origin, ME, i, hops, r)

/** Broadcast i comes over E at 5 hops, then L announces it at 1. */
async function viaE(n: ReturnType<typeof node>, i: number): Promise<void> {
  const g = await fromOrigin(i, 5)
  await n.mesh.handle(E, g)
  await n.mesh.handle(L, { type: 'ihave', ids: [g.id], hops: [1] })
}

/**
 * Broadcast i, withheld by L: L announces it first, E (no route of its own for O) too; after
 * graftTimeoutMs the node GRAFTs one of them, and L answers flagged, E plain.
 */
async function withheldByL(n: ReturnType<typeof node>, i: number): Promise<void> {
  const g = await fromOrigin(i, 2, true)
  await n.mesh.handle(L, { type: 'ihave', ids: [g.id], hops: [1], r: [0] })
  await n.mesh.handle(E, { type: 'ihave', ids: [g.id], hops: [5] })
  n.clock.t += 600
  n.mesh.tick(n.clock.t)
  const asked = n.take('graft')[0]?.to
  await n.mesh.handle(asked === L ? L : E, asked === L ? g : await fromOrigin(i, 6))
}

/** A node whose route for O goes to L (after three broadcasts over E); `extra`, if given, is another lazy link. */
async function routed(extra?: string) {
  const n = node(extra ? [E, L, C, extra] : [E, L, C])
  // L lazy: E and C are the shared tree here.
  for (const lazy of extra ? [L, extra] : [L]) await n.mesh.handle(lazy, { type: 'prune' })
  for (let i = 0; i < 3; i++) await viaE(n, i)
  return n
}

describe('per-origin routes at one node', () => {
  it('after three broadcasts of an origin, asks the lazy link that was sooner to push it, and the shared link to stop', async () => {
    const n = node([E, L, C])
    await n.mesh.handle(L, { type: 'prune' })
    await viaE(n, 0)
    await viaE(n, 1)
    // Heard from twice: it stays on the shared tree.
    expect(n.take('route')).toEqual([])
    await viaE(n, 2)
    expect(n.take('route')).toEqual([
      { to: L, msg: { type: 'route', o: O, m: 1 } },
      { to: E, msg: { type: 'route', o: O, m: 2 } },
    ])
    expect(n.mesh.counters.routeSwitches).toBe(1)
    // The shared tree is as it was: routes are per origin.
    expect(n.mesh.eagerPeers().sort()).toEqual([E, C])
    expect(n.mesh.sizes().routes).toBe(1)
  })

  it('takes the routed copy from its parent without touching the shared tree, and pushes it on, flagged, to the child only', async () => {
    const n = await routed()
    n.take()
    const g = await fromOrigin(3, 2, true)
    await n.mesh.handle(L, g)
    expect(n.mesh.counters.delivered).toBe(4)
    const pushed = n.take('gossip')
    expect(pushed.map((s) => s.to)).toEqual([C]) // not back to L (the parent), not to E (stopped)
    expect(pushed[0]?.msg).toMatchObject({ type: 'gossip', hops: 3, r: true })
    expect(n.mesh.eagerPeers().sort()).toEqual([E, C]) // L stays lazy for every other origin
    expect(n.mesh.lazyPeers()).toEqual([L])
  })

  it('a copy pushed by anyone else is stopped again; a duplicate on the route is never a shared PRUNE', async () => {
    const n = await routed()
    n.take()
    const g = await fromOrigin(3, 2, true)
    await n.mesh.handle(L, g)
    await n.mesh.handle(E, { ...g, hops: 6 }) // E forgot it was told to stop
    n.clock.t += 1_000
    n.mesh.tick(n.clock.t)
    expect(n.take('route')).toEqual([{ to: E, msg: { type: 'route', o: O, m: 2 } }])
    expect(n.take('prune')).toEqual([])
    expect(n.mesh.eagerPeers().sort()).toEqual([E, C])
    n.take('gossip')
    // A broadcast of another origin still takes the shared tree, both ways.
    const other = await fromOrigin(9, 3, false, X)
    await n.mesh.handle(E, other)
    expect(
      n
        .take('gossip')
        .map((s) => s.to)
        .sort(),
    ).toEqual([C])
  })

  it('pushes an origin to a neighbour that asks, stops for one that says stop, and takes its own supply by route when asked', async () => {
    const n = node([E, L, C])
    await n.mesh.handle(L, { type: 'prune' })
    await n.mesh.handle(E, await fromOrigin(0, 5)) // E supplies O here
    n.take()
    await n.mesh.handle(L, { type: 'route', o: O, m: 1 }) // L wants O from us, though lazy
    // This node now pushes O on request: it takes its own supply of O by route too (pinned to E).
    expect(n.take('route')).toEqual([{ to: E, msg: { type: 'route', o: O, m: 1 } }])
    await n.mesh.handle(C, { type: 'route', o: O, m: 2 }) // C does not want O from us
    await n.mesh.handle(E, await fromOrigin(1, 5, true))
    const pushed = n.take('gossip')
    expect(pushed.map((s) => s.to)).toEqual([L])
    expect(pushed[0]?.msg).toMatchObject({ r: true })
    // C's stop holds for O only.
    await n.mesh.handle(E, await fromOrigin(2, 3, false, X))
    expect(n.take('gossip').map((s) => s.to)).toEqual([C])
    // m: 0 puts C back under the shared tree's rules for O.
    await n.mesh.handle(C, { type: 'route', o: O, m: 0 })
    await n.mesh.handle(E, await fromOrigin(3, 5, true))
    expect(
      n
        .take('gossip')
        .map((s) => s.to)
        .sort(),
    ).toEqual([L, C].sort())
  })

  it('drops the route when its parent link closes, and tells the links it stopped', async () => {
    const n = await routed()
    n.take()
    n.mesh.linkDown(L)
    expect(n.take('route')).toEqual([{ to: E, msg: { type: 'route', o: O, m: 0 } }])
    expect(n.mesh.counters['routeDropped.link']).toBe(1)
    expect(n.mesh.sizes().routes).toBe(0)
  })

  it('a GRAFT answered by a node that routes the origin makes that node the parent; an unflagged answer drops the route', async () => {
    const n = await routed()
    n.take()
    // O's next broadcast does not come: E announces it, and is GRAFTed after graftTimeoutMs.
    const g = await fromOrigin(3, 6, true)
    await n.mesh.handle(E, { type: 'ihave', ids: [g.id], hops: [5], r: [0] })
    n.clock.t += 600
    n.mesh.tick(n.clock.t)
    expect(n.take('graft')).toEqual([{ to: E, msg: { type: 'graft', ids: [g.id] } }])
    await n.mesh.handle(E, g) // answered with r: routes carry O at E
    expect(n.take('route')).toEqual([
      { to: L, msg: { type: 'route', o: O, m: 2 } },
      { to: E, msg: { type: 'route', o: O, m: 1 } },
    ])
    expect(n.mesh.counters.routeRepairs).toBe(1)
    // Another loss, answered by a node that knows nothing of routes: the shared tree takes O back.
    const h = await fromOrigin(4, 6)
    await n.mesh.handle(C, { type: 'ihave', ids: [h.id], hops: [5] })
    n.clock.t += 600
    n.mesh.tick(n.clock.t)
    n.take('graft')
    await n.mesh.handle(C, h)
    expect(n.mesh.counters['routeDropped.graft']).toBe(1)
    expect(n.mesh.sizes().routes).toBe(0)
  })

  it('with routeOrigins 0 there are no routes: asks are ignored and nothing is sent', async () => {
    const n = node([E, L, C], { routeOrigins: 0 })
    await n.mesh.handle(L, { type: 'prune' })
    for (let i = 0; i < 5; i++) await viaE(n, i)
    await n.mesh.handle(C, { type: 'route', o: O, m: 2 })
    expect(n.take('route')).toEqual([])
    expect(n.mesh.sizes()).toMatchObject({ routes: 0, routeRequests: 0 })
  })
})

describe('per-origin routes against a hostile neighbour', () => {
  it('a parent that withholds the push but answers the GRAFT is asked once more, then dropped and distrusted', async () => {
    const n = await routed() // L is the parent, E told to stop
    n.take()
    for (let i = 3; i < 13; i++) {
      await withheldByL(n, i)
      n.clock.t += 1_000
      n.mesh.tick(n.clock.t)
    }
    expect(n.mesh.counters.delivered).toBe(13)
    expect(n.mesh.counters.routeDistrusted).toBe(1)
    // Asked again once (the first GRAFT), never taken back after the second.
    expect(n.take('route').filter((s) => s.to === L && (s.msg as { m: number }).m === 1)).toHaveLength(1)
    expect(n.mesh.counters.graftSent).toBeLessThanOrEqual(10)
  })

  it('a parent that withholds every other broadcast is dropped at its second miss within routeDistrustMs', async () => {
    const n = await routed() // L is the parent
    n.take()
    for (let i = 3; i < 23; i++) {
      if (i % 2 === 0)
        await n.mesh.handle(L, await fromOrigin(i, 2, true)) // pushed
      else await withheldByL(n, i)
      n.clock.t += 1_000
      n.mesh.tick(n.clock.t)
    }
    expect(n.mesh.counters.delivered).toBe(23)
    expect(n.mesh.counters.routeDistrusted).toBe(1)
    expect(n.mesh.counters['routeDropped.graft']).toBe(1)
  })

  it('a pusher told to stop when its copy came is not told again by the switch that follows', async () => {
    const n = await routed(M)
    n.take()
    const g = await fromOrigin(3, 5)
    await n.mesh.handle(C, g) // unasked, first
    await n.mesh.handle(M, { type: 'ihave', ids: [g.id], hops: [1] })
    expect(n.take('route')).toEqual([
      { to: C, msg: { type: 'route', o: O, m: 2 } },
      { to: L, msg: { type: 'route', o: O, m: 2 } },
      { to: M, msg: { type: 'route', o: O, m: 1 } },
    ])
  })

  it('one flagged copy of an origin never heard from does not make its sender the parent', async () => {
    const n = node([E, X])
    await n.mesh.handle(X, await fromOrigin(0, 9, true))
    expect(n.take('route')).toEqual([])
    expect(n.mesh.sizes().routes).toBe(0)
  })

  it("a neighbour's m: 2 costs only itself: copies to the other links are not flagged, GRAFT answers neither", async () => {
    const n = node([E, C, X])
    await n.mesh.handle(X, { type: 'route', o: O, m: 2 })
    n.take()
    const g = await fromOrigin(0, 5)
    await n.mesh.handle(E, g) // a plain shared-tree copy
    const toC = n.take('gossip').filter((s) => s.to === C)
    expect(toC).toHaveLength(1)
    expect(toC[0]?.msg).not.toHaveProperty('r')
    await n.mesh.handle(C, { type: 'graft', ids: [g.id] })
    expect(n.take('gossip')[0]?.msg).not.toHaveProperty('r')
  })

  it('a switch away from a parent whose copy came first tells it to stop once', async () => {
    const n = await routed(M)
    n.take()
    const g = await fromOrigin(3, 5, true)
    await n.mesh.handle(L, g) // from the parent, at 5
    await n.mesh.handle(M, { type: 'ihave', ids: [g.id], hops: [1] })
    expect(n.take('route')).toEqual([
      { to: L, msg: { type: 'route', o: O, m: 2 } },
      { to: M, msg: { type: 'route', o: O, m: 1 } },
    ])
  })

  it('a flagged copy merged into a running signature check is answered per origin, never by a shared PRUNE', async () => {
    const n = node([E, C])
    const g = await fromOrigin(0, 5)
    const first = n.mesh.handle(E, g)
    const second = n.mesh.handle(C, { ...g, hops: 3, r: true } as MeshMsg) // while E's copy is checked
    await first
    await second
    n.clock.t += 1_000
    n.mesh.tick(n.clock.t)
    expect(n.take('prune')).toEqual([])
    // The copy with more hops (E's) is told to stop, for O only.
    expect(n.take('route')).toEqual([{ to: E, msg: { type: 'route', o: O, m: 2 } }])
    expect(n.mesh.eagerPeers().sort()).toEqual([E, C].sort())
  })

  it('two neighbours taking turns to claim 1 hop for older broadcasts cannot make the routes flap', async () => {
    const H1 = '11'.repeat(20)
    const H2 = '22'.repeat(20)
    const origins = ['31', '32', '33', '34'].map((s) => s.repeat(20))
    const n = node([E, H1, H2, C])
    const ids: string[][] = origins.map(() => [])
    for (let i = 0; i < 20; i++)
      for (const [k, o] of origins.entries()) {
        const g = await fromOrigin(i, 5, false, o)
        ids[k]?.push(g.id)
        await n.mesh.handle(E, g)
      }
    n.take()
    for (let i = 3; i < 20; i++) {
      const batch = ids.map((l) => l[i] as string)
      await n.mesh.handle(i % 2 ? H1 : H2, { type: 'ihave', ids: batch, hops: batch.map(() => 1) })
    }
    // Only the latest broadcast of each origin is judged: at most one switch each (2 messages), not one per IHAVE.
    expect(n.take('route').length).toBeLessThanOrEqual(2 * origins.length)
  })

  it('a neighbour that claims to be 1 hop from the origin and then withholds wins the route once: every broadcast is still delivered', async () => {
    const n = await routed() // L announced 1 hop: L is the parent
    n.take()
    for (let i = 3; i < 8; i++) {
      const g = await fromOrigin(i, 6, true)
      if (i === 3) {
        // L withholds; E still announces, and is GRAFTed after graftTimeoutMs.
        await n.mesh.handle(E, { type: 'ihave', ids: [g.id], hops: [5], r: [0] })
        n.clock.t += 600
        n.mesh.tick(n.clock.t)
      }
      await n.mesh.handle(E, g) // the GRAFT's answer, then E's pushes as the new parent
      // The next comes from E too, and L claims again that it was 1 hop away.
      const h = await fromOrigin(i + 100, 6, true)
      await n.mesh.handle(E, h)
      await n.mesh.handle(L, { type: 'ihave', ids: [h.id], hops: [1] })
      n.clock.t += 1_000
      n.mesh.tick(n.clock.t)
    }
    expect(n.mesh.counters.delivered).toBe(13)
    expect(n.mesh.counters.routeDistrusted).toBe(1)
    // Since it let the route down, L was never asked again; E carries O.
    const routes = n.take('route').filter((s) => (s.msg as { m: number }).m === 1)
    expect(routes).toEqual([{ to: E, msg: { type: 'route', o: O, m: 1 } }])
    // After routeDistrustMs (60 s) L may be tried again.
    n.clock.t += 60_000
    const g = await fromOrigin(20, 6, true)
    await n.mesh.handle(E, g)
    await n.mesh.handle(L, { type: 'ihave', ids: [g.id], hops: [1] })
    expect(n.take('route')).toContainEqual({ to: L, msg: { type: 'route', o: O, m: 1 } })
  })

  it('route requests are kept for at most routeOrigins origins per neighbour, and leave with the link', async () => {
    const n = node([X, E], { routeOrigins: 64 })
    for (let i = 0; i < 10_000; i++) {
      const o = i.toString(16).padStart(40, '0')
      await n.mesh.handle(X, { type: 'route', o, m: 1 + (i % 2) } as MeshMsg)
    }
    expect(n.mesh.sizes().routeRequests).toBe(64)
    expect(n.mesh.counters.routeAskedEvicted).toBe(10_000 - 64)
    // None of those origins were ever heard of: nothing to pin, nothing sent.
    expect(n.take('route')).toEqual([])
    n.mesh.linkDown(X)
    expect(n.mesh.sizes().routeRequests).toBe(0)
  })

  it('a route message from a neighbour that is not linked is counted and changes nothing', async () => {
    const n = node([E])
    await n.mesh.handle(X, { type: 'route', o: O, m: 1 })
    expect(n.mesh.counters.routeIn).toBe(1)
    expect(n.mesh.sizes().routeRequests).toBe(0)
  })

  it('malformed route fields, IHAVE route indices and gossip flags are refused by the parser and dropped', async () => {
    const id = 'ab'.repeat(20)
    const bad: unknown[] = [
      { type: 'route', o: 'xyz', m: 1 },
      { type: 'route', o: O, m: 3 },
      { type: 'route', o: O, m: '1' },
      { type: 'route', o: O },
      { type: 'ihave', ids: [id], r: [1] }, // out of range
      { type: 'ihave', ids: [id, O], r: [1, 0] }, // not increasing
      { type: 'ihave', ids: [id], r: [0.5] },
      { type: 'ihave', ids: [id], r: 'all' },
      { type: 'gossip', payload: new Uint8Array(10), sig: new Uint8Array(64), hops: 1, r: 1 },
    ]
    for (const m of bad) expect(parseMeshMsg(m as never)).toBeNull()
    expect(parseMeshMsg({ type: 'ihave', ids: [id, O], r: [0, 1] })).toEqual({
      type: 'ihave',
      ids: [id, O],
      r: [0, 1],
    })
    expect(parseMeshMsg({ type: 'route', o: O, m: 0 })).toEqual({ type: 'route', o: O, m: 0 })
    const n = node([X])
    for (const m of bad) await n.mesh.handle(X, m as MeshMsg)
    expect(n.mesh.counters['drop.malformed']).toBe(bad.length)
  })
})
