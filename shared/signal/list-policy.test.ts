import { describe, expect, it } from 'vitest'
import { mayList, mayListIce } from './values.ts'

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

describe('STUN/TURN URLs a signal server may hand out', () => {
  const pub = 'https://signal.example.org'
  it('a public server: public hosts in every form, no local address', () => {
    for (const ok of [
      'stun:stun.example.org',
      'stun:stun.example.org:3478',
      'stuns:stun.example.org:5349',
      'turn:203.0.113.7:3478?transport=udp',
      'turns:turn.example.org:443?transport=tcp',
      'stun:[2001:db8::1]:3478',
    ])
      expect([ok, mayListIce(pub, ok)]).toEqual([ok, true])
    for (const local of [
      'stun:169.254.169.254',
      'stun:127.0.0.1:3478',
      'turn:192.168.1.1:3478?transport=tcp',
      'turns:10.0.0.1',
      'stun:100.64.0.1',
      'stun:localhost',
      'stun:printer.local',
      'stuns:[::1]:5349',
      'stun:[fd00::1]',
      'stun:[fe80::1]:3478',
      'stun:[::ffff:192.168.1.1]',
      'stun:2130706433', // 127.0.0.1 written as one number
      'stun:0x7f.1',
      'stun:', // no host
    ])
      expect([local, mayListIce(pub, local)]).toEqual([local, false])
  })
  it('nor a name with a trailing dot, a multicast or broadcast address, or an IPv4 address inside IPv6', () => {
    for (const bad of [
      'stun:localhost.',
      'stun:foo.localhost.',
      'stun:printer.local.',
      'stun:224.0.0.1',
      'stun:239.255.255.250:1900',
      'stun:255.255.255.255',
      'stun:240.0.0.1',
      'stun:198.18.0.1',
      'stun:[ff02::1]',
      'stun:[fec0::1]',
      'stun:[::127.0.0.1]', // IPv4-compatible (URL writes ::7f00:1)
      'stun:[64:ff9b::169.254.169.254]', // NAT64
    ])
      expect([bad, mayListIce(pub, bad)]).toEqual([bad, false])
    expect(mayList(pub, 'https://localhost.:8443')).toBe(false)
    for (const ok of [
      'stun:223.255.255.1',
      'stun:198.20.0.1',
      'stun:[64:ff9b::203.0.113.7]',
      'stun:example.org.',
    ])
      expect([ok, mayListIce(pub, ok)]).toEqual([ok, true])
  })
  it('a server on a local address may hand out local ones (a developer machine, a LAN)', () => {
    expect(mayListIce('http://127.0.0.1:8080', 'stun:127.0.0.1:3478')).toBe(true)
    expect(mayListIce('http://192.168.1.5:8080', 'turn:192.168.1.6:3478?transport=udp')).toBe(true)
  })
})
