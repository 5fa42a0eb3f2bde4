/**
 * Several instances behind one Redis: a real redis-server, started here on a
 * free port and stopped afterwards, and two (or three) signal servers sharing
 * it. Includes the cross-instance relay: order, the congestion check on the
 * target's instance, a frame going to the target's instance only, the
 * instances' server list, and forged, altered, redirected and replayed
 * inter-server messages published on Redis.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { createClient } from 'redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parsePeersAck, parseRelayDelivery, parseRelayError } from '../shared/signal-events.ts'
import { createSignalServer, type SignalServer, type SignalServerOptions } from './index.ts'
import { createInterServerCodec, type InterServerMessage } from './inter-server.ts'
import { createRedisHostCache, type RedisClient } from './registry-redis.ts'
import { connect, joined, type TestClient } from './test-kit.ts'

let redis: ChildProcess | null = null
let redisUrl = ''
const servers: SignalServer[] = []
const clients: TestClient[] = []

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Whether a listener can bind 127.0.0.1:`port` right now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/**
 * A free port for redis-server, below the kernel's ephemeral range. A port from listen(0) is in
 * that range, and between our check and redis-server's bind the kernel could hand it out again:
 * to another test file's listen(0), or as the local end of any outgoing connection (the suite
 * opens hundreds). Nothing here binds a fixed port below the range.
 */
async function freePort(): Promise<number> {
  let low = 32_768
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
  } catch {}
  const [from, to] = low > 11_000 ? [10_000, low - 1] : [1024, low - 1]
  for (let i = 0; i < 100; i++) {
    const port = from + Math.floor(Math.random() * (to - from + 1))
    if (await canListen(port)) return port
  }
  throw new Error(`no free port in ${from}-${to}`)
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
  let exited: number | null | undefined
  redis.once('exit', (code) => {
    exited = code
  })
  redisUrl = `redis://127.0.0.1:${port}`
  const probe = createClient({ url: redisUrl })
  probe.on('error', () => {})
  const deadline = Date.now() + 20_000
  for (;;) {
    if (exited !== undefined)
      throw new Error(`redis-server exited (code ${exited}) before listening on ${port}`)
    try {
      await probe.connect()
      break
    } catch (err) {
      if (Date.now() > deadline) throw err
      await sleep(50)
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

const redisSecret = 'the instances share this secret'

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

/** Every message published on the instances' channels, as bytes, and what a holder of the secret reads in it. */
async function spy(redisPrefix: string) {
  const client = createClient({ url: redisUrl })
  await client.connect()
  // A codec with the instances' secret, to read what was sent (tests only; it keeps its own seqs).
  const reader = createInterServerCodec(redisSecret, 'spy.0', {
    signalMaxBytes: 65536,
    relayFrameMaxBytes: 65536,
  })
  const seen: { channel: string; bytes: Buffer; message: InterServerMessage | null }[] = []
  await client.pSubscribe(
    `${redisPrefix}:x:*`,
    (bytes: Buffer, raw: Buffer) => {
      const channel = raw.toString()
      const r = reader.open(channel, bytes, Date.now())
      seen.push({ channel, bytes, message: typeof r === 'string' ? null : r.message })
    },
    true,
  )
  return { seen, close: () => client.close() }
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
    // Expiry runs on Redis's clock, so this test runs on real time: a TTL long enough that a loaded
    // machine's pauses do not decide what expires.
    const ttlMs = 1000
    const cache = createRedisHostCache(client, { prefix, ttlMs, maxPerNetwork: 50 })
    for (let i = 0; i < 60; i++) await cache.add('n', id(i), `s${i}`, 1000 + i)
    expect(await client.zCard(`${prefix}:hosts:n`)).toBe(50)
    const s = await cache.sample('n', 16, id(59), 0)
    expect(s).toHaveLength(16)
    expect(new Set(s.map((p) => p.id)).size).toBe(16)
    expect(s.some((p) => p.id === id(59))).toBe(false)
    expect(await cache.remove('n', id(20), 'wrong')).toBe(false)
    expect(await cache.lookup('n', id(20), 0)).toEqual({ id: id(20), lastSeen: 1020, session: 's20' })
    expect(await cache.remove('n', id(20), 's20')).toBe(true)
    expect(await cache.lookup('n', id(20), 0)).toBeNull()
    await cache.touch('n', id(30), 5000)
    expect(await cache.lookup('n', id(30), 0)).toEqual({ id: id(30), lastSeen: 5000, session: 's30' })
    // id(40) is kept alive, as the server's sweep does, at a tenth of the TTL; the others are left to
    // expire. Wait (generously) until they have: only the kept-alive entry is still live, and a sample
    // meets the dead ones and removes them. Were keep-alive broken, id(40) would expire with the rest.
    let keeping = true
    const keeper = (async () => {
      while (keeping) {
        await cache.keepAlive([{ network: 'n', id: id(40) }], 0)
        await sleep(ttlMs / 10)
      }
    })()
    let live: unknown[] = []
    try {
      const deadline = Date.now() + 20 * ttlMs
      for (;;) {
        live = await cache.sample('n', 64, null, 0)
        if (live.length <= 1 || Date.now() > deadline) break
        await sleep(50)
      }
    } finally {
      keeping = false
      await keeper
    }
    expect(live).toEqual([{ id: id(40), lastSeen: 1040 }])
    expect(await client.zCard(`${prefix}:hosts:n`)).toBeLessThanOrEqual(50 - 2 * 16 + 1)
  })
})

