/**
 * Per-source limits as pure logic: what a source is (IPv4 address, IPv6
 * /64, mapped addresses), whose X-Forwarded-For is believed, and the table's
 * counts, buckets, identity windows and memory bound.
 */
import { describe, expect, it } from 'vitest'
import { createAddressResolver, createSourceTable, type SourceLimits, sourceKey } from './sources.ts'

const LIMITS: SourceLimits = {
  maxConnectionsPerSource: 3,
  maxSocketsPerSource: 2,
  registrationsPerSourcePerMin: 6,
  maxIdentitiesPerSource: 2,
  identityWindowMs: 1000,
  relayBytesPerSourcePerSec: 1000,
  relayBurstBytesPerSource: 1000,
  maxSources: 100,
}

describe('sources', () => {
  it('an IPv4 address is a source; an IPv6 address counts by its /64; mapped addresses are IPv4', () => {
    expect(sourceKey('203.0.113.7')).toBe('203.0.113.7')
    expect(sourceKey('::ffff:203.0.113.7')).toBe('203.0.113.7')
    expect(sourceKey('::FFFF:203.0.113.7')).toBe('203.0.113.7')
    const a = sourceKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')
    expect(a).toBe('2001:db8:1:2::/64')
    expect(sourceKey('2001:db8:1:2::1')).toBe(a)
    expect(sourceKey('2001:0db8:0001:0002:ffff::')).toBe(a)
    expect(sourceKey('2001:db8:1:3::1')).not.toBe(a)
    expect(sourceKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64')
    expect(sourceKey('::1')).toBe('0:0:0:0::/64')
    expect(sourceKey('64:ff9b::192.0.2.33', 128)).toBe('64:ff9b:0:0:0:0:c000:221/128')
    expect(sourceKey('2001:db8:1:2::1', 48)).toBe('2001:db8:1::/48')
    expect(sourceKey('2001:db8:1:2::1', 56)).toBe('2001:db8:1:0::/56')
    expect(sourceKey('2001:db8:1:2ff::1', 56)).toBe('2001:db8:1:200::/56')
    for (const junk of [undefined, '', 'localhost', '1.2.3', '1:2:3', '::1::2', '999.1.1.1'])
      expect(sourceKey(junk)).toBe('unknown')
  })

  it('believes X-Forwarded-For only from configured proxies, reading it from the right', () => {
    const none = createAddressResolver([])
    expect(none.clientAddress('127.0.0.1', '203.0.113.9')).toBe('127.0.0.1')
    const r = createAddressResolver(['loopback', '10.0.0.0/8', '2001:db8::1'])
    expect(r.trusted('127.0.0.1') && r.trusted('::ffff:127.0.0.1') && r.trusted('::1')).toBe(true)
    expect(r.trusted('10.1.2.3') && r.trusted('2001:db8::1')).toBe(true)
    expect(r.trusted('11.0.0.1') || r.trusted('2001:db8::2') || r.trusted(undefined)).toBe(false)
    expect(r.clientAddress('127.0.0.1', '203.0.113.9')).toBe('203.0.113.9')
    expect(r.clientAddress('127.0.0.1', '203.0.113.9, 10.0.0.2')).toBe('203.0.113.9')
    expect(r.clientAddress('127.0.0.1', ['203.0.113.9', '10.0.0.2'])).toBe('203.0.113.9')
    // A client writing its own header gets the address the first trusted proxy saw, not the one it wrote.
    expect(r.clientAddress('127.0.0.1', '198.51.100.1, 203.0.113.9')).toBe('203.0.113.9')
    // Junk in the chain: stop there, with the last address a trusted hop vouched for.
    expect(r.clientAddress('127.0.0.1', 'junk, 10.0.0.2')).toBe('10.0.0.2')
    expect(r.clientAddress('127.0.0.1', 'junk')).toBe('127.0.0.1')
    expect(r.clientAddress('127.0.0.1', undefined)).toBe('127.0.0.1')
    // From an untrusted peer the header means nothing.
    expect(r.clientAddress('198.51.100.7', '203.0.113.9')).toBe('198.51.100.7')
    // A long header of the client's own does not push out what the proxy added at its right end.
    const padding = `${'198.51.100.1, '.repeat(150)}198.51.100.77`
    expect(padding.length).toBeGreaterThan(2048)
    expect(r.clientAddress('127.0.0.1', `${padding}, 203.0.113.9`)).toBe('203.0.113.9')
    expect(r.clientAddress('127.0.0.1', [padding, '203.0.113.9, 10.0.0.2'])).toBe('203.0.113.9')
    // Cut at the left, the first entry left may be the end of one (110.0.0.3): never read as an address.
    const cut = `110.0.0.3${' '.repeat(2030)}, 10.0.0.2`
    expect(r.clientAddress('127.0.0.1', cut)).toBe('10.0.0.2')
    // Entries with a port (Azure's Application Gateway writes them): the address, not the end of the walk.
    expect(r.clientAddress('127.0.0.1', '203.0.113.9:51234, 10.0.0.2:443')).toBe('203.0.113.9')
    expect(r.clientAddress('127.0.0.1', '[2001:db8::7]:51234')).toBe('2001:db8::7')
    expect(r.clientAddress('127.0.0.1', '[2001:db8::7]')).toBe('2001:db8::7')
    // A bare IPv6 address is not taken for one with a port; a port that is not one is junk.
    expect(r.clientAddress('127.0.0.1', '2001:db8::7:80')).toBe('2001:db8::7:80')
    expect(r.clientAddress('127.0.0.1', '203.0.113.9:http')).toBe('127.0.0.1')
    // Only trusted proxies all the way: the left-most address.
    expect(r.clientAddress('127.0.0.1', '10.0.0.3, 10.0.0.2')).toBe('10.0.0.3')
    for (const bad of ['10.0.0.0/33', 'nope', '1.2.3.4/8/9', '::/129'])
      expect(() => createAddressResolver([bad])).toThrow(TypeError)
  })

  it('counts connections and sessions per source', () => {
    const t = createSourceTable(LIMITS)
    expect([1, 2, 3, 4].map(() => t.openConnection('a'))).toEqual(['a', 'a', 'a', null])
    expect(t.openConnection('b')).toBe('b')
    t.closeConnection('a')
    expect(t.openConnection('a')).toBe('a')
    expect(t.canOpenSocket('a')).toBe(true)
    expect(t.openSocket('a')).toBe('a')
    t.openSocket('a')
    expect(t.canOpenSocket('a')).toBe(false)
    expect(t.canOpenSocket('b')).toBe(true)
    t.closeSocket('a')
    expect(t.canOpenSocket('a')).toBe(true)
    expect(t.peek('a')).toEqual({ tcp: 3, sockets: 1, identities: 0 })
  })

  it('limits registrations per minute, refilling', () => {
    const t = createSourceTable(LIMITS)
    const tries = Array.from({ length: 8 }, () => t.takeRegistration('a', 0))
    expect(tries.filter(Boolean)).toHaveLength(6)
    expect(t.takeRegistration('b', 0)).toBe(true)
    expect(t.takeRegistration('a', 5_000)).toBe(false)
    expect(t.takeRegistration('a', 10_000)).toBe(true) // 6 per minute: one back every 10 s
  })

  it('counts distinct identities while registered and for the window after, reusing their slots', () => {
    const t = createSourceTable(LIMITS)
    expect(t.claimIdentity('a', 'id1', 0)).toBe(true)
    expect(t.claimIdentity('a', 'id2', 0)).toBe(true)
    expect(t.claimIdentity('a', 'id3', 0)).toBe(false)
    // The same identity again (a second tab, a reconnect) takes no new slot.
    expect(t.claimIdentity('a', 'id1', 0)).toBe(true)
    expect(t.claimIdentity('b', 'id3', 0)).toBe(true)
    t.releaseIdentity('a', 'id2', 100)
    expect(t.claimIdentity('a', 'id3', 500)).toBe(false) // id2 still counts until 1100
    expect(t.claimIdentity('a', 'id2', 600)).toBe(true) // and may come back meanwhile
    t.releaseIdentity('a', 'id2', 700)
    expect(t.claimIdentity('a', 'id3', 1700)).toBe(true)
    // id1 holds two sockets: it counts until both left, then for the window.
    t.releaseIdentity('a', 'id1', 2000)
    expect(t.claimIdentity('a', 'id4', 2000)).toBe(false)
    t.releaseIdentity('a', 'id1', 2000)
    expect(t.claimIdentity('a', 'id4', 2999)).toBe(false)
    expect(t.claimIdentity('a', 'id4', 3000)).toBe(true)
  })

  it('shares one relay allowance among all identities of a source', () => {
    const t = createSourceTable(LIMITS)
    expect(t.relayAvailable('a', 1000, 0)).toBe(true)
    expect(t.takeRelay('a', 600, 0)).toBe(true)
    expect(t.relayAvailable('a', 600, 0)).toBe(false)
    expect(t.takeRelay('a', 600, 0)).toBe(false)
    expect(t.takeRelay('a', 400, 0)).toBe(true)
    expect(t.takeRelay('b', 1000, 0)).toBe(true)
    expect(t.takeRelay('a', 500, 500)).toBe(true)
  })

  it('forgets sources that hold nothing, keeps those with windows or connections, and stays bounded', () => {
    const t = createSourceTable(LIMITS)
    t.openConnection('live')
    t.claimIdentity('window', 'x', 0)
    t.releaseIdentity('window', 'x', 0)
    t.takeRelay('drained', 1000, 0)
    t.takeRegistration('idle', 0)
    expect(t.size()).toBe(4)
    // 'idle' used one registration of six: not idle until refilled (10 s).
    expect(t.prune(500)).toBe(0)
    expect(t.prune(10_000)).toBe(3)
    expect(t.peek('live')).not.toBeNull()
    expect(t.peek('window')).toBeNull()
    // A stream of sources beyond maxSources: those that hold nothing live are dropped as it goes.
    for (let i = 0; i < 1000; i++) t.takeRegistration(`s${i}`, 20_000)
    expect(t.size()).toBeLessThanOrEqual(LIMITS.maxSources + 1)
    expect(t.peek('live')).not.toBeNull()
  })

  it('stays bounded when the oldest entries are live (long-lived peers that touch nothing)', () => {
    const t = createSourceTable(LIMITS)
    // 70 honest peers, connected before everyone else and quiet since: the front of the table.
    for (let i = 0; i < 70; i++) t.openConnection(`honest${i}`)
    // A flood of sources, each leaving an identity that counts for the window (an hour, here ~forever).
    for (let i = 0; i < 10_000; i++) {
      t.claimIdentity(`flood${i}`, 'x', 0)
      t.releaseIdentity(`flood${i}`, 'x', 0)
    }
    // Before: the eviction looked at the 64 oldest, all live, and stopped: 10,070 entries.
    expect(t.size()).toBeLessThanOrEqual(LIMITS.maxSources + 1)
    for (let i = 0; i < 70; i++) expect(t.peek(`honest${i}`)?.tcp).toBe(1)
  })
})
