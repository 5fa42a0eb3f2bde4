/** Anti-entropy between two replicas (anti-entropy.ts) and per-peer budgets (budgets.ts). */
import { describe, expect, it } from 'vitest'
import { A, B, C, clock, deliver, pump, type Stub, stub, T0 } from '../../test/sync-stub.ts'
import { MAX_PEER_BUDGETS } from './sync.ts'

describe('sync: anti-entropy between two replicas', () => {
  it('exchanges only what differs, both ways, and ends equal', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    const shared = stub(C, c)
    for (let i = 0; i < 200; i++) await shared.sync.set(`s${i}`, i)
    await deliver(shared, a, b)
    for (let i = 0; i < 10; i++) await a.sync.set(`a${i}`, i)
    for (let i = 0; i < 7; i++) await b.sync.set(`b${i}`, i)
    c.advance(1)
    await a.sync.set('s5', 'a newer')
    await b.sync.delete('s6')
    a.broadcasts.length = 0
    b.broadcasts.length = 0
    a.neighbours = [B]
    b.neighbours = [A]
    await a.sync.linkUp?.(B)
    await b.sync.linkUp?.(A)
    await pump([a, b])
    expect(a.sync.digest()).toBe(b.sync.digest())
    expect(a.sync.get('s5')).toBe('a newer')
    expect(a.sync.get('s6')).toBeUndefined()
    expect(a.sync.get('b6')).toBe(6)
    // Entries moved: 10 + 1 one way, 7 + 1 the other; nothing of the 200 shared ones.
    const moved = (a.sync.counters['ae.entriesSent'] ?? 0) + (b.sync.counters['ae.entriesSent'] ?? 0)
    expect(moved).toBe(19)
    // In sync: the next round is one 8-byte summary and nothing else.
    c.advance(5_000)
    await a.sync.tick(c.now())
    await b.sync.tick(c.now())
    const before = a.sent.length + b.sent.length
    expect(before).toBeGreaterThan(0)
    expect(await pump([a, b])).toBe(before)
    expect((a.sync.counters['ae.inSync'] ?? 0) + (b.sync.counters['ae.inSync'] ?? 0)).toBeGreaterThan(0)
  })

  it('sends a newcomer whole buckets without version lists', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    for (let i = 0; i < 300; i++) await a.sync.set(`k${i}`, i)
    a.neighbours = [B]
    b.neighbours = [A]
    await a.sync.linkUp?.(B)
    await b.sync.linkUp?.(A)
    const versions: number[] = []
    const tap = a.sent.push.bind(a.sent)
    a.sent.push = (...xs) => {
      for (const [, m] of xs) if (m.t === 'v') versions.push(m.v.length)
      return tap(...xs)
    }
    await pump([a, b])
    expect(b.sync.digest()).toBe(a.sync.digest())
    // One empty version list closes a's part of the exchange.
    expect(versions).toEqual([0])
    expect(b.sync.counters['out.q'] ?? 0).toBe(0)
    expect(a.sync.counters['ae.entriesSent']).toBe(300)
  })
})