/** Stop a client from reading: its TCP window fills and the server's write buffer for it grows. */
function pauseReading(c: TestClient): () => void {
  const raw = (
    c.socket.io.engine.transport as unknown as { ws: { _socket: { pause(): void; resume(): void } } }
  ).ws._socket
  raw.pause()
  return () => raw.resume()
}

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

  it('a frame goes to the target instance only, and forged, altered, redirected or replayed messages are refused and counted', async () => {
    const redisPrefix = `t${randomBytes(4).toString('hex')}`
    const make = () =>
      createSignalServer({
        port: 0,
        host: '127.0.0.1',
        redisUrl,
        redisSecret,
        redisPrefix,
        relayFrameMaxBytes: 1024,
      })
    const [s1, s2, s3] = await Promise.all([make(), make(), make()])
    servers.push(s1, s2, s3)
    const watch = await spy(redisPrefix)
    const pub = createClient({ url: redisUrl })
    await pub.connect()
    try {
      const a = track(await joined(s1.address, 'demo'))
      const b = track(await joined(s2.address, 'demo'))
      a.socket.emit('relay', { to: b.id, frame: new Uint8Array([9, 9]) })
      await b.until(() => b.received('relay').length === 1)
      // The frame went to b's instance's inbox, and only there: s3 never heard it.
      await b.until(() => watch.seen.some((m) => m.message?.t === 'relay'))
      const relays = watch.seen.filter((m) => m.message?.t === 'relay')
      expect(relays).toHaveLength(1)
      const inbox = relays[0]?.channel as string
      expect(inbox).not.toBe(`${redisPrefix}:x:all`)
      const genuine = relays[0]?.bytes as Buffer
      expect(s3.metrics().relayFramesRemote).toBe(0)
      expect(s2.metrics().relayFramesRemote).toBe(1)

      // 1. The old attack: a forged socket.io-adapter serverSideEmit. Nobody listens to that channel any more.
      await pub.publish(
        `${redisPrefix}-io-request#/#`,
        JSON.stringify({
          uid: 'forger',
          type: 6,
          data: ['weft:relay', { network: 'demo', to: b.id, from: a.id, frame: 'CQk=' }],
        }),
      )
      // 2. Forged messages in our format, sealed with a wrong secret: a frame "from" a, and a replace kicking b.
      const forger = createInterServerCodec('not the secret, but as long', 'forger.1', {
        signalMaxBytes: 1024,
        relayFrameMaxBytes: 1024,
      })
      const now = Date.now()
      await pub.publish(
        inbox,
        forger.seal(
          inbox,
          { t: 'relay', network: 'demo', to: b.id, from: a.id, frame: new Uint8Array([6, 6, 6]) },
          now,
        ),
      )
      const all = `${redisPrefix}:x:all`
      await pub.publish(
        all,
        forger.seal(all, { t: 'replace', network: 'demo', id: b.id, session: 'forger.1/x' }, now),
      )
      await pub.publish(all, forger.seal(all, { t: 'servers', urls: ['https://evil.example'] }, now))
      // 3. The genuine message, played again, and redirected to the channel every instance hears.
      await pub.publish(inbox, genuine)
      await pub.publish(all, genuine)
      // 4. Junk and an oversized blob.
      await pub.publish(inbox, Buffer.from('hello'))
      await pub.publish(inbox, Buffer.alloc(200_000))

      // Redis delivers in publish order: once the last one is counted, all were heard.
      await b.until(() => s2.metrics()['interServer.too-large'] === 2, 10_000)
      expect(s2.metrics()).toMatchObject({
        'interServer.bad-mac': 4,
        'interServer.replay': 1,
        'interServer.too-large': 2,
        relayFramesRemote: 1,
      })
      for (const s of [s1, s3]) await b.until(() => (s.metrics()['interServer.bad-mac'] ?? 0) === 3, 10_000)
      // Nothing got through: b has the one genuine frame, nobody was kicked, no evil server is listed.
      expect(b.received('relay').map((p) => parseRelayDelivery(p))).toEqual([
        { from: a.id, frame: new Uint8Array([9, 9]) },
      ])
      expect(b.received('replaced')).toEqual([])
      expect([s1.metrics().peers, s2.metrics().peers]).toEqual([1, 1])
      const sample = parsePeersAck(await b.call('peers', {}))
      expect(sample?.ok && sample.servers).toEqual([])
      const prom = await (await fetch(`${s2.address}/metrics`)).text()
      expect(prom).toContain('weft_inter_server_refused_total{reason="bad-mac"} 4')
      expect(prom).toContain('weft_inter_server_refused_total{reason="replay"} 1')
    } finally {
      await pub.close()
      await watch.close()
    }
  })

  it('instances list each other by their announced public URLs, and registrations bind to them', async () => {
    const redisPrefix = `t${randomBytes(4).toString('hex')}`
    const make = (name: string) =>
      createSignalServer({
        port: 0,
        host: '127.0.0.1',
        redisUrl,
        redisSecret,
        redisPrefix,
        publicUrls: [`https://${name}.example`],
        servers: ['https://configured.example'],
        sweepMs: 200,
      })
    const [s1, s2] = await Promise.all([make('one'), make('two')])
    servers.push(s1, s2)
    // Clients reach s1 as one.example (a proxy in front would pass that Host on).
    const viaOne = { headers: { host: 'one.example' }, host: 'one.example' }
    const a = track(await joined(s1.address, 'demo', viaOne))
    await a.until(() => {
      const m = s1.metrics()
      return m.peers === 1
    })
    let listed: string[] = []
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const ack = parsePeersAck(await a.call('peers', {}))
      listed = ack?.ok ? ack.servers : []
      if (listed.includes('https://two.example')) break
      await sleep(100)
    }
    // Configured first, then the other instance; never s1 itself.
    expect(listed).toEqual(['https://configured.example', 'https://two.example'])
    // s2 accepts only registrations signed for two.example: one signed for one.example is refused.
    const wrong = track(await connect(s2.address, viaOne))
    expect(await wrong.register('demo')).toEqual({ ok: false, reason: 'wrong-server' })
    expect(s2.metrics()['rejected.wrong-server']).toBe(1)
  })
})
