/**
 * Owned records (BEP 44 style), tried as an attacker would: another
 * author's overwrite or delete, a replayed older sequence, a record dated
 * beyond the skew, an author's byte quota; an author whose earlier record
 * carries a sequence above its clock; and reads and writes that meet one
 * withholding or lying owner (a node that ground its id next to a record's
 * location can withhold, not forge). Each refusal is counted.
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import type { Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import {
  buildRing,
  type ChordNet,
  recordPos,
  type StubChord,
  settle,
  stubChord,
  type Tamper,
  trueOwners,
} from './harness.ts'
import type { ChordMsg, ProviderWire, RecordWire } from './messages.ts'
import { signProvider, signRecord } from './records.ts'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const C = 'c'.repeat(40)
const bKeys = createFakeKeyring(B)
const cKeys = createFakeKeyring(C)

async function rejectionName(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'resolved'
  } catch (e) {
    return (e as Error).name
  }
}

/** Deliver a store from `from` to the stub node; returns its answer. */
async function store(
  s: StubChord,
  from: string,
  recs: RecordWire[],
  provs: ProviderWire[] = [],
): Promise<ChordMsg | undefined> {
  const r = 1000 + s.sent.length
  await s.chord.handle(from, { t: 'store', r, recs, provs })
  return s.sent.find(([to, m]) => to === from && m.t === 'stored' && m.r === r)?.[1]
}

const rec = (keys = bKeys, author = B, key = 'profile', value: Value = 'by B', seq = 1, time = 1_000_000) =>
  signRecord(keys, author, key, encodeValue(value), false, { seq, time })

async function ringOfOne(options = {}): Promise<StubChord> {
  const s = stubChord(A, options)
  await s.chord.join(null)
  return s
}

