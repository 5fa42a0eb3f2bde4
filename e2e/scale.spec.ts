/**
 * Browsers at scale, the small version of `npm run bench -- scale` (issue
 * 15): 16 Chromium tabs (one context each) and a Node peer (the built
 * package on @roamhq/wrtc) form one network on one signal server. Every node
 * gets linked and onto one ring (following successors visits all 17); a broadcast reaches all 17 exactly once; a
 * publication reaches its topic's subscribers and no one else; a DHT record
 * a tab puts is read by the Node peer and the reverse; and once the network
 * is quiet, links that fell back to the relay while the machine was busy
 * are upgraded to WebRTC (no relayed link is left).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { expect, test } from '@playwright/test'
import { blankPage, closePeer, join_, type Peer, serverAndPeers, until } from './fixtures.ts'

type Api = {
  id: string
  peers(): { id: string; transport: string }[]
  inspect(): {
    ring: { joined: boolean; successors: string[]; predecessor: string | null }
    topics: { topic: string; state: string; parent: string | null; children: string[] }[]
  }
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
type Inspection = ReturnType<Api['inspect']>

/**
 * The Node peer, in its own process (e2e/node-peer-child.mjs says why): each
 * call is a JSON line, answered by one. Its exit, expected or not, fails what
 * is pending with the process's stderr.
 */
class NodePeer {
  private calls = 0
  private readonly pending = new Map<number, { ok(v: unknown): void; err(e: Error): void }>()
  private stderr = ''
  exited = false
  id = ''

  private constructor(private readonly proc: ChildProcess) {
    proc.stderr?.on('data', (d) => {
      this.stderr = (this.stderr + String(d)).slice(-4000)
    })
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      if (!line.startsWith('{"c"')) return
      const m = JSON.parse(line) as { c: number; ok?: unknown; err?: string }
      const p = this.pending.get(m.c)
      this.pending.delete(m.c)
      if (m.err !== undefined) p?.err(new Error(m.err))
      else p?.ok(m.ok)
    })
    proc.on('exit', (code, signal) => {
      this.exited = true
      for (const p of this.pending.values())
        p.err(new Error(`the Node peer exited (${signal ?? code}): ${this.stderr}`))
      this.pending.clear()
    })
  }

  static async start(signal: string, network: string): Promise<NodePeer> {
    const script = join(dirname(fileURLToPath(import.meta.url)), 'node-peer-child.mjs')
    const peer = new NodePeer(spawn(process.execPath, [script, signal, network], { stdio: 'pipe' }))
    peer.id = await peer.call<string>('id')
    return peer
  }

  call<T = unknown>(op: string, ...a: unknown[]): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`the Node peer has exited: ${this.stderr}`))
    const c = ++this.calls
    return new Promise<T>((ok, err) => {
      this.pending.set(c, { ok: ok as (v: unknown) => void, err })
      this.proc.stdin?.write(`${JSON.stringify({ c, op, a })}\n`)
    })
  }

  /** Leave (a crash of the WebRTC module while it closes is not the network's failure), then make sure it is gone. */
  async close(): Promise<void> {
    await Promise.race([this.call('close').catch(() => {}), new Promise((r) => setTimeout(r, 10_000))])
    if (!this.exited) this.proc.kill('SIGKILL')
  }
}

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
  // The built package, as `import { joinOverlay } from 'weft'` gives it in Node, in a process of its own.
  const nodePeer = await NodePeer.start(env.server.url, network)
  try {
    // Linked, and one ring: following successors from any node visits all 17 (two groups that
    // started at once made two rings, which merge through their links).
    const ready = async () => {
      const views = await Promise.all(
        tabs.map((p) =>
          p.page.evaluate(() => {
            const n = (window as unknown as W).node
            return { id: n.id, linked: n.peers().length >= 2, succ: n.inspect().ring.successors[0] }
          }),
        ),
      )
      views.push({
        id: nodePeer.id,
        linked: (await nodePeer.call<unknown[]>('peers')).length >= 2,
        succ: (await nodePeer.call<Inspection>('inspect')).ring.successors[0],
      })
      if (!views.every((v) => v.linked)) return false
      const next = new Map(views.map((v) => [v.id, v.succ]))
      const seen = new Set<string>()
      for (let at: string | undefined = nodePeer.id; at !== undefined && !seen.has(at); at = next.get(at))
        seen.add(at)
      return seen.size === views.length
    }
    await until(ready, 120_000, 'every node linked and on one ring')
    phase('all linked and on one ring')

    // A broadcast from a tab reaches all 17 nodes, once each.
    const nodeGot = () => nodePeer.call<string[]>('got')
    await nodePeer.call('subscribe', 'all')
    for (const p of tabs) await collectIn(p, 'all')
    await tabs[5]?.page.evaluate(() => (window as unknown as W).node.broadcast('all', 'hello'))
    await until(
      async () =>
        (await nodeGot()).length > 0 && (await Promise.all(tabs.map(gotOf))).every((g) => g.length > 0),
      30_000,
      'the broadcast at every node',
    )
    for (const p of tabs) expect(await gotOf(p)).toEqual(['all:hello'])
    expect(await nodeGot()).toEqual(['all:hello'])
    phase('broadcast')

    // A publication on a topic five tabs and the Node peer subscribe to: theirs only.
    const subs = tabs.slice(0, 5)
    for (const p of subs) await collectIn(p, 'room')
    await nodePeer.call('subscribe', 'room')
    // The publisher is outside the topic; publications repeat until the last subscriber is in its tree.
    const got = async () =>
      (await nodeGot()).includes('room:p') &&
      (await Promise.all(subs.map(gotOf))).every((g) => g.includes('room:p'))
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
        `node ${nodePeer.id.slice(0, 8)}: got ${(await nodeGot()).filter((g) => g === 'room:p').length}; ${JSON.stringify(topics(await nodePeer.call('stats')))}`,
      )
      // Every node's ring view and place in the topic's tree: two roots, or a member cut off?
      const short = (x: string | null) => (x === null ? '-' : x.slice(0, 8))
      const views = [
        ...(await Promise.all(
          tabs.map(async (p) => ({
            id: p.id,
            ...(await p.page.evaluate(() => (window as unknown as W).node.inspect())),
          })),
        )),
        { id: nodePeer.id, ...(await nodePeer.call<Inspection>('inspect')) },
      ].sort((a, b) => (a.id < b.id ? -1 : 1))
      for (const v of views) {
        const room = v.topics.find((t) => t.topic === 'room')
        console.log(
          `${short(v.id)} pred ${short(v.ring.predecessor)} succ ${v.ring.successors.map(short).join(',')} room ${room ? `${room.state} parent ${short(room.parent)} children ${room.children.map(short).join(',')}` : '-'}`,
        )
      }
      throw err
    })
    for (const p of tabs.slice(5)) expect((await gotOf(p)).filter((g) => g.startsWith('room:'))).toEqual([])
    phase('publication')

    // DHT both ways between a tab and the Node peer.
    const tabId = tabs[12]?.id as string
    await tabs[12]?.page.evaluate(() => (window as unknown as W).node.dht.put('card', { from: 'tab' }))
    await nodePeer.call('dhtPut', 'card', { from: 'node' })
    await until(
      async () =>
        JSON.stringify(await nodePeer.call('dhtGet', 'card', { author: tabId })) === '{"from":"tab"}',
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
      const theirs = await nodePeer.call<{ transport: string }[]>('peers')
      return [...all.flat(), ...theirs].filter((x) => x.transport === 'relay').length
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
