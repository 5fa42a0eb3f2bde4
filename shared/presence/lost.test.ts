/**
 * Crashes reported by link neighbours (lost.ts), the attacks on those
 * reports, and the quiet back-off of announcements (announce.ts).
 */
import { describe, expect, it } from 'vitest'
import { A, B, C, clock, D, deliver, link, type PStub, pstub, run, seen } from '../../test/presence-stub.ts'
import { lostValue } from './messages.ts'
import { parseBody } from './record.ts'

const E = 'ee'.repeat(20)

/** Everyone hears everyone's latest record (as the mesh would deliver them). */
async function meet(...stubs: PStub[]): Promise<void> {
  for (const s of stubs) await deliver(s, ...stubs.filter((o) => o !== s))
}

/** `peer`'s link at `s` dies as the host reports it: linkClosed (while it still carried the mesh), then gone. */
function linkDied(s: PStub, peer: string): void {
  s.presence.linkClosed(peer)
  s.neighbours = s.neighbours.filter((x) => x !== peer)
  s.presence.linkDown(peer)
}

/** `lost` notices among what `s` broadcast. */
const notices = (s: PStub) => s.announced.filter((r) => !Array.isArray(r))

/** The `interval` of each record `s` announced. */
function intervals(s: PStub): number[] {
  return s.announced.map((r) => {
    const body = parseBody((r as Uint8Array[])[0] as Uint8Array)
    return body?.interval ?? -1
  })
}

describe('presence: crashes reported by link neighbours', () => {
  it('a neighbour whose link died reports the node lost; everyone drops it lostGraceMs later, long before its ttl', async () => {
    const c = clock()
    const [a, b, d] = [A, B, D].map((id) => pstub(id, c, { maxIntervalMs: 300_000 }))
    if (!a || !b || !d) throw new Error('stubs')
    link(a, b)
    link(b, d)
    await meet(a, b, d)
    expect(seen(d)).toEqual([A, B, D])
    // A crashes: B's link to it closes (the host calls linkClosed, then linkDown); D never had one.
    const t0 = c.now()
    linkDied(b, A)
    await run(c, 1_900, [b, d])
    expect(b.broadcasts).toEqual([]) // it may come back within lostAfterMs
    await run(c, 200, [b, d])
    expect(b.presence.counters.lostSent).toBe(1)
    await deliver(b, d)
    expect(d.presence.counters.suspected).toBe(1)
    let goneAt = 0
    for (let t = 0; t < 5_000 && !goneAt; t += 100) {
      await run(c, 100, [b, d])
      if (!seen(d).includes(A)) goneAt = c.now() - t0
    }
    // lostAfterMs (2 s) + lostGraceMs (3 s): not 3 × 10 s + 2 s.
    expect(goneAt).toBeGreaterThanOrEqual(5_000)
    expect(goneAt).toBeLessThanOrEqual(5_200)
    expect(seen(b)).toEqual([B, D])
    expect(d.events.at(-1)).toEqual({ id: A, kind: 'leave', reason: 'expired' })
  })

  it('no report when the link comes back, the node announces meanwhile, or it was not a mesh link', async () => {
    const c = clock()
    const [a, b] = [A, B].map((id) => pstub(id, c))
    if (!a || !b) throw new Error('stubs')
    link(a, b)
    await meet(a, b)
    // Back within lostAfterMs.
    linkDied(b, A)
    await run(c, 500, [b])
    link(a, b)
    await run(c, 3_000, [b])
    // Not a mesh link at the time it closed (an auxiliary link closing for idleness).
    b.neighbours = []
    b.presence.linkDown(A)
    b.presence.linkClosed(A)
    await run(c, 3_000, [b])
    // A announced meanwhile (heard since the link closed): alive.
    link(a, b)
    linkDied(b, A)
    await run(c, 500, [a, b])
    await a.presence.set('still here')
    await deliver(a, b)
    await run(c, 3_000, [b])
    expect(b.presence.counters.lostSent ?? 0).toBe(0)
    expect(b.presence.counters.lostCancelled).toBe(1)
    expect(notices(b)).toEqual([])
    expect(seen(b)).toEqual([A, B])
  })
})

