import { describe, expect, it } from 'vitest'
import {
  A,
  B,
  C,
  clock,
  craft,
  D,
  link,
  type PStub,
  pstub,
  pump,
  run,
  seen,
  T0,
} from '../../test/presence-stub.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import type { DumpMsg } from './messages.ts'

/** `n` nodes, each heard by `hub` (their records delivered to it). */
async function crowd(hub: PStub, c: ReturnType<typeof clock>, n: number, state = 'x'): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const id = (0x10 + i).toString(16).padStart(2, '0').repeat(20)
    const keys = createFakeKeyring(id)
    await hub.presence.handleBroadcast(
      id,
      await craft(keys, { session: T0, seq: 1, time: c.now(), interval: 10_000, state }),
    )
    ids.push(id)
  }
  return ids
}

const dumps = (s: PStub) =>
  s.sent.filter(([, m]) => m.t === 'dump').map(([to, m]) => [to, m as DumpMsg] as const)

describe('presence: pull on joining', () => {
  it('a joining node asks its first pullPeers neighbours and sees the whole network at once', async () => {
    const c = clock()
    const hub = pstub(A, c)
    const others = await crowd(hub, c, 30)
    const b = pstub(B, c, { pullPeers: 2 })
    const d = pstub(D, c)
    const e = pstub(C, c)
    link(b, hub)
    link(b, d)
    link(b, e)
    expect(b.sent.filter(([, m]) => m.t === 'pull').map(([to]) => to)).toEqual([A, D])
    await pump(b, hub, d, e)
    expect(seen(b)).toEqual([A, B, D, ...others].sort()) // D answered with its own record
    expect(b.presence.counters).toMatchObject({ pullSent: 2, dumpIn: 2, joined: 32 })
    expect(hub.presence.counters.pullAnswered).toBe(1)
    expect(e.presence.counters.pullIn).toBeUndefined()
  })

  it('a large table goes in parts of about maxDumpBytes, every part taken', async () => {
    const c = clock()
    const hub = pstub(A, c, { maxDumpBytes: 2_000 })
    await crowd(hub, c, 40, 'y'.repeat(100))
    const b = pstub(B, c)
    link(b, hub)
    await pump(b)
    await hub.presence.handle(B, { t: 'pull' })
    const parts = dumps(hub).map(([, m]) => m)
    expect(parts.length).toBeGreaterThan(5)
    expect(parts.slice(0, -1).every((m) => m.m === true)).toBe(true)
    expect(parts.at(-1)?.m).toBeUndefined()
    for (const m of parts)
      expect(m.r.reduce((s, [body]) => s + body.length + 112, 0)).toBeLessThan(2_000 + 300)
    await pump(hub, b)
    expect(b.presence.get().size).toBe(42)
  })

  it('a record from a dump counts as heard when its sender heard it (its age), capped at its ttl', async () => {
    const c = clock()
    const hub = pstub(A, c)
    const [x] = await crowd(hub, c, 1)
    c.advance(20_000) // x is silent from now on; the hub heard it 20 s ago
    const b = pstub(B, c)
    link(b, hub)
    await pump(b, hub)
    expect(seen(b)).toContain(x)
    // ttl = 3 × 10 s + 2 s = 32 s after the hub heard it: 12 s from now, not 32.
    await run(c, 11_900, [b])
    expect(seen(b)).toContain(x)
    await run(c, 200, [b])
    expect(seen(b)).not.toContain(x)
  })

  it('a pull that got nothing back is asked once more after pullRetryMs, and that answer is taken', async () => {
    const c = clock()
    const hub = pstub(A, c)
    const others = await crowd(hub, c, 5)
    const b = pstub(B, c, { pullRetryMs: 1_000 })
    link(b, hub)
    b.sent.splice(0) // the pull is lost
    await run(c, 900, [b, hub])
    expect(b.sent).toEqual([])
    await run(c, 200, [b, hub])
    expect(b.sent).toEqual([[A, { t: 'pull' }]])
    await pump(b, hub)
    expect(seen(b)).toEqual([A, B, ...others].sort())
    // Once only.
    await run(c, 5_000, [b, hub])
    expect(b.presence.counters.pullRetried).toBe(1)
  })

  it('only links that come up within pullWindowMs of the join are asked', async () => {
    const c = clock()
    const b = pstub(B, c, { pullPeers: 3, pullWindowMs: 1_000 })
    const a = pstub(A, c)
    const d = pstub(D, c)
    link(b, a)
    c.advance(1_500)
    b.presence.tick(c.now())
    link(b, d)
    expect(b.sent.filter(([, m]) => m.t === 'pull').map(([to]) => to)).toEqual([A, A]) // A twice: its retry
  })
})

