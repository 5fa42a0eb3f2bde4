/**
 * A socket that stops reading makes the server hold what it is sent. The
 * packet bound (congestionMaxPackets) let that be 256 packets of up to 64 KiB
 * relay frames (~8 MiB) or 16 KiB signals per socket, times every identity
 * of a source. Here the bytes are bounded (congestionMaxBytes): what the
 * server holds for a socket that stopped reading, measured by walking its
 * write buffer and its TCP stream's (`unsentBytesMax`), stays under the bound
 * for relayed frames, relayed signals and `peers` answers; the rest is
 * dropped, counted and told, as the packet bound does it. Across instances:
 * multi-instance.test.ts.
 */
import { describe, expect, it } from 'vitest'
import {
  parsePeersAck,
  parseRelayDelivery,
  parseRelayError,
  parseSignalError,
} from '../shared/signal-events.ts'
import { serverFixture } from '../test/server-fixture.ts'
import { joined, pauseReading } from '../test/signal-kit.ts'
import { type Conn, enqueued, holdable, unsentBytes } from './connections.ts'
import type { SignalServer } from './index.ts'
import { resolveOptions } from './options.ts'

const { start, track } = serverFixture()

/** The most `unsentBytesMax` and `unsentPacketsMax` seen, sampled every 5 ms until `stop()`. */
function watch(s: SignalServer): { stop(): { bytes: number; packets: number } } {
  let bytes = 0
  let packets = 0
  const sample = () => {
    const m = s.metrics()
    bytes = Math.max(bytes, m.unsentBytesMax ?? Number.POSITIVE_INFINITY)
    packets = Math.max(packets, m.unsentPacketsMax ?? 0)
  }
  const timer = setInterval(sample, 5)
  return {
    stop() {
      clearInterval(timer)
      sample()
      return { bytes, packets }
    },
  }
}

/** Frame `i` of a run: its index in the first two bytes. */
function numbered(i: number, size: number): Uint8Array {
  const f = new Uint8Array(size).fill(7)
  f[0] = i & 255
  f[1] = i >> 8
  return f
}

/** Untracked bytes the server may also hold for a socket: pings, WebSocket framing. */
const SLACK = 1024
/** The bound is checked before a delivery: the last one let through may pass it by its own size. */
const FRAME = 60 * 1024 + 128
const SIGNAL = 2 * 15_100

