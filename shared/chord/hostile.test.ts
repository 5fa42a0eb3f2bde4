/**
 * Chord against a hostile neighbour: floods of small queries that ask for
 * big answers (every reply a peer's requests make us send is charged to
 * that peer's window budget), and lies on a lookup's path (a node that
 * names itself, or a node of its choosing, as the owner of a position it
 * does not own, or names nodes that never answer).
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { estimateSize } from '../sim/size.ts'
import { encodeValue } from '../wire/value.ts'
import { createBlame } from './blame.ts'
import { buildRing, type ChordNet, SIM_CHORD_OPTIONS, settleAll, stubChord } from './harness.ts'
import { launchLookupsOf } from './measure.ts'
import type { ChordMsg } from './messages.ts'
import { signProvider, signRecord } from './records.ts'
import { createReplyBudget, MAX_REPLY_BUDGETS } from './reply-budget.ts'
import { between } from './ring.ts'

// Ids for the stub tests, in ring order (each test says which is which).
const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const C = 'c'.repeat(40)
const D = 'd'.repeat(40)
const E = 'e'.repeat(40)

/** Bytes of everything `s` sent to `to`. */
const sentTo = (sent: [string, ChordMsg][], to: string) =>
  sent.reduce((n, [x, m]) => (x === to ? n + estimateSize(m) : n), 0)

/** The value bytes of the record in `sent`, a `got` to `to` answering `r` (-1 when it is something else). */
const gotRecord = (sent: [string, ChordMsg] | undefined, to: string, r: number) => {
  const [x, m] = sent ?? []
  return x === to && m?.t === 'got' && m.r === r && m.rec ? m.rec.vb.length : -1
}

describe('replies are charged to the asking peer’s window budget', () => {
  it('a flood of gets for a big record, getProvs for a full key and table requests sends at most the budget; past it a small busy; an honest reader is still answered; the next window serves again', async () => {
    const s = stubChord(A)
    await s.chord.join(null)
    const bKeys = createFakeKeyring(B)
    const big = await signRecord(bKeys, B, 'big', encodeValue('x'.repeat(200_000)), false, {
      seq: 1,
      time: s.now,
    })
    const provs = await Promise.all(
      Array.from({ length: 64 }, (_, i) => {
        const id = i.toString(16).padStart(40, '0')
        return signProvider(createFakeKeyring(id), id, `svc/${'k'.repeat(900)}`, s.now, 600_000)
      }),
    )
    await s.chord.handle(B, { t: 'store', r: 1, recs: [big], provs })
    expect(s.chord.storedKeys()).toBe(1)
    expect(s.chord.storedProviders()).toBe(64)

    // C floods; D is an honest reader.
    const FLOOD = 500
    for (let r = 1; r <= FLOOD; r++) {
      await s.chord.handle(C, { t: 'get', r, k: 'big', a: B })
      await s.chord.handle(C, { t: 'getProv', r: FLOOD + r, k: `svc/${'k'.repeat(900)}` })
      await s.chord.handle(C, { t: 'table', r: 2 * FLOOD + r })
    }
    const budget = 4 * 1024 * 1024
    const bytes = sentTo(s.sent, C)
    // Without a budget: 500 × (200 KB + 60 KB) ≈ 130 MB.
    expect(bytes).toBeLessThanOrEqual(budget + 3 * FLOOD * 40)
    expect(s.chord.counters['drop.replyBudget']).toBeGreaterThan(FLOOD)
    const busy = s.sent.filter(([to, m]) => to === C && m.t === 'err')
    expect(busy.length).toBe(s.chord.counters['drop.replyBudget'])
    expect(busy.every(([, m]) => m.t === 'err' && m.code === 'busy')).toBe(true)
    // Every request got one answer: a requester times out on none of them.
    expect(s.sent.filter(([to]) => to === C).length).toBe(3 * FLOOD)

    // Another peer's budget is its own.
    await s.chord.handle(D, { t: 'get', r: 7, k: 'big', a: B })
    expect(gotRecord(s.sent.at(-1), D, 7)).toBe(big.vb.length)

    // A new window: the flooder is served again.
    await s.advance(10_000)
    await s.chord.handle(C, { t: 'get', r: 9999, k: 'big', a: B })
    expect(gotRecord(s.sent.at(-1), C, 9999)).toBe(big.vb.length)
  })
})

