import { describe, expect, it } from 'vitest'
import {
  A,
  B,
  C,
  clock,
  craft,
  D,
  deliver,
  link,
  pstub,
  run,
  seen,
  T0,
  unlink,
} from '../../test/presence-stub.ts'
import { concatBytes, utf8 } from '../bytes.ts'
import { generateIdentity } from '../identity/keys.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import { parseRecord } from './messages.ts'
import { announceInterval, resolvePresenceOptions } from './options.ts'
import { encodeBody, parseBody } from './record.ts'

const bodyOf = (r: unknown) => {
  const rec = parseRecord(r)
  if (!rec) throw new Error('not a record')
  const b = parseBody(rec[0])
  if (!b) throw new Error('not a body')
  return b
}

describe('presence: our own state', () => {
  it('a node is present to itself from the start, with its initial state; set changes it, and refuses what cannot travel', async () => {
    const c = clock()
    const a = pstub(A, c, { state: { name: 'ann' }, maxStateBytes: 64 })
    expect(a.presence.get()).toEqual(new Map([[A, { state: { name: 'ann' }, since: T0 }]]))
    await a.presence.set({ name: 'ann', cursor: [1, 2] })
    expect(a.presence.get().get(A)?.state).toEqual({ name: 'ann', cursor: [1, 2] })
    expect(a.events).toEqual([{ id: A, kind: 'update', state: { name: 'ann', cursor: [1, 2] } }])
    await expect(a.presence.set('x'.repeat(100))).rejects.toMatchObject({
      name: 'ValueTooLargeError',
      limit: 64,
    })
    await expect(a.presence.set((() => 1) as never)).rejects.toBeInstanceOf(TypeError)
    await expect(a.presence.set({ n: Number.NaN })).rejects.toBeInstanceOf(TypeError)
    expect(a.presence.get().get(A)?.state).toEqual({ name: 'ann', cursor: [1, 2] })
    // get() hands out copies: changing one changes nothing inside.
    const copy = a.presence.get().get(A)?.state as { cursor: number[] }
    copy.cursor.push(3)
    expect(a.presence.get().get(A)?.state).toEqual({ name: 'ann', cursor: [1, 2] })
    expect(() => pstub(B, c, { state: 'y'.repeat(2_000) })).toThrow(/exceeds the limit of 1024 bytes/)
  })

  it('nothing is announced without a link; the first link announces at once', async () => {
    const c = clock()
    const a = pstub(A, c)
    const b = pstub(B, c)
    await run(c, 30_000, [a, b])
    expect(a.announced).toEqual([])
    link(a, b)
    await a.presence.settled()
    expect(a.announced).toHaveLength(1)
    expect(bodyOf(a.announced[0])).toMatchObject({ session: T0, seq: 1, interval: 10_000 })
  })
})

