/**
 * Messages between instances: what one instance seals the other opens back
 * exactly; a message sealed with another secret, altered anywhere, moved to
 * another channel, played again, or dated outside the window is refused with
 * its reason; junk of any shape is refused, never an exception.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isNodeId } from '../shared/bytes.ts'
import { isNetworkName } from '../shared/signal-events.ts'
import {
  createInterServerCodec,
  type InterServerMessage,
  MAX_SESSION_CHARS,
  parseMessage,
} from './inter-server.ts'

const LIMITS = { signalMaxBytes: 1024, relayFrameMaxBytes: 4096 }
const SECRET = 'a shared secret of some length'
const nodeId = fc.stringMatching(/^[0-9a-f]{40}$/)
const network = fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/)
const T0 = 1_800_000_000_000

const message: fc.Arbitrary<InterServerMessage> = fc.oneof(
  fc.record({ t: fc.constant('replace' as const), network, id: nodeId, session: fc.constant('i.1/abc') }),
  fc.record({
    t: fc.constant('signal' as const),
    network,
    to: nodeId,
    from: nodeId,
    data: fc.jsonValue({ maxDepth: 3 }).filter((d) => JSON.stringify(d).length < 900),
    ref: fc.integer({ min: 1, max: 2 ** 40 }),
  }),
  fc.record({
    t: fc.constant('signal-ack' as const),
    ref: fc.integer({ min: 1, max: 2 ** 40 }),
    result: fc.constantFrom('ok' as const, 'unknown-peer' as const, 'congested' as const),
  }),
  fc.record({
    t: fc.constant('relay' as const),
    network,
    to: nodeId,
    from: nodeId,
    frame: fc.uint8Array({ maxLength: LIMITS.relayFrameMaxBytes }),
  }),
  fc.record({
    t: fc.constant('relay-error' as const),
    network,
    to: nodeId,
    from: nodeId,
    reason: fc.constantFrom('congested' as const, 'unknown-peer' as const),
  }),
  fc.record({
    t: fc.constant('servers' as const),
    urls: fc.constant<string[]>(['https://a.example', 'http://b.example:8080']),
  }),
)

/** JSON round trip turns -0 into 0; compare what a receiver can see. */
const plain = (m: InterServerMessage) =>
  m.t === 'relay' ? { ...m, frame: [...m.frame] } : JSON.parse(JSON.stringify(m))