describe('reply budgets', () => {
  it('outlive nothing but their window; eviction (past MAX_REPLY_BUDGETS peers) never refills one', () => {
    const counters = {}
    const b = createReplyBudget({ replyBudgetBytes: 1000, replyWindowMs: 10_000 }, counters)
    expect(b.take(A, 900, 0)).toBe(true)
    expect(b.take(A, 200, 1)).toBe(false) // nothing charged: a smaller reply still fits
    expect(b.take(A, 100, 2)).toBe(true)
    // A crowd of peers pushes A's budget out within its window: A comes back no better off.
    for (let i = 0; i < MAX_REPLY_BUDGETS; i++) b.take(`p${i}`, 1, 3)
    expect(counters).toHaveProperty('budget.evicted')
    expect(b.size).toBeLessThanOrEqual(MAX_REPLY_BUDGETS)
    expect(b.take(A, 1, 4)).toBe(false)
    // After the window, a fresh one.
    expect(b.take(A, 1000, 10_004)).toBe(true)
  })
})

/** Lookups of each target from its asker, each checked against the truth (measure.ts); `ms`: how long each took (virtual). */
async function lookups(net: ChordNet, pairs: [from: string, target: string][]) {
  const { jobs, stats } = launchLookupsOf(net, pairs.length, (i) => pairs[i] as [string, string])
  // Unsettled after 120 s: failed too.
  const res = await settleAll(net.sim, jobs, 120_000)
  stats.failed += res.filter((r) => r.status === 'rejected').length
  return stats
}

/**
 * Where `q` routes through `h` first: `h` is one of q's fingers past its
 * successor list, and positions in (h, k), k the next node q knows, have
 * h as the closest preceding node q knows. Null when q does not know h so.
 */
function arcVia(net: ChordNet, q: string, h: string): [string, string] | null {
  const c = net.node(q)
  if (!c.fingers().includes(h) || c.successors().includes(h)) return null
  let k = q
  for (const x of c.neededLinks()) if (x !== h && between(x, h, k)) k = x
  return [h, k]
}

/** The member that most others route through first (arcVia), for some positions. */
function mostRoutedVia(net: ChordNet): string {
  const ids = net.live()
  const count = (h: string) => ids.filter((q) => q !== h && arcVia(net, q, h)).length
  return ids.reduce((best, h) => (count(h) > count(best) ? h : best))
}

/** `n` random positions in (a, b). */
/** Lookups ([asker, position]) that route through `h`: `n` positions in each asker's arc via h. */
function lookupsVia(net: ChordNet, ids: string[], h: string, n: number): [string, string][] {
  const jobs: [string, string][] = []
  for (const q of ids) {
    const arc = q === h ? null : arcVia(net, q, h)
    if (arc) for (const t of positionsIn(net, arc, n)) jobs.push([q, t])
  }
  return jobs
}

function positionsIn(net: ChordNet, [a, b]: [string, string], n: number): string[] {
  const out: string[] = []
  while (out.length < n) {
    const x = net.sim.randomId()
    if (between(x, a, b)) out.push(x)
  }
  return out
}

const sum = (net: ChordNet, ids: string[], name: string) =>
  ids.reduce((n, x) => n + (net.node(x).counters[name] ?? 0), 0)