describe('presence: attacks on lost reports', () => {
  it('a present node that reports a live node lost costs it one announcement, never its presence (refuted)', async () => {
    const c = clock()
    const [a, b, x] = [A, B, C].map((id) => pstub(id, c))
    if (!a || !b || !x) throw new Error('stubs')
    link(a, x)
    link(b, x)
    await meet(a, b, x)
    // X lies: "A is lost", with A's current version. B (not linked to A) shortens A's expiry.
    const rec = parseBody((a.announced.at(-1) as Uint8Array[])[0] as Uint8Array)
    const lie = lostValue({ t: 'lost', id: A, s: rec?.session ?? 0, q: rec?.seq ?? 0 })
    await b.presence.handleBroadcast(C, lie)
    await a.presence.handleBroadcast(C, lie)
    expect(b.presence.counters.suspected).toBe(1)
    // A hears it too, and answers with a newer record at once (within updateGapMs).
    expect(a.presence.counters.refuted).toBe(1)
    await run(c, 300, [a, b])
    await deliver(a, b)
    await run(c, 10_000, [a, b])
    expect(seen(b)).toEqual([A, B, C])
    expect(b.events.filter((e) => e.kind === 'leave')).toEqual([])
    // The old report cannot be replayed against the newer record.
    await b.presence.handleBroadcast(C, lie)
    expect(b.presence.counters.lostOutdated).toBe(1)
  })

  it('reports from strangers, about linked nodes, beyond the budget, or malformed change nothing (counted)', async () => {
    const c = clock()
    const [a, b, x] = [A, B, C].map((id) => pstub(id, c, { lostBurst: 2, lostGapMs: 10_000 }))
    if (!a || !b || !x) throw new Error('stubs')
    link(a, b)
    link(b, x)
    await meet(a, b, x)
    const aRec = parseBody((a.announced.at(-1) as Uint8Array[])[0] as Uint8Array)
    const v = { s: aRec?.session ?? 0, q: aRec?.seq ?? 0 }
    // A node nobody has heard of.
    await b.presence.handleBroadcast(E, lostValue({ t: 'lost', id: A, ...v }))
    expect(b.presence.counters['drop.lostUnknown']).toBe(1)
    // About A, which B is linked to: its own link says A lives.
    await b.presence.handleBroadcast(C, lostValue({ t: 'lost', id: A, ...v }))
    expect(b.presence.counters.lostLinked).toBe(1)
    // About a node B does not hold.
    await b.presence.handleBroadcast(C, lostValue({ t: 'lost', id: D, s: 1, q: 1 }))
    expect(b.presence.counters.lostIgnored).toBe(1)
    // The budget: lostBurst (2) spent above; the next is refused until lostGapMs refills one.
    await b.presence.handleBroadcast(C, lostValue({ t: 'lost', id: A, ...v }))
    expect(b.presence.counters['drop.lostRate']).toBe(1)
    c.advance(10_000)
    await b.presence.handleBroadcast(C, lostValue({ t: 'lost', id: A, ...v }))
    expect(b.presence.counters.lostLinked).toBe(2)
    // A report about its own sender, and malformed shapes.
    await b.presence.handleBroadcast(C, lostValue({ t: 'lost', id: C, s: 1, q: 1 }))
    for (const bad of [
      { t: 'lost', id: 'nothex', s: 1, q: 1 },
      { t: 'lost', id: A, s: -1, q: 1 },
      { t: 'lost', id: A, s: 1 },
    ])
      await b.presence.handleBroadcast(C, bad)
    expect(b.presence.counters['drop.malformed']).toBe(4)
    expect(b.presence.counters.suspected ?? 0).toBe(0)
    expect(seen(b)).toEqual([A, B, C])
  })
})

describe('presence: quiet back-off', () => {
  it('a quiet node doubles its interval after each periodic announcement, up to maxIntervalMs; a set brings it back', async () => {
    const c = clock()
    const a = pstub(A, c, { intervalMs: 10_000, maxIntervalMs: 80_000, jitter: 0 })
    const b = pstub(B, c)
    link(a, b)
    await run(c, 200_000, [a], 1_000)
    expect(intervals(a)).toEqual([10_000, 20_000, 40_000, 80_000, 80_000])
    await a.presence.set({ busy: true })
    expect(intervals(a).at(-1)).toBe(10_000)
    await run(c, 30_000, [a], 1_000)
    expect(intervals(a).slice(-3)).toEqual([10_000, 20_000, 40_000])
  })
})