describe('presence: pull and dump under attack', () => {
  it('a dump nobody asked for is dropped (drop.unsolicited), and so is one after the answer ended or timed out', async () => {
    const c = clock()
    const b = pstub(B, c)
    const x = createFakeKeyring(C)
    const rec = await craft(x, { session: T0, seq: 1, time: T0, interval: 10_000, state: 'fake' })
    const dump: DumpMsg = { t: 'dump', r: [[rec[0], rec[1], rec[2], 0]] }
    await b.presence.handle(A, dump)
    expect(b.presence.counters['drop.unsolicited']).toBe(1)
    const a = pstub(A, c)
    link(b, a)
    await b.presence.handle(A, { t: 'dump', r: [] })
    await b.presence.handle(A, dump)
    expect(b.presence.counters['drop.unsolicited']).toBe(2)
    const d = pstub(D, c, {}, undefined)
    link(b, d)
    await run(c, 11_200, [b]) // asked again after 1 s, then 10 s for the answer
    expect(b.presence.counters).toMatchObject({ pullRetried: 1, pullTimedOut: 1 })
    await b.presence.handle(D, dump)
    expect(b.presence.counters['drop.unsolicited']).toBe(3)
    expect(seen(b)).not.toContain(C)
  })

  it('a neighbour cannot slip in forged records: altered bodies and wrong signatures are dropped', async () => {
    const c = clock()
    const b = pstub(B, c)
    const a = pstub(A, c)
    link(b, a)
    const x = createFakeKeyring(C)
    const good = await craft(x, { session: T0, seq: 1, time: T0, interval: 10_000, state: 'genuine' })
    const altered = await craft(x, { session: T0, seq: 2, time: T0, interval: 10_000, state: 'forged' })
    const bad = Uint8Array.from(altered[2])
    bad[0] = (bad[0] as number) ^ 1
    const otherKey = await craft(createFakeKeyring(D), {
      session: T0,
      seq: 3,
      time: T0,
      interval: 10_000,
      state: 'x',
    })
    await b.presence.handle(A, {
      t: 'dump',
      r: [
        [good[0], good[1], good[2], 0],
        [altered[0], altered[1], bad, 0],
        [otherKey[0], x.publicKey, otherKey[2], 0], // D's record passed off under C's key
      ],
    })
    expect(b.presence.get().get(C)?.state).toBe('genuine')
    expect(b.presence.counters['drop.badSignature']).toBe(2)
  })

  it('a neighbour pulling again within pullGapMs is refused after its retry (drop.pullRate); all pulls together are held to maxPullAnswers', async () => {
    const c = clock()
    const a = pstub(A, c, { pullGapMs: 10_000, maxPullAnswers: 3 })
    const peers = ['11', '22', '33', '44', '55'].map((h) => pstub(h.repeat(20), c))
    for (const p of peers) link(a, p)
    for (let i = 0; i < 10; i++) await a.presence.handle(peers[0]?.id as string, { t: 'pull' })
    expect(a.presence.counters).toMatchObject({ pullIn: 10, pullAnswered: 2, 'drop.pullRate': 8 })
    for (const p of peers.slice(1)) await a.presence.handle(p.id, { t: 'pull' })
    expect(a.presence.counters).toMatchObject({ pullAnswered: 3, 'drop.pullBudget': 3 })
    await run(c, 10_000, [a])
    await a.presence.handle(peers[4]?.id as string, { t: 'pull' })
    expect(a.presence.counters.pullAnswered).toBe(4)
    expect(dumps(a).length).toBe(4)
    // A stranger (no link) is not answered at all.
    await a.presence.handle(D, { t: 'pull' })
    expect(a.presence.counters['drop.notLinked']).toBe(1)
  })

  it('an answer longer than maxNodes records is cut off (drop.dumpTooLong)', async () => {
    const c = clock()
    const b = pstub(B, c, { maxNodes: 10 })
    const a = pstub(A, c)
    link(b, a)
    const x = createFakeKeyring(C)
    const rec = await craft(x, { session: T0, seq: 1, time: T0, interval: 10_000, state: 1 })
    const part: DumpMsg = {
      t: 'dump',
      r: Array.from({ length: 6 }, () => [rec[0], rec[1], rec[2], 0]),
      m: true,
    }
    await b.presence.handle(A, part)
    await b.presence.handle(A, part)
    expect(b.presence.counters['drop.dumpTooLong']).toBe(1)
    expect(b.presence.counters.dumpRecordsIn).toBe(6)
    await b.presence.handle(A, part)
    expect(b.presence.counters['drop.unsolicited']).toBe(1)
  })

  it('a stale record in a dump is dropped, and one older than a departure does not bring the node back', async () => {
    const c = clock()
    const b = pstub(B, c)
    const a = pstub(A, c)
    const d = pstub(D, c)
    link(b, a)
    link(b, d)
    const x = createFakeKeyring(C)
    const old = await craft(x, { session: T0, seq: 1, time: T0, interval: 10_000, state: 'old' })
    const bye = await craft(x, { session: T0, seq: 2, time: T0, interval: 10_000 })
    await b.presence.handleBroadcast(C, bye)
    await b.presence.handle(A, { t: 'dump', r: [[old[0], old[1], old[2], 0]] })
    expect(seen(b)).not.toContain(C)
    expect(b.presence.counters.outdated).toBe(1)
    c.advance(100_000) // past ttl (32 s) + skew (60 s) after the record's time
    const late = await craft(x, { session: T0, seq: 3, time: T0, interval: 10_000, state: 'late' })
    await b.presence.handleBroadcast(C, late)
    expect(b.presence.counters['drop.stale']).toBe(1)
    expect(seen(b)).not.toContain(C)
  })
})