describe('sync: per-peer budgets', () => {
  it('rate-limits a neighbour that floods anti-entropy messages', async () => {
    const c = clock()
    const b = stub(B, c, { peerMsgBudget: 10 })
    b.neighbours = [A]
    for (let i = 0; i < 30; i++) await b.sync.handle(A, { t: 's', r: new Uint8Array(8).fill(1) })
    expect(b.sync.counters['drop.rateLimited']).toBe(20)
    expect(b.sent).toHaveLength(10)
    c.advance(5_000)
    await b.sync.handle(A, { t: 's', r: new Uint8Array(8).fill(1) })
    expect(b.sent).toHaveLength(11)
  })

  /** Ask `b` for a key as `from`; returns whether `b` answered (a `q` is always answered unless dropped). */
  async function ask(b: Stub, from: string): Promise<boolean> {
    const before = b.sent.length
    await b.sync.handle(from, { t: 'q', k: ['x'] })
    return b.sent.length > before
  }

  it('keeps a peer budget when the peer leaves the neighbours: flapping does not refill it (regression)', async () => {
    const c = clock()
    const b = stub(B, c)
    b.neighbours = [A]
    await b.sync.linkUp?.(A)
    b.sent.length = 0
    let answered = 0
    // 50 rounds of 100 ms (one 5 s window), 6 queries each, while A drops in and out of the
    // neighbour set and its link goes down and up. The old tick forgot A's budget whenever A
    // was not a neighbour, and linkUp reset it: 300 of 300 were answered.
    for (let round = 0; round < 50; round++) {
      if (round % 3 === 0) b.neighbours = []
      else if (round % 3 === 1) await b.sync.linkDown?.(A)
      else {
        b.neighbours = [A]
        await b.sync.linkUp?.(A)
      }
      for (let i = 0; i < 6; i++) if (await ask(b, A)) answered++
      c.advance(99)
      await b.sync.tick(c.now())
    }
    expect(c.now() - T0).toBeLessThan(5_000)
    expect(answered).toBe(64)
    expect(b.sync.counters['drop.rateLimited']).toBe(300 - 64)
    // The window ends: a fresh budget.
    c.advance(5_000)
    await b.sync.tick(c.now())
    expect(await ask(b, A)).toBe(true)
  })

  it('keeps at most MAX_PEER_BUDGETS budgets however many made-up peers send, and frees them when their windows end', async () => {
    const c = clock()
    const b = stub(B, c)
    const n = 3 * MAX_PEER_BUDGETS
    for (let i = 0; i < n; i++) {
      await b.sync.handle(`made-up-${i}`, { t: 'q', k: ['x'] })
      expect(b.sync.size().budgets).toBeLessThanOrEqual(MAX_PEER_BUDGETS)
    }
    expect(b.sync.size().budgets).toBe(MAX_PEER_BUDGETS)
    expect(b.sync.counters['budget.evicted']).toBe(n - MAX_PEER_BUDGETS)
    await b.sync.tick(c.now())
    expect(b.sync.size().budgets).toBe(MAX_PEER_BUDGETS)
    c.advance(5_000)
    await b.sync.tick(c.now())
    expect(b.sync.size().budgets).toBe(0)
  })

  it('eviction does not reset a budget: an evicted peer comes back as spent, a neighbour keeps its own', async () => {
    const c = clock()
    const b = stub(B, c, { peerMsgBudget: 10 })
    b.neighbours = [C]
    // A (not a neighbour) spends its budget; the neighbour C spends 4 of its 10.
    for (let i = 0; i < 10; i++) expect(await ask(b, A)).toBe(true)
    expect(await ask(b, A)).toBe(false)
    for (let i = 0; i < 4; i++) expect(await ask(b, C)).toBe(true)
    // Made-up peers push A out of the map (each spends 1).
    for (let i = 0; i < MAX_PEER_BUDGETS; i++) await b.sync.handle(`made-up-${i}`, { t: 'q', k: ['x'] })
    expect(b.sync.counters['budget.evicted']).toBeGreaterThan(0)
    c.advance(1_000)
    await b.sync.tick(c.now())
    // A's budget was evicted, but A starts from the most spent evicted window: still limited.
    expect(await ask(b, A)).toBe(false)
    // C, a neighbour, was not evicted: exactly its 6 left.
    let cAnswered = 0
    for (let i = 0; i < 10; i++) if (await ask(b, C)) cAnswered++
    expect(cAnswered).toBe(6)
    // Once the window ends, A is served again.
    c.advance(4_000)
    await b.sync.tick(c.now())
    expect(await ask(b, A)).toBe(true)
  })
})

