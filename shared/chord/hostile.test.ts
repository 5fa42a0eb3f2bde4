/**
 * Chord against a hostile neighbour: floods of small queries that ask for
 * big answers (every reply a peer's requests make us send is charged to
 * that peer's window budget), and lies on a lookup's path (a node that
 * names itself, or a node of its choosing, as the owner of a position it
 * does not own).
 */
import { describe, expect, it } from 'vitest'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { estimateSize } from '../sim/size.ts'
import { encodeValue } from '../wire/value.ts'
import { stubChord } from './harness.ts'
import type { ChordMsg } from './messages.ts'
import { signProvider, signRecord } from './records.ts'
import { createReplyBudget, MAX_REPLY_BUDGETS } from './reply-budget.ts'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
/** The flooder. */
const C = 'c'.repeat(40)
/** An honest reader. */
const D = 'd'.repeat(40)

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