describe('presence: join, update, leave', () => {
  it('a node that hears a record sees the author join, with its state and since', async () => {
    const c = clock()
    const a = pstub(A, c, { state: 'hello' })
    const b = pstub(B, c)
    c.advance(500)
    link(a, b)
    await deliver(a, b)
    expect(b.events).toEqual([{ id: A, kind: 'join', state: 'hello' }])
    expect(b.presence.get().get(A)).toEqual({ state: 'hello', since: T0 })
    expect(seen(b)).toEqual([A, B])
    expect(b.presence.counters).toMatchObject({ joined: 1, recordsIn: 1 })
  })

  it('an announcement with the same state is no event; a changed state is one update', async () => {
    const c = clock()
    const a = pstub(A, c, { state: 1 })
    const b = pstub(B, c)
    link(a, b)
    await deliver(a, b)
    await run(c, 10_000, [a, b])
    await deliver(a, b)
    expect(a.announced).toHaveLength(2)
    expect(b.events.map((e) => e.kind)).toEqual(['join'])
    await a.presence.set(2)
    await deliver(a, b)
    expect(b.events.slice(1)).toEqual([{ id: A, kind: 'update', state: 2 }])
    expect(b.presence.counters).toMatchObject({ refreshed: 2, updated: 1 })
  })

  it('set calls within updateGapMs are coalesced: the last state wins, and every set resolves once it is announced', async () => {
    const c = clock()
    const a = pstub(A, c, { updateGapMs: 250 })
    const b = pstub(B, c)
    link(a, b)
    await a.presence.settled()
    const done: number[] = []
    const sets = [1, 2, 3, 4].map((v) => a.presence.set(v).then(() => void done.push(v)))
    await a.presence.settled()
    expect(done).toEqual([]) // the join announcement went out just now: the gap holds them
    await run(c, 300, [a, b])
    await Promise.all(sets)
    expect(done.sort()).toEqual([1, 2, 3, 4])
    expect(a.announced).toHaveLength(2)
    expect(bodyOf(a.announced[1]).state).toEqual(Uint8Array.from([4]))
  })

  it('ten thousand set calls between two announcements cost one announcement and one promise', async () => {
    const c = clock()
    const a = pstub(A, c)
    const b = pstub(B, c)
    link(a, b)
    await a.presence.settled()
    const promises = new Set<Promise<void>>()
    for (let i = 0; i < 10_000; i++) promises.add(a.presence.set(i))
    expect(promises.size).toBe(1)
    await run(c, 300, [a])
    await Promise.all(promises)
    expect(a.announced).toHaveLength(2)
    expect(a.events).toHaveLength(10_000) // our own updates, each
  })

  it('an announcement whose signing fails is made again after updateGapMs, and its set calls wait for that one', async () => {
    const c = clock()
    const keys = createFakeKeyring(A)
    let failures = 1
    const flaky = {
      ...keys,
      sign: async (data: Uint8Array) => {
        if (failures-- > 0) throw new Error('key gone')
        return keys.sign(data)
      },
    }
    const a = pstub(A, c, { updateGapMs: 250 }, flaky)
    const b = pstub(B, c)
    link(a, b) // the join announcement fails to sign
    await a.presence.settled()
    expect(a.announced).toEqual([])
    expect(a.presence.counters.signFailed).toBe(1)
    let done = false
    const set = a.presence.set('x').then(() => {
      done = true
    })
    await run(c, 200, [a])
    expect(done).toBe(false)
    await run(c, 100, [a])
    await set
    expect(a.announced).toHaveLength(1)
    await deliver(a, b)
    expect(b.presence.get().get(A)?.state).toBe('x')
    // Without a set, too: a failed periodic announcement is made again after updateGapMs, not an interval later.
    failures = 1
    await run(c, 10_000, [a])
    expect(a.presence.counters.signFailed).toBe(2)
    expect(a.announced).toHaveLength(2)
  })

  it('a leave removes the node where it is heard; an older record that comes late does not bring it back', async () => {
    const c = clock()
    const a = pstub(A, c)
    const b = pstub(B, c)
    link(a, b)
    await a.presence.settled()
    const first = a.broadcasts.splice(0)
    await run(c, 10_000, [a, b])
    await deliver(a, b)
    await a.presence.leave()
    expect(a.presence.get().size).toBe(0)
    expect(bodyOf(a.announced.at(-1)).state).toBeUndefined()
    await deliver(a, b)
    expect(seen(b)).toEqual([B])
    expect(b.events.at(-1)).toEqual({ id: A, kind: 'leave', reason: 'left' })
    for (const r of first) await b.presence.handleBroadcast(A, r)
    expect(seen(b)).toEqual([B])
    expect(b.presence.counters).toMatchObject({ left: 1, outdated: 1 })
    // Gone for good: leave is idempotent, set is refused, nothing more is sent.
    await a.presence.leave()
    await expect(a.presence.set(1)).rejects.toMatchObject({ name: 'ClosedError' })
    await run(c, 60_000, [a])
    expect(a.broadcasts).toEqual([])
  })

  it('a node that never announced sends no leave', async () => {
    const c = clock()
    const a = pstub(A, c)
    await a.presence.leave()
    expect(a.announced).toEqual([])
  })

  it('a restarted node (same id, later session) replaces its earlier session', async () => {
    const c = clock()
    const a1 = pstub(A, c, { state: 'old' })
    const b = pstub(B, c)
    link(a1, b)
    await deliver(a1, b)
    c.advance(5_000)
    const a2 = pstub(A, c, { state: 'new' })
    link(a2, b)
    await deliver(a2, b)
    expect(b.presence.get().get(A)).toEqual({ state: 'new', since: T0 + 5_000 })
    // The old session's later records are older than any of the new one's.
    await run(c, 10_000, [a1])
    await deliver(a1, b)
    expect(b.presence.get().get(A)?.state).toBe('new')
  })
})

