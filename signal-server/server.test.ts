import { createHmac } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { get as httpGet, type IncomingHttpHeaders } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { nodeIdOf } from '../shared/identity/keys.ts'
import {
  parsePeersAck,
  parseRegisterAck,
  parseRejected,
  parseRelayDelivery,
  parseRelayError,
  parseSignalAck,
  parseSignalDelivery,
} from '../shared/signal-events.ts'
import { serverFixture } from '../test/server-fixture.ts'
import { connect, joined } from '../test/signal-kit.ts'

const { start, track } = serverFixture()
const dirs: string[] = []

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('registration', () => {
  it('accepts a good signature and derives the id from the key', async () => {
    const s = await start()
    const c = track(await connect(s.address))
    expect((await c.nonce).length).toBe(32)
    const ack = parseRegisterAck(await c.register('demo'))
    expect(ack).toEqual({
      ok: true,
      id: await nodeIdOf(c.identity.publicKey),
      peers: [],
      servers: [],
      quietSignals: true,
    })
    expect(s.metrics().peers).toBe(1)
    const health = await (await fetch(`${s.address}/healthz`)).json()
    expect(health).toMatchObject({ ok: true, peers: 1, networks: 1 })
  })

  it('refuses a bad signature, then hangs up', async () => {
    const s = await start()
    const c = track(await connect(s.address))
    const nonce = await c.nonce
    const signature = await c.identity.sign(nonce) // not the registration message
    const ack = await c.call('register', { publicKey: c.identity.publicKey, network: 'demo', signature })
    expect(parseRegisterAck(ack)).toEqual({ ok: false, reason: 'bad-signature' })
    await c.next('disconnect')
    expect(s.metrics()['rejected.bad-signature']).toBe(1)
    expect(s.metrics().peers).toBe(0)
  })

  it('refuses a signature made for another server (host binding)', async () => {
    const s = await start()
    const c = track(await connect(s.address, { host: 'evil.example:443' }))
    expect(parseRegisterAck(await c.register('demo'))).toEqual({ ok: false, reason: 'bad-signature' })
  })

  it('refuses malformed keys and payloads with reason codes', async () => {
    const s = await start()
    const cases: [unknown, string][] = [
      [{ publicKey: new Uint8Array(31), network: 'demo', signature: new Uint8Array(64) }, 'bad-key'],
      [{ publicKey: new Uint8Array(32), network: 'demo', signature: new Uint8Array(64) }, 'bad-key'], // small order
      [{ publicKey: 'abc', network: 'demo', signature: new Uint8Array(64) }, 'bad-payload'],
      [
        { publicKey: new Uint8Array(32).fill(7), network: 'no spaces', signature: new Uint8Array(64) },
        'bad-payload',
      ],
      [
        { publicKey: new Uint8Array(32).fill(7), network: 'demo', signature: new Uint8Array(10) },
        'bad-signature',
      ],
      ['register me', 'bad-payload'],
    ]
    for (const [payload, reason] of cases) {
      const c = track(await connect(s.address))
      await c.nonce
      expect(parseRegisterAck(await c.call('register', payload))).toEqual({ ok: false, reason })
    }
  })

  it('refuses a socket that does not register in time', async () => {
    const s = await start({ registerTimeoutMs: 150 })
    const c = track(await connect(s.address))
    expect(parseRejected(await c.next('rejected'))).toEqual({ reason: 'timeout' })
    await c.next('disconnect')
    expect(s.metrics()['rejected.timeout']).toBe(1)
  })

  it('refuses registrations beyond maxPeers with server-full', async () => {
    const s = await start({ maxPeers: 2 })
    track(await joined(s.address, 'demo'))
    track(await joined(s.address, 'other'))
    const c = track(await connect(s.address))
    expect(parseRegisterAck(await c.register('demo'))).toEqual({ ok: false, reason: 'server-full' })
  })

  it('a second registration of the same id replaces the first socket', async () => {
    const s = await start()
    const first = track(await joined(s.address, 'demo'))
    const peer = track(await joined(s.address, 'demo'))
    const second = track(await joined(s.address, 'demo', { identity: first.identity }))
    expect(second.id).toBe(first.id)
    expect(await first.next('replaced')).toEqual({ reason: 'replaced' })
    await first.next('disconnect')
    expect(s.metrics()).toMatchObject({ peers: 2, replaced: 1 })
    // Signals for that id now reach the new socket, and the old socket's departure did not unregister it.
    expect(parseSignalAck(await peer.call('signal', { to: first.id, data: 'hi' }))).toEqual({ ok: true })
    expect(await second.next('signal')).toEqual({ from: peer.id, data: 'hi' })
    expect(first.received('signal')).toEqual([])
  })

  it('a socket cannot register twice', async () => {
    const s = await start()
    const c = track(await joined(s.address, 'demo'))
    expect(parseRegisterAck(await c.register('demo'))).toEqual({ ok: false, reason: 'already-registered' })
    expect(s.metrics().peers).toBe(1)
  })
})