describe('what a storing node refuses', () => {
  it('another author cannot overwrite a record: a claimed author or a borrowed key is refused and counted; its own record of the key is another record', async () => {
    const s = await ringOfOne()
    expect(await store(s, B, [await rec()])).toEqual({ t: 'stored', r: 1000, ok: 1, err: null, q: null })
    // C signs with its own key under B's name, and with B's public key attached; then writes its own.
    const claimed = await rec(cKeys, B, 'profile', 'by C', 2)
    const borrowed: RecordWire = { ...claimed, pk: bKeys.publicKey }
    const own = await rec(cKeys, C, 'profile', 'by C', 2)
    const answer = await store(s, C, [claimed, borrowed, own])
    expect(answer).toMatchObject({ t: 'stored', ok: 1, err: 'author' })
    expect(s.chord.counters['drop.record.author']).toBe(1)
    expect(s.chord.counters['drop.record.signature']).toBe(1)
    expect(await s.chord.get('profile', B)).toBe('by B')
    expect(await s.chord.get('profile', C)).toBe('by C')
    expect(s.chord.storedKeys()).toBe(2)
  })

  it('a replayed older sequence is refused as stale, and the answer names the sequence held', async () => {
    const s = await ringOfOne()
    const v1 = await rec(bKeys, B, 'profile', 'first', 1)
    const v2 = await rec(bKeys, B, 'profile', 'second', 2)
    await store(s, B, [v1])
    await store(s, B, [v2])
    expect(await store(s, C, [v1])).toMatchObject({ ok: 0, err: 'stale', q: 2 })
    expect(s.chord.counters['store.stale']).toBe(1)
    expect(await s.chord.get('profile', B)).toBe('second')
    // The same record again is no news, and no refusal.
    expect(await store(s, C, [v2])).toMatchObject({ ok: 1, err: null, q: null })
  })

  it('a record or provider record dated beyond the skew is refused and counted; up to the skew is accepted', async () => {
    const s = await ringOfOne({ maxSkewMs: 5000 })
    const now = s.now
    const ahead = await rec(bKeys, B, 'k', 'ahead', 1, now + 5001)
    const edge = await rec(bKeys, B, 'k2', 'edge', 1, now + 5000)
    expect(await store(s, B, [ahead, edge])).toMatchObject({ ok: 1, err: 'future' })
    expect(s.chord.counters['drop.record.future']).toBe(1)
    expect(s.chord.holds('k', B)).toBe(false)
    expect(await s.chord.get('k2', B)).toBe('edge')
    const provAhead = await signProvider(bKeys, B, 'svc', now + 5001, 60_000)
    const provEdge = await signProvider(cKeys, C, 'svc', now + 5000, 60_000)
    expect(await store(s, B, [], [provAhead, provEdge])).toMatchObject({ ok: 1, err: 'future' })
    expect(s.chord.counters['drop.provider.future']).toBe(1)
    expect(await s.chord.findProviders('svc')).toEqual([C])
  })

  it('only the author deletes: a tombstone by anyone else is refused; a delete removes only our own record', async () => {
    const s = await ringOfOne()
    await store(s, B, [await rec()])
    const fakeTomb = await signRecord(cKeys, B, 'profile', new Uint8Array(0), true, {
      seq: 9,
      time: 1_000_000,
    })
    await store(s, C, [fakeTomb, { ...fakeTomb, pk: bKeys.publicKey }])
    expect(s.chord.counters['drop.record.author']).toBe(1)
    expect(s.chord.counters['drop.record.signature']).toBe(1)
    expect(await s.chord.get('profile', B)).toBe('by B')
    // We delete "profile": our own (never written) gets a tombstone; B's stays.
    await s.chord.delete('profile')
    expect(await s.chord.get('profile', B)).toBe('by B')
    expect((await s.chord.getRecord('profile'))?.deleted).toBe(true)
    // B's own tombstone, with a higher sequence, deletes B's.
    const tomb = await signRecord(bKeys, B, 'profile', new Uint8Array(0), true, { seq: 2, time: 1_000_000 })
    await store(s, B, [tomb])
    expect(await s.chord.get('profile', B)).toBeUndefined()
  })

  it('quotas count bytes: an author’s records beyond perAuthorBytes are refused, others still fit; our own put rejects', async () => {
    const s = await ringOfOne({ perAuthorBytes: 25_000 })
    const big = (keys: typeof bKeys, author: string, key: string) =>
      rec(keys, author, key, new Uint8Array(10_000))
    const answer = await store(s, B, [
      await big(bKeys, B, 'a'),
      await big(bKeys, B, 'b'),
      await big(bKeys, B, 'c'),
    ])
    expect(answer).toMatchObject({ ok: 2, err: 'quota' })
    expect(s.chord.counters['store.quota']).toBe(1)
    expect(await store(s, C, [await big(cKeys, C, 'a')])).toMatchObject({ ok: 1, err: null })
    await s.chord.put('mine', new Uint8Array(10_000))
    await s.chord.put('mine2', new Uint8Array(10_000))
    expect(await rejectionName(s.chord.put('mine3', new Uint8Array(10_000)))).toBe('RemoteError')
  })
})

/** A key whose three owners (for `author`) do not include `author` itself. */
function keyAwayFrom(net: ChordNet, author: string, prefix: string): string {
  for (let i = 0; ; i++) {
    const key = `${prefix}/${i}`
    if (!trueOwners(net, recordPos(author, key), 3).includes(author)) return key
  }
}

function heldBy(net: ChordNet, id: string, key: string, author: string): RecordWire | undefined {
  const state = net.node(id).exportState() as unknown as { recs: RecordWire[] }
  return state.recs.find((r) => r.k === key && r.a === author)
}

const sum = (net: ChordNet, counter: string) =>
  net.live().reduce((n, id) => n + (net.node(id).counters[counter] ?? 0), 0)

