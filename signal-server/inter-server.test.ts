/**
 * The parsers of messages between instances: what one instance encodes the
 * other reads back exactly, and anything else (junk of any shape, frames over
 * the limit, non-base64 text) is refused with null, never an exception.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isNodeId } from '../shared/bytes.ts'
import { isNetworkName } from '../shared/signal-events.ts'
import {
  base64Length,
  encodeRemoteRelay,
  MAX_SESSION_CHARS,
  parseRemoteRelay,
  parseRemoteRelayError,
  parseRemoteReplace,
} from './inter-server.ts'

const MAX = 4096
const nodeId = fc.stringMatching(/^[0-9a-f]{40}$/)
const network = fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/)
const frame = fc.uint8Array({ maxLength: MAX })
// JSON is what crosses Redis: junk built from JSON values, plus near-misses of each field.
const junkValue = fc.oneof(fc.jsonValue(), fc.string({ maxLength: 80 }), fc.constant(undefined))

describe('inter-server messages', () => {
  it('a relay survives JSON and base64 exactly, up to the frame limit', () => {
    fc.assert(
      fc.property(network, nodeId, nodeId, frame, (net, to, from, f) => {
        const wire = JSON.parse(JSON.stringify(encodeRemoteRelay(net, to, from, f)))
        expect(wire.frame.length).toBeLessThanOrEqual(base64Length(MAX))
        const p = parseRemoteRelay(wire, MAX)
        expect(p && { ...p, frame: [...p.frame] }).toEqual({ network: net, to, from, frame: [...f] })
        expect(Object.getPrototypeOf(p?.frame)).toBe(Uint8Array.prototype)
      }),
      { numRuns: 200 },
    )
  })

  it('refuses frames over the limit, whatever their encoding length', () => {
    const id = 'a'.repeat(40)
    for (const n of [MAX + 1, MAX + 2, MAX + 3, MAX + 4]) {
      expect(parseRemoteRelay(encodeRemoteRelay('n', id, id, new Uint8Array(n)), MAX)).toBeNull()
    }
    expect(parseRemoteRelay(encodeRemoteRelay('n', id, id, new Uint8Array(MAX)), MAX)).not.toBeNull()
    // Not base64: wrong alphabet, bad length, padding in the middle, whitespace.
    for (const bad of ['!!!!', 'AAA', 'AA=A', 'A===', 'AAAA AAA', '-_AA', 'AAAA\n']) {
      expect(parseRemoteRelay({ network: 'n', to: id, from: id, frame: bad }, MAX)).toBeNull()
    }
  })

  it('never throws on junk, and whatever it accepts is well-formed', () => {
    const fields = fc.record(
      {
        network: fc.oneof(network, junkValue),
        to: fc.oneof(nodeId, junkValue),
        from: fc.oneof(nodeId, junkValue),
        id: fc.oneof(nodeId, junkValue),
        session: fc.oneof(fc.string({ minLength: 1, maxLength: 80 }), junkValue),
        reason: fc.oneof(fc.constant('congested'), junkValue),
        frame: fc.oneof(
          frame.map((f) => Buffer.from(f).toString('base64')),
          junkValue,
        ),
      },
      { requiredKeys: [] },
    )
    fc.assert(
      fc.property(fc.oneof(fields, junkValue), (x) => {
        const relay = parseRemoteRelay(x, MAX)
        if (relay) {
          expect(isNetworkName(relay.network) && isNodeId(relay.to) && isNodeId(relay.from)).toBe(true)
          expect(relay.frame.length).toBeLessThanOrEqual(MAX)
        }
        const err = parseRemoteRelayError(x)
        if (err) expect(err.reason).toBe('congested')
        const rep = parseRemoteReplace(x)
        if (rep) {
          expect(isNodeId(rep.id)).toBe(true)
          expect(rep.session.length).toBeLessThanOrEqual(MAX_SESSION_CHARS)
        }
      }),
      { numRuns: 1000 },
    )
  })

  it('ignores inherited fields and odd prototypes', () => {
    const id = 'b'.repeat(40)
    const inherited = Object.create({ network: 'n', to: id, from: id, frame: 'AAAA' })
    expect(parseRemoteRelay(inherited, MAX)).toBeNull()
    class Fake {
      network = 'n'
      to = id
      from = id
      reason = 'congested'
    }
    expect(parseRemoteRelayError(new Fake())).toBeNull()
    expect(parseRemoteRelayError({ ...new Fake() })).toEqual({
      network: 'n',
      to: id,
      from: id,
      reason: 'congested',
    })
    expect(parseRemoteReplace({ network: 'n', id, session: '' })).toBeNull()
  })
})
