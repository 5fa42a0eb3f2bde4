/**
 * Request timeouts (rpc.ts): expire(now) skips its walk before the earliest
 * pending deadline, so it must keep that bound right whatever the order in
 * which requests with different timeouts are made, answered and expired.
 */
import { describe, expect, it } from 'vitest'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import type { ChordMsg } from './messages.ts'
import { createContext } from './options.ts'
import { createRpc } from './rpc.ts'

const SELF = 'a'.repeat(40)
const peer = (i: number) => i.toString(16).padStart(40, '0')

function setup() {
  let now = 0
  const sent: [string, ChordMsg][] = []
  const timedOut: string[] = []
  const ctx = createContext(
    {
      id: SELF,
      send: (to, m) => void sent.push([to, m]),
      now: () => now,
      random: () => 0.5,
      keys: createFakeKeyring(SELF),
    },
    { requestTimeoutMs: 1000 },
  )
  const rpc = createRpc(ctx, (to) => timedOut.push(to))
  const settled = new Map<string, ChordMsg | null>()
  const ask = (to: string, timeoutMs?: number) =>
    rpc
      .request(to, (r) => ({ t: 'ping', r }), timeoutMs === undefined ? {} : { timeoutMs })
      .then((m) => void settled.set(to, m))
  const at = async (t: number) => {
    now = t
    rpc.expire(t)
    await Promise.resolve()
    await Promise.resolve()
  }
  return { rpc, sent, timedOut, settled, ask, at, ctx }
}

describe('chord rpc timeouts', () => {
  it('a later request with a shorter timeout expires at its own deadline, not the first one', async () => {
    const s = setup()
    s.ask(peer(1)) // deadline 1000
    await s.at(100)
    s.ask(peer(2), 200) // deadline 300
    await s.at(299)
    expect(s.timedOut).toEqual([])
    await s.at(300)
    expect(s.timedOut).toEqual([peer(2)])
    expect(s.settled.get(peer(2))).toBeNull()
    await s.at(999)
    expect(s.timedOut).toEqual([peer(2)])
    await s.at(1000)
    expect(s.timedOut).toEqual([peer(2), peer(1)])
    expect(s.ctx.counters['rpc.timeout']).toBe(2)
  })

  it('an answered request does not hide the deadline of one still pending, and a new one after an expiry is timed', async () => {
    const s = setup()
    s.ask(peer(1), 100)
    s.ask(peer(2), 500)
    const first = s.sent[0]?.[1]
    if (first?.t !== 'ping') throw new Error('no ping sent')
    const r1 = first.r
    s.rpc.onReply(peer(1), { t: 'pong', r: r1 })
    await s.at(100)
    expect(s.settled.get(peer(1))).toEqual({ t: 'pong', r: r1 })
    expect(s.timedOut).toEqual([])
    await s.at(500)
    expect(s.timedOut).toEqual([peer(2)])
    // Nothing pending: a request made now still expires at its deadline.
    s.ask(peer(3), 50)
    await s.at(549)
    expect(s.timedOut).toEqual([peer(2)])
    await s.at(550)
    expect(s.timedOut).toEqual([peer(2), peer(3)])
  })

  it('a request made while expiring (the failure detector probes a silent node) is timed too', async () => {
    const s = setup()
    const rpc = createRpc(s.ctx, (to) => {
      s.timedOut.push(to)
      rpc.request(peer(9), (r) => ({ t: 'ping', r }), { timeoutMs: 100 }) // the probe
    })
    rpc.request(peer(1), (r) => ({ t: 'ping', r }), { timeoutMs: 100 })
    const expireAt = async (t: number) => {
      await s.at(t)
      rpc.expire(t)
      await Promise.resolve()
    }
    await expireAt(100)
    expect(s.timedOut).toEqual([peer(1)])
    await expireAt(199)
    expect(s.timedOut).toEqual([peer(1)])
    await expireAt(200)
    expect(s.timedOut).toEqual([peer(1), peer(9)])
  })
})

describe('chord rpc: a node the host cannot reach', () => {
  function unreachableSetup() {
    let now = 0
    const told: (() => void)[] = []
    const timedOut: string[] = []
    const ctx = createContext(
      {
        id: SELF,
        send: (_to, _m, unreachable) => void (unreachable && told.push(unreachable)),
        now: () => now,
        random: () => 0.5,
        keys: createFakeKeyring(SELF),
      },
      { requestTimeoutMs: 1000 },
    )
    const rpc = createRpc(ctx, (to) => timedOut.push(to))
    const setNow = (t: number) => {
      now = t
    }
    return { rpc, told, timedOut, ctx, setNow }
  }

  it('fails the request at once (a gone node is not waited on for the whole timeout), as a timeout would', async () => {
    const s = unreachableSetup()
    const p = s.rpc.request(peer(1), (r) => ({ t: 'ping', r }))
    expect(s.told).toHaveLength(1)
    s.told[0]?.()
    expect(await p).toBeNull()
    expect(s.timedOut).toEqual([peer(1)])
    expect(s.ctx.counters['rpc.unreachable']).toBe(1)
  })

  it("tells the requester's onTimeout only of a request that ran to its deadline (a lookup charges those to who named the node)", async () => {
    const s = unreachableSetup()
    const waited: string[] = []
    const req = (to: string) =>
      s.rpc.request(to, (r) => ({ t: 'ping', r }), { onTimeout: () => waited.push(to) })
    const gone = req(peer(1))
    s.told[0]?.()
    expect(await gone).toBeNull()
    const silent = req(peer(2))
    s.setNow(1000)
    s.rpc.expire(1000)
    expect(await silent).toBeNull()
    expect(waited).toEqual([peer(2)])
  })

  it('a late word that the node is unreachable, after the answer or the timeout, changes nothing', async () => {
    const s = unreachableSetup()
    const answered = s.rpc.request(peer(1), (r) => ({ t: 'ping', r }))
    s.rpc.onReply(peer(1), { t: 'pong', r: 1 })
    expect(await answered).toEqual({ t: 'pong', r: 1 })
    const expired = s.rpc.request(peer(2), (r) => ({ t: 'ping', r }))
    s.setNow(1000)
    s.rpc.expire(1000)
    expect(await expired).toBeNull()
    for (const fn of s.told) fn()
    expect(s.timedOut).toEqual([peer(2)])
    expect(s.ctx.counters['rpc.unreachable']).toBeUndefined()
  })
})
