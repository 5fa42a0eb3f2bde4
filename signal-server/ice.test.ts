/** ICE servers from the operator (ice.ts): checked at startup, TURN credentials made per registration. */
import { describe, expect, it } from 'vitest'
import { parseIceServers, parsePeersAck, parseRegisterAck } from '../shared/signal-events.ts'
import { parseCli } from './cli.ts'
import { checkIceServers, createIce, turnCredential } from './ice.ts'
import { resolveOptions } from './options.ts'

const SECRET = 'correct-horse-battery-staple'
const ID = '0123456789abcdef0123456789abcdef01234567'

describe('ICE_SERVERS, checked at startup', () => {
  it('normalises good entries (urls always a list)', () => {
    expect(
      checkIceServers(
        [
          { urls: 'stun:stun.example.org:3478' },
          {
            urls: ['turn:turn.example.org:3478?transport=udp', 'turns:[2001:db8::1]:5349'],
            username: 'u',
            credential: 'c',
          },
        ],
        undefined,
      ),
    ).toEqual([
      { urls: ['stun:stun.example.org:3478'] },
      {
        urls: ['turn:turn.example.org:3478?transport=udp', 'turns:[2001:db8::1]:5349'],
        username: 'u',
        credential: 'c',
      },
    ])
  })

  it('names the entry and what is wrong with it', () => {
    const bad = (x: unknown, secret?: string) => () => checkIceServers(x, secret)
    expect(bad({ urls: 'stun:a' })).toThrow(/must be a JSON list/)
    expect(bad([{ urls: 'http://stun.example.org' }])).toThrow(
      /entry 1: not a STUN or TURN URL: "http:\/\/stun.example.org"/,
    )
    expect(bad([{ urls: 'stun:a' }, { urls: [] }])).toThrow(/entry 2: "urls" must be a URL or a list/)
    expect(bad([{ urls: 'stun:a', foo: 1 }])).toThrow(/entry 1: unknown field foo/)
    expect(bad([{ urls: 'turn:a:3478' }])).toThrow(
      /entry 1: a TURN server needs "username" and "credential", or TURN_SECRET/,
    )
    expect(bad([{ urls: 'turn:a', username: 'u' }])).toThrow(/both "username" and "credential"/)
    expect(bad([{ urls: ['stun:a', 'turn:a'] }], SECRET)).toThrow(/separate entries/)
    expect(bad([{ urls: 'turn:a' }], 'short')).toThrow(/TURN_SECRET\) must have at least 16/)
    expect(bad([{ urls: 'stun:a' }], SECRET)).toThrow(/no TURN entry .* is left without credentials/)
    expect(bad(Array.from({ length: 9 }, () => ({ urls: 'stun:a' })))).toThrow(/at most 8 entries/)
    expect(bad([{ urls: 'stun:a?transport=udp' }])).toThrow(/not a STUN or TURN URL/)
  })

  it('reads ICE_SERVERS as JSON from the environment, and a broken one stops the server with a message', () => {
    const r = parseCli([], { ICE_SERVERS: '[{"urls":"stun:s.example:3478"}]', TURN_SECRET: SECRET })
    expect(r.errors).toEqual([])
    expect(r.options).toEqual({ iceServers: [{ urls: 'stun:s.example:3478' }], turnSecret: SECRET })
    expect(parseCli([], { ICE_SERVERS: "[{urls:'stun:x'}]" }).errors[0]).toMatch(/^ICE_SERVERS: not JSON/)
    expect(() => resolveOptions({ iceServers: [{ urls: 'turn:t.example' }] }, 'i')).toThrow(/TURN_SECRET/)
    expect(() => resolveOptions({ turnCredentialTtlS: 5 }, 'i')).toThrow(/TURN_CREDENTIAL_TTL_S/)
  })
})

describe('TURN credentials per registration', () => {
  it("follow coturn's use-auth-secret: username expiry:id, credential base64(HMAC-SHA1(secret, username))", () => {
    // Computed independently: printf '%s' 1700086400:<id> | openssl dgst -sha1 -hmac <secret> -binary | base64
    expect(turnCredential(SECRET, `1700086400:${ID}`)).toBe('4ARCJ9vUfHyD66L4DrE/c6+18pI=')
    const ice = createIce({
      iceServers: checkIceServers(
        [
          { urls: 'stun:s.example' },
          { urls: 'turn:t.example:3478' },
          { urls: 'turns:u.example', username: 'fixed', credential: 'pw' },
        ],
        SECRET,
      ),
      turnSecret: SECRET,
      turnCredentialTtlS: 86_400,
    })
    const a = ice(ID, 1_700_000_000_000)
    expect(a).toEqual({
      iceServers: [
        { urls: ['stun:s.example'] },
        {
          urls: ['turn:t.example:3478'],
          username: `1700086400:${ID}`,
          credential: '4ARCJ9vUfHyD66L4DrE/c6+18pI=',
        },
        { urls: ['turns:u.example'], username: 'fixed', credential: 'pw' },
      ],
      iceTtlMs: 86_400_000,
    })
    // Later answers carry later expiries (a node renews them with `peers`).
    const later = ice(ID, 1_700_000_600_000)
    expect('iceServers' in later && later.iceServers[1]?.username).toBe(`1700087000:${ID}`)
  })

  it('hands out fixed servers as configured, and nothing without configuration', () => {
    const fixed = createIce({ iceServers: [{ urls: ['stun:s'] }], turnCredentialTtlS: 60 })
    expect(fixed(ID, 0)).toEqual({ iceServers: [{ urls: ['stun:s'] }] })
    expect(createIce({ iceServers: [], turnCredentialTtlS: 60 })(ID, 0)).toEqual({})
  })
})

describe('what a client accepts from a server', () => {
  it('keeps good entries, leaves out bad ones, bounds the lifetime', () => {
    expect(
      parseIceServers([
        { urls: 'stun:ok.example' },
        { urls: 'javascript:alert(1)' },
        { urls: ['turn:t.example'], username: 'u', credential: 'x'.repeat(300) },
        { urls: ['turn:t.example'], username: 'u', credential: 'c', extra: true },
        'stun:not-an-object',
      ]),
    ).toEqual([{ urls: ['stun:ok.example'] }, { urls: ['turn:t.example'], username: 'u', credential: 'c' }])
    expect(parseIceServers(Array.from({ length: 9 }, () => ({ urls: 'stun:a' })))).toBeNull()
    const base = { ok: true, id: ID, peers: [], servers: [] }
    expect(parseRegisterAck({ ...base, iceServers: [{ urls: 'stun:a' }], iceTtlMs: 1 })).toEqual({
      ...base,
      iceServers: [{ urls: ['stun:a'] }],
      iceTtlMs: 60_000,
    })
    // A broken field is as good as none: the registration itself stands.
    expect(parseRegisterAck({ ...base, iceServers: 'stun:a', iceTtlMs: 5000 })).toEqual(base)
    expect(parsePeersAck({ ok: true, peers: [], servers: [], iceServers: [{ urls: 'stun:a' }] })).toEqual({
      ok: true,
      peers: [],
      servers: [],
      iceServers: [{ urls: ['stun:a'] }],
    })
  })
})