describe('inter-server messages', () => {
  it('open(seal(m)) is m, for every kind, binary frames included', () => {
    fc.assert(
      fc.property(message, (m) => {
        const a = createInterServerCodec(SECRET, 'alpha.01', LIMITS)
        const b = createInterServerCodec(SECRET, 'beta.02', LIMITS)
        const r = b.open('weft:x:beta.02', a.seal('weft:x:beta.02', m, T0), T0 + 5)
        expect(typeof r).toBe('object')
        if (typeof r === 'string') return
        expect(r.from).toBe('alpha.01')
        const got = r.message.t === 'relay' ? { ...r.message, frame: [...r.message.frame] } : r.message
        expect(got).toEqual(plain(m))
        if (r.message.t === 'relay') expect(Object.getPrototypeOf(r.message.frame)).toBe(Uint8Array.prototype)
      }),
      { numRuns: 200 },
    )
  })

  it('refuses a message sealed with another secret, altered in any byte, or moved to another channel', () => {
    const a = createInterServerCodec(SECRET, 'alpha.01', LIMITS)
    const m: InterServerMessage = {
      t: 'relay',
      network: 'n',
      to: 'a'.repeat(40),
      from: 'b'.repeat(40),
      frame: new Uint8Array([1, 2, 3]),
    }
    const sealed = a.seal('weft:x:beta.02', m, T0)
    const forger = createInterServerCodec('another secret, same length!!', 'alpha.01', LIMITS)
    const b = () => createInterServerCodec(SECRET, 'beta.02', LIMITS)
    expect(b().open('weft:x:beta.02', forger.seal('weft:x:beta.02', m, T0), T0)).toBe('bad-mac')
    expect(b().open('weft:x:all', sealed, T0)).toBe('bad-mac')
    expect(b().open('weft:x:gamma.03', sealed, T0)).toBe('bad-mac')
    for (let i = 0; i < sealed.length; i++) {
      const altered = Buffer.from(sealed)
      altered[i] = (altered[i] as number) ^ 0x40
      const r = b().open('weft:x:beta.02', altered, T0)
      expect(r === 'bad-mac' || r === 'malformed').toBe(true)
    }
    // Untouched, it opens.
    expect(typeof b().open('weft:x:beta.02', sealed, T0)).toBe('object')
  })

  it('refuses a message played again, an older one, and one dated outside the window', () => {
    const a = createInterServerCodec(SECRET, 'alpha.01', LIMITS)
    const b = createInterServerCodec(SECRET, 'beta.02', LIMITS)
    const m: InterServerMessage = { t: 'replace', network: 'n', id: 'c'.repeat(40), session: 'alpha.01/s' }
    const first = a.seal('weft:x:all', m, T0)
    const second = a.seal('weft:x:all', m, T0 + 1)
    expect(typeof b.open('weft:x:all', first, T0)).toBe('object')
    expect(b.open('weft:x:all', first, T0)).toBe('replay')
    expect(typeof b.open('weft:x:all', second, T0 + 2)).toBe('object')
    expect(b.open('weft:x:all', first, T0 + 3)).toBe('replay')
    expect(b.open('weft:x:all', a.seal('weft:x:all', m, T0 - 30_001), T0)).toBe('stale')
    expect(b.open('weft:x:all', a.seal('weft:x:all', m, T0 + 30_001), T0)).toBe('stale')
    // Much later, the recording is refused by its date even after the receiver forgot the sender.
    const late = createInterServerCodec(SECRET, 'gamma.03', LIMITS)
    expect(late.open('weft:x:all', first, T0 + 60_000)).toBe('stale')
  })

  it('refuses what is larger than any real message, and never throws on junk', () => {
    const b = createInterServerCodec(SECRET, 'beta.02', LIMITS)
    expect(b.open('weft:x:beta.02', Buffer.alloc(10 * 1024 * 1024), T0)).toBe('too-large')
    expect(b.open('weft:x:beta.02', Buffer.alloc(3), T0)).toBe('too-large')
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = b.open('weft:x:beta.02', Buffer.from(bytes), T0)
        expect(typeof r).toBe('string')
      }),
      { numRuns: 500 },
    )
  })

  it('parses headers strictly: junk of any shape is null, what passes is well-formed', () => {
    const junk = fc.oneof(fc.jsonValue(), fc.string({ maxLength: 80 }), fc.constant(undefined))
    const fields = fc.record(
      {
        t: fc.oneof(
          fc.constantFrom('replace', 'signal', 'signal-ack', 'relay', 'relay-error', 'servers'),
          junk,
        ),
        ref: fc.oneof(fc.integer({ min: -2, max: 2 ** 40 }), junk),
        result: fc.oneof(fc.constantFrom('ok', 'unknown-peer', 'congested'), junk),
        network: fc.oneof(network, junk),
        to: fc.oneof(nodeId, junk),
        from: fc.oneof(nodeId, junk),
        id: fc.oneof(nodeId, junk),
        session: fc.oneof(fc.string({ minLength: 1, maxLength: 200 }), junk),
        reason: fc.oneof(fc.constantFrom('congested', 'unknown-peer'), junk),
        data: junk,
        urls: fc.oneof(fc.array(fc.webUrl(), { maxLength: 20 }), junk),
      },
      { requiredKeys: [] },
    )
    fc.assert(
      fc.property(fields, fc.uint8Array({ maxLength: 5000 }), (h, body) => {
        const m = parseMessage(h as Record<string, unknown>, body, LIMITS)
        if (!m) return
        if (m.t === 'servers') expect(m.urls.length).toBeLessThanOrEqual(16)
        else if (m.t === 'signal-ack') expect(['ok', 'unknown-peer', 'congested']).toContain(m.result)
        else expect(isNetworkName(m.network)).toBe(true)
        if (m.t === 'signal' || m.t === 'signal-ack')
          expect(Number.isSafeInteger(m.ref) && m.ref > 0).toBe(true)
        if (m.t === 'replace') {
          expect(isNodeId(m.id)).toBe(true)
          expect(m.session.length).toBeLessThanOrEqual(MAX_SESSION_CHARS)
        }
        if (m.t === 'relay') expect(m.frame.length).toBeLessThanOrEqual(LIMITS.relayFrameMaxBytes)
        if (m.t === 'signal' || m.t === 'relay' || m.t === 'relay-error')
          expect(isNodeId(m.to) && isNodeId(m.from)).toBe(true)
        if (m.t === 'signal') expect(JSON.stringify(m.data).length).toBeLessThanOrEqual(LIMITS.signalMaxBytes)
      }),
      { numRuns: 1000 },
    )
    const ok = { network: 'n', to: 'a'.repeat(40), from: 'b'.repeat(40) }
    expect(parseMessage({ t: 'relay', ...ok }, new Uint8Array(4097), LIMITS)).toBeNull()
    expect(parseMessage({ t: 'signal', ...ok, data: 'x'.repeat(1100) }, new Uint8Array(0), LIMITS)).toBeNull()
    expect(parseMessage({ t: 'relay-error', ...ok, reason: 'quota' }, new Uint8Array(0), LIMITS)).toBeNull()
    expect(
      parseMessage(Object.assign(Object.create({ t: 'relay' }), ok), new Uint8Array(0), LIMITS),
    ).toBeNull()
  })
})
