/**
 * A hostile signal server (test/hostile-server.ts: plain socket.io, someone
 * else's) against the signalling client and the node: what it sends is
 * untrusted, and it may send it at any time, as often and as fast as it likes.
 * (A server in the middle of a link: node/hello-mitm.test.ts.)
 */
import { io } from 'socket.io-client'
import { expect, it } from 'vitest'
import { generateIdentity, type Identity } from '../shared/identity/keys.ts'
import { hostileServer } from '../test/hostile-server.ts'
import { until, useCleanup } from '../test/until.ts'
import { type IoFactory, SignalClient } from './signal-client.ts'

const cleanup = useCleanup()

function client(address: string, identity: Identity): SignalClient {
  const c = new SignalClient({
    servers: [address],
    network: 'hostile',
    identity,
    io: io as unknown as IoFactory,
  })
  cleanup.push(() => c.close())
  return c
}

it('answers one challenge per connection: more, before or after registration, neither sign nor register again', async () => {
  // 200 challenges at once, every registration acknowledged: each used to be signed and sent, and
  // each ok answer adopted the socket again (one more set of listeners: a signal came out 200 times).
  const s = await hostileServer({ challenges: 200 })
  cleanup.push(() => s.close())
  const identity = await generateIdentity({ puzzleBits: 0 })
  let signatures = 0
  const sign = identity.sign.bind(identity)
  identity.sign = (m) => {
    signatures++
    return sign(m)
  }
  const c = client(s.address, identity)
  let registered = 0
  c.on('registered', () => registered++)
  await c.start()
  const sock = s.sockets[0]
  if (!sock) throw new Error('no socket')
  for (let i = 0; i < 200; i++) sock.emit('challenge', { nonce: crypto.getRandomValues(new Uint8Array(32)) })
  const got: unknown[] = []
  c.on('signal', (d) => got.push(d))
  await new Promise((r) => setTimeout(r, 300))
  sock.emit('signal', { from: 'ab'.repeat(20), data: { t: 'probe' } })
  await until('the signal', () => got.length > 0)
  await new Promise((r) => setTimeout(r, 100))
  expect(got).toHaveLength(1)
  expect(s.registers).toBe(1)
  expect(signatures).toBe(1)
  expect(registered).toBe(1)
  expect(c.state).toBe('registered')
})
