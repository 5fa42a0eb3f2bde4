/**
 * A WebRTC link whose ICE stalls is checked with the signal server
 * (signal-transport.ts, watchStall): a `probe` goes to the peer through the
 * server, and if the server no longer knows the peer (a tab closed or
 * crashed: its WebSocket closed at once), the link closes at once
 * ('peer-gone') instead of at the end of the stall check's grace. Two Node
 * nodes on @roamhq/wrtc through a real server; the stall is the link's own
 * event (ICE `disconnected` cannot be made to order here; the browser test
 * in e2e/overlay.spec.ts kills a tab for real).
 */
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import { createSignalServer, type SignalServer } from '../signal-server/index.ts'
import { until, useCleanup } from '../test/until.ts'
import { NodeFacade } from './facade.ts'
import { joinOverlay } from './index.ts'
import type { Link } from './links/link.ts'
import type { SignalTransport } from './node/signal-transport.ts'
import type { WeftNode } from './weft-node.ts'

const cleanup = useCleanup()

/** Two nodes linked over WebRTC through one server, and a's link to b. */
async function linkedPair(): Promise<{ a: WeftNode; b: WeftNode; link: Link }> {
  const server: SignalServer = await createSignalServer({
    port: 0,
    host: '127.0.0.1',
    log: () => {},
    puzzleBits: 0,
  })
  cleanup.push(() => server.close())
  const wrtc = createRequire(import.meta.url)('@roamhq/wrtc')
  const opts = { signal: server.address, network: 'probe', wrtc, puzzleBits: 0 }
  const a = await joinOverlay(opts)
  cleanup.push(() => a.close())
  const b = await joinOverlay(opts)
  cleanup.push(() => b.close())
  await until('a WebRTC link', () => a.peers().some((p) => p.id === b.id && p.transport === 'webrtc'))
  const link = NodeFacade.internals(a).links.get(b.id) as Link
  return { a, b, link }
}

describe('a stalled WebRTC link is checked with the signal server', () => {
  it('closes at once when the server no longer knows the peer', async () => {
    const { a, b, link } = await linkedPair()
    const closed: string[] = []
    link.on('close', (r) => closed.push(r))
    // b leaves the server (as a killed tab's WebSocket does) and stays silent on the link.
    ;(NodeFacade.internals(b).transport as SignalTransport).signalClient.close()
    await new Promise((r) => setTimeout(r, 200))
    link.emit('stall', undefined)
    await until('the link closed', () => closed.length > 0, 3000)
    expect(closed).toEqual(['peer-gone'])
    expect(a.stats()['link.stall-probe']).toBe(1)
    // (Other signals a sends b meanwhile may be refused as unknown-peer too.)
    expect(a.stats()['signal-error.unknown-peer']).toBeGreaterThanOrEqual(1)
  })

  it('keeps the link when the peer is still registered (the probe reaches it, which does nothing)', async () => {
    const { a, b, link } = await linkedPair()
    link.emit('stall', undefined)
    await until('the probe at b', () => b.stats()['signal.probe'] === 1, 3000)
    await new Promise((r) => setTimeout(r, 200))
    expect(link.state).toBe('open')
    expect(a.stats()['link.stall-probe']).toBe(1)
    expect(a.stats()['signal-error.unknown-peer'] ?? 0).toBe(0)
  })

  it('keeps the link when something came over it after the probe went', async () => {
    const { a, b, link } = await linkedPair()
    ;(NodeFacade.internals(b).transport as SignalTransport).signalClient.close()
    await new Promise((r) => setTimeout(r, 200))
    // The server's answer is held back until b has spoken on the link.
    const sc = (NodeFacade.internals(a).transport as SignalTransport).signalClient
    const held: (() => void)[] = []
    const emit = sc.emit.bind(sc)
    sc.emit = ((event: string, payload: never) => {
      if (event === 'signal-error') held.push(() => emit(event as never, payload))
      else emit(event as never, payload)
    }) as typeof sc.emit
    link.emit('stall', undefined)
    await until('the answer held', () => held.length === 1, 3000)
    const bytes = link.stats.bytesIn
    await b.broadcast('still-here', 1)
    await until('b heard on the link', () => link.stats.bytesIn > bytes, 3000)
    for (const f of held) f()
    await new Promise((r) => setTimeout(r, 100))
    expect(link.state).toBe('open')
    expect(a.stats()['link.stall-probe']).toBe(1)
  })
})