describe('a route names the origin to answer', () => {
  it('routes naming 100 origins we have no link to make us open no link: each answer goes back the way its route came', async () => {
    const s = stubChord(A, { iterative: false })
    await s.chord.join(null) // alone: we answer every position
    const origin = (i: number) => (0x1000 + i).toString(16).padStart(40, '0')
    for (let i = 0; i < 100; i++) await s.chord.handle(B, { t: 'route', r: 1, k: C, o: origin(i), h: 1 })
    const routed = s.sent.filter(([, m]) => m.t === 'routed')
    // Before: 100 answers to 100 ids, each a link to open at B's word.
    expect(routed.length).toBe(100)
    expect(new Set(routed.map(([to]) => to))).toEqual(new Set([B]))
    expect(s.chord.counters['route.back']).toBe(100)
    // A route from its origin is answered over the link it came by, as before.
    await s.chord.handle(D, { t: 'route', r: 2, k: C, o: D, h: 1 })
    expect(s.sent.at(-1)).toEqual([D, { t: 'routed', r: 2, p: A, s: [A], h: 1 }])
  })

  it('a node that passed a route on passes its answer back to the node it came from, once, while the origin waits', async () => {
    const s = stubChord(B, { iterative: false, requestTimeoutMs: 1000 })
    await s.chord.join(null)
    await s.chord.handle(D, { t: 'newSucc' }) // D: our successor, and no predecessor: past D we do not know
    await s.chord.handle(A, { t: 'route', r: 77, k: E, o: C, h: 1 }) // from A, for origin C
    expect(s.sent.at(-1)).toEqual([D, { t: 'route', r: 77, k: E, o: C, h: 2 }])
    const answer: ChordMsg = { t: 'routed', r: 77, p: B, s: [D], h: 2 }
    await s.chord.handle(D, answer)
    expect(s.sent.at(-1)).toEqual([A, answer])
    expect(s.chord.counters['route.relayed']).toBe(1)
    // Once: a second copy is nobody's.
    const sent = s.sent.length
    await s.chord.handle(D, answer)
    expect(s.sent.length).toBe(sent)
    expect(s.chord.counters['drop.unexpectedReply']).toBe(1)
    // After the origin has given up (4 request timeouts), nothing is passed back.
    await s.chord.handle(A, { t: 'route', r: 78, k: E, o: C, h: 1 })
    await s.advance(4001)
    await s.chord.handle(D, { ...answer, r: 78 })
    expect(s.chord.counters['route.relayed']).toBe(1)
  })
})

describe('a neighbour that leaves', () => {
  /** A: successors B, C, D; predecessor E. */
  async function ring() {
    const s = stubChord(A)
    await s.chord.join(null)
    for (const x of [D, C, B]) await s.chord.handle(x, { t: 'newSucc' })
    await s.chord.handle(E, { t: 'notify' })
    expect(s.chord.successors()).toEqual([B, C, D])
    expect(s.chord.predecessor()).toBe(E)
    return s
  }

  it('is taken at its word when its word is what an honest leave says: p its predecessor, s its successors', async () => {
    const s = await ring()
    await s.chord.handle(B, { t: 'leave', p: A, s: [C, D, E] })
    expect(s.chord.successors()).toEqual([C, D, E])
    await s.chord.handle(E, { t: 'leave', p: D, s: [A, C] })
    expect(s.chord.predecessor()).toBe(D)
    expect(s.chord.counters['ring.leave']).toBe(2)
    expect(s.chord.counters['drop.leave']).toBeUndefined()
  })

  it('is not, when its successors are out of ring order, it does not name us where it should, or the predecessor it names skips live nodes we know', async () => {
    const s = await ring()
    // Our successor B, with a list out of ring order (before: our successor became D).
    await s.chord.handle(B, { t: 'leave', p: A, s: [D, C] })
    // Our successor B, naming another node as its predecessor (before: our list became [C, D]).
    await s.chord.handle(B, { t: 'leave', p: E, s: [C, D] })
    expect(s.chord.successors()).toEqual([B, C, D])
    // Our predecessor E, not naming us as its successor (before: our predecessor became D).
    await s.chord.handle(E, { t: 'leave', p: D, s: [B, C] })
    // Our predecessor E, naming a predecessor with C and D, live, between it and E (before: B, and
    // we would answer for (B, A] meanwhile).
    await s.chord.handle(E, { t: 'leave', p: B, s: [A, B] })
    expect(s.chord.predecessor()).toBe(E)
    expect(s.chord.counters['drop.leave']).toBe(4)
    expect(s.chord.counters['ring.leave']).toBeUndefined()
  })
})

