import { describe, expect, it } from 'vitest'
import type { Counters } from '../../shared/protocol.ts'
import { Strikes } from './strikes.ts'

function setup() {
  const clock = { now: 0 }
  const dropped: string[] = []
  const counters: Counters = {}
  const strikes = new Strikes({ now: () => clock.now, drop: (p) => void dropped.push(p), counters })
  return { clock, dropped, counters, strikes }
}

describe('strikes', () => {
  it('the eighth bad copy within a minute drops the link; each is counted by what it was', () => {
    const { dropped, counters, strikes } = setup()
    for (let i = 0; i < 7; i++) strikes.strike('p', 'mesh.badSignature')
    expect(dropped).toEqual([])
    strikes.strike('p', 'topics.badPayload')
    expect(dropped).toEqual(['p'])
    expect(counters['misbehaved.mesh.badSignature']).toBe(7)
    expect(counters['misbehaved.topics.badPayload']).toBe(1)
    expect(counters['link.misbehaved']).toBe(1)
    // Forgotten once dropped: a new link starts afresh.
    expect(strikes.size).toBe(0)
  })

  it('strikes spread wider than the window never add up; another peer has its own', () => {
    const { clock, dropped, strikes } = setup()
    for (let i = 0; i < 20; i++) {
      strikes.strike('slow', 'mesh.badSignature')
      clock.now += 9_000 // seven in 60 s at most
    }
    expect(dropped).toEqual([])
    for (let i = 0; i < 8; i++) strikes.strike('other', 'mesh.badSignature')
    expect(dropped).toEqual(['other'])
  })

  it('a closed link is forgotten, and at most 1,024 peers are tracked', () => {
    const { strikes } = setup()
    strikes.strike('p', 'mesh.badSignature')
    strikes.forget('p')
    expect(strikes.size).toBe(0)
    for (let i = 0; i < 2000; i++) strikes.strike(`p${i}`, 'mesh.badSignature')
    expect(strikes.size).toBe(1024)
  })
})
