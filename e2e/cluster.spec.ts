/**
 * Signal servers that scale out (issue 15), with tabs: four instances of the
 * built server (`npm start`'s own main) on one real redis-server, a tab
 * registered on each and a Node peer (relay 'force': its links are relayed
 * from instance to instance). All link and form one ring; a broadcast
 * reaches all five once; DHT records cross instances both ways. Then one
 * instance is stopped mid-run: its tab moves to the next URL of its list and
 * the network works again, the moved tab included.
 */
import { randomBytes } from 'node:crypto'
import { expect, test } from '@playwright/test'
import { type RedisProcess, redisSecret, startRedis } from '../test/redis-kit.ts'
import {
  allOrNone,
  blankPage,
  type Peer,
  type SignalServerProcess,
  startSignalServer,
  until,
} from './fixtures.ts'

type TabNode = {
  id: string
  peers(): { id: string; transport: string }[]
  inspect(): { ring: { successors: string[] } }
  broadcast(t: string, d: unknown): Promise<void>
  subscribe(t: string, fn: (d: unknown) => void): () => void
  dht: {
    put(k: string, v: unknown): Promise<void>
    get(k: string, o?: { author?: string }): Promise<unknown>
  }
  close(): Promise<void>
}
type W = { node: TabNode; got: string[]; server: string }

let redis: RedisProcess
const servers: SignalServerProcess[] = []
const tabs: Peer[] = []

test.beforeAll(async () => {
  redis = await startRedis()
})
test.afterAll(async () => {
  await Promise.all(tabs.splice(0).map((t) => t.ctx.close().catch(() => {})))
  await Promise.all(servers.splice(0).map((s) => s.stop().catch(() => {})))
  redis?.stop()
})

/** Join from a tab with a list of signal servers; the page keeps the server it is registered with. */
function joinWith(page: Peer['page'], signal: string[]): Promise<string> {
  return page.evaluate(async (signal) => {
    const w = window as unknown as W
    const weft = await import(/* @vite-ignore */ `${location.origin}/weft.mjs`)
    w.got = []
    w.node = await weft.joinOverlay({
      signal,
      network: 'cluster',
      onSignal: (st: { state: string; server?: string }) => {
        if (st.state === 'registered' && st.server) w.server = st.server
      },
    })
    w.node.subscribe('news', (d) => w.got.push(String(d)))
    return w.node.id
  }, signal)
}

test('four instances on one redis-server, tabs and a Node peer spread over them; an instance stopped mid-run', async ({
  browser,
}) => {
  test.setTimeout(240_000)
  const prefix = `e2e${randomBytes(4).toString('hex')}`
  servers.push(
    ...(await allOrNone(
      Array.from({ length: 4 }, () =>
        startSignalServer(undefined, {
          REDIS_URL: redis.url,
          REDIS_SECRET: redisSecret,
          REDIS_PREFIX: prefix,
        }),
      ),
      (s) => s.stop(),
    )),
  )
  const urls = servers.map((s) => s.url)
  const listFrom = (k: number) => [...urls.slice(k), ...urls.slice(0, k)]
  // Tab i: its page from instance i, registered there, the other instances next in its list. The four join at once.
  tabs.push(
    ...(await allOrNone(
      urls.map(async (url, i) => {
        const ctx = await browser.newContext()
        try {
          const page = await blankPage(ctx, url)
          return { ctx, page, id: await joinWith(page, listFrom(i)) }
        } catch (err) {
          await ctx.close()
          throw err
        }
      }),
      (t) => t.ctx.close(),
    )),
  )
  const serverOf = (t: Peer) => t.page.evaluate(() => (window as unknown as W).server)
  expect(await Promise.all(tabs.map(serverOf))).toEqual(urls)
  // The built package in Node, as `import { joinOverlay } from 'weft'` gives it, on instance 3.
  const built = '../dist/client/index.js'
  const weft = await import(built)
  const nodeGot: string[] = []
  const node = (await weft.joinOverlay({
    signal: listFrom(3),
    network: 'cluster',
    relay: 'force',
    wrtc: false,
  })) as TabNode
  node.subscribe('news', (d) => nodeGot.push(String(d)))
  try {
    const views = async () => [
      ...(await Promise.all(
        tabs.map((t) =>
          t.page.evaluate(() => {
            const n = (window as unknown as W).node
            return { id: n.id, links: n.peers().length, succ: n.inspect().ring.successors[0] }
          }),
        ),
      )),
      { id: node.id, links: node.peers().length, succ: node.inspect().ring.successors[0] },
    ]
    // Linked, and one ring: following successors visits all five.
    const oneNetwork = async () => {
      const v = await views()
      if (!v.every((x) => x.links >= 2)) return false
      const next = new Map(v.map((x) => [x.id, x.succ]))
      const seen = new Set<string>()
      for (let at: string | undefined = node.id; at !== undefined && !seen.has(at); at = next.get(at))
        seen.add(at)
      return seen.size === v.length
    }
    await until(oneNetwork, 60_000, 'all five linked and on one ring')

    const gotOf = (t: Peer) => t.page.evaluate(() => (window as unknown as W).got)
    const everyoneGot = async (text: string) =>
      nodeGot.includes(text) && (await Promise.all(tabs.map(gotOf))).every((g) => g.includes(text))
    await tabs[0]?.page.evaluate(() => (window as unknown as W).node.broadcast('news', 'before'))
    await until(() => everyoneGot('before'), 30_000, 'the broadcast at all five')
    for (const t of tabs) expect(await gotOf(t)).toEqual(['before'])
    expect(nodeGot).toEqual(['before'])

    // DHT both ways between a tab on instance 1 and the Node peer on instance 3.
    const tab1 = tabs[1] as Peer
    await tab1.page.evaluate(() => (window as unknown as W).node.dht.put('where', 'tab on 1'))
    await node.dht.put('where', 'node on 3')
    await until(
      async () => (await node.dht.get('where', { author: tab1.id }).catch(() => null)) === 'tab on 1',
      30_000,
      "the tab's record read by the Node peer",
    )
    const fromNode = (t: Peer) =>
      t.page.evaluate(
        (a) => (window as unknown as W).node.dht.get('where', { author: a }).catch(() => null),
        node.id,
      )
    await until(
      async () => (await fromNode(tab1)) === 'node on 3',
      30_000,
      "the Node peer's record read by tab 1",
    )

    // Instance 1 stops: its tab moves to instance 2, the next URL of its list.
    await servers[1]?.stop()
    await until(async () => (await serverOf(tab1)) === urls[2], 60_000, 'tab 1 registered on instance 2')
    await until(oneNetwork, 90_000, 'all five linked and on one ring again')
    // From the moved tab, and to it: a broadcast and DHT records.
    await tab1.page.evaluate(() => (window as unknown as W).node.broadcast('news', 'after'))
    await until(() => everyoneGot('after'), 60_000, 'the moved tab broadcast at all five')
    await tab1.page.evaluate(() => (window as unknown as W).node.dht.put('where', 'tab on 2, moved'))
    await until(
      async () => (await node.dht.get('where', { author: tab1.id }).catch(() => null)) === 'tab on 2, moved',
      30_000,
      "the moved tab's record read by the Node peer",
    )
    expect(await fromNode(tabs[3] as Peer)).toBe('node on 3')
  } finally {
    await Promise.all([
      node.close(),
      ...tabs.map((t) => t.page.evaluate(() => (window as unknown as W).node.close()).catch(() => {})),
    ])
  }
})