describe('hostile input', () => {
  it('rate-limits events per socket, then drops a socket that keeps at it', async () => {
    const s = await start({ eventsPerSec: 10, eventBurst: 20, abuseBurst: 5, abusePerSec: 1 })
    const a = track(await joined(s.address, 'demo'))
    const answers = await Promise.all(
      Array.from({ length: 30 }, () =>
        a.call('peers', {}, 2000).catch(() => ({ ok: false, reason: 'no answer' })),
      ),
    )
    // The burst (20, one of which paid for register) passes, the rest are refused with a reason
    // until the sixth strike (abuseBurst 5) gets the socket dropped (some accepted requests were
    // still being answered then, so they get nothing).
    // (On a slow machine a token may refill meanwhile, hence the ranges.)
    const ok = answers.filter((x) => (x as { ok: boolean }).ok).length
    const limited = answers.filter((x) => (x as { reason?: string }).reason === 'rate-limited').length
    expect(ok).toBeGreaterThan(0)
    expect(ok).toBeLessThanOrEqual(21)
    expect(limited).toBeGreaterThanOrEqual(6)
    expect(parseRejected(await a.next('rejected'))).toEqual({ reason: 'abuse' })
    await a.next('disconnect')
    expect(s.metrics()).toMatchObject({ 'rejected.rate-limited': limited, 'kicked.abuse': 1, peers: 0 })
  })

  it('closes the connection of a client that sends more than maxHttpBufferSize', async () => {
    const s = await start({ maxHttpBufferSize: 4096 })
    const a = track(await joined(s.address, 'demo'))
    const b = track(await joined(s.address, 'demo'))
    a.raw.emit('signal', { to: b.id, data: 'x'.repeat(10_000) })
    await a.next('disconnect')
    await b.until(() => s.metrics().peers === 1)
    // ws refused the frame from its header (its payload never read), and the close is counted.
    expect(s.metrics()['packetsRefused.message-too-large']).toBe(1)
  })
})

describe('bootstrap', () => {
  it('samples live peers of the same network, never the caller, at most sampleSize', async () => {
    const s = await start({ sampleSize: 4 })
    const a = track(await joined(s.address, 'demo'))
    const others = await Promise.all(Array.from({ length: 5 }, () => joined(s.address, 'demo')))
    // The sixth joins after the others are registered (joined concurrently, any of them could be last).
    others.push(await joined(s.address, 'demo'))
    others.forEach(track)
    const strangers = await Promise.all(Array.from({ length: 3 }, () => joined(s.address, 'elsewhere')))
    strangers.forEach(track)
    const ids = new Set(others.map((o) => o.id))
    const ack = parsePeersAck(await a.call('peers', {}))
    expect(ack?.ok).toBe(true)
    if (!ack?.ok) return
    expect(ack.peers).toHaveLength(4)
    for (const p of ack.peers) {
      expect(ids.has(p.id)).toBe(true)
      expect(p.lastSeen).toBeGreaterThan(Date.now() - 60_000)
    }
    const big = parsePeersAck(await a.call('peers', { max: 50 }))
    expect(big?.ok && big.peers.map((p) => p.id).sort()).toEqual([...ids].sort())
    // The last joiner's register ack already carried a sample of earlier ones.
    const last = others.at(-1)!
    expect(last.ack.peers.length).toBe(4)
    expect(last.ack.peers.some((p) => p.id === last.id)).toBe(false)
    // A departed peer leaves the samples.
    a.close()
    await others[0]!.until(() => s.metrics().peers === 9)
    const after = parsePeersAck(await others[0]!.call('peers', { max: 50 }))
    expect(after?.ok && after.peers.some((p) => p.id === a.id)).toBe(false)
  })

  it('hands out only the servers the operator configured: a client naming servers poisons nothing', async () => {
    const s = await start({ servers: ['https://signal.example.org'] })
    // The attack: one throw-away registration naming 16 URLs (older clients sent a `servers` field).
    const evil = Array.from({ length: 16 }, (_, i) => `https://evil${i}.example`)
    const a = track(await connect(s.address))
    expect(await a.register('demo', { servers: evil })).toMatchObject({
      ok: true,
      servers: ['https://signal.example.org'],
    })
    const b = track(await joined(s.address, 'demo'))
    expect(b.ack.servers).toEqual(['https://signal.example.org'])
    const p = parsePeersAck(await b.call('peers', {}))
    expect(p?.ok && p.servers).toEqual(['https://signal.example.org'])
  })
})