describe('sync: anti-entropy backs off while in sync', () => {
  /** Summaries (`s`) a and b send over `ms`, ticking every 100 ms and delivering everything. */
  async function summaries(a: Stub, b: Stub, ms: number, c: ReturnType<typeof clock>): Promise<number> {
    const before = (a.sync.counters['out.s'] ?? 0) + (b.sync.counters['out.s'] ?? 0)
    for (let t = 0; t < ms; t += 100) {
      c.advance(100)
      await a.sync.tick(c.now())
      await b.sync.tick(c.now())
      await pump([a, b])
    }
    return (a.sync.counters['out.s'] ?? 0) + (b.sync.counters['out.s'] ?? 0) - before
  }

  it('a quiet link slows to one summary per antiEntropyMaxMs; a write brings rounds at antiEntropyMs back', async () => {
    const c = clock()
    const a = stub(A, c)
    const b = stub(B, c)
    a.neighbours = [B]
    b.neighbours = [A]
    await a.sync.linkUp?.(B)
    await b.sync.linkUp?.(A)
    await pump([a, b])
    // Backing off: 5, 10, 20, 40, then 60 s (the cap) apart.
    await summaries(a, b, 300_000, c)
    const quiet = await summaries(a, b, 240_000, c)
    // At most one per end per ~57 s (the stub's random is fixed, so both ends stay in step here and
    // each sends its own; with real randomness one end's summary serves both). At 5 s: 48.
    expect(quiet).toBeGreaterThanOrEqual(4)
    expect(quiet).toBeLessThanOrEqual(10)
    // A write at a (its broadcast lost: b never hears it): a's next summary comes within antiEntropyMs.
    await a.sync.set('k', 1)
    a.broadcasts.length = 0
    await summaries(a, b, 5_100, c)
    expect(b.sync.get('k')).toBe(1)
    expect(a.sync.counters['ae.woken']).toBeGreaterThan(0)
  })
})

describe('sync: what a neighbour can make us send', () => {
  /** Entries and bytes of entries `b` sent to `to` since `from` (index in b.sent). */
  function sentTo(b: Stub, to: string, from = 0): { entries: number; bytes: number } {
    let entries = 0
    let bytes = 0
    for (const [t, m] of b.sent.slice(from))
      if (t === to && m.t === 'e')
        for (const [body, pk, sig] of m.e) {
          entries++
          bytes += body.length + pk.length + sig.length
        }
    return { entries, bytes }
  }

  it('a query naming one large entry 65,536 times, or the whole table again and again, gets at most one budget of entries a window (amplification)', async () => {
    const c = clock()
    const b = stub(B, c)
    b.neighbours = [A]
    const big = 'x'.repeat(60_000)
    for (let i = 0; i < 60; i++) await b.sync.set(`big${i}`, big)
    b.sent.length = 0
    // One q of ~130 KB, the key 'big0' 65,536 times: it used to send 65,536 copies of a 60 KB entry (~4 GB).
    await b.sync.handle(A, { t: 'q', k: new Array(65_536).fill('big0') })
    const once = sentTo(b, A)
    expect(once.entries).toBe(1)
    // Then 60 more tiny exchanges in the same window, each a summary and a version list naming
    // every bucket with no items (a newcomer's), each of which used to send the whole table (3.6 MB).
    for (let i = 0; i < 30; i++) {
      await b.sync.handle(A, { t: 's', r: new Uint8Array(8).fill(i + 1) })
      await b.sync.handle(A, { t: 'v', i: [...Array(64).keys()], v: [] })
    }
    const all = sentTo(b, A)
    const budget = 64 * 131_072 // peerMsgBudget × maxBatchBytes: what the peer itself would take in a window
    expect(all.bytes).toBeLessThanOrEqual(budget + 70_000)
    expect(all.entries).toBeLessThanOrEqual(4_096)
    expect(b.sync.counters['drop.sendBudget'] ?? 0).toBeGreaterThan(0)
    // The next window: a fresh budget, and the table goes across again.
    c.advance(5_000)
    const mark = b.sent.length
    await b.sync.handle(A, { t: 'q', k: ['big1', 'big2'] })
    expect(sentTo(b, A, mark).entries).toBe(2)
  })
})
