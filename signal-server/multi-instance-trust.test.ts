/**
 * What instances sharing a Redis believe of it (a real redis-server,
 * redis-kit.ts): a frame goes to the target's instance only; forged (the old
 * socket.io-adapter PUBLISH, and sealed with a wrong secret), redirected,
 * replayed, junk and oversized messages are refused and counted, and nothing
 * gets through; the server list holds only what instances announce, and
 * registrations bind to each instance's public URLs.
 */

import { randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parsePeersAck, parseRelayDelivery } from '../shared/signal-events.ts'
import { type RedisProcess, redisSecret, sleep, startRedis } from '../test/redis-kit.ts'
import { connect, joined, type TestClient } from '../test/signal-kit.ts'
import { createSignalServer, type SignalServer } from './index.ts'
import { createInterServerCodec, type InterServerMessage } from './inter-server.ts'

let redis: RedisProcess
let redisUrl = ''
const servers: SignalServer[] = []
const clients: TestClient[] = []

beforeAll(async () => {
  redis = await startRedis()
  redisUrl = redis.url
})
afterAll(() => redis?.stop())
afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  for (const s of servers.splice(0)) await s.close()
})

const track = <T extends TestClient>(c: T): T => {
  clients.push(c)
  return c
}

/** Every message published on the instances' channels, as bytes, and what a holder of the secret reads in it. */
async function spy(redisPrefix: string) {
  const client = createClient({ url: redisUrl })
  await client.connect()
  // A codec with the instances' secret, to read what was sent (tests only; it keeps its own seqs).
  const reader = createInterServerCodec(redisSecret, 'spy.0', {
    signalMaxBytes: 65536,
    relayFrameMaxBytes: 65536,
  })
  const seen: { channel: string; bytes: Buffer; message: InterServerMessage | null }[] = []
  await client.pSubscribe(
    `${redisPrefix}:x:*`,
    (bytes: Buffer, raw: Buffer) => {
      const channel = raw.toString()
      const r = reader.open(channel, bytes, Date.now())
      seen.push({ channel, bytes, message: typeof r === 'string' ? null : r.message })
    },
    true,
  )
  return { seen, close: () => client.close() }
}