describe('ICE servers', () => {
  it('hands the configured STUN/TURN servers to each node, with TURN credentials made for its id, fresh in each peers answer', async () => {
    const secret = 'correct-horse-battery-staple'
    const s = await start({
      iceServers: [
        { urls: 'stun:stun.example.org:3478' },
        { urls: ['turn:turn.example.org:3478?transport=udp'] },
      ],
      turnSecret: secret,
      turnCredentialTtlS: 3600,
    })
    const before = Math.floor(Date.now() / 1000)
    const a = track(await joined(s.address, 'demo'))
    const ack = parseRegisterAck(a.ack)
    if (!ack?.ok) throw new Error('not registered')
    expect(ack.iceTtlMs).toBe(3_600_000)
    expect(ack.iceServers?.[0]).toEqual({ urls: ['stun:stun.example.org:3478'] })
    const turn = ack.iceServers?.[1]
    expect(turn?.urls).toEqual(['turn:turn.example.org:3478?transport=udp'])
    const [expiry, id] = (turn?.username ?? '').split(':')
    expect(id).toBe(a.id)
    expect(Number(expiry)).toBeGreaterThanOrEqual(before + 3600)
    expect(Number(expiry)).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 3600)
    expect(turn?.credential).toBe(
      createHmac('sha1', secret)
        .update(turn?.username ?? '')
        .digest('base64'),
    )
    // A node renews its credentials with `peers { max: 0 }`.
    const p = parsePeersAck(await a.call('peers', { max: 0 }))
    expect(p?.ok && p.peers).toEqual([])
    expect(p?.ok && p.iceServers?.[1]?.username).toMatch(new RegExp(`^\\d+:${a.id}$`))
  })

  it('hands out none when none are configured', async () => {
    const s = await start()
    const a = track(await joined(s.address, 'demo'))
    expect(a.ack).not.toHaveProperty('iceServers')
  })
})

describe('signal relay', () => {
  it('delivers signals within a network and answers unknown targets with an error', async () => {
    const s = await start()
    const a = track(await joined(s.address, 'demo'))
    const b = track(await joined(s.address, 'demo'))
    const data = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n', n: [1, 2.5, null, true] }
    expect(parseSignalAck(await a.call('signal', { to: b.id, data }))).toEqual({ ok: true })
    expect(parseSignalDelivery(await b.next('signal'))).toEqual({ from: a.id, data })
    const ghost = '0'.repeat(40)
    expect(await a.call('signal', { to: ghost, data: 1 })).toEqual({ ok: false, reason: 'unknown-peer' })
    b.close()
    await a.until(() => s.metrics().peers === 1)
    expect(await a.call('signal', { to: b.id, data: 1 })).toEqual({ ok: false, reason: 'unknown-peer' })
    expect(s.metrics().signals).toBe(1)
  })

  it('bounds signal size and refuses bad payloads and unregistered senders', async () => {
    const s = await start({ signalMaxBytes: 1000 })
    const a = track(await joined(s.address, 'demo'))
    const b = track(await joined(s.address, 'demo'))
    expect(await a.call('signal', { to: b.id, data: 'x'.repeat(998) })).toEqual({ ok: true })
    expect(await a.call('signal', { to: b.id, data: 'x'.repeat(999) })).toEqual({
      ok: false,
      reason: 'too-large',
    })
    expect(await a.call('signal', { to: 'B'.repeat(40), data: 1 })).toEqual({
      ok: false,
      reason: 'bad-payload',
    })
    const u = track(await connect(s.address))
    expect(await u.call('signal', { to: b.id, data: 1 })).toEqual({ ok: false, reason: 'not-registered' })
    expect(await u.call('nonsense', {})).toEqual({ ok: false, reason: 'unknown-event' })
    expect(b.received('signal')).toHaveLength(1)
  })

  it('different networks never mix', async () => {
    const s = await start()
    const a = track(await joined(s.address, 'red'))
    const b = track(await joined(s.address, 'blue'))
    const a2 = track(await joined(s.address, 'red'))
    expect(await a.call('signal', { to: b.id, data: 1 })).toEqual({ ok: false, reason: 'unknown-peer' })
    a.socket.emit('relay', { to: b.id, frame: new Uint8Array([1]) })
    expect(parseRelayError(await a.next('relay-error'))).toEqual({ to: b.id, reason: 'unknown-peer' })
    const pa = parsePeersAck(await a.call('peers', { max: 64 }))
    expect(pa?.ok && pa.peers.map((p) => p.id)).toEqual([a2.id])
    const pb = parsePeersAck(await b.call('peers', { max: 64 }))
    expect(pb?.ok && pb.peers).toEqual([])
    expect(b.received('signal')).toEqual([])
    expect(b.received('relay')).toEqual([])
    // The same key may be registered in two networks at once: separate entries.
    const b2 = track(await joined(s.address, 'red', { identity: b.identity }))
    expect(b2.id).toBe(b.id)
    expect(b.received('replaced')).toEqual([])
  })
})

