/**
 * A relayed link whose far end is gone while the node behind it is still
 * there (its end closed the link and the goodbye was lost: frames were lost
 * with a signal server instance that died, and the secure channel refuses a
 * gap). The frames that end gets for a session it no longer has are
 * answered, through the server, with `relay-gone`: the sender closes its
 * end at once rather than at its heartbeat timeout (20 s), and links again.
 * Two Node nodes with relay: 'force' through one real server.
 */
import { describe, expect, it } from 'vitest'
import { createSignalServer } from '../signal-server/index.ts'
import { until, useCleanup } from '../test/until.ts'
import { NodeFacade } from './facade.ts'
import { joinOverlay } from './index.ts'
import type { Link } from './links/link.ts'
import type { SignalTransport } from './node/signal-transport.ts'
import type { WeftNode } from './weft-node.ts'

const cleanup = useCleanup()

async function relayedPair(): Promise<{ a: WeftNode; b: WeftNode }> {
  const server = await createSignalServer({ port: 0, host: '127.0.0.1', log: () => {}, puzzleBits: 0 })
  cleanup.push(() => server.close())
  const opts = {
    signal: server.address,
    network: 'gone',
    relay: 'force' as const,
    wrtc: false,
    puzzleBits: 0,
  }
  const a = await joinOverlay(opts)
  cleanup.push(() => a.close())
  const b = await joinOverlay(opts)
  cleanup.push(() => b.close())
  await until('a relayed link', () => a.peers().some((p) => p.id === b.id && p.transport === 'relay'))
  await until('both ends open', () => b.peers().some((p) => p.id === a.id))
  return { a, b }
}

/** Close `node`'s link to `peer` without its goodbye reaching the peer (as if lost on the way). */
async function dropSilently(node: WeftNode, peer: string): Promise<void> {
  const sc = (NodeFacade.internals(node).transport as SignalTransport).signalClient
  const relay = sc.relay.bind(sc)
  sc.relay = () => true
  try {
    ;(NodeFacade.internals(node).links.get(peer) as Link).close('test')
    // (The goodbye is sealed, then written: give it the time to be lost.)
    await new Promise((r) => setTimeout(r, 200))
  } finally {
    sc.relay = relay
  }
}

describe('a relayed link the other end no longer has', () => {
  it('closes as soon as it sends on it (relay-gone), not at its heartbeat timeout, and links again', async () => {
    const { a, b } = await relayedPair()
    const link = NodeFacade.internals(a).links.get(b.id) as Link
    const closed: string[] = []
    link.on('close', (r) => closed.push(r))
    // b will not set up a new link with a for now (a new session would supersede a's old one).
    const sc = (NodeFacade.internals(b).transport as SignalTransport).signalClient
    const signal = sc.signal.bind(sc)
    sc.signal = (to, d) =>
      (d as { t?: string }).t === 'relay-gone' ? signal(to, d) : new Promise<void>(() => {})
    await dropSilently(b, a.id)
    // a speaks on the link (if nothing it sent meanwhile did): b has no such session, and says so.
    void a.request(b.id, 'nothing', null, { timeoutMs: 1000 }).catch(() => {})
    await until('a closed its end', () => closed.length > 0, 3000)
    expect(closed).toEqual(['relay-gone'])
    expect(b.stats()['relay.gone-sent']).toBe(1)
    sc.signal = signal
    await until('linked again', () => a.peers().some((p) => p.id === b.id), 10_000)
  })

  it('a relay-gone for another session (an old one, or made up) leaves the link alone', async () => {
    const { a, b } = await relayedPair()
    const link = NodeFacade.internals(a).links.get(b.id) as Link
    const sc = (NodeFacade.internals(b).transport as SignalTransport).signalClient
    const before = a.stats()['drop.signal.relay-gone'] ?? 0
    await sc.signal(a.id, { t: 'relay-gone', sid: 12345 })
    await sc.signal(a.id, { t: 'relay-gone', sid: 'x' })
    await until(
      'both seen',
      () => (a.stats()['drop.signal.relay-gone'] ?? 0) - before + (a.stats()['drop.signal'] ?? 0) >= 2,
    )
    expect(link.state).toBe('open')
    expect(a.stats()['drop.signal.relay-gone']).toBe(before + 1)
  })
})
