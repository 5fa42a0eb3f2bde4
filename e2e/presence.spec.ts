/**
 * Presence in real browsers (issue 12 item 1): every peer its own Chromium
 * browser context, the built signal server. Every tab sees every other with
 * its state; an update reaches all; a tab that calls close() is gone
 * everywhere at once (its leave record); a tab whose context is closed
 * without close() (a crash) is gone within the documented bound: its
 * neighbours, whose links to it close, report it lost after lostAfterMs
 * (2 s) and everyone drops it lostGraceMs (3 s) later; this stays within
 * the bound of the intervals, 3 × intervalMs + 2 s (+ a broadcast's spread
 * and a tick), which a short intervalMs keeps small here.
 */
import { expect, test } from '@playwright/test'
import { openPeer, type Peer, serverAndPeers, until } from './fixtures.ts'

type PresenceEvent = { id: string; kind: 'join' | 'update' | 'leave'; state?: unknown; reason?: string }
type W = {
  node: {
    id: string
    on(e: 'presence', fn: (e: PresenceEvent) => void): () => void
    presence: { set(state: unknown): Promise<void>; get(): Map<string, { state: unknown; since: number }> }
    stats(): Record<string, number>
    close(): Promise<void>
  }
  presenceEvents: (PresenceEvent & { at: number })[]
}

const env = serverAndPeers()
const peers = env.peers
/** The crash test's interval: the bound on a crash is 3 × this + 2 s. */
const INTERVAL_MS = 2000

async function openMany(browser: import('@playwright/test').Browser, n: number, network: string) {
  const out: Peer[] = []
  for (let i = 0; i < n; i++) {
    const p = await openPeer(browser, env.server.url, { network, presence: { intervalMs: INTERVAL_MS } })
    peers.push(p)
    out.push(p)
    // Every event from now on, with the page's time it came.
    await p.page.evaluate(() => {
      const w = window as unknown as W
      w.presenceEvents = []
      w.node.on('presence', (e) => w.presenceEvents.push({ ...e, at: Date.now() }))
    })
  }
  return out
}

/** A peer's presence.get(), as id -> state. */
function presenceOf(p: Peer): Promise<Record<string, unknown>> {
  return p.page.evaluate(() => {
    const out: Record<string, unknown> = {}
    for (const [id, { state }] of (window as unknown as W).node.presence.get()) out[id] = state
    return out
  })
}

function eventsOf(p: Peer): Promise<(PresenceEvent & { at: number })[]> {
  return p.page.evaluate(() => (window as unknown as W).presenceEvents)
}

const sameIds = (got: Record<string, unknown>, want: Peer[]) =>
  Object.keys(got).sort().join() ===
  want
    .map((p) => p.id)
    .sort()
    .join()

test('join, update and leave: every tab sees every other with its state, and a close() is seen at once', async ({
  browser,
}) => {
  const ps = await openMany(browser, 4, 'presence-life')
  // Join: each tab's table holds exactly the four.
  await until(
    async () => (await Promise.all(ps.map(presenceOf))).every((g) => sameIds(g, ps)),
    30_000,
    'all see all',
  )

  // Update: each tab sets its name; every tab sees every name.
  await Promise.all(
    ps.map((p, i) =>
      p.page.evaluate((name) => (window as unknown as W).node.presence.set({ name }), `tab${i}`),
    ),
  )
  const names = Object.fromEntries(ps.map((p, i) => [p.id, { name: `tab${i}` }]))
  const named = (g: Record<string, unknown>) =>
    ps.every((p, i) => (g[p.id] as { name?: string } | null)?.name === `tab${i}`)
  await until(
    async () => (await Promise.all(ps.map(presenceOf))).every(named),
    15_000,
    'every name everywhere',
  )
  for (const g of await Promise.all(ps.map(presenceOf))) expect(g).toEqual(names)
  // The others heard each change as an update event with the state.
  const [first, ...rest] = ps as [Peer, ...Peer[]]
  for (const p of rest)
    expect((await eventsOf(p)).filter((e) => e.id === first.id && e.kind === 'update').at(-1)?.state).toEqual(
      {
        name: 'tab0',
      },
    )

  // Leave: close() sends the leave record and keeps its links a second; it is gone everywhere by then.
  const leaver = ps[3] as Peer
  const stay = ps.slice(0, 3)
  const t0 = Date.now()
  await leaver.page.evaluate(() => (window as unknown as W).node.close())
  await until(
    async () => (await Promise.all(stay.map(presenceOf))).every((g) => sameIds(g, stay)),
    5_000,
    'leave seen',
  )
  const goneIn = Date.now() - t0
  for (const p of stay) {
    const leave = (await eventsOf(p)).find((e) => e.id === leaver.id && e.kind === 'leave')
    expect(leave?.reason).toBe('left')
  }
  console.log(`presence e2e: a close() was seen by all within ${goneIn} ms`)
  expect(goneIn).toBeLessThan(5_000) // far below the crash bound (3 × 2 s + 2 s)
  const stats = await first.page.evaluate(() => (window as unknown as W).node.stats())
  expect(stats['presence.left']).toBe(1)
  expect(stats['presence.joined']).toBe(3)
})

test('crash: a tab closed without close() is gone everywhere within 3 × intervalMs + 2 s', async ({
  browser,
}) => {
  const ps = await openMany(browser, 3, 'presence-crash')
  await until(
    async () => (await Promise.all(ps.map(presenceOf))).every((g) => sameIds(g, ps)),
    30_000,
    'all see all',
  )
  const victim = ps[2] as Peer
  const stay = ps.slice(0, 2)
  peers.splice(peers.indexOf(victim), 1)
  const t0 = Date.now()
  await victim.ctx.close() // no close(): no leave record
  const bound = 3 * INTERVAL_MS + 2_000
  await until(
    async () => (await Promise.all(stay.map(presenceOf))).every((g) => sameIds(g, stay)),
    bound + 5_000,
    'the crash seen',
  )
  const goneIn = Date.now() - t0
  console.log(
    `presence e2e: a crash was seen by all within ${goneIn} ms (bound ${bound} ms + spread and a tick)`,
  )
  for (const p of stay) {
    const leave = (await eventsOf(p)).find((e) => e.id === victim.id && e.kind === 'leave')
    // Expired, not left: nothing said goodbye; not before a neighbour waited lostAfterMs (2 s) and the
    // victim had lostGraceMs (3 s) to answer the report (before the reports: two intervals + 2 s).
    expect(leave?.reason).toBe('expired')
    expect((leave?.at ?? 0) - t0).toBeGreaterThanOrEqual(5_000)
    expect((leave?.at ?? 0) - t0).toBeLessThanOrEqual(bound + 1_500)
  }
})
