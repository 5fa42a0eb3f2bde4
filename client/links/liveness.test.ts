/**
 * A link's liveness (liveness.ts): heartbeats, and the check after the
 * transport stalls. Fake timers; the link is a recording stub.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Liveness } from './liveness.ts'

function setup(open = true) {
  const pings: number[] = []
  const dead: string[] = []
  const checks: number[] = []
  const state = { open }
  const live = new Liveness({
    heartbeatMs: 5000,
    deadAfterMs: 20_000,
    stallGraceMs: 3000,
    isOpen: () => state.open,
    ping: (now) => void pings.push(now),
    dead: (reason) => void dead.push(reason),
    tick: () => {},
    stalled: () => void checks.push(Date.now()),
  })
  return { live, pings, dead, state, checks }
}

beforeEach(() => {
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

describe('liveness', () => {
  it('a stall with no answer ends the link after the grace, with a ping sent at once', () => {
    const { live, pings, dead } = setup()
    live.start()
    const t0 = Date.now()
    live.stalled()
    expect(pings).toEqual([t0])
    vi.advanceTimersByTime(2999)
    expect(dead).toEqual([])
    vi.advanceTimersByTime(1)
    expect(dead).toEqual(['stalled'])
    expect(live.stalls).toBe(1)
  })

  it('a stall the peer answers changes nothing, and a later stall is checked again', () => {
    const { live, dead, pings, checks } = setup()
    live.start()
    live.stalled()
    vi.advanceTimersByTime(400)
    live.heard() // its pong
    vi.advanceTimersByTime(5000)
    expect(dead).toEqual([])
    live.stalled()
    // A second report of the same stall while it is checked sends no second ping.
    live.stalled()
    expect(pings.filter((t) => t === Date.now())).toHaveLength(1)
    // The host is told once per check begun (it asks the signal server then), not per report.
    expect(checks).toHaveLength(2)
    vi.advanceTimersByTime(3000)
    expect(dead).toEqual(['stalled'])
  })

  it('before the link is open (its handshake has its own timer) a stall does nothing', () => {
    const { live, dead, pings, state, checks } = setup(false)
    live.start()
    live.stalled()
    vi.advanceTimersByTime(3000)
    expect(pings).toEqual([])
    expect(checks).toEqual([])
    expect(dead).toEqual([])
    state.open = true
  })

  it('heartbeats: a ping only after half a period of our silence; 20 s of theirs ends the link', () => {
    const { live, pings, dead } = setup()
    live.start()
    // We keep sending: no ping is needed.
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(2000)
      live.sent()
      live.heard()
    }
    expect(pings).toEqual([])
    // Quiet on our side: a ping each period, until the peer's silence passes 20 s.
    vi.advanceTimersByTime(15_000)
    expect(pings.length).toBeGreaterThanOrEqual(3)
    expect(dead).toEqual([])
    vi.advanceTimersByTime(10_000)
    expect(dead).toEqual(['heartbeat-timeout'])
  })

  it('stopped, nothing fires', () => {
    const { live, dead } = setup()
    live.start()
    live.stalled()
    live.stop()
    vi.advanceTimersByTime(60_000)
    expect(dead).toEqual([])
  })
})