describe('a liar on the lookup path', () => {
  it('a found that names a node past us as the successor is refused even when nobody else can be asked: the lookup fails rather than return it', async () => {
    const s = stubChord(A)
    await s.chord.join(null)
    await s.chord.handle(B, { t: 'notify' }) // B: our successor
    await s.chord.handle(E, { t: 'notify' }) // E: our predecessor
    const target = C // in (B, E): we do not know its successor, and B is the one node we know before it
    const lookup = s.chord.lookup(target).then(
      (r) => r.node,
      (e: Error) => e.name,
    )
    // B answers every find with itself, and every getPred with a range of the whole ring; E knows nothing.
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 0))
      for (const [to, m] of s.sent.splice(0))
        if (to === B && m.t === 'find') await s.chord.handle(B, { t: 'found', r: m.r, p: B, s: [B] })
        else if (to === B && m.t === 'getPred') await s.chord.handle(B, { t: 'pred', r: m.r, p: B, s: [] })
        else if (to === E && m.t === 'find') await s.chord.handle(E, { t: 'closer', r: m.r, n: [] })
    }
    expect(await lookup).toBe('NoRouteError')
    expect(s.chord.counters['lookup.badFound']).toBe(2)
  })

  it('a neighbour cannot answer our recursive lookup by guessing its request id from the ones it sees', async () => {
    const s = stubChord(A, { iterative: false })
    await s.chord.join(null)
    await s.chord.handle(B, { t: 'notify' }) // B: our successor
    await s.chord.handle(E, { t: 'notify' }) // E: our predecessor
    // D sees the request ids of what we ask it (a ping here), and guesses the next ones.
    await s.chord.handle(D, { t: 'notify' })
    s.chord.peerDown(E)
    await s.advance(1)
    const seen = s.sent.find(([to, m]) => to === E && m.t === 'ping')?.[1]
    if (seen?.t !== 'ping') throw new Error('no ping went out')
    const lookup = s.chord.lookup(C).then((r) => r.node)
    await new Promise((r) => setTimeout(r, 0))
    expect(s.sent.some(([to, m]) => to === B && m.t === 'route')).toBe(true)
    for (let r = seen.r + 1; r <= seen.r + 20; r++)
      await s.chord.handle(D, { t: 'routed', r, p: D, s: [D], h: 1 })
    expect(s.chord.counters['drop.unexpectedReply']).toBe(20)
    // B answers for real (here: C's successor is D), and D confirms.
    const route = s.sent.find(([to, m]) => to === B && m.t === 'route')?.[1]
    if (route?.t !== 'route') throw new Error('no route went out')
    await s.chord.handle(B, { t: 'routed', r: route.r, p: B, s: [D], h: 1 })
    await new Promise((r) => setTimeout(r, 0))
    const ask = s.sent.find(([to, m]) => to === D && m.t === 'getPred')?.[1]
    if (ask?.t !== 'getPred') throw new Error('no getPred went out')
    await s.chord.handle(D, { t: 'pred', r: ask.r, p: B, s: [] })
    expect(await lookup).toBe(D)
  })

  it('a node that answers every find with "I am the successor" is not believed: no lookup returns it for a position it does not own', async () => {
    const seed = testSeed(71)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 128)
      const ids = net.live()
      const h = mostRoutedVia(net)
      net.tamper(h, (_to, m) => {
        if (m.t === 'found' || m.t === 'closer') return { t: 'found', r: m.r, p: h, s: [h] }
        // Asked to confirm, it says its range is the whole ring.
        if (m.t === 'pred') return { ...m, p: h }
        return m
      })
      // Every node that routes some positions through h first looks 20 of them up.
      const jobs = lookupsVia(net, ids, h, 20)
      expect(jobs.length).toBeGreaterThanOrEqual(80)
      const res = await lookups(net, jobs)
      expect(res.wrong).toBe(0)
      expect(res.failed).toBe(0)
      expect(sum(net, ids, 'lookup.badFound')).toBeGreaterThan(0)
    })
  })

  it('a node that names a colluding node past the true successor is outvoted by a second candidate: no lookup returns the sybil for a position it does not own', async () => {
    const seed = testSeed(72)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 128)
      const ids = net.live()
      const h = mostRoutedVia(net)
      // An asker that routes (h, k) through h, and a sybil past k (so past every true successor in
      // the arc) but before the asker: a claim naming it passes every check of the answer's shape.
      let pick: { q: string; arc: [string, string]; sybil: string } | null = null
      for (const q of ids) {
        const arc = q === h ? null : arcVia(net, q, h)
        const sybil = arc && ids[(ids.indexOf(arc[1]) + 1) % ids.length]
        if (arc && sybil && sybil !== q && between(sybil, arc[1], q)) pick = { q, arc, sybil }
      }
      if (!pick) throw new Error('no asker routes through h')
      const { q, arc, sybil } = pick
      // h says every position's successor is the sybil; the sybil confirms any claim (no predecessor).
      net.tamper(h, (_to, m) =>
        m.t === 'found' || m.t === 'closer' ? { t: 'found', r: m.r, p: h, s: [sybil] } : m,
      )
      net.tamper(sybil, (_to, m) => (m.t === 'pred' ? { ...m, p: null } : m))
      const res = await lookups(
        net,
        positionsIn(net, arc, 50).map((t) => [q, t]),
      )
      expect(res.wrong).toBe(0)
      expect(res.failed).toBe(0)
      expect(net.node(q).counters['lookup.disagree']).toBeGreaterThanOrEqual(50)
    })
  })
})

