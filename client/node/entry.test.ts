import { describe, expect, it } from 'vitest'
import type { Chord } from '../../shared/chord/index.ts'
import type { Counters } from '../../shared/protocol.ts'
import { realClock } from './clock.ts'
import { Entry } from './entry.ts'
import type { LinkTable } from './link-table.ts'
import type { NodeConfig } from './options.ts'

/** An Entry whose node has no link open, and never gets one. */
function entry(relay: 'never' | 'force' | 'auto') {
  const counters: Counters = {}
  const e = new Entry({
    id: 'aa'.repeat(20),
    config: { relay, directTimeoutMs: 60_000 } as NodeConfig,
    counters,
    clock: realClock,
    links: { openPeers: () => [] } as unknown as LinkTable,
    chord: {} as Chord,
    onLinkOpen: () => () => {},
    closed: () => false,
  })
  return { e, counters }
}

describe('the first join, told who cannot link with it', () => {
  const peers = [
    { id: 'bb'.repeat(20), lastSeen: 0 },
    { id: 'cc'.repeat(20), lastSeen: 0 },
  ]

  it('a refusal that came before the join got there (the dials go out at registration) still counts', async () => {
    const { e, counters } = entry('never')
    // Both peers of the sample refuse the dials made at registration, before enter() is called.
    e.relayMismatch(peers[0]?.id as string)
    e.relayMismatch(peers[1]?.id as string)
    const t0 = Date.now()
    await expect(e.enter(peers)).rejects.toMatchObject({ name: 'NoRouteError' })
    expect(Date.now() - t0).toBeLessThan(1000) // not the 70 s timer
    expect(counters['dial.relay-mismatch']).toBe(2)
  })

  it('one early, one during: refused once both are in', async () => {
    const { e } = entry('never')
    e.relayMismatch(peers[0]?.id as string)
    const entering = e.enter(peers)
    setTimeout(() => e.relayMismatch(peers[1]?.id as string), 20)
    await expect(entering).rejects.toMatchObject({ name: 'NoRouteError' })
  })
})
