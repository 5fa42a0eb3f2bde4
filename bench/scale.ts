/**
 * scale: weft in many real Chromium tabs at once, plus Node peers, on one
 * machine. For each size (8, 24 and 48 tabs by default; 2 Node peers each
 * time), a fresh signal server and network:
 *
 * - allLinkedMs: from the first joinOverlay call to every node on one ring
 *   (successors visit them all) with at least 2 open links (tabs join 4 at a time).
 * - bcastLastMs: a broadcast from a tab to its delivery at the last node
 *   (tabs and Node peers, one clock: this machine's), median of 5.
 * - idleMsgsPerNodeSec: frames each node sends per second in 20 s of quiet
 *   after a warm-up of WEFT_SCALE_WARMUP_MS (60 s) (stats().messagesOut),
 *   mean over tabs.
 * - heapMBPerTab: the page's used JS heap (performance.memory), mean.
 * - relayedAtLinked, relayedShare: links carried by the server's relay / all
 *   links, over the tabs, when all are linked and after the quiet phase (a
 *   busy machine pushes WebRTC setups past their deadlines; relayed links
 *   are tried over WebRTC again: client/node/upgrades.ts).
 *
 *   npm run bench -- scale          (WEFT_SCALE_SIZES=8,24 for fewer)
 */
import { createRequire } from 'node:module'
import type { Browser, BrowserContext, Page } from '@playwright/test'
import { blankPage, join_, startSignalServer } from '../e2e/fixtures.ts'
import { ensureBuilt, launch } from './_browser-kit.ts'
import { isMain, median, report } from './report.ts'

interface ScaleNode {
  id: string
  peers(): { id: string; transport: string }[]
  subscribe(topic: string, fn: (d: unknown) => void): () => void
  broadcast(topic: string, data: unknown): Promise<void>
  stats(): Record<string, number>
  inspect(): { ring: { joined: boolean; successors: string[] } }
  close(): Promise<void>
}
type W = {
  node: ScaleNode
  got: Record<string, number>
  performance: { memory?: { usedJSHeapSize: number } }
}

const NODE_PEERS = 2
/** Quiet time before the idle measurement. */
const WARMUP_MS = Number(process.env.WEFT_SCALE_WARMUP_MS ?? 60_000)

/** blankPage, but a failed load is retried twice and its status reported (48 tabs load the page at once). */
async function openPage(ctx: BrowserContext, url: string): Promise<Page> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await blankPage(ctx, url)
    } catch (err) {
      const res = await fetch(`${url}/embed.html`).then(
        (r) => `${r.status} ${r.statusText}`,
        (e: Error) => e.message,
      )
      console.log(
        `embed.html failed (attempt ${attempt}): ${(err as Error).message.split('\n')[0]}; fetch now: ${res}`,
      )
      if (attempt >= 3) throw err
      for (const p of ctx.pages()) await p.close()
    }
  }
}

/** Links over the tabs, and how many of them are relayed. */
async function relayedShare(pages: Page[]): Promise<{ links: number; relayed: number; share: number }> {
  let links = 0
  let relayed = 0
  for (const p of pages) {
    const ps = await p.evaluate(() => (window as unknown as W).node.peers())
    links += ps.length
    relayed += ps.filter((x) => x.transport === 'relay').length
  }
  return { links, relayed, share: Math.round((relayed / Math.max(1, links)) * 1000) / 1000 }
}