describe('trust between instances', () => {
  it('a frame goes to the target instance only, and forged, altered, redirected or replayed messages are refused and counted', async () => {
    const redisPrefix = `t${randomBytes(4).toString('hex')}`
    const make = () =>
      createSignalServer({
        port: 0,
        host: '127.0.0.1',
        redisUrl,
        redisSecret,
        redisPrefix,
        relayFrameMaxBytes: 1024,
      })
    const [s1, s2, s3] = await Promise.all([make(), make(), make()])
    servers.push(s1, s2, s3)
    const watch = await spy(redisPrefix)
    const pub = createClient({ url: redisUrl })
    await pub.connect()
    try {
      const a = track(await joined(s1.address, 'demo'))
      const b = track(await joined(s2.address, 'demo'))
      a.socket.emit('relay', { to: b.id, frame: new Uint8Array([9, 9]) })
      await b.until(() => b.received('relay').length === 1)
      // The frame went to b's instance's inbox, and only there: s3 never heard it.
      await b.until(() => watch.seen.some((m) => m.message?.t === 'relay'))
      const relays = watch.seen.filter((m) => m.message?.t === 'relay')
      expect(relays).toHaveLength(1)
      const inbox = relays[0]?.channel as string
      expect(inbox).not.toBe(`${redisPrefix}:x:all`)
      const genuine = relays[0]?.bytes as Buffer
      expect(s3.metrics().relayFramesRemote).toBe(0)
      expect(s2.metrics().relayFramesRemote).toBe(1)

      // 1. The old attack: a forged socket.io-adapter serverSideEmit. Nobody listens to that channel any more.
      await pub.publish(
        `${redisPrefix}-io-request#/#`,
        JSON.stringify({
          uid: 'forger',
          type: 6,
          data: ['weft:relay', { network: 'demo', to: b.id, from: a.id, frame: 'CQk=' }],
        }),
      )
      // 2. Forged messages in our format, sealed with a wrong secret: a frame "from" a, and a replace kicking b.
      const forger = createInterServerCodec('not the secret, but as long', 'forger.1', {
        signalMaxBytes: 1024,
        relayFrameMaxBytes: 1024,
      })
      const now = Date.now()
      await pub.publish(
        inbox,
        forger.seal(
          inbox,
          { t: 'relay', network: 'demo', to: b.id, from: a.id, frame: new Uint8Array([6, 6, 6]) },
          now,
        ),
      )
      const all = `${redisPrefix}:x:all`
      await pub.publish(
        all,
        forger.seal(all, { t: 'replace', network: 'demo', id: b.id, session: 'forger.1/x' }, now),
      )
      await pub.publish(all, forger.seal(all, { t: 'servers', urls: ['https://evil.example'] }, now))
      // 3. The genuine message, played again, and redirected to the channel every instance hears.
      await pub.publish(inbox, genuine)
      await pub.publish(all, genuine)
      // 4. Junk and an oversized blob.
      await pub.publish(inbox, Buffer.from('hello'))
      await pub.publish(inbox, Buffer.alloc(200_000))

      // Redis delivers in publish order: once the last one is counted, all were heard.
      await b.until(() => s2.metrics()['interServer.too-large'] === 2, 10_000)
      expect(s2.metrics()).toMatchObject({
        'interServer.bad-mac': 4,
        'interServer.replay': 1,
        'interServer.too-large': 2,
        relayFramesRemote: 1,
      })
      for (const s of [s1, s3]) await b.until(() => (s.metrics()['interServer.bad-mac'] ?? 0) === 3, 10_000)
      // Nothing got through: b has the one genuine frame, nobody was kicked, no evil server is listed.
      expect(b.received('relay').map((p) => parseRelayDelivery(p))).toEqual([
        { from: a.id, frame: new Uint8Array([9, 9]) },
      ])
      expect(b.received('replaced')).toEqual([])
      expect([s1.metrics().peers, s2.metrics().peers]).toEqual([1, 1])
      const sample = parsePeersAck(await b.call('peers', {}))
      expect(sample?.ok && sample.servers).toEqual([])
      const prom = await (await fetch(`${s2.address}/metrics`)).text()
      expect(prom).toContain('weft_inter_server_refused_total{reason="bad-mac"} 4')
      expect(prom).toContain('weft_inter_server_refused_total{reason="replay"} 1')
    } finally {
      await pub.close()
      await watch.close()
    }
  })

  it('instances list each other by their announced public URLs, and registrations bind to them', async () => {
    const redisPrefix = `t${randomBytes(4).toString('hex')}`
    const make = (name: string) =>
      createSignalServer({
        port: 0,
        host: '127.0.0.1',
        redisUrl,
        redisSecret,
        redisPrefix,
        publicUrls: [`https://${name}.example`],
        servers: ['https://configured.example'],
        sweepMs: 200,
      })
    const [s1, s2] = await Promise.all([make('one'), make('two')])
    servers.push(s1, s2)
    // Clients reach s1 as one.example (a proxy in front would pass that Host on).
    const viaOne = { headers: { host: 'one.example' }, host: 'one.example' }
    const a = track(await joined(s1.address, 'demo', viaOne))
    await a.until(() => {
      const m = s1.metrics()
      return m.peers === 1
    })
    let listed: string[] = []
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const ack = parsePeersAck(await a.call('peers', {}))
      listed = ack?.ok ? ack.servers : []
      if (listed.includes('https://two.example')) break
      await sleep(100)
    }
    // Configured first, then the other instance; never s1 itself.
    expect(listed).toEqual(['https://configured.example', 'https://two.example'])
    // s2 accepts only registrations signed for two.example: one signed for one.example is refused.
    const wrong = track(await connect(s2.address, viaOne))
    expect(await wrong.register('demo')).toEqual({ ok: false, reason: 'wrong-server' })
    expect(s2.metrics()['rejected.wrong-server']).toBe(1)
  })
})
