/**
 * A setup that would supersede an open direct link (dialer.ts fallBack): it is for a direct link
 * or nothing while that link is there, but once the link is gone (the peer's goodbye came, or the
 * link was found dead) it is an ordinary setup, which falls back to the relay like any other.
 */
import { afterEach, expect, it } from 'vitest'
import { generateIdentity } from '../../shared/identity/keys.ts'
import type { Counters } from '../../shared/protocol.ts'
import type { SimplePeerCtor } from '../links/webrtc.ts'
import type { Clock } from './clock.ts'
import { type Dial, Dialer, type DialerDeps } from './dialer.ts'
import type { LinkTable, NodeLink } from './link-table.ts'
import type { NodeConfig } from './options.ts'

const dialers: Dialer[] = []
afterEach(() => {
  for (const d of dialers.splice(0)) d.failAll(new Error('test over'))
})

/** WebRTC that fails at once (as a pipe whose ICE failed fast). */
const NoWebRtc = class {
  constructor() {
    throw new Error('no WebRTC here')
  }
} as unknown as SimplePeerCtor

async function superseding(old: Partial<NodeLink>, current: Partial<NodeLink> | undefined) {
  const counters: Counters = {}
  const clock: Clock = {
    now: () => 0,
    setTimeout: () => ({}),
    clearTimeout: () => {},
    setInterval: () => ({}),
    clearInterval: () => {},
    sleep: async () => {},
  }
  const dialer = new Dialer({
    identity: await generateIdentity({ puzzleBits: 0 }),
    config: { relay: 'auto', directTimeoutMs: 5000, maxMessageBytes: 1 << 20 } as NodeConfig,
    counters,
    clock,
    SimplePeer: NoWebRtc,
    signalClient: { signal: async () => {}, relay: () => true, iceServers: [] },
    links: { get: () => current, meshNeighbours: () => [] } as unknown as LinkTable,
    validators: {},
    overlay: { canSignal: () => false, signal: async () => {} },
    linkSecurity: () => ({}),
    learnBox: () => {},
    opened: () => {},
    upgraded: () => {},
    closed: () => {},
    failed: () => {},
    accessDenied: () => {},
  } as unknown as DialerDeps)
  dialers.push(dialer)
  const peer = '7'.repeat(40)
  const d: Dial = {
    peer,
    mesh: true,
    inbound: true,
    relays: 0,
    started: 0,
    waiters: [],
    supersedes: old as NodeLink,
  }
  dialer.dials.set(peer, d)
  dialer.startWebRtc(d, false)
  // The failed attempt's fallBack runs once its pipe's opened promise has rejected.
  await new Promise((r) => setTimeout(r, 0))
  return { counters, d, dialer }
}

it('while the direct link it would replace is open, a superseding setup does not fall back to the relay', async () => {
  const old = { state: 'open', transport: 'webrtc' } as const
  const { counters, d, dialer } = await superseding(old, old)
  expect(counters['dial.supersede-failed']).toBe(1)
  expect(counters['dial.relay-fallback']).toBeUndefined()
  expect(dialer.dials.has(d.peer)).toBe(false)
})

it('once the direct link it would replace has closed, a superseding setup falls back to the relay', async () => {
  const old = { state: 'closed', transport: 'webrtc' } as const
  const { counters, d, dialer } = await superseding(old, undefined)
  expect(counters['dial.supersede-failed']).toBeUndefined()
  expect(counters['dial.relay-fallback']).toBe(1)
  expect(dialer.dials.get(d.peer)).toBe(d)
  expect(d.relay).toBeDefined()
})