describe('writes by the author', () => {
  it('a record of ours whose sequence is above our clock (written before a reload, clock ahead) does not swallow the next put', async () => {
    const seed = testSeed(31)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 16)
      const [x, y] = [net.live()[2] as string, net.live()[11] as string]
      const key = keyAwayFrom(net, x, 'pinned')
      const owners = trueOwners(net, recordPos(x, key), 3)
      const now = Math.floor(net.sim.now)
      const ahead = await signRecord(createFakeKeyring(x), x, key, encodeValue('before the reload'), false, {
        seq: now + 10 * 86_400_000,
        time: now,
      })
      for (const o of owners)
        expect(await net.node(o).importState({ v: 2, recs: [ahead], provs: [], provided: [] })).toBe(1)
      await settle(net.sim, net.node(x).put(key, 'after the reload'))
      expect(net.node(x).counters['put.stale']).toBeGreaterThanOrEqual(1)
      expect(await settle(net.sim, net.node(y).get(key, x))).toBe('after the reload')
      for (const o of owners) expect(net.node(o).heldSeq(key, x)).toBeGreaterThan(ahead.q)
    })
  })

  it('an owner that claims a higher sequence it cannot show changes nothing: the put lands, sequences stay small', async () => {
    const seed = testSeed(32)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 16)
      const [x, y] = [net.live()[4] as string, net.live()[13] as string]
      const key = keyAwayFrom(net, x, 'claim')
      const liar = trueOwners(net, recordPos(x, key), 3)[0] as string
      const huge = 2 ** 52
      net.tamper(liar, (to, m) => (to === x && m.t === 'stored' ? { ...m, ok: 0, err: 'stale', q: huge } : m))
      await settle(net.sim, net.node(x).put(key, 'one'))
      await settle(net.sim, net.node(x).put(key, 'two'))
      expect(net.node(x).counters['put.staleUnproven']).toBeGreaterThanOrEqual(2)
      expect(await settle(net.sim, net.node(y).get(key, x))).toBe('two')
      for (const o of trueOwners(net, recordPos(x, key), 3))
        expect(net.node(o).heldSeq(key, x)).toBeLessThan(huge)
    })
  })
})

describe('reads that meet a hostile owner', () => {
  it('one owner withholding, answering an older version, or a forged newer one: the read returns the newest verified record and repairs', async () => {
    const seed = testSeed(33)
    await withSeed(seed, async () => {
      const net = await buildRing(seed, 16)
      const x = net.live()[6] as string
      const key = keyAwayFrom(net, x, 'doc')
      const owners = trueOwners(net, recordPos(x, key), 3)
      const reader = net.live().find((id) => id !== x && !owners.includes(id)) as string
      await settle(net.sim, net.node(x).put(key, 'v1'))
      await net.sim.runFor(500)
      const old = heldBy(net, owners[0] as string, key, x) as RecordWire
      await settle(net.sim, net.node(x).put(key, 'v2'))
      await net.sim.runFor(500)
      const newest = heldBy(net, owners[0] as string, key, x) as RecordWire
      expect(newest.q).toBeGreaterThan(old.q)
      const forged: RecordWire = { ...newest, q: newest.q + 1000, vb: encodeValue('forged') }
      const lies: [string, Tamper][] = [
        ['withholds', (_to, m) => (m.t === 'got' ? { ...m, rec: null } : m)],
        ['answers the older version', (_to, m) => (m.t === 'got' ? { ...m, rec: old } : m)],
        ['answers a forged newer one', (_to, m) => (m.t === 'got' ? { ...m, rec: forged } : m)],
        ['stays silent', (_to, m) => (m.t === 'got' ? null : m)],
      ]
      for (const hostile of [owners[0], owners[2]] as string[]) {
        for (const [what, lie] of lies) {
          net.tamper(hostile, lie)
          const repairs = net.node(reader).counters['read.repair'] ?? 0
          const bad = net.node(reader).counters['drop.got.bad'] ?? 0
          expect(await settle(net.sim, net.node(reader).get(key, x)), `${hostile} ${what}`).toBe('v2')
          if (what !== 'stays silent')
            expect(net.node(reader).counters['read.repair'] ?? 0, what).toBeGreaterThan(repairs)
          if (what === 'answers a forged newer one')
            expect(net.node(reader).counters['drop.got.bad'] ?? 0).toBe(bad + 1)
          net.tamper(hostile, null)
        }
      }
      // Nothing the hostile owners said reached the honest ones' stores.
      for (const o of owners) expect(heldBy(net, o, key, x)?.q).toBe(newest.q)
      expect(sum(net, 'drop.record.signature')).toBe(0)
    })
  })
})
