/**
 * Relayed links go direct later (client/node/upgrades.ts): a WebRTC setup
 * that failed while the machine was busy falls back to the relay, and the
 * link is tried over WebRTC again; once that works the direct link takes the
 * relayed one's place without the peer ever leaving. Two Node nodes on
 * @roamhq/wrtc and an in-process signal server; WebRTC "busy" at first (its
 * RTCPeerConnection refuses to be made). And the schedule's bounds: a link
 * that never goes direct costs a few attempts, never a stream of them.
 */
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import { createSignalServer, type SignalServer } from '../signal-server/index.ts'
import { until, useCleanup } from '../test/until.ts'
import { NodeFacade } from './facade.ts'
import { joinOverlay } from './index.ts'
import type { Dial } from './node/dialer.ts'
import { LinkTable, type NodeLink } from './node/link-table.ts'
import { MAX_AT_ONCE, TRIES, Upgrades } from './node/upgrades.ts'

const cleanup = useCleanup()

/** @roamhq/wrtc whose RTCPeerConnection cannot be made while `busy.on` (a setup fails at once). */
function busyWrtc(busy: { on: boolean }): object {
  const wrtc = createRequire(import.meta.url)('@roamhq/wrtc')
  class RTCPeerConnection extends wrtc.RTCPeerConnection {
    constructor(config?: RTCConfiguration) {
      if (busy.on) throw new Error('busy')
      super(config)
    }
  }
  return { ...wrtc, RTCPeerConnection }
}

describe('relayed links are upgraded to WebRTC', () => {
  it('a link that fell back to the relay goes direct once WebRTC works, the peer connected throughout', async () => {
    const server: SignalServer = await createSignalServer({ port: 0, host: '127.0.0.1', log: () => {} })
    cleanup.push(() => server.close())
    const busy = { on: true }
    const opts = { signal: server.address, network: 'upgrade', wrtc: busyWrtc(busy), directTimeoutMs: 500 }
    const a = await joinOverlay(opts)
    cleanup.push(() => a.close())
    const b = await joinOverlay(opts)
    cleanup.push(() => b.close())
    const [ia, ib] = [NodeFacade.internals(a), NodeFacade.internals(b)]
    const left: string[] = []
    a.on('peer:disconnect', (e) => left.push(e.id))
    b.on('peer:disconnect', (e) => left.push(e.id))
    await until(
      'a relayed link',
      () => ia.links.get(b.id)?.state === 'open' && ib.links.get(a.id)?.state === 'open',
    )
    expect(a.peers()).toEqual([{ id: b.id, transport: 'relay' }])
    expect(a.stats()['dial.relay-fallback'] ?? b.stats()['dial.relay-fallback']).toBeGreaterThan(0)
    b.handle('twice', (n) => (n as number) * 2)
    expect(await a.request(b.id, 'twice', 4)).toBe(8)

    busy.on = false
    await until('the link direct at both ends', () =>
      [a.peers(), b.peers()].every((ps) => ps.length === 1 && ps[0]?.transport === 'webrtc'),
    )
    const [low, high] = a.id < b.id ? [a, b] : [b, a]
    expect(low.stats()['upgrade.tried']).toBeGreaterThanOrEqual(1)
    expect(low.stats()['link.upgraded']).toBe(1)
    expect(high.stats()['upgrade.offered']).toBeGreaterThanOrEqual(1)
    // The same peer all along: no departure, and the link still carries requests and broadcasts.
    expect(left).toEqual([])
    expect(await a.request(b.id, 'twice', 21)).toBe(42)
    const got: unknown[] = []
    b.subscribe('after', (d) => got.push(d))
    await a.broadcast('after', 'direct')
    await until('the broadcast over the direct link', () => got.length === 1)
    expect(got).toEqual(['direct'])
  })
})

