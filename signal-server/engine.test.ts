/**
 * The transport under socket.io (engine.ts): WebSocket only, and frames
 * coalesced into one write per synchronous run without losing, reordering or
 * holding any of them.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { joined, type TestClient } from '../test/signal-kit.ts'
import { slimSocket } from './engine.ts'
import { createSignalServer, type SignalServer } from './index.ts'

const servers: SignalServer[] = []
const clients: TestClient[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  for (const s of servers.splice(0)) await s.close()
})

async function server(): Promise<SignalServer> {
  const s = await createSignalServer({ port: 0, host: '127.0.0.1', puzzleBits: 0, log: () => {} })
  servers.push(s)
  return s
}

describe('the transport', () => {
  it('refuses HTTP long-polling: no session is made for it', async () => {
    const s = await server()
    const r = await fetch(`${s.address}/socket.io/?EIO=4&transport=polling`)
    expect(r.status).toBe(400)
    expect(await r.json()).toMatchObject({ message: 'Transport unknown' })
    expect(s.metrics().sockets).toBe(0)
  })

  it('a burst of signals from one sender: every one acked and delivered, in order', async () => {
    const s = await server()
    const a = await joined(s.address, 'n', { puzzleBits: 0 })
    const b = await joined(s.address, 'n', { puzzleBits: 0 })
    clients.push(a, b)
    const n = 150 // under the event burst (400)
    const acks = await Promise.all(
      Array.from({ length: n }, (_, i) => a.call('signal', { to: b.id, data: { i } })),
    )
    expect(acks).toEqual(Array.from({ length: n }, () => ({ ok: true })))
    await b.until(() => b.received('signal').length === n)
    expect(b.received('signal')).toEqual(Array.from({ length: n }, (_, i) => ({ from: a.id, data: { i } })))
  })

  it('the ack table every socket shares refuses entries (the server never waits for an ack)', () => {
    const socket: Record<string, unknown> = {}
    slimSocket(socket, [])
    const acks = socket.acks as Map<number, unknown>
    expect(() => acks.set(1, () => {})).toThrow(/never emits with an ack/)
    expect(acks.size).toBe(0)
  })
})