/** The id `i` places before `x` on the ring (no node holds it: a request to it is never answered). */
const before = (x: string, i: number) =>
  ((BigInt(`0x${x}`) - BigInt(i) + (1n << 160n)) % (1n << 160n)).toString(16).padStart(40, '0')

describe('a liar naming nodes that never answer', () => {
  it('costs a lookup a few timeouts, not one or two for every silent node it names', async () => {
    const seed = testSeed(73)
    await withSeed(seed, async () => {
      const timeout = SIM_CHORD_OPTIONS.requestTimeoutMs as number
      const net = await buildRing(seed, 128)
      const ids = net.live()
      const h = mostRoutedVia(net)
      // h names 24 silent ids in front of every answer: before the successor in a found (where
      // the ids pass every check of its shape), nearest the position in a closer.
      const asked = new Map<string, string>()
      const hNode = net.node(h)
      const handle = hNode.handle.bind(hNode)
      hNode.handle = (from, m) => {
        if (m.t === 'find') asked.set(`${from}:${m.r}`, m.k)
        return handle(from, m)
      }
      const silent = (x: string) => Array.from({ length: 24 }, (_, i) => before(x, 24 - i))
      net.tamper(h, (to, m) => {
        if (m.t === 'found') return { ...m, s: [...silent(m.s[0] as string), ...m.s] }
        const k = m.t === 'closer' ? asked.get(`${to}:${m.r}`) : undefined
        return m.t === 'closer' && k ? { ...m, n: [...silent(k).reverse(), ...m.n] } : m
      })
      const jobs = lookupsVia(net, ids, h, 10)
      expect(jobs.length).toBeGreaterThanOrEqual(40)
      const res = await lookups(net, jobs)
      expect(res.wrong).toBe(0)
      expect(res.failed).toBe(0)
      // Before: up to 89 timeouts (24 silent nodes asked twice each in resolve, the lookup redone).
      expect(Math.max(...res.ms)).toBeLessThanOrEqual(6 * timeout)
      expect(sum(net, ids, 'lookup.distrusted')).toBeGreaterThan(0)
    })
  })
})

describe('blame', () => {
  it('distrusts an answerer after SILENT_PER_ANSWERER silent nodes it alone named; corroborated ones, and ours, charge nobody', () => {
    const counters = {}
    const b = createBlame(A, counters)
    b.name(A, [B]) // our own table
    b.name(C, [B, D, E, 'f'.repeat(40)])
    b.name(D, [E])
    b.silent(B) // ours too: nobody charged
    b.silent(E) // named by C and D: corroborated
    expect(b.any()).toBe(false)
    b.silent(D)
    b.silent(D) // once per node
    expect(b.distrusted(C)).toBe(false)
    b.silent('f'.repeat(40))
    expect(b.distrusted(C)).toBe(true)
    expect(counters).toEqual({ 'lookup.distrusted': 1 })
    // What C alone named is passed over; what someone else named too is not.
    b.name(C, ['9'.repeat(40)])
    expect(b.discredited('9'.repeat(40))).toBe(true)
    expect(b.discredited(B)).toBe(false)
    expect(b.discredited(E)).toBe(false)
    expect(b.discredited('0'.repeat(40))).toBe(false) // never named
  })
})