describe('upgrade offers from a hostile peer', () => {
  it('a stream of WebRTC offers over a relayed link: one setup at most, then backoff; the link stays', async () => {
    const server: SignalServer = await createSignalServer({ port: 0, host: '127.0.0.1', log: () => {} })
    cleanup.push(() => server.close())
    const busy = { on: true }
    const opts = {
      signal: server.address,
      network: 'upgrade-flood',
      wrtc: busyWrtc(busy),
      directTimeoutMs: 500,
    }
    const victim = await joinOverlay(opts)
    cleanup.push(() => victim.close())
    const hostile = await joinOverlay({ ...opts, directTimeoutMs: 60_000 })
    cleanup.push(() => hostile.close())
    const [iv, ih] = [NodeFacade.internals(victim), NodeFacade.internals(hostile)]
    await until('a relayed link', () => iv.links.get(hostile.id)?.state === 'open')
    const link = iv.links.get(hostile.id)
    // 200 offers as fast as the hostile node can send them, each claiming to upgrade the link.
    let most = 0
    for (let i = 0; i < 200; i++) {
      await ih.dialer.signalTo(victim.id, { t: 'rtc', s: { type: 'offer', sdp: `v=0 ${i}` }, mesh: true })
      most = Math.max(most, iv.dialer.dials.has(hostile.id) ? 1 : 0)
    }
    const st = () => victim.stats()
    const n = (k: string) => st()[k] ?? 0
    const seen = () => n('upgrade.offered') + n('drop.signal.inbound-backoff')
    await until('the offers handled', () => seen() >= 195 && !iv.dialer.dials.has(hostile.id), 15_000).catch(
      (err) => {
        console.log(JSON.stringify(Object.entries(st()).filter(([k]) => /signal|upgrade|dial/.test(k))))
        throw err
      },
    )
    // One setup at most; the first that failed put the peer in backoff; the rest were dropped.
    expect(most).toBeLessThanOrEqual(1)
    expect(n('upgrade.offered')).toBeLessThanOrEqual(2)
    expect(n('drop.signal.inbound-backoff')).toBeGreaterThan(150)
    expect(iv.dialer.dials.size).toBe(0)
    // The relayed link was neither replaced nor closed.
    expect(iv.links.get(hostile.id)).toBe(link)
    expect(link?.state).toBe('open')
  })
})

describe('the upgrade schedule', () => {
  /** A relayed link to `peer`, as the table holds it. */
  const relayed = (peer: string): NodeLink =>
    ({
      peer,
      transport: 'relay',
      state: 'open',
      stats: { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 },
    }) as NodeLink

  it('tries each relayed link we offer for a few times, growing the wait, a few at once', () => {
    const links = new LinkTable()
    for (const p of ['b1', 'b2', 'b3', '0lower']) links.adopt(relayed(p))
    const dials = new Map<string, Dial>()
    const tried: string[] = []
    const at: number[] = []
    let now = 0
    const upgrade = (p: string) => {
      tried.push(p)
      if (p === 'b1') at.push(now)
      return true
    }
    const upgrades = new Upgrades('a', links, { dials, upgrade }, 1000)
    upgrades.round(now)
    expect(tried).toEqual([]) // not before firstTryMs
    now = 1000
    upgrades.round(now)
    // Two at once at most; never for a peer with the lower id (it offers, not us).
    expect(tried).toEqual(['b1', 'b2'].slice(0, MAX_AT_ONCE))
    // Ten simulated minutes, the attempts still under way finishing between rounds.
    for (now = 1000; now <= 600_000; now += 1000) upgrades.round(now)
    for (const p of ['b1', 'b2', 'b3']) expect(tried.filter((x) => x === p).length).toBe(TRIES)
    expect(tried).not.toContain('0lower')
    // The waits between one link's attempts grow (x3).
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number))
    expect(gaps).toEqual([3000, 9000, 27000].slice(0, TRIES - 1))
    upgrades.round(10_000_000)
    expect(tried.length).toBe(3 * TRIES)
  })

  it('starts afresh for a link relayed again, and holds nothing for links gone', () => {
    const links = new LinkTable()
    links.adopt(relayed('b'))
    const tried: number[] = []
    const upgrades = new Upgrades(
      'a',
      links,
      {
        dials: new Map(),
        upgrade: () => {
          tried.push(1)
          return true
        },
      },
      1000,
    )
    for (let t = 0; t <= 600_000; t += 1000) upgrades.round(t)
    expect(tried.length).toBe(TRIES)
    const l = links.get('b') as NodeLink
    links.remove(l)
    upgrades.round(600_001)
    links.adopt(relayed('b'))
    for (let t = 600_002; t <= 602_002; t += 1000) upgrades.round(t)
    expect(tried.length).toBe(TRIES + 1)
  })
})