describe('a socket that stops reading: the server holds at most congestionMaxBytes for it', () => {
  it('relay frames: the rest are dropped, counted and told to the sender', async () => {
    const congestionMaxBytes = 256 * 1024
    const s = await start({ congestionMaxBytes, relayBytesPerSec: 64 * 1024 * 1024 })
    const a = track(await joined(s.address, 'demo'))
    const b = track(await joined(s.address, 'demo'))
    const resume = pauseReading(b)
    // 24 MB: more than the loopback TCP buffers take, so the rest piles up in the server.
    const n = 400
    const w = watch(s)
    for (let i = 0; i < n; i++) a.socket.emit('relay', { to: b.id, frame: numbered(i, 60 * 1024) })
    const handled = () => (s.metrics().relayFrames ?? 0) + (s.metrics()['relayErrors.congested'] ?? 0)
    await a.until(() => handled() === n, 20_000)
    const peak = w.stop()
    const delivered = s.metrics().relayFrames ?? 0
    const dropped = s.metrics()['relayErrors.congested'] ?? 0
    // The packet bound (256) is far off: 60 KiB frames hit the byte bound at 4 or 5 frames.
    expect(peak.bytes).toBeLessThanOrEqual(congestionMaxBytes + FRAME + SLACK)
    expect(peak.bytes).toBeGreaterThan(congestionMaxBytes / 2)
    expect(dropped).toBeGreaterThan(0)
    await a.until(() => a.received('relay-error').length === dropped, 10_000)
    expect(a.received('relay-error').every((e) => parseRelayError(e)?.reason === 'congested')).toBe(true)
    const prom = await (await fetch(`${s.address}/metrics`)).text()
    expect(prom).toContain(`weft_relay_dropped_total{reason="congested"} ${dropped}`)
    expect(prom).toMatch(/weft_unsent_bytes_max \d+/)

    // Reading again, b gets every frame accepted, in order, and the server holds nothing for it.
    resume()
    await b.until(() => b.received('relay').length === delivered, 10_000)
    const idx = b.received('relay').map((p) => {
      const f = parseRelayDelivery(p)?.frame
      return f ? (f[0] as number) | ((f[1] as number) << 8) : -1
    })
    expect(idx.every((x, i) => x >= 0 && (i === 0 || x > (idx[i - 1] as number)))).toBe(true)
    await b.until(() => s.metrics().unsentBytesMax === 0, 5000)
    a.socket.emit('relay', { to: b.id, frame: new Uint8Array([1, 2, 3]) })
    await b.until(() => b.received('relay').length === delivered + 1)
  }, 40_000)

  it('a tiny frame that waits does not keep the 64 KiB TCP chunk it came in alive', async () => {
    const congestionMaxBytes = 1024 * 1024
    const s = await start({ congestionMaxBytes, relayBytesPerSec: 64 * 1024 * 1024, eventBurst: 1000 })
    const a = track(await joined(s.address, 'demo'))
    const b = track(await joined(s.address, 'demo'))
    pauseReading(b)
    // Frames until b's TCP buffers are full and the server starts holding what b is sent.
    for (let i = 0; i < 1000 && !(s.metrics().unsentBytesMax ?? 0); i++) {
      a.socket.emit('relay', { to: b.id, frame: numbered(i, 60 * 1024) })
      await new Promise((r) => setTimeout(r, 5))
    }
    const before = s.metrics()
    expect(before.unsentBytesMax).toBeGreaterThan(0)
    expect(before.unsentBytesMax).toBeLessThan(congestionMaxBytes / 2)
    // Then 1-byte frames for b, each beside a 60 KiB one for nobody (in the same TCP chunks): under
    // the packet bound (256) ~125 of them wait, each a view into a chunk of up to 64 KiB (~8 MB).
    const nobody = 'ab'.repeat(20)
    const n = 300
    const w = watch(s)
    for (let i = 0; i < n; i++) {
      a.socket.emit('relay', { to: b.id, frame: new Uint8Array([i & 255]) })
      a.socket.emit('relay', { to: nobody, frame: new Uint8Array(60 * 1024) })
    }
    const tiny = () =>
      (s.metrics().relayFrames ?? 0) - (before.relayFrames ?? 0) + (s.metrics()['relayErrors.congested'] ?? 0)
    await a.until(() => tiny() === n && (s.metrics()['relayErrors.unknown-peer'] ?? 0) === n, 20_000)
    const peak = w.stop()
    expect(peak.packets).toBeGreaterThan(100)
    expect(peak.bytes).toBeLessThanOrEqual(congestionMaxBytes + SLACK)
  }, 40_000)

  it('signals (up to 16 KiB each): the rest are refused congested', async () => {
    const congestionMaxBytes = 64 * 1024
    // (The signal quota out of the way: 15 MB at once, to a socket that does not read.)
    const quota = { signalBytesPerSec: 64 * 1024 * 1024, signalBurstBytes: 64 * 1024 * 1024 }
    const s = await start({ congestionMaxBytes, eventsPerSec: 10_000, eventBurst: 10_000, ...quota })
    const a = track(await joined(s.address, 'demo'))
    const b = track(await joined(s.address, 'demo'))
    const resume = pauseReading(b)
    const n = 1000
    const data = { sdp: 'x'.repeat(15_000) }
    const w = watch(s)
    // Without an ack (quietSignals): a refusal comes back as signal-error.
    for (let i = 0; i < n; i++) a.socket.emit('signal', { to: b.id, data: { ...data, i } })
    const handled = () => (s.metrics().signals ?? 0) + (s.metrics()['rejected.congested'] ?? 0)
    await a.until(() => handled() === n, 20_000)
    const peak = w.stop()
    const refused = s.metrics()['rejected.congested'] ?? 0
    expect(peak.bytes).toBeLessThanOrEqual(congestionMaxBytes + SIGNAL + SLACK)
    expect(refused).toBeGreaterThan(0)
    await a.until(() => a.received('signal-error').length === refused, 10_000)
    expect(a.received('signal-error').every((e) => parseSignalError(e)?.reason === 'congested')).toBe(true)
    // With an ack, the ack says so.
    expect(await a.call('signal', { to: b.id, data })).toEqual({ ok: false, reason: 'congested' })
    resume()
    await b.until(() => b.received('signal').length === s.metrics().signals, 10_000)
    await b.until(() => s.metrics().unsentBytesMax === 0, 5000)
    expect(await a.call('signal', { to: b.id, data: 1 })).toEqual({ ok: true })
  }, 40_000)

  it('peers answers to a socket that does not read them are refused past the bound', async () => {
    // Room for a round of 20 answers (counted at two bytes a character, ~9.7 KB each), so that
    // refusals start once the TCP buffers are full, not at a round that outran the socket's writes.
    const congestionMaxBytes = 256 * 1024
    const s = await start({ puzzleBits: 0, congestionMaxBytes, eventsPerSec: 5000, eventBurst: 5000 })
    for (let i = 0; i < 64; i++) track(await joined(s.address, 'demo', { puzzleBits: 0 }))
    const a = track(await joined(s.address, 'demo', { puzzleBits: 0 }))
    const answer = parsePeersAck(await a.call('peers', { max: 64 }))
    // ~4.5 KB each.
    expect(answer?.ok && answer.peers.length).toBe(64)
    pauseReading(a)
    const w = watch(s)
    // 20 at a time, until the refusals (a strike each: 100 end the socket) have ended it.
    const t0 = Date.now()
    while (!s.metrics()['kicked.abuse'] && Date.now() - t0 < 20_000) {
      for (let j = 0; j < 20; j++) a.raw.emit('peers', { max: 64 }, () => {})
      await new Promise((r) => setTimeout(r, 20))
    }
    const peak = w.stop()
    // Past the bound, refused: ~45 bytes, and a strike each (100 end the socket), not an answer.
    expect(peak.bytes).toBeLessThanOrEqual(congestionMaxBytes + 2 * 4500 + SLACK + 110 * 64)
    // (What it held was counted at two bytes a character: ~half the bound.)
    expect(peak.bytes).toBeGreaterThan(congestionMaxBytes / 4)
    expect(s.metrics()['rejected.rate-limited']).toBeGreaterThan(0)
    expect(s.metrics()['kicked.abuse']).toBe(1)
  }, 60_000)
})