describe('traffic relay', () => {
  it('relays binary frames between registered nodes', async () => {
    const s = await start()
    const a = track(await joined(s.address, 'demo'))
    const b = track(await joined(s.address, 'demo'))
    const frames = [new Uint8Array([1, 2, 3]), new Uint8Array(65536).fill(9), new Uint8Array(0)]
    for (const frame of frames) a.socket.emit('relay', { to: b.id, frame })
    await b.until(() => b.received('relay').length === 3)
    const got = b.received('relay').map((p) => parseRelayDelivery(p))
    expect(got.map((g) => g?.from)).toEqual([a.id, a.id, a.id])
    expect(got.map((g) => g?.frame)).toEqual(frames)
    expect(s.metrics()).toMatchObject({ relayFrames: 3, relayBytes: 65539 })
    a.socket.emit('relay', { to: b.id, frame: new Uint8Array(65537) })
    expect(await a.next('relay-error')).toEqual({ to: b.id, reason: 'too-large' })
  })

  it('enforces the byte quota: excess frames are refused with quota, the allowed ones arrive', async () => {
    const s = await start({ relayBytesPerSec: 64 * 1024 })
    const a = track(await joined(s.address, 'demo'))
    const b = track(await joined(s.address, 'demo'))
    const n = 40
    const t0 = Date.now()
    for (let i = 0; i < n; i++) {
      const frame = new Uint8Array(8 * 1024)
      frame[0] = i
      a.socket.emit('relay', { to: b.id, frame })
    }
    await a.until(() => a.received('relay-error').length + b.received('relay').length === n, 10_000)
    const elapsedS = (Date.now() - t0) / 1000
    const refused = a.received('relay-error')
    const arrived = b.received('relay').map((p) => parseRelayDelivery(p)!.frame[0])
    expect(refused.every((e) => parseRelayError(e)?.reason === 'quota')).toBe(true)
    // Burst of 64 KiB = 7 frames of 8 KiB + 32, plus what refilled (64 KiB/s) while they arrived.
    expect(arrived.length).toBeGreaterThanOrEqual(7)
    expect(arrived.length).toBeLessThanOrEqual(7 + Math.ceil(elapsedS * 8))
    expect(arrived.length).toBeLessThan(n)
    expect(refused.length).toBe(n - arrived.length)
    // The frames that were let through arrive in order, starting with the first.
    expect(arrived).toEqual([...arrived].sort((x, y) => (x ?? 0) - (y ?? 0)))
    expect(arrived[0]).toBe(0)
    expect(s.metrics()['relayErrors.quota']).toBe(refused.length)
    // Once the bucket has refilled by a frame's cost (twice the time that takes at 64 KiB/s: ~250 ms), one more goes.
    await new Promise((r) => setTimeout(r, (2 * (8 * 1024 + 32) * 1000) / (64 * 1024)))
    a.socket.emit('relay', { to: b.id, frame: new Uint8Array(8 * 1024) })
    await b.until(() => b.received('relay').length === arrived.length + 1)
  })

  it('drops frames for a congested target instead of queueing them', async () => {
    const s = await start({ congestionMaxPackets: 4, relayBytesPerSec: 64 * 1024 * 1024 })
    const a = track(await joined(s.address, 'demo'))
    const b = track(await joined(s.address, 'demo'))
    // Stop b from reading: its TCP window fills and the server's write buffer for it grows.
    const raw = (b.socket.io.engine.transport as unknown as { ws: { _socket: { pause(): void } } }).ws
    raw._socket.pause()
    const frame = new Uint8Array(60 * 1024)
    const t0 = Date.now()
    for (let i = 0; i < 400; i++) a.socket.emit('relay', { to: b.id, frame })
    await a.until(
      () => a.received('relay-error').some((e) => parseRelayError(e)?.reason === 'congested'),
      10_000,
    )
    expect(s.metrics()['relayErrors.congested']).toBeGreaterThan(0)
    expect(Date.now() - t0).toBeLessThan(5000)
  })
})