async function runSize(browser: Browser, tabs: number): Promise<Record<string, number>> {
  // Every tab comes from 127.0.0.1: the per-source limits are lifted (48 real users have 48
  // addresses), and HTTP headers may take longer (48 renderers on 2 cores load pages slowly).
  const server = await startSignalServer(undefined, {
    MAX_CONNECTIONS_PER_SOURCE: '100000',
    MAX_SOCKETS_PER_SOURCE: '100000',
    REGISTRATIONS_PER_SOURCE_PER_MIN: '100000',
    MAX_IDENTITIES_PER_SOURCE: '100000',
    RELAY_BYTES_PER_SOURCE_PER_SEC: String(1 << 30),
    HEADERS_TIMEOUT_MS: '60000',
    REQUEST_TIMEOUT_MS: '120000',
  })
  const network = `scale-${tabs}`
  const contexts: BrowserContext[] = []
  const pages: Page[] = []
  const nodePeers: ScaleNode[] = []
  try {
    const t0 = Date.now()
    for (let i = 0; i < tabs; i += 4) {
      await Promise.all(
        Array.from({ length: Math.min(4, tabs - i) }, async () => {
          const ctx = await browser.newContext()
          contexts.push(ctx)
          const page = await openPage(ctx, server.url)
          await join_(page, server.url, { network })
          pages.push(page)
        }),
      )
    }
    const require = createRequire(import.meta.url)
    const wrtc = require('@roamhq/wrtc')
    const built = '../dist/client/index.js'
    const weft = await import(built)
    for (let i = 0; i < NODE_PEERS; i++)
      nodePeers.push(await weft.joinOverlay({ signal: server.url, network, wrtc }))
    // Linked (≥ 2 links) and on one ring: following successors from any node visits them all.
    const ready = async () => {
      const views = await Promise.all(
        pages.map((p) =>
          p.evaluate(() => {
            const n = (window as unknown as W).node
            return { id: n.id, linked: n.peers().length >= 2, succ: n.inspect().ring.successors[0] }
          }),
        ),
      )
      for (const n of nodePeers)
        views.push({ id: n.id, linked: n.peers().length >= 2, succ: n.inspect().ring.successors[0] })
      if (!views.every((v) => v.linked)) return false
      const next = new Map(views.map((v) => [v.id, v.succ]))
      const seen = new Set<string>()
      for (let at: string | undefined = views[0]?.id; at !== undefined && !seen.has(at); at = next.get(at))
        seen.add(at)
      return seen.size === views.length
    }
    for (const end = Date.now() + 180_000; !(await ready()); ) {
      if (Date.now() > end) throw new Error(`${tabs} tabs: not all linked after 180 s`)
      await new Promise((r) => setTimeout(r, 250))
    }
    const allLinkedMs = Date.now() - t0
    const relayedAtLinked = await relayedShare(pages)

    // Broadcast latency: receipt times (Date.now(), one machine) at every node.
    for (const p of pages)
      await p.evaluate(() => {
        const w = window as unknown as W
        w.got = {}
        w.node.subscribe('scale', (d) => {
          w.got[String(d)] = Date.now()
        })
      })
    const nodeGot: Record<string, number>[] = nodePeers.map(() => ({}))
    for (const [i, n] of nodePeers.entries()) {
      const mine = nodeGot[i] as Record<string, number>
      n.subscribe('scale', (d) => {
        mine[String(d)] = Date.now()
      })
    }
    const lasts: number[] = []
    for (let k = 0; k < 5; k++) {
      const tag = `b${k}`
      const sentAt = Date.now()
      await pages[k % pages.length]?.evaluate(
        (tag) => (window as unknown as W).node.broadcast('scale', tag),
        tag,
      )
      const end = Date.now() + 30_000
      let times: (number | undefined)[] = []
      for (;;) {
        const tabTimes = await Promise.all(
          pages.map((p) => p.evaluate((tag) => (window as unknown as W).got[tag], tag)),
        )
        times = [...tabTimes, ...nodeGot.map((g) => g[tag])]
        if (times.every((t) => t !== undefined) || Date.now() > end) break
        await new Promise((r) => setTimeout(r, 100))
      }
      if (times.some((t) => t === undefined))
        throw new Error(`${tabs} tabs: broadcast ${tag} did not reach everyone`)
      lasts.push(Math.max(...(times as number[])) - sentAt)
    }

    // Quiet: frames sent per node per second, after a warm-up (maintenance backs off while nothing
    // changes: the first seconds after a join are not what a settled network costs).
    await new Promise((r) => setTimeout(r, WARMUP_MS))
    const statsOf = () =>
      Promise.all(pages.map((p) => p.evaluate(() => (window as unknown as W).node.stats())))
    const before = await statsOf()
    await new Promise((r) => setTimeout(r, 20_000))
    const after = await statsOf()
    const idle = after.map((a, i) => ((a.messagesOut ?? 0) - (before[i]?.messagesOut ?? 0)) / 20)
    // Where the quiet frames come from: the counters that grew most, per tab per second.
    const grew = new Map<string, number>()
    after.forEach((a, i) => {
      for (const [k, v] of Object.entries(a)) {
        const d = v - (before[i]?.[k] ?? 0)
        if (d > 0) grew.set(k, (grew.get(k) ?? 0) + d / 20 / pages.length)
      }
    })
    const top = [...grew].sort((x, y) => y[1] - x[1]).slice(0, Number(process.env.WEFT_SCALE_TOP ?? 14))
    console.log(
      `${tabs} tabs, quiet counters per tab per s: ${top.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`,
    )

    // Links closed over the whole run, by reason, summed over the tabs: a stall check that closes live
    // links under this load would show as link.closed.stalled.
    const closes = new Map<string, number>()
    for (const a of after)
      for (const [k, v] of Object.entries(a))
        if (k.startsWith('link.closed.')) closes.set(k.slice(12), (closes.get(k.slice(12)) ?? 0) + v)
    console.log(
      `${tabs} tabs, links closed by reason (all tabs, whole run): ${[...closes].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
    )

    const heaps = await Promise.all(
      pages.map((p) =>
        p.evaluate(() => (performance as unknown as W['performance']).memory?.usedJSHeapSize ?? 0),
      ),
    )
    const { links, relayed } = await relayedShare(pages)
    return {
      tabs,
      nodePeers: NODE_PEERS,
      allLinkedMs,
      bcastLastMsP50: Math.round(median(lasts)),
      idleMsgsPerNodeSec: Math.round((idle.reduce((a, b) => a + b, 0) / idle.length) * 10) / 10,
      heapMBPerTab: Math.round((heaps.reduce((a, b) => a + b, 0) / heaps.length / 2 ** 20) * 10) / 10,
      linksPerTab: Math.round((links / pages.length) * 10) / 10,
      relayedAtLinked: relayedAtLinked.share,
      relayedShare: Math.round((relayed / Math.max(1, links)) * 1000) / 1000,
      stalledCloses: closes.get('stalled') ?? 0,
    }
  } finally {
    for (const n of nodePeers) await n.close().catch(() => {})
    for (const c of contexts) await c.close().catch(() => {})
    await server.stop()
  }
}

export async function run(): Promise<Record<string, unknown>> {
  ensureBuilt()
  const sizes = (process.env.WEFT_SCALE_SIZES ?? '8,24,48').split(',').map(Number)
  const browser = await launch()
  const rows: Record<string, number>[] = []
  try {
    for (const n of sizes) {
      const row = await runSize(browser, n)
      console.log(JSON.stringify(row))
      rows.push(row)
    }
  } finally {
    await browser.close()
  }
  const figures: Record<string, unknown> = {}
  for (const r of rows) figures[`tabs${r.tabs}`] = r
  report('scale', figures)
  return figures
}

if (isMain(import.meta.url)) await run()
