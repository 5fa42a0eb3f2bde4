import { describe, expect, it } from 'vitest'
import { mayList } from './values.ts'

describe('servers a signal server may list', () => {
  const pub = 'https://signal.example.org'
  it('a public https server lists public https servers, not local addresses nor plain http', () => {
    expect(mayList(pub, 'https://other.example.net')).toBe(true)
    expect(mayList(pub, 'https://other.example.net:8443/x')).toBe(true)
    // A hostile server would otherwise have its nodes open connections into their own networks.
    for (const local of [
      'https://127.0.0.1:8080',
      'https://localhost',
      'https://router.localhost',
      'https://printer.local',
      'https://10.1.2.3',
      'https://172.16.0.1',
      'https://172.31.255.255',
      'https://192.168.1.1',
      'https://169.254.169.254',
      'https://100.64.0.1',
      'https://0.0.0.0',
      'https://[::1]',
      'https://[fd00::1]',
      'https://[fe80::1]',
      'https://[::ffff:192.168.1.1]',
      'https://[::]',
    ])
      expect([local, mayList(pub, local)]).toEqual([local, false])
    // Nor a downgrade to plain http.
    expect(mayList(pub, 'http://other.example.net')).toBe(false)
    // Public addresses that look near the private ranges are public.
    expect(mayList(pub, 'https://172.32.0.1')).toBe(true)
    expect(mayList(pub, 'https://11.0.0.1')).toBe(true)
    expect(mayList(pub, 'https://[2001:db8::1]')).toBe(true)
  })
  it('a server on a local address may list what it likes (a developer machine, a LAN)', () => {
    expect(mayList('http://127.0.0.1:8080', 'http://127.0.0.1:8081')).toBe(true)
    expect(mayList('http://localhost:8080', 'https://signal.example.org')).toBe(true)
    expect(mayList('http://192.168.1.5:8080', 'http://192.168.1.6:8080')).toBe(true)
  })
  it('a public http server lists http and https, public only', () => {
    expect(mayList('http://signal.example.org', 'http://other.example.net')).toBe(true)
    expect(mayList('http://signal.example.org', 'http://192.168.1.1')).toBe(false)
  })
})