describe('what the server counts (connections.ts)', () => {
  /** A Conn over a fake engine.io socket: its write buffer, and its transport's state. */
  const fake = () => {
    const engine = {
      writeBuffer: [] as unknown[],
      transport: { writable: false, socket: { bufferedAmount: 0 } },
    }
    const c = { socket: { conn: engine }, queued: 0, queuedIn: null } as unknown as Conn
    return { c, engine }
  }

  it('counts what waits in the write buffer, forgets it once engine.io handed that buffer on', () => {
    const { c, engine } = fake()
    engine.writeBuffer.push('x')
    enqueued(c, 100)
    engine.writeBuffer.push('y')
    enqueued(c, 50)
    engine.transport.socket.bufferedAmount = 7
    expect(unsentBytes(c)).toBe(157)
    // Flushed: a new (empty) write buffer; what was counted is ws's bufferedAmount now.
    engine.writeBuffer = []
    engine.transport.socket.bufferedAmount = 150
    expect(unsentBytes(c)).toBe(150)
    // The next delivery starts a new count; one handed on at once (the buffer still empty) counts nothing.
    enqueued(c, 30)
    expect(c.queuedIn).toBe(null)
    engine.writeBuffer.push('z')
    enqueued(c, 30)
    expect(unsentBytes(c)).toBe(180)
    // The sweep lets go of a buffer that was handed on (enqueued(c, 0)), and keeps one that was not.
    enqueued(c, 0)
    expect(unsentBytes(c)).toBe(180)
    engine.writeBuffer = ['ping']
    enqueued(c, 0)
    expect(c.queuedIn).toBe(engine.writeBuffer)
    expect(c.queued).toBe(0)
  })

  it('copies a frame that will wait when the memory under it is much larger, only then', () => {
    const { c, engine } = fake()
    const chunk = new Uint8Array(64 * 1024)
    const view = chunk.subarray(100, 101)
    const copy = holdable(c, view)
    expect(copy).not.toBe(view)
    expect(copy.buffer.byteLength).toBe(1)
    // Sent at once (the transport is free): not copied.
    engine.transport.writable = true
    expect(holdable(c, view)).toBe(view)
    engine.transport.writable = false
    // A frame that is (nearly) all of its memory: not copied.
    const whole = new Uint8Array(1000)
    expect(holdable(c, whole)).toBe(whole)
  })

  it('congestionMaxBytes: 1 MiB by default, a whole number of bytes, at least 1', () => {
    expect(resolveOptions({}, 'i').congestionMaxBytes).toBe(1024 * 1024)
    expect(resolveOptions({ congestionMaxBytes: 4096 }, 'i').congestionMaxBytes).toBe(4096)
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => resolveOptions({ congestionMaxBytes: bad }, 'i')).toThrow(/CONGESTION_MAX_BYTES/)
  })
})