describe('presence: timing', () => {
  it('the interval grows with the nodes present, between intervalMs and maxIntervalMs', () => {
    const cfg = resolvePresenceOptions({ intervalMs: 10_000, networkRate: 10, maxIntervalMs: 120_000 })
    expect(announceInterval(cfg, 1)).toBe(10_000)
    expect(announceInterval(cfg, 100)).toBe(10_000)
    expect(announceInterval(cfg, 200)).toBe(20_000)
    expect(announceInterval(cfg, 1_000)).toBe(100_000)
    expect(announceInterval(cfg, 5_000)).toBe(120_000)
  })

  it('announcements come at most one interval apart (jitter only brings them forward), each carrying the interval it keeps to', async () => {
    const c = clock()
    // maxIntervalMs 4 s: the quiet back-off (tested below) would leave too few announcements here.
    const a = pstub(A, c, { intervalMs: 1_000, networkRate: 1, jitter: 0.2, maxIntervalMs: 4_000 })
    const others = [B, C, D].map((id) => pstub(id, c))
    for (const o of others) link(a, o)
    await a.presence.settled()
    for (const o of others) {
      await deliver(o, a)
      await o.presence.settled()
      await deliver(o, a)
    }
    expect(a.presence.interval()).toBe(4_000) // four present, one per second network-wide
    const times: number[] = []
    const intervals: number[] = []
    let count = a.announced.length
    for (let t = 0; t < 60_000; t += 100) {
      a.rand = (t / 100) % 2 === 0 ? 0 : 0.99
      c.advance(100)
      a.presence.tick(c.now())
      await a.presence.settled()
      for (const o of others) o.presence.tick(c.now())
      if (a.announced.length > count) {
        count = a.announced.length
        const b = bodyOf(a.announced.at(-1))
        times.push(b.time)
        intervals.push(b.interval)
      }
      // Keep the others present at a.
      if (t % 3_000 === 0) for (const o of others) await deliver(o, a)
    }
    expect(times.length).toBeGreaterThan(10)
    for (let i = 1; i < times.length; i++) {
      const gap = (times[i] as number) - (times[i - 1] as number)
      expect(gap).toBeLessThanOrEqual((intervals[i - 1] as number) + 100)
      expect(gap).toBeGreaterThanOrEqual(0.8 * (intervals[i - 1] as number) - 100)
    }
  })

  it('a node not heard from within expireIntervals × its interval + graceMs is gone (expired), not before', async () => {
    const c = clock()
    const a = pstub(A, c, { intervalMs: 10_000 })
    const b = pstub(B, c, { expireIntervals: 3, graceMs: 2_000 })
    link(a, b)
    await deliver(a, b)
    expect(b.presence.ttl(10_000)).toBe(32_000)
    await run(c, 31_900, [b])
    expect(seen(b)).toEqual([A, B])
    await run(c, 200, [b])
    expect(seen(b)).toEqual([B])
    expect(b.events.at(-1)).toEqual({ id: A, kind: 'leave', reason: 'expired' })
    expect(b.presence.counters.expired).toBe(1)
  })

  it('a claimed interval beyond maxIntervalMs counts as maxIntervalMs', async () => {
    const c = clock()
    const b = pstub(B, c, { maxIntervalMs: 20_000, expireIntervals: 2, graceMs: 0 })
    const keys = createFakeKeyring(A)
    await b.presence.handleBroadcast(
      A,
      await craft(keys, { session: T0, seq: 1, time: T0, interval: 10 ** 12, state: 1 }),
    )
    expect(seen(b)).toEqual([A, B])
    await run(c, 40_100, [b])
    expect(seen(b)).toEqual([B])
  })

  it('a rejoin after losing every link announces at once and pulls again', async () => {
    const c = clock()
    const a = pstub(A, c)
    const b = pstub(B, c)
    const d = pstub(D, c)
    link(a, b)
    await a.presence.settled()
    expect(a.announced).toHaveLength(1)
    unlink(a, b)
    c.advance(3_000)
    link(a, d)
    await a.presence.settled()
    expect(a.announced).toHaveLength(2)
    expect(a.sent.filter(([, m]) => m.t === 'pull').map(([to]) => to)).toEqual([B, D])
  })
})

describe('presence: listeners and keys', () => {
  it('a listener that throws is counted and the others still hear', async () => {
    const c = clock()
    const a = pstub(A, c)
    const b = pstub(B, c)
    b.presence.onPresence(() => {
      throw new Error('app bug')
    })
    const heard: string[] = []
    const off = b.presence.onPresence((e) => void heard.push(e.kind))
    link(a, b)
    await deliver(a, b)
    off()
    const set = a.presence.set(1)
    await run(c, 300, [a]) // the join announcement went out just now: the next waits updateGapMs
    await set
    await deliver(a, b)
    expect(heard).toEqual(['join'])
    expect(b.events.map((e) => e.kind)).toEqual(['join', 'update'])
    expect(b.presence.counters.listenerErrors).toBe(2)
  })

  it('with real Ed25519 keys: records verify; a signature under another protocol’s domain does not', async () => {
    const c = clock()
    const [ka, kb] = await Promise.all([
      generateIdentity({ puzzleBits: 0 }),
      generateIdentity({ puzzleBits: 0 }),
    ])
    const a = pstub(ka.id, c, { state: 'real' }, ka)
    const b = pstub(kb.id, c, {}, kb)
    link(a, b)
    await deliver(a, b)
    expect(b.presence.get().get(ka.id)?.state).toBe('real')
    const body = encodeBody({ session: T0, seq: 9, time: T0, interval: 10_000, state: Uint8Array.from([7]) })
    const sig = await ka.sign(concatBytes(utf8('weft/sync/1\n'), body))
    await b.presence.handleBroadcast(ka.id, [body, ka.publicKey, sig])
    expect(b.presence.counters['drop.badSignature']).toBe(1)
    expect(b.presence.get().get(ka.id)?.state).toBe('real')
  })
})
