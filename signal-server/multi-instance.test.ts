/**
 * Several instances behind one Redis: a real redis-server, started here on a
 * free port and stopped afterwards, and two signal servers sharing it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { createClient } from 'redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parsePeersAck, parseRelayDelivery } from '../shared/signal-events.ts'
import { createSignalServer, type SignalServer } from './index.ts'
import { createRedisHostCache, type RedisClient } from './registry-redis.ts'
import { joined, type TestClient } from './test-kit.ts'

let redis: ChildProcess | null = null
let redisUrl = ''
const servers: SignalServer[] = []
const clients: TestClient[] = []

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

beforeAll(async () => {
  if (spawnSync('redis-server', ['--version']).error) {
    throw new Error(
      'redis-server is not installed; the multi-instance test needs it: apt-get install -y redis-server',
    )
  }
  const port = await freePort()
  redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  )
  redisUrl = `redis://127.0.0.1:${port}`
  const probe = createClient({ url: redisUrl })
  probe.on('error', () => {})
  for (let i = 0; ; i++) {
    try {
      await probe.connect()
      break
    } catch (err) {
      if (i > 100) throw err
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  await probe.close()
})

afterAll(() => {
  redis?.kill('SIGKILL')
})

afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  for (const s of servers.splice(0)) await s.close()
})

async function pair(): Promise<[SignalServer, SignalServer]> {
  const redisPrefix = `t${randomBytes(4).toString('hex')}`
  const make = () => createSignalServer({ port: 0, host: '127.0.0.1', redisUrl, redisPrefix })
  const [a, b] = await Promise.all([make(), make()])
  servers.push(a, b)
  return [a, b]
}
const track = <T extends TestClient>(c: T): T => {
  clients.push(c)
  return c
}

describe('two instances sharing Redis', () => {
  it('carries signals and relay frames across, and samples span both', async () => {
    const [s1, s2] = await pair()
    const a = track(await joined(s1.address, 'demo'))
    const b = track(await joined(s2.address, 'demo'))
    const stranger = track(await joined(s2.address, 'other'))
    // b registered on s2 after a on s1: its bootstrap sample names a.
    expect(b.ack.peers.map((p) => p.id)).toEqual([a.id])
    const fromA = parsePeersAck(await a.call('peers', {}))
    expect(fromA?.ok && fromA.peers.map((p) => p.id)).toEqual([b.id])

    expect(await a.call('signal', { to: b.id, data: { sdp: 'offer' } })).toEqual({ ok: true })
    expect(await b.next('signal')).toEqual({ from: a.id, data: { sdp: 'offer' } })
    expect(await b.call('signal', { to: a.id, data: { sdp: 'answer' } })).toEqual({ ok: true })
    expect(await a.next('signal')).toEqual({ from: b.id, data: { sdp: 'answer' } })
    expect(await a.call('signal', { to: 'f'.repeat(40), data: 1 })).toEqual({
      ok: false,
      reason: 'unknown-peer',
    })
    // Networks do not mix across instances either.
    expect(await a.call('signal', { to: stranger.id, data: 1 })).toEqual({
      ok: false,
      reason: 'unknown-peer',
    })

    const frames = Array.from({ length: 20 }, (_, i) => new Uint8Array(1000 + i).fill(i))
    for (const frame of frames) a.socket.emit('relay', { to: b.id, frame })
    b.socket.emit('relay', { to: a.id, frame: new Uint8Array([7, 7]) })
    await b.until(() => b.received('relay').length === 20)
    expect(b.received('relay').map((p) => parseRelayDelivery(p)?.frame)).toEqual(frames)
    expect(parseRelayDelivery(await a.next('relay'))).toEqual({ from: b.id, frame: new Uint8Array([7, 7]) })
    expect(s1.metrics()).toMatchObject({ relayFrames: 20, signals: 1 })
    expect(s2.metrics()).toMatchObject({ relayFrames: 1, signals: 1 })
    expect(stranger.received('signal')).toEqual([])

    // A departure on one instance leaves the samples on the other.
    a.close()
    await b.until(() => s1.metrics().peers === 0)
    const after = parsePeersAck(await b.call('peers', {}))
    expect(after?.ok && after.peers).toEqual([])
    expect(await b.call('signal', { to: a.id, data: 1 })).toEqual({ ok: false, reason: 'unknown-peer' })
  })

  it('a reconnect on the other instance replaces the old socket', async () => {
    const [s1, s2] = await pair()
    const a = track(await joined(s1.address, 'demo'))
    const b = track(await joined(s1.address, 'demo'))
    const b2 = track(await joined(s2.address, 'demo', { identity: b.identity }))
    expect(await b.next('replaced')).toEqual({ reason: 'replaced' })
    await b.next('disconnect')
    await a.until(() => s1.metrics().peers === 1)
    // The old socket's departure did not unregister the new one.
    expect(await a.call('signal', { to: b2.id, data: 'hello' })).toEqual({ ok: true })
    expect(await b2.next('signal')).toEqual({ from: a.id, data: 'hello' })
    const sample = parsePeersAck(await a.call('peers', {}))
    expect(sample?.ok && sample.peers.map((p) => p.id)).toEqual([b2.id])
  })
})

describe('redis host cache', () => {
  let client: RedisClient
  beforeAll(async () => {
    client = createClient({ url: redisUrl })
    await client.connect()
  })
  afterAll(async () => {
    await client.close()
  })
  const id = (n: number) => n.toString(16).padStart(40, '0')

  it('samples, removes only for the owning session, and lets entries expire', async () => {
    const prefix = `u${randomBytes(4).toString('hex')}`
    const cache = createRedisHostCache(client, { prefix, ttlMs: 300, maxPerNetwork: 50 })
    for (let i = 0; i < 60; i++) await cache.add('n', id(i), `s${i}`, 1000 + i)
    expect(await client.zCard(`${prefix}:hosts:n`)).toBe(50)
    const s = await cache.sample('n', 16, id(59), 0)
    expect(s).toHaveLength(16)
    expect(new Set(s.map((p) => p.id)).size).toBe(16)
    expect(s.some((p) => p.id === id(59))).toBe(false)
    expect(await cache.remove('n', id(20), 'wrong')).toBe(false)
    expect(await cache.lookup('n', id(20), 0)).toEqual({ id: id(20), lastSeen: 1020 })
    expect(await cache.remove('n', id(20), 's20')).toBe(true)
    expect(await cache.lookup('n', id(20), 0)).toBeNull()
    await cache.touch('n', id(30), 5000)
    expect(await cache.lookup('n', id(30), 0)).toEqual({ id: id(30), lastSeen: 5000 })
    await new Promise((r) => setTimeout(r, 200))
    await cache.keepAlive([{ network: 'n', id: id(40) }], 0)
    await new Promise((r) => setTimeout(r, 200))
    // Only the kept-alive entry is still live; a sample meets the dead ones and removes them.
    expect(await cache.sample('n', 64, null, 0)).toEqual([{ id: id(40), lastSeen: 1040 }])
    expect(await client.zCard(`${prefix}:hosts:n`)).toBeLessThanOrEqual(50 - 2 * 16 + 1)
  })
})
