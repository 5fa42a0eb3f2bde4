/**
 * Browsers at scale, the small version of `npm run bench -- scale` (issue
 * 15): 16 Chromium tabs (one context each) and a Node peer (the built
 * package on @roamhq/wrtc) form one network on one signal server. Every node
 * gets linked and onto the ring; a broadcast reaches all 17 exactly once; a
 * publication reaches its topic's subscribers and no one else; a DHT record
 * a tab puts is read by the Node peer and the reverse; and once the network
 * is quiet, links that fell back to the relay while the machine was busy
 * are upgraded to WebRTC (no relayed link is left).
 */
import { createRequire } from 'node:module'
import { expect, test } from '@playwright/test'
import { blankPage, closePeer, join_, type Peer, serverAndPeers, until } from './fixtures.ts'

type Api = {
  id: string
  peers(): { id: string; transport: string }[]
  inspect(): { ring: { joined: boolean } }
  broadcast(t: string, d: unknown): Promise<void>
  publish(t: string, d: unknown): Promise<void>
  subscribe(t: string, fn: (d: unknown) => void): () => void
  dht: {
    put(k: string, v: unknown): Promise<void>
    get(k: string, o?: { author?: string }): Promise<unknown>
  }
  stats(): Record<string, number>
  close(): Promise<void>
}
type W = { node: Api; got: string[] }

const TABS = 16
const env = serverAndPeers()

/** What a node got on `topic`, kept on the page (or in `box` for the Node peer). */
function collectIn(p: Peer, topic: string): Promise<void> {
  return p.page.evaluate((topic) => {
    const w = window as unknown as W
    w.got ??= []
    w.node.subscribe(topic, (d) => w.got.push(`${topic}:${String(d)}`))
  }, topic)
}
const gotOf = (p: Peer) => p.page.evaluate(() => (window as unknown as W).got ?? [])

test('16 tabs and a Node peer: one network; broadcast, topics and DHT reach the right nodes', async ({
  browser,
}) => {
  test.setTimeout(240_000)
  const network = 'scale16'
  const tabs = env.peers
  const t0 = Date.now()
  const phases: string[] = []
  const phase = (what: string) => phases.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  // Eight at a time, as a crowd arriving; each tab its own context.
  for (let i = 0; i < TABS; i += 8)
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        const ctx = await browser.newContext()
        const page = await blankPage(ctx, env.server.url)
        const id = await join_(page, env.server.url, { network })
        tabs.push({ ctx, page, id })
      }),
    )
  phase('16 tabs joined')
  const require = createRequire(import.meta.url)
  // The built package, as `import { joinOverlay } from 'weft'` gives it in Node.
  const built = '../dist/client/index.js'
  const weft = await import(built)
  const nodePeer = (await weft.joinOverlay({
    signal: env.server.url,
    network,
    wrtc: require('@roamhq/wrtc'),
  })) as unknown as Api
  try {
    const ready = async () => {
      const ok = await Promise.all(
        tabs.map((p) =>
          p.page.evaluate(() => {
            const n = (window as unknown as W).node
            return n.peers().length >= 2 && n.inspect().ring.joined
          }),
        ),
      )
      return ok.every(Boolean) && nodePeer.peers().length >= 2 && nodePeer.inspect().ring.joined
    }
    await until(ready, 120_000, 'every node linked and on the ring')
    phase('all linked and on the ring')

    // A broadcast from a tab reaches all 17 nodes, once each.
    const nodeGot: string[] = []
    nodePeer.subscribe('all', (d) => nodeGot.push(`all:${String(d)}`))
    for (const p of tabs) await collectIn(p, 'all')
    await tabs[5]?.page.evaluate(() => (window as unknown as W).node.broadcast('all', 'hello'))
    await until(
      async () => nodeGot.length > 0 && (await Promise.all(tabs.map(gotOf))).every((g) => g.length > 0),
      30_000,
      'the broadcast at every node',
    )
    for (const p of tabs) expect(await gotOf(p)).toEqual(['all:hello'])
    expect(nodeGot).toEqual(['all:hello'])
    phase('broadcast')

    // A publication on a topic five tabs and the Node peer subscribe to: theirs only.
    const subs = tabs.slice(0, 5)
    for (const p of subs) await collectIn(p, 'room')
    nodePeer.subscribe('room', (d) => nodeGot.push(`room:${String(d)}`))
    // The publisher is outside the topic; publications repeat until the last subscriber is in its tree.
    const got = async () =>
      nodeGot.includes('room:p') && (await Promise.all(subs.map(gotOf))).every((g) => g.includes('room:p'))
    await until(
      async () => {
        if (await got()) return true
        await tabs[10]?.page.evaluate(() => (window as unknown as W).node.publish('room', 'p'))
        return false
      },
      60_000,
      'the publication at every subscriber',
    ).catch(async (err) => {
      // What each subscriber, and the publisher, saw of the topic (topics.* counters).
      const topics = (st: Record<string, number>) =>
        Object.fromEntries(Object.entries(st).filter(([k]) => k.startsWith('topics.')))
      const statsOf = (p: Peer) => p.page.evaluate(() => (window as unknown as W).node.stats())
      for (const [i, p] of [...subs.entries(), [10, tabs[10] as Peer] as const])
        console.log(
          `tab ${i} ${p.id.slice(0, 8)}: got ${(await gotOf(p)).filter((g) => g === 'room:p').length}; ${JSON.stringify(topics(await statsOf(p)))}`,
        )
      console.log(
        `node ${nodePeer.id.slice(0, 8)}: got ${nodeGot.filter((g) => g === 'room:p').length}; ${JSON.stringify(topics(nodePeer.stats()))}`,
      )
      throw err
    })
    for (const p of tabs.slice(5)) expect((await gotOf(p)).filter((g) => g.startsWith('room:'))).toEqual([])
    phase('publication')

    // DHT both ways between a tab and the Node peer.
    const tabId = tabs[12]?.id as string
    await tabs[12]?.page.evaluate(() => (window as unknown as W).node.dht.put('card', { from: 'tab' }))
    await nodePeer.dht.put('card', { from: 'node' })
    await until(
      async () => JSON.stringify(await nodePeer.dht.get('card', { author: tabId })) === '{"from":"tab"}',
      30_000,
      "the tab's record read by the Node peer",
    )
    const fromNode = await tabs[3]?.page.evaluate(
      (author) => (window as unknown as W).node.dht.get('card', { author }),
      nodePeer.id,
    )
    expect(fromNode).toEqual({ from: 'node' })
    phase('DHT')

    // Relayed links (WebRTC setups that missed their deadline while 16 tabs started) are
    // upgraded once the machine is quiet: in the end every link is direct.
    const relayed = async () => {
      const all = await Promise.all(
        tabs.map((p) => p.page.evaluate(() => (window as unknown as W).node.peers())),
      )
      return [...all.flat(), ...nodePeer.peers()].filter((x) => x.transport === 'relay').length
    }
    const atStart = await relayed()
    await until(async () => (await relayed()) === 0, 90_000, `no relayed link (${atStart} at first)`)
    phase(`no relayed link (${atStart} at first)`)
    console.log(`16 tabs + 1 Node peer: ${phases.join(', ')}`)
  } finally {
    // All at once: each close waits about a second for its leave record to spread.
    await Promise.all([nodePeer.close(), ...tabs.splice(0).map(closePeer)])
  }
})
