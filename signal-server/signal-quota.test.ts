/**
 * Signals are paid for in bytes (signalBytesPerSec, signalBurstBytes), as
 * relay frames are: with only the event bucket (200 a second per socket), one
 * socket could make the server forward ~3 MB/s of 16 KiB signals, 128
 * identities of one address 128 times that, filling other sockets' queues
 * and burning the server's CPU and bandwidth. Here a raw client floods as
 * fast as the other limits let it: what the server forwards stays under the
 * quota (its burst, then its rate), on one instance and across two, and the
 * rest is refused `rate-limited`, counted `signal-quota`, and struck. Honest
 * link setup (real WebRTC between ten nodes) is nowhere near it.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { joinOverlay, type WeftNode } from '../client/index.ts'
import { jsonByteLength, parseSignalError } from '../shared/signal-events.ts'
import { type RedisProcess, redisSecret, sleep, startRedis } from '../test/redis-kit.ts'
import { serverFixture } from '../test/server-fixture.ts'
import { joined, type TestClient } from '../test/signal-kit.ts'
import { until, useCleanup } from '../test/until.ts'
import { parseCli } from './cli.ts'
import { resolveOptions } from './options.ts'

const { start, track } = serverFixture({ log: () => {} })
const cleanup = useCleanup()

const RATE = 64 * 1024
const BURST = 256 * 1024
/** What a signal costs: its data as JSON, plus the packet around it (`2["signal",{"from":…,"data":` `}]`). */
const cost = (data: unknown) => jsonByteLength(data) + 64
/** A large signal (an SDP-sized string near the 16 KiB bound), numbered. */
const big = (i: number) => ({ sdp: 'x'.repeat(15_000), i })
const SIZE = cost(big(1000))
/** Strikes and the event bucket out of the way: only the byte quota decides. */
const NO_STRIKES = { eventsPerSec: 10_000, eventBurst: 10_000, abuseBurst: 1e6, abusePerSec: 1e6 }

/**
 * `from` sends `perTick` large signals to `to` every 50 ms for `ms` (without an ack, as weft's client
 * does), ~20× a second: 400 a second, ~6 MB/s, ~90 times the default quota. Returns how many it sent.
 */
async function flood(from: TestClient, to: string, ms: number, perTick = 20, stop = () => false) {
  let sent = 0
  const end = Date.now() + ms
  while (Date.now() < end && !stop()) {
    for (let j = 0; j < perTick; j++) from.raw.emit('signal', { to, data: big(sent++) })
    await sleep(50)
  }
  return sent
}

/** What the server let through, at most: the burst, and the rate over the `seconds` it could refill. */
const ceiling = (seconds: number) => BURST + RATE * seconds

