/**
 * Several instances behind one Redis (a real redis-server, redis-kit.ts):
 * signals and relay frames across instances, samples spanning them, a
 * reconnect on another instance replacing the old socket, relay order, and
 * the congestion check on the target's instance. What they refuse from Redis
 * is multi-instance-trust.test.ts; the Redis host cache alone,
 * registry-redis.test.ts.
 */

import { randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parsePeersAck, parseRelayDelivery, parseRelayError } from '../shared/signal-events.ts'
import { type RedisProcess, redisSecret, sleep, startRedis } from '../test/redis-kit.ts'
import { joined, pauseReading, type TestClient } from '../test/signal-kit.ts'
import { createSignalServer, type SignalServer, type SignalServerOptions } from './index.ts'

let redis: RedisProcess
let redisUrl = ''
const servers: SignalServer[] = []
const clients: TestClient[] = []

beforeAll(async () => {
  redis = await startRedis()
  redisUrl = redis.url
})
afterAll(() => redis?.stop())
afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  for (const s of servers.splice(0)) await s.close()
})

const track = <T extends TestClient>(c: T): T => {
  clients.push(c)
  return c
}

async function pair(
  extra: SignalServerOptions = {},
): Promise<[SignalServer, SignalServer, { redisPrefix: string }]> {
  const redisPrefix = `t${randomBytes(4).toString('hex')}`
  const make = () =>
    createSignalServer({ ...extra, port: 0, host: '127.0.0.1', redisUrl, redisSecret, redisPrefix })
  const [a, b] = await Promise.all([make(), make()])
  servers.push(a, b)
  return [a, b, { redisPrefix }]
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

    // A departure on one instance leaves the samples on the other. s1 forgets a locally at once and
    // removes it from Redis a round trip later (s2 reads Redis): wait for the latter, generously.
    a.close()
    await b.until(() => s1.metrics().peers === 0)
    const deadline = Date.now() + 10_000
    let after = parsePeersAck(await b.call('peers', {}))
    while (after?.ok && after.peers.length > 0 && Date.now() < deadline) {
      await sleep(50)
      after = parsePeersAck(await b.call('peers', {}))
    }
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

describe('nodes that are gone', () => {
  it('a node that left its instance: that instance answers unknown-peer, never ok, even while the host cache still names it', async () => {
    const [s1, s2, { redisPrefix }] = await pair()
    const a = track(await joined(s1.address, 'demo'))
    const b = track(await joined(s2.address, 'demo'))
    const owner = `${redisPrefix}:owner:demo:${b.id}`
    const redisClient = createClient({ url: redisUrl })
    await redisClient.connect()
    try {
      const entry = await redisClient.get(owner)
      expect(entry).toMatch(/ \d+$/)
      b.close()
      await a.until(() => s2.metrics().peers === 0)
      // The entry comes back, as when the departure's removal from Redis is late or was lost.
      await redisClient.set(owner, String(entry), { expiration: { type: 'PX', value: 60_000 } })
      await redisClient.zAdd(`${redisPrefix}:hosts:demo`, { score: Date.now(), value: b.id })
    } finally {
      await redisClient.close()
    }
    expect(await a.call('signal', { to: b.id, data: 'anyone?' })).toEqual({
      ok: false,
      reason: 'unknown-peer',
    })
    expect(s2.metrics()['rejected.remote-unknown-peer']).toBe(1)
    expect(s1.metrics()['rejected.unknown-peer']).toBe(1)
    a.socket.emit('relay', { to: b.id, frame: new Uint8Array([1, 2, 3]) })
    expect(parseRelayError(await a.next('relay-error'))).toEqual({ to: b.id, reason: 'unknown-peer' })
    expect(s2.metrics()['relayErrors.remote-unknown-peer']).toBe(1)
  })

  it('an instance that falls silent: its nodes leave samples, and signals to them are refused at once', async () => {
    const sweepMs = 100
    const [s1, s2, { redisPrefix }] = await pair({ sweepMs })
    const a = track(await joined(s1.address, 'demo'))
    const b = track(await joined(s2.address, 'demo'))
    // A node of an instance that never speaks (killed before these started): its entries stay in Redis.
    const ghost = 'e'.repeat(40)
    const redisClient = createClient({ url: redisUrl })
    await redisClient.connect()
    try {
      await redisClient.set(`${redisPrefix}:owner:demo:${ghost}`, `gone.0123/abc ${Date.now()}`, {
        expiration: { type: 'PX', value: 60_000 },
      })
      await redisClient.zAdd(`${redisPrefix}:hosts:demo`, { score: Date.now(), value: ghost })
    } finally {
      await redisClient.close()
    }
    // Once a has been up three sweeps, only b, whose instance announces itself, is handed out.
    const sampled = async () => {
      const r = parsePeersAck(await a.call('peers', {}))
      return r?.ok ? r.peers.map((p) => p.id).sort() : []
    }
    let last: string[] = []
    const deadline = Date.now() + 5000
    while (Date.now() < deadline) {
      last = await sampled()
      if (last.length === 1) break
      await sleep(50)
    }
    expect(last).toEqual([b.id])
    const t0 = Date.now()
    expect(await a.call('signal', { to: ghost, data: 1 })).toEqual({ ok: false, reason: 'unknown-peer' })
    // At once: not after the 5 s an unanswered signal waits.
    expect(Date.now() - t0).toBeLessThan(2000)
    expect(await a.call('signal', { to: b.id, data: 2 })).toEqual({ ok: true })
    expect(await b.next('signal')).toEqual({ from: a.id, data: 2 })
    expect(s2.metrics().signalsRemote).toBe(1)
  })
})

/** Frame `i` of a run: its index in the first two bytes, then filler that depends on it. */
function numbered(i: number, size: number): Uint8Array {
  const f = new Uint8Array(size).fill((i * 7) & 255)
  f[0] = i & 255
  f[1] = i >> 8
  return f
}
const indexOf = (f: Uint8Array) => (f[0] as number) | ((f[1] as number) << 8)
/** Byte-wise equality of two lists of frames (expect's deep equality is far too slow on megabytes). */
const sameFrames = (xs: readonly (Uint8Array | undefined)[], ys: readonly (Uint8Array | undefined)[]) =>
  xs.length === ys.length &&
  xs.every((x, i) => {
    const y = ys[i]
    return x !== undefined && y !== undefined && Buffer.from(x).equals(Buffer.from(y))
  })

describe('relay across instances', () => {
  it('delivers frames in order both ways, including empty and largest frames', async () => {
    const [s1, s2] = await pair({ relayBytesPerSec: 16 * 1024 * 1024 })
    const a = track(await joined(s1.address, 'demo'))
    const b = track(await joined(s2.address, 'demo'))
    const n = 150
    const sizes = Array.from({ length: n }, (_, i) =>
      i === 0 ? 2 : i === 1 ? 65536 : 2 + ((i * 977) % 3000),
    )
    const toB = sizes.map((size, i) => numbered(i, size))
    const toA = sizes.map((size, i) => numbered(n - 1 - i, size))
    for (let i = 0; i < n; i++) {
      a.socket.emit('relay', { to: b.id, frame: toB[i] as Uint8Array })
      b.socket.emit('relay', { to: a.id, frame: toA[i] as Uint8Array })
    }
    a.socket.emit('relay', { to: b.id, frame: new Uint8Array(0) })
    await b.until(() => b.received('relay').length === n + 1, 10_000)
    await a.until(() => a.received('relay').length === n, 10_000)
    const atB = b.received('relay').map((p) => parseRelayDelivery(p))
    expect(atB.every((d) => d?.from === a.id)).toBe(true)
    expect(
      sameFrames(
        atB.map((d) => d?.frame),
        [...toB, new Uint8Array(0)],
      ),
    ).toBe(true)
    expect(
      sameFrames(
        a.received('relay').map((p) => parseRelayDelivery(p)?.frame),
        toA,
      ),
    ).toBe(true)
    expect(s1.metrics()).toMatchObject({ relayFrames: n + 1, relayFramesRemote: n })
    expect(s2.metrics()).toMatchObject({ relayFrames: n, relayFramesRemote: n + 1 })
    for (const s of [s1, s2]) {
      expect(Object.keys(s.metrics()).filter((k) => k.startsWith('relayErrors.'))).toEqual([])
    }
    expect(a.received('relay-error')).toEqual([])
    expect(b.received('relay-error')).toEqual([])
  })

  it('a target that stops reading: its instance holds at most congestionMaxBytes for it (frames and signals from another instance), drops the rest and tells the sender', async () => {
    const congestionMaxBytes = 256 * 1024
    const [s1, s2] = await pair({ congestionMaxBytes, relayBytesPerSec: 64 * 1024 * 1024 })
    const a = track(await joined(s1.address, 'demo'))
    const b = track(await joined(s2.address, 'demo'))
    const resume = pauseReading(b)
    const n = 400
    let peak = 0
    const watch = setInterval(() => {
      peak = Math.max(peak, s2.metrics().unsentBytesMax ?? Number.POSITIVE_INFINITY)
    }, 5)
    try {
      // 24 MB: more than the loopback TCP buffers take; the packet bound (256) would hold ~7.5 MB.
      for (let i = 0; i < n; i++) a.socket.emit('relay', { to: b.id, frame: numbered(i, 60 * 1024) })
      const handled = () => {
        const m = s2.metrics()
        return (m.relayFramesRemote ?? 0) + (m['relayErrors.congested-remote'] ?? 0)
      }
      await b.until(() => handled() === n, 20_000)
      // A signal from the other instance, while b's instance holds the bound: refused there.
      expect(await a.call('signal', { to: b.id, data: { sdp: 'x'.repeat(15_000) } })).toEqual({
        ok: false,
        reason: 'congested',
      })
    } finally {
      clearInterval(watch)
    }
    peak = Math.max(peak, s2.metrics().unsentBytesMax ?? Number.POSITIVE_INFINITY)
    const delivered = s2.metrics().relayFramesRemote ?? 0
    const dropped = s2.metrics()['relayErrors.congested-remote'] ?? 0
    // At most the bound, plus the one frame let through under it, plus pings and framing.
    expect(peak).toBeLessThanOrEqual(congestionMaxBytes + 60 * 1024 + 128 + 1024)
    expect(dropped).toBeGreaterThan(0)
    expect(s2.metrics()['rejected.congested-remote']).toBe(1)
    await a.until(() => a.received('relay-error').length === dropped, 10_000)
    expect(a.received('relay-error').every((e) => parseRelayError(e)?.reason === 'congested')).toBe(true)
    resume()
    await b.until(() => b.received('relay').length === delivered, 10_000)
    await b.until(() => s2.metrics().unsentBytesMax === 0, 5000)
    expect(await a.call('signal', { to: b.id, data: 1 })).toEqual({ ok: true })
  })

  it('a target that stops reading: its instance queues at most congestionMaxPackets, drops the rest, counts them and tells the sender', async () => {
    const congestionMaxPackets = 8
    const [s1, s2] = await pair({ congestionMaxPackets, relayBytesPerSec: 64 * 1024 * 1024 })
    const a = track(await joined(s1.address, 'demo'))
    const b = track(await joined(s2.address, 'demo'))
    const resume = pauseReading(b)
    const n = 380
    const frames = Array.from({ length: n }, (_, i) => numbered(i, 60 * 1024))
    let peak = 0
    const watch = setInterval(() => {
      peak = Math.max(peak, s2.metrics().unsentPacketsMax ?? 0)
    }, 5)
    try {
      for (const frame of frames) a.socket.emit('relay', { to: b.id, frame })
      const handled = () => {
        const m = s2.metrics()
        return (m.relayFramesRemote ?? 0) + (m['relayErrors.congested-remote'] ?? 0)
      }
      await b.until(() => handled() === n, 20_000)
    } finally {
      clearInterval(watch)
    }
    const m2 = s2.metrics()
    peak = Math.max(peak, m2.unsentPacketsMax ?? 0)
    const delivered = m2.relayFramesRemote ?? 0
    const dropped = m2['relayErrors.congested-remote'] ?? 0
    // Each relay emit is two engine.io packets (the event and its binary attachment); one more for a ping.
    expect(peak).toBeLessThanOrEqual(congestionMaxPackets + 3)
    // Here ~70 frames fit in the loopback TCP buffers and the queue, and ~310 are dropped; how many fit
    // depends on the kernel's buffer sizes, so only "some" is asserted.
    expect(dropped).toBeGreaterThan(0)
    expect(delivered + dropped).toBe(n)
    // The sender's instance forwarded everything (its quota allowed it) and dropped nothing itself.
    expect(s1.metrics()).toMatchObject({ relayFrames: n })
    expect(s1.metrics()['relayErrors.congested-remote']).toBeUndefined()
    const prom = await (await fetch(`${s2.address}/metrics`)).text()
    expect(prom).toContain(`weft_relay_dropped_total{reason="congested-remote"} ${dropped}`)
    expect(prom).toContain(`weft_relay_remote_frames_total ${delivered}`)
    // The sender hears of the drops, as it would from a congested target on its own instance.
    await a.until(() => a.received('relay-error').length === dropped, 10_000)
    expect(a.received('relay-error').map((e) => parseRelayError(e))).toEqual(
      Array.from({ length: dropped }, () => ({ to: b.id, reason: 'congested' })),
    )
    expect(a.socket.connected).toBe(true)

    // Reading again, b gets every frame its instance accepted, intact and in order, and the queue drains.
    resume()
    await b.until(() => b.received('relay').length === delivered, 10_000)
    const got = b.received('relay').map((p) => parseRelayDelivery(p))
    const idx = got.map((d) => (d ? indexOf(d.frame) : -1))
    expect(idx.every((x, i) => x >= 0 && (i === 0 || x > (idx[i - 1] as number)))).toBe(true)
    expect(
      sameFrames(
        got.map((d) => d?.frame),
        idx.map((i) => frames[i]),
      ),
    ).toBe(true)
    await b.until(() => s2.metrics().unsentPacketsMax === 0, 5000)
    a.socket.emit('relay', { to: b.id, frame: new Uint8Array([1, 2, 3]) })
    await b.until(() => b.received('relay').length === delivered + 1)
    expect(parseRelayDelivery(b.received('relay')[delivered])).toEqual({
      from: a.id,
      frame: new Uint8Array([1, 2, 3]),
    })
  })
})
