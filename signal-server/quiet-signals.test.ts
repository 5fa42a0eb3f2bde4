/**
 * Signals without an ack (`quietSignals`): the server writes nothing back for
 * one it passed on, and a `signal-error` for one it could not; a signal with
 * an ack (older clients) is answered as before.
 */
import { describe, expect, it } from 'vitest'
import { parseRegisterAck, parseSignalDelivery, parseSignalError } from '../shared/signal-events.ts'
import { serverFixture } from '../test/server-fixture.ts'
import { connect, joined } from '../test/signal-kit.ts'

const { start, track } = serverFixture({ log: () => {} })

describe('quiet signals', () => {
  it('the register ack says quietSignals, and a client keeps only a true one', async () => {
    const s = await start()
    const a = track(await joined(s.address, 'q'))
    expect(a.ack.quietSignals).toBe(true)
    const base = { ok: true, id: a.id, peers: [], servers: [] }
    expect(parseRegisterAck({ ...base, quietSignals: true })).toEqual({ ...base, quietSignals: true })
    expect(parseRegisterAck({ ...base, quietSignals: 'yes' })).toEqual(base)
    expect(parseRegisterAck(base)).toEqual(base)
  })

  it('passes a signal without an ack on and sends nothing back; an acked one is still answered', async () => {
    const s = await start()
    const a = track(await joined(s.address, 'q'))
    const b = track(await joined(s.address, 'q'))
    const before = a.events.length
    for (let i = 0; i < 5; i++) a.raw.emit('signal', { to: b.id, data: { n: i } })
    await b.until(() => b.received('signal').length === 5)
    expect(b.received('signal').map((p) => parseSignalDelivery(p))).toEqual(
      [0, 1, 2, 3, 4].map((n) => ({ from: a.id, data: { n } })),
    )
    // An acked signal after them: its answer is the first packet the sender gets back.
    expect(await a.call('signal', { to: b.id, data: 'acked' })).toEqual({ ok: true })
    expect(a.events.slice(before)).toEqual([])
    expect(s.metrics().signals).toBe(6)
  })

  it('answers a signal without an ack that cannot go with signal-error, counted by reason', async () => {
    const s = await start({ signalMaxBytes: 100 })
    const a = track(await joined(s.address, 'q'))
    const b = track(await joined(s.address, 'q'))
    const ghost = '0'.repeat(40)
    a.raw.emit('signal', { to: ghost, data: 1 })
    expect(parseSignalError(await a.next('signal-error'))).toEqual({ to: ghost, reason: 'unknown-peer' })
    a.raw.emit('signal', { to: b.id, data: 'x'.repeat(200) })
    expect(parseSignalError(await a.next('signal-error'))).toEqual({ to: b.id, reason: 'too-large' })
    expect(s.metrics()['rejected.unknown-peer']).toBe(1)
    expect(s.metrics()['rejected.too-large']).toBe(1)
    expect(b.received('signal')).toEqual([])
    // With an ack, the same failures come in the ack, and no signal-error.
    expect(await a.call('signal', { to: ghost, data: 1 })).toEqual({ ok: false, reason: 'unknown-peer' })
    expect(a.received('signal-error')).toHaveLength(2)
  })

  it('refuses an unregistered or malformed signal without an ack silently, with a strike', async () => {
    const s = await start({ abuseBurst: 3, abusePerSec: 0.001 })
    const u = track(await connect(s.address))
    u.raw.emit('signal', { to: 'ab'.repeat(20), data: 1 })
    const a = track(await joined(s.address, 'q'))
    for (let i = 0; i < 4; i++) a.raw.emit('signal', { to: 'NOT-AN-ID', data: 1 })
    expect(await a.next('rejected')).toEqual({ reason: 'abuse' })
    await a.until(() => s.metrics()['rejected.bad-payload'] === 4)
    expect(s.metrics()['rejected.not-registered']).toBe(1)
    expect(a.received('signal-error')).toEqual([])
    expect(u.received('signal-error')).toEqual([])
  })
})