describe('a socket flooding large signals: forwarded bytes stay under signalBytesPerSec', () => {
  it('burst, then the rate; the rest refused rate-limited (told, counted signal-quota); other sockets unaffected', async () => {
    const s = await start(NO_STRIKES)
    const a = track(await joined(s.address, 'q'))
    const b = track(await joined(s.address, 'q'))
    // A bystander pair signalling meanwhile: the quota is per socket.
    const c = track(await joined(s.address, 'q'))
    const d = track(await joined(s.address, 'q'))
    let small = 0
    const honest = setInterval(() => c.raw.emit('signal', { to: d.id, data: { t: 'rtc', n: small++ } }), 50)
    const t0 = Date.now()
    const sent = await flood(a, b.id, 3000)
    clearInterval(honest)
    const refused = () => s.metrics()['rejected.signal-quota'] ?? 0
    const toB = () => b.received('signal').length
    await a.until(() => toB() + refused() === sent, 20_000)
    const seconds = (Date.now() - t0) / 1000
    const forwarded = toB() * SIZE
    // Offered ~6 MB; forwarded at most the burst and the rate since the flood began.
    expect(sent * SIZE).toBeGreaterThan(20 * ceiling(seconds))
    expect(forwarded).toBeLessThanOrEqual(ceiling(seconds))
    // Per second past the burst: the quota (the bucket never sat full while the flood went on).
    expect((forwarded - BURST) / seconds).toBeLessThanOrEqual(RATE)
    // And not less: the burst went, and the rate refilled over the ~3 s of sending.
    expect(forwarded).toBeGreaterThanOrEqual(BURST + 1.5 * RATE - SIZE)
    expect(refused()).toBe(sent - toB())
    // Told, as a signal without an ack is: signal-error rate-limited for each one refused.
    await a.until(() => a.received('signal-error').length === refused(), 10_000)
    expect(a.received('signal-error').every((e) => parseSignalError(e)?.reason === 'rate-limited')).toBe(true)
    // Counted apart from the event bucket's refusals, and in /metrics.
    expect(s.metrics()['rejected.rate-limited']).toBeUndefined()
    const prom = await (await fetch(`${s.address}/metrics`)).text()
    expect(prom).toContain(`weft_rejected_total{reason="signal-quota"} ${refused()}`)
    expect(prom).toContain(`weft_signal_bytes_total ${s.metrics().signalBytes}`)
    // With an ack, the ack says so (300 KB asked at once: more than even a full bucket).
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => a.call('signal', { to: b.id, data: big(sent + i) })),
    )
    expect(answers).toContainEqual({ ok: false, reason: 'rate-limited' })
    // Every small signal of the bystander went; b's own bucket is untouched by a's flood.
    await d.until(() => d.received('signal').length === small)
    expect(c.received('signal-error')).toEqual([])
    expect(await b.call('signal', { to: a.id, data: big(0) })).toEqual({ ok: true })
  }, 40_000)

  it('with the default strike budget, the flooder is dropped as abusive within a second', async () => {
    const s = await start()
    const a = track(await joined(s.address, 'q'))
    const b = track(await joined(s.address, 'q'))
    const t0 = Date.now()
    const kicked = () => a.received('rejected').length > 0
    await flood(a, b.id, 5000, 20, kicked)
    expect(a.received('rejected')).toEqual([{ reason: 'abuse' }])
    expect(Date.now() - t0).toBeLessThan(2000)
    await b.until(() => s.metrics()['kicked.abuse'] === 1)
    // What went before: at most the burst, and a little of the rate.
    expect(b.received('signal').length * SIZE).toBeLessThanOrEqual(ceiling((Date.now() - t0) / 1000))
    // (Refusals are strikes: 100 of them, with what refilled, end the socket.)
    expect(s.metrics()['rejected.signal-quota']).toBeGreaterThanOrEqual(100)
    const c = track(await joined(s.address, 'q'))
    expect(await b.call('signal', { to: c.id, data: big(0) })).toEqual({ ok: true })
  }, 20_000)

  it('charged before the target is looked up: a flood at ids not here costs the same', async () => {
    const s = await start(NO_STRIKES)
    const a = track(await joined(s.address, 'q'))
    const nobody = 'ab'.repeat(20)
    const sent = await flood(a, nobody, 1000)
    const told = () => a.received('signal-error').length
    await a.until(() => told() === sent, 10_000)
    const reasons = a.received('signal-error').map((e) => parseSignalError(e)?.reason)
    // Each one either spent quota and found nobody, or found no quota left.
    const looked = reasons.filter((r) => r === 'unknown-peer').length
    expect(looked + reasons.filter((r) => r === 'rate-limited').length).toBe(sent)
    expect(looked * SIZE).toBeLessThanOrEqual(ceiling(2))
    expect(s.metrics()['rejected.signal-quota']).toBe(sent - looked)
  }, 20_000)
})

describe('across instances: charged on the sender’s instance, before it goes through Redis', () => {
  let redis: RedisProcess | undefined
  afterAll(() => redis?.stop())

  it('what reaches a node on the other instance stays under the quota', async () => {
    redis ??= await startRedis()
    const redisPrefix = `t${randomBytes(4).toString('hex')}`
    const cluster = { ...NO_STRIKES, redisUrl: redis.url, redisSecret, redisPrefix }
    const [s1, s2] = await Promise.all([start(cluster), start(cluster)])
    const a = track(await joined(s1.address, 'q'))
    const b = track(await joined(s2.address, 'q'))
    expect(await a.call('signal', { to: b.id, data: 1 })).toEqual({ ok: true })
    const t0 = Date.now()
    const sent = await flood(a, b.id, 2000)
    const refused = () => s1.metrics()['rejected.signal-quota'] ?? 0
    const toB = () => b.received('signal').length - 1
    await a.until(() => toB() + refused() === sent, 20_000)
    const seconds = (Date.now() - t0) / 1000
    expect(toB() * SIZE).toBeLessThanOrEqual(ceiling(seconds))
    expect(toB() * SIZE).toBeGreaterThanOrEqual(BURST - SIZE)
    expect(s2.metrics().signalsRemote).toBe(toB() + 1)
    expect(s2.metrics()['rejected.signal-quota']).toBeUndefined()
  }, 40_000)
})