describe('http', () => {
  it('serves healthz, metrics, and the built demo with content types', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-static-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>demo</title>')
    writeFileSync(join(dir, 'weft.js'), 'var Weft = {}')
    writeFileSync(join(dir, 'weft.mjs'), 'export {}')
    writeFileSync(join(dir, 'app.css'), 'body{}')
    const s = await start({ staticDir: dir })
    const a = track(await joined(s.address, 'demo'))
    track(await joined(s.address, 'demo'))
    await a.call('nonsense', 1)
    const get = (p: string) => fetch(`${s.address}${p}`)
    const root = await get('/')
    expect(root.headers.get('content-type')).toMatch(/^text\/html/)
    expect(await root.text()).toContain('<title>demo</title>')
    expect((await get('/weft.js')).headers.get('content-type')).toMatch(/^text\/javascript/)
    expect((await get('/weft.mjs')).headers.get('content-type')).toMatch(/^text\/javascript/)
    expect((await get('/app.css')).headers.get('content-type')).toMatch(/^text\/css/)
    expect((await get('/weft.js')).headers.get('access-control-allow-origin')).toBe('*')
    expect((await get('/nope.js')).status).toBe(404)
    expect((await get('/..%2f..%2fetc%2fpasswd')).status).toBe(404)
    const health = await get('/healthz')
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({
      ok: true,
      peers: 2,
      networks: 1,
      instance: expect.any(String),
    })
    const metrics = await (await get('/metrics')).text()
    expect(metrics).toContain('weft_peers{network="demo"} 2')
    expect(metrics).toContain('weft_signals_total 0')
    expect(metrics).toContain('weft_relay_bytes_total 0')
    expect(metrics).toContain('weft_rejected_total{reason="unknown-event"} 1')
    expect(metrics).toMatch(/process_resident_memory_bytes \d+/)
  })

  it("serves an app's folder with weft's bundles beside it (bundleDir), the app's own first", async () => {
    const app = mkdtempSync(join(tmpdir(), 'weft-app-'))
    const web = mkdtempSync(join(tmpdir(), 'weft-web-'))
    dirs.push(app, web)
    writeFileSync(join(app, 'index.html'), '<!doctype html><title>my app</title>')
    writeFileSync(join(app, 'app.js'), 'import "/weft.mjs"')
    writeFileSync(join(web, 'index.html'), '<!doctype html><title>demo</title>')
    writeFileSync(join(web, 'embed.html'), '<!doctype html><title>embed</title>')
    writeFileSync(join(web, 'weft.mjs'), 'export const from = "bundleDir"')
    writeFileSync(join(web, 'weft.mjs.map'), '{}')
    writeFileSync(join(web, 'weft.js'), 'var Weft = {}')
    const s = await start({ staticDir: app, bundleDir: web })
    const get = (p: string) => fetch(`${s.address}${p}`)
    expect(await (await get('/')).text()).toContain('my app')
    expect(await (await get('/app.js')).text()).toBe('import "/weft.mjs"')
    const mjs = await get('/weft.mjs')
    expect(mjs.headers.get('content-type')).toMatch(/^text\/javascript/)
    expect(await mjs.text()).toBe('export const from = "bundleDir"')
    expect((await get('/weft.mjs.map')).status).toBe(200)
    expect((await get('/weft.js')).status).toBe(200)
    // Only the bundles: weft's demo and other files stay hidden behind an app's folder.
    expect((await get('/embed.html')).status).toBe(404)
    expect((await get('/index.html')).status).toBe(200)
    expect(await (await get('/index.html')).text()).toContain('my app')
    // An app that ships its own weft.mjs gets its own.
    writeFileSync(join(app, 'weft.mjs'), 'export const from = "app"')
    expect(await (await get('/weft.mjs')).text()).toBe('export const from = "app"')
  })

  it('sends the precompressed copy the browser accepts, with ETags, 304s and immutable hashed assets', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-static-'))
    dirs.push(dir)
    const js = 'var Weft = {};'.repeat(200)
    writeFileSync(join(dir, 'weft.js'), js)
    writeFileSync(join(dir, 'weft.js.br'), brotliCompressSync(js))
    writeFileSync(join(dir, 'weft.js.gz'), gzipSync(js))
    writeFileSync(join(dir, 'plain.txt'), 'no compressed copy')
    mkdirSync(join(dir, 'assets'))
    writeFileSync(join(dir, 'assets', 'index-Cd8xsEG5.js'), 'console.log(1)')
    const s = await start({ staticDir: dir })
    const get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
        httpGet(`${s.address}${path}`, { headers }, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          )
        }).on('error', reject)
      })

    const br = await get('/weft.js', { 'accept-encoding': 'gzip, deflate, br' })
    expect(br.headers['content-encoding']).toBe('br')
    expect(br.headers.vary).toBe('Accept-Encoding')
    expect(br.headers['cache-control']).toBe('no-cache')
    expect(Number(br.headers['content-length'])).toBe(br.body.length)
    expect(brotliDecompressSync(br.body).toString()).toBe(js)
    const gz = await get('/weft.js', { 'accept-encoding': 'gzip' })
    expect(gz.headers['content-encoding']).toBe('gzip')
    expect(gunzipSync(gz.body).toString()).toBe(js)
    // br refused by q=0: gzip instead.
    expect((await get('/weft.js', { 'accept-encoding': 'br;q=0, gzip' })).headers['content-encoding']).toBe(
      'gzip',
    )
    const plain = await get('/weft.js')
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.body.toString()).toBe(js)

    // One strong ETag per encoding; a matching If-None-Match gets 304 and no body.
    const tags = new Set([br.headers.etag, gz.headers.etag, plain.headers.etag])
    expect(tags.size).toBe(3)
    for (const t of tags) expect(t).toMatch(/^"[A-Za-z0-9_-]+(-br|-gz)?"$/)
    const again = await get('/weft.js', { 'accept-encoding': 'br', 'if-none-match': String(br.headers.etag) })
    expect(again.status).toBe(304)
    expect(again.body.length).toBe(0)
    expect(again.headers.etag).toBe(br.headers.etag)
    // Another representation's tag does not match this one.
    expect((await get('/weft.js', { 'if-none-match': String(br.headers.etag) })).status).toBe(200)
    // A changed file gets a new tag.
    writeFileSync(join(dir, 'plain.txt'), 'changed, still no compressed copy')
    const p1 = await get('/plain.txt', { 'accept-encoding': 'br' })
    expect(p1.headers['content-encoding']).toBeUndefined()
    expect(p1.headers.vary).toBeUndefined()
    writeFileSync(join(dir, 'plain.txt'), 'changed again, a different length')
    const p2 = await get('/plain.txt', { 'if-none-match': String(p1.headers.etag) })
    expect(p2.status).toBe(200)
    expect(p2.headers.etag).not.toBe(p1.headers.etag)

    // A copy that does not hold the file as it is now (left from an older build) is not sent.
    writeFileSync(join(dir, 'old.js'), 'the new content')
    writeFileSync(join(dir, 'old.js.br'), brotliCompressSync('the old content'))
    const old = await get('/old.js', { 'accept-encoding': 'br' })
    expect(old.headers['content-encoding']).toBeUndefined()
    expect(old.body.toString()).toBe('the new content')

    // Vite's hashed assets never change under one name.
    expect((await get('/assets/index-Cd8xsEG5.js')).headers['cache-control']).toBe(
      'public, max-age=31536000, immutable',
    )
  })

  it('says how to build the demo when there is none', async () => {
    const s = await start()
    const root = await fetch(`${s.address}/`)
    expect(root.status).toBe(200)
    expect(await root.text()).toContain('npm run build')
    expect((await fetch(`${s.address}/weft.js`)).status).toBe(404)
  })
})
