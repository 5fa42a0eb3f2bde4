import { describe, expect, it } from 'vitest'
import { helpText, parseCli } from './cli.ts'

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