describe('honest link setup', () => {
  it('ten nodes linking over WebRTC through a server with the default quota: no refusal, far below it', async () => {
    const s = await start({ puzzleBits: 0 })
    const n = 10
    const nodes: WeftNode[] = []
    // Closed together: each close lingers about a second for its leave to spread (one by one, ten seconds).
    cleanup.push(() => Promise.all(nodes.map((x) => x.close())))
    for (let i = 0; i < n; i++)
      nodes.push(await joinOverlay({ signal: s.address, network: 'honest', puzzleBits: 0 }))
    // Each links to most of the others (mesh and DHT links): dozens of offers, answers, candidates.
    await until(
      'every node linked over WebRTC to five or more',
      () => nodes.every((x) => x.peers().filter((p) => p.transport === 'webrtc').length >= 5),
      30_000,
    )
    const m = s.metrics()
    expect(m.signals).toBeGreaterThan(10 * n)
    expect(m['rejected.signal-quota']).toBeUndefined()
    expect(m['rejected.rate-limited']).toBeUndefined()
    for (const x of nodes) expect(x.stats()['signal-error.rate-limited']).toBeUndefined()
    // ~1.2-1.3 KB an offer or answer (with the link hello), ~160 B a candidate: a node's share of
    // setting up all its links is a small part of the burst alone.
    expect(m.signalBytes).toBeGreaterThan(0)
    expect((m.signalBytes ?? 0) / n).toBeLessThan(BURST / 4)
  }, 60_000)
})

describe('signalBytesPerSec, signalBurstBytes', () => {
  it('64 KiB/s and 256 KiB by default; whole numbers, the burst room for a largest signal', () => {
    const d = resolveOptions({}, 'i')
    expect([d.signalBytesPerSec, d.signalBurstBytes]).toEqual([RATE, BURST])
    expect(resolveOptions({ signalBytesPerSec: 1000 }, 'i').signalBurstBytes).toBe(BURST)
    const o = resolveOptions({ signalBytesPerSec: 1000, signalBurstBytes: 20_000 }, 'i')
    expect([o.signalBytesPerSec, o.signalBurstBytes]).toEqual([1000, 20_000])
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => resolveOptions({ signalBytesPerSec: bad }, 'i')).toThrow(/SIGNAL_BYTES_PER_SEC/)
    // Less than one largest signal (signalMaxBytes + its packet) could never let one go.
    expect(() => resolveOptions({ signalBurstBytes: 16_384 }, 'i')).toThrow(/SIGNAL_BURST_BYTES/)
    expect(resolveOptions({ signalMaxBytes: 1000, signalBurstBytes: 1064 }, 'i').signalBurstBytes).toBe(1064)
    // A signal bound raised past the default burst raises the default with it.
    expect(resolveOptions({ signalMaxBytes: 300_000 }, 'i').signalBurstBytes).toBe(300_064)
    expect(() => resolveOptions({ signalBurstBytes: 1.5 }, 'i')).toThrow(/SIGNAL_BURST_BYTES/)
  })

  it('from the environment and flags', () => {
    const r = parseCli(['--signal-bytes-per-sec', '32768'], { SIGNAL_BURST_BYTES: '131072' })
    expect(r.errors).toEqual([])
    expect(r.options).toEqual({ signalBytesPerSec: 32768, signalBurstBytes: 131072 })
    expect(parseCli([], { SIGNAL_BYTES_PER_SEC: '1000' }).options).toEqual({ signalBytesPerSec: 1000 })
  })
})
