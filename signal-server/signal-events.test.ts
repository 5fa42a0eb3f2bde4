import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  jsonByteLength,
  normalizeServerUrl,
  parseChallenge,
  parsePeersAck,
  parsePeersRequest,
  parseRegister,
  parseRegisterAck,
  parseRejected,
  parseRelayDelivery,
  parseRelayError,
  parseRelayRequest,
  parseReplaced,
  parseSignalAck,
  parseSignalDelivery,
  parseSignalRequest,
  registrationMessage,
  signalDataSize,
  toBytes,
} from '../shared/signal-events.ts'

const ID = 'ab'.repeat(20)
const isPlain = (x: unknown) => x instanceof Uint8Array && Object.getPrototypeOf(x) === Uint8Array.prototype

describe('signal event validators', () => {
  it('normalise Buffer, ArrayBuffer and Uint8Array to a plain Uint8Array', () => {
    const forms = [Buffer.from([1, 2, 3]), new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]).buffer]
    for (const f of forms) {
      const b = toBytes(f)
      expect(isPlain(b)).toBe(true)
      expect([...(b as Uint8Array)]).toEqual([1, 2, 3])
      const r = parseRelayRequest({ to: ID, frame: f })
      expect(isPlain(r?.frame)).toBe(true)
      expect(isPlain(parseRelayDelivery({ from: ID, frame: f })?.frame)).toBe(true)
    }
    const sliced = Buffer.from([9, 9, 1, 2]).subarray(2)
    expect([...(toBytes(sliced) as Uint8Array)]).toEqual([1, 2])
    expect(toBytes([1, 2, 3])).toBeNull()
    expect(toBytes('abc')).toBeNull()
    expect(toBytes(new Uint16Array(2))).toBeNull()
  })

  it('accept good payloads and refuse malformed ones', () => {
    const key = new Uint8Array(32).fill(1)
    const sig = new Uint8Array(64)
    expect(parseRegister({ publicKey: key, network: 'demo', signature: sig })).toEqual({
      publicKey: key,
      network: 'demo',
      signature: sig,
    })
    expect(parseRegister({ publicKey: key, network: 'a'.repeat(65), signature: sig })).toBeNull()
    expect(parseRegister({ publicKey: key, network: '', signature: sig })).toBeNull()
    // Older clients' `servers` field is ignored, whatever it holds: servers are never learned from clients.
    expect(parseRegister({ publicKey: key, network: 'x', signature: sig, servers: ['https://a'] })).toEqual({
      publicKey: key,
      network: 'x',
      signature: sig,
    })
    expect(parseRegister({ publicKey: new Uint8Array(1000), network: 'x', signature: sig })).toBeNull()
    expect(
      parseRegister(Object.assign(Object.create({ network: 'x' }), { publicKey: key, signature: sig })),
    ).toBeNull()
    expect(parsePeersRequest(undefined)).toEqual({})
    expect(parsePeersRequest({ max: 1000 })).toEqual({ max: 64 })
    expect(parsePeersRequest({ max: -1 })).toBeNull()
    expect(parsePeersRequest({ max: 1.5 })).toBeNull()
    expect(parseSignalRequest({ to: ID, data: { a: [1, 'x', null] } })).toEqual({
      to: ID,
      data: { a: [1, 'x', null] },
    })
    expect(parseSignalRequest({ to: ID })).toBeNull()
    expect(parseSignalRequest({ to: ID, data: Number.NaN })).toBeNull()
    expect(parseSignalRequest({ to: ID, data: new Date() })).toBeNull()
    expect(parseSignalRequest({ to: ID.toUpperCase(), data: 1 })).toBeNull()
    expect(parseSignalRequest(Object.assign(Object.create({ to: ID }), { data: 1 }))).toBeNull()
    expect(parseSignalRequest(Object.assign(Object.create({ data: 1 }), { to: ID }))).toBeNull()
    // signalDataSize: the same checks (-1 where parseSignalRequest says null), and data's JSON size.
    const data = { type: 'candidate', candidate: 'é 😀 "q"', n: [1, -2.5, null, true] }
    expect(signalDataSize({ to: ID, data })).toBe(Buffer.byteLength(JSON.stringify(data)))
    expect(signalDataSize({ to: ID, data: null })).toBe(4)
    for (const bad of [
      null,
      [ID, 1],
      { to: ID },
      { to: ID, data: Number.NaN },
      { to: ID, data: new Date() },
      { to: ID.toUpperCase(), data: 1 },
      Object.assign(Object.create({ to: ID }), { data: 1 }),
      Object.assign(Object.create({ data: 1 }), { to: ID }),
    ]) {
      expect(signalDataSize(bad)).toBe(-1)
      expect(parseSignalRequest(bad)).toBeNull()
    }
    expect(parseChallenge({ nonce: new Uint8Array(32) })?.nonce).toHaveLength(32)
    expect(parseChallenge({ nonce: new Uint8Array(31) })).toBeNull()
    expect(
      parseRegisterAck({
        ok: true,
        id: ID,
        peers: [{ id: ID, lastSeen: 5 }],
        servers: ['https://a.example/'],
      }),
    ).toEqual({ ok: true, id: ID, peers: [{ id: ID, lastSeen: 5 }], servers: ['https://a.example'] })
    expect(parseRegisterAck({ ok: false, reason: 'bad-key' })).toEqual({ ok: false, reason: 'bad-key' })
    expect(parseRegisterAck({ ok: false, reason: 'whatever' })).toBeNull()
    expect(parseRegisterAck({ ok: true, id: ID, peers: [{ id: 'x', lastSeen: 5 }], servers: [] })).toBeNull()
    expect(parsePeersAck({ ok: true, peers: [], servers: [] })).toEqual({ ok: true, peers: [], servers: [] })
    expect(parseSignalAck({ ok: false, reason: 'unknown-peer' })).toEqual({
      ok: false,
      reason: 'unknown-peer',
    })
    expect(parseSignalAck({ ok: 1 })).toBeNull()
    expect(parseSignalDelivery({ from: ID, data: 'x'.repeat(20) }, 10)).toBeNull()
    expect(parseSignalDelivery({ from: ID, data: 'hi' })).toEqual({ from: ID, data: 'hi' })
    expect(parseRelayDelivery({ from: ID, frame: new Uint8Array(11) }, 10)).toBeNull()
    expect(parseRelayError({ to: ID, reason: 'quota' })).toEqual({ to: ID, reason: 'quota' })
    expect(parseRelayError({ to: ID, reason: 'nope' })).toBeNull()
    expect(parseRejected({ reason: 'timeout' })).toEqual({ reason: 'timeout' })
    expect(parseReplaced({ reason: 'replaced' })).toEqual({ reason: 'replaced' })
  })

  it('never throw, whatever they are given (property)', () => {
    const parsers = [
      parseRegister,
      parsePeersRequest,
      parseSignalRequest,
      parseRelayRequest,
      parseChallenge,
      parseRegisterAck,
      parsePeersAck,
      parseSignalAck,
      parseSignalDelivery,
      parseRelayDelivery,
      parseRelayError,
      parseRejected,
      parseReplaced,
    ]
    fc.assert(
      fc.property(fc.anything({ withTypedArray: true, withMap: true, withSet: true }), (x) => {
        for (const p of parsers) p(x)
      }),
      { numRuns: 300 },
    )
  })

  it('jsonByteLength equals the UTF-8 length of JSON.stringify for JSON values (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => {
        // JSON.stringify turns -0 into 0; so does a JSON round trip, which is what crosses the socket.
        const x = JSON.parse(JSON.stringify(v))
        expect(jsonByteLength(x)).toBe(Buffer.byteLength(JSON.stringify(x)))
      }),
      { numRuns: 500 },
    )
    expect(jsonByteLength({ a: new Uint8Array(1) })).toBe(-1)
    expect(jsonByteLength('x'.repeat(100), 10)).toBe(11)
    let deep: unknown = 1
    for (let i = 0; i < 40; i++) deep = [deep]
    expect(jsonByteLength(deep)).toBe(-1)
  })

  it('build the registration message from the host and the nonce', () => {
    const m = registrationMessage('localhost:8080', new Uint8Array([1, 2]))
    expect(Buffer.from(m).toString('latin1')).toBe('weft-register/1\nlocalhost:8080\n\x01\x02')
    expect(normalizeServerUrl('HTTPS://Example.org:443/sig/')).toBe('https://example.org/sig')
    expect(normalizeServerUrl('https://user:pw@example.org')).toBeNull()
  })
})
