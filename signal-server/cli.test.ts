import { describe, expect, it } from 'vitest'
import { helpText, parseCli } from './cli.ts'
import { resolveOptions, type SignalServerOptions } from './options.ts'

describe('cli options', () => {
  it('reads the environment, then flags, which win', () => {
    const r = parseCli(
      ['--port', '9000', '--max-peers=5', '--servers', 'https://a.example,https://b.example'],
      {
        PORT: '1',
        HOST: '127.0.0.1',
        REDIS_URL: 'redis://127.0.0.1:6379',
        RELAY_BYTES_PER_SEC: '1024',
      },
    )
    expect(r.errors).toEqual([])
    expect(r.options).toEqual({
      port: 9000,
      host: '127.0.0.1',
      redisUrl: 'redis://127.0.0.1:6379',
      relayBytesPerSec: 1024,
      maxPeers: 5,
      servers: ['https://a.example', 'https://b.example'],
    })
    expect(parseCli([], { TRUST_PROXY: '10.0.0.0/8, loopback', PUZZLE_BITS: '12' }).options).toEqual({
      trustProxy: ['10.0.0.0/8', 'loopback'],
      puzzleBits: 12,
    })
    expect(parseCli(['--help'], {}).help).toBe(true)
    expect(parseCli(['--port', 'x', '--bogus'], {}).errors).toHaveLength(2)
  })
})

describe('help', () => {
  it('lists every setting with its variable and flag', () => {
    const text = helpText()
    for (const s of [
      '--trust-proxy',
      'TRUST_PROXY',
      '--redis-secret',
      'REDIS_SECRET',
      '--public-url',
      'PUBLIC_URL',
    ])
      expect(text).toContain(s)
  })
})

describe('bad values', () => {
  // Each of these started a server before: 0 and 2^31 made ws take messages of any size, 0 turned
  // node:http's timeouts off and lifted maxConnections, NaN lifted maxPeers or a per-source limit, 129
  // was read as 128 (every IPv6 address its own source), 2^31 ms fired at once (TimeoutOverflowWarning).
  it('stop the server with a message naming the option and its variable', () => {
    const bad: [SignalServerOptions, RegExp][] = [
      [{ maxHttpBufferSize: 0 }, /maxHttpBufferSize \(MAX_HTTP_BUFFER_SIZE\)/],
      [{ maxHttpBufferSize: 2 ** 31 }, /maxHttpBufferSize \(MAX_HTTP_BUFFER_SIZE\)/],
      [{ headersTimeoutMs: 0 }, /headersTimeoutMs \(HEADERS_TIMEOUT_MS\)/],
      [{ requestTimeoutMs: 0 }, /requestTimeoutMs \(REQUEST_TIMEOUT_MS\)/],
      [{ headersTimeoutMs: 20_000, requestTimeoutMs: 10_000 }, /at most requestTimeoutMs/],
      [{ maxConnections: 0 }, /maxConnections \(MAX_CONNECTIONS\)/],
      [{ ipv6PrefixBits: 129 }, /ipv6PrefixBits \(IPV6_PREFIX_BITS\): .* 0 to 128/],
      [{ ipv6PrefixBits: 56.5 }, /ipv6PrefixBits/],
      [{ maxPeers: Number.NaN }, /maxPeers \(MAX_PEERS\)/],
      [{ maxIdentitiesPerSource: Number.POSITIVE_INFINITY }, /maxIdentitiesPerSource/],
      [{ maxSources: -1 }, /maxSources/],
      [{ registerTimeoutMs: 2 ** 31 }, /registerTimeoutMs \(REGISTER_TIMEOUT_MS\)/],
      [{ sweepMs: 0 }, /sweepMs/],
      [{ eventsPerSec: 0 }, /eventsPerSec/],
      [{ port: 70_000 }, /port \(PORT\)/],
      // maxHttpBufferSize is derived from these when not given: it too must stay under ws's 2^31.
      [{ relayFrameMaxBytes: 2 ** 31 }, /relayFrameMaxBytes/],
      [{ signalMaxBytes: 2 ** 31 }, /signalMaxBytes/],
    ]
    for (const [o, message] of bad) expect(() => resolveOptions(o, 'i'), JSON.stringify(o)).toThrow(message)
    // From the command line too.
    const { options, errors } = parseCli(['--max-http-buffer-size', '0'], {})
    expect(errors).toEqual([])
    expect(() => resolveOptions(options, 'i')).toThrow(/MAX_HTTP_BUFFER_SIZE/)
  })

  it('leave good ones as they are, fractional rates included', () => {
    const o = resolveOptions(
      { port: 0, ipv6PrefixBits: 48, abusePerSec: 0.001, identityWindowMs: 0, maxPendingSockets: 0 },
      'i',
    )
    expect(o).toMatchObject({ port: 0, ipv6PrefixBits: 48, abusePerSec: 0.001, identityWindowMs: 0 })
  })
})
