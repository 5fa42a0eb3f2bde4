/**
 * signals: how many signals the signal server carries per new link, with
 * link signalling through the server only ("before") and through the
 * overlay once a node is on the ring ("after", the default).
 *
 * 16 Node peers (WebRTC through @roamhq/wrtc) join one network; once the
 * ring has formed, each does DHT puts and gets, which open Chord links on
 * demand. Counted from then on: links opened, and signals sent through the
 * server. Median of 3 runs each.
 *
 *   npm run bench -- signals
 */
import { createRequire } from 'node:module'
import { joinOverlay, type WeftNode } from '../client/index.ts'
import { createSignalServer } from '../signal-server/index.ts'
import { isMain, median, report } from './report.ts'

const N = 16
const wrtc = createRequire(import.meta.url)('@roamhq/wrtc')

async function once(overlaySignals: boolean, run: number): Promise<{ perLink: number; links: number }> {
  const srv = await createSignalServer({ port: 0, log: () => {} })
  const nodes: WeftNode[] = []
  try {
    for (let i = 0; i < N; i++)
      nodes.push(
        await joinOverlay({
          signal: srv.address,
          network: `sig-${run}`,
          wrtc,
          maxPeers: 3,
          targetPeers: 2,
          overlaySignals,
        }),
      )
    // Let the ring settle (successors found, fingers fixed).
    await new Promise((r) => setTimeout(r, 6000))
    const sum = (k: string) => nodes.reduce((s, n) => s + (n.stats()[k] ?? 0), 0)
    const links0 = sum('link.opened.webrtc') + sum('link.opened.relay')
    const server0 = sum('signal.server')
    for (let i = 0; i < 64; i++) await (nodes[i % N] as WeftNode).dht.put(`k${i}`, i)
    // Records are owned: k<i> is node (i % N)'s, read by naming it as the author.
    for (let i = 0; i < 64; i++)
      await (nodes[(i * 7) % N] as WeftNode).dht.get(`k${i}`, { author: (nodes[i % N] as WeftNode).id })
    await new Promise((r) => setTimeout(r, 4000))
    const links = sum('link.opened.webrtc') + sum('link.opened.relay') - links0
    const server = sum('signal.server') - server0
    return { perLink: links > 0 ? server / links : Number.NaN, links }
  } finally {
    await Promise.all(nodes.map((n) => n.close()))
    await srv.close()
  }
}

export async function run(): Promise<Record<string, number>> {
  const before: number[] = []
  const after: number[] = []
  const linksBefore: number[] = []
  const linksAfter: number[] = []
  for (let r = 0; r < 3; r++) {
    const b = await once(false, r * 2)
    const a = await once(true, r * 2 + 1)
    before.push(b.perLink)
    after.push(a.perLink)
    linksBefore.push(b.links)
    linksAfter.push(a.links)
  }
  const figures = {
    nodes: N,
    serverSignalsPerLinkBefore: +median(before).toFixed(2),
    serverSignalsPerLinkAfter: +median(after).toFixed(2),
    linksOpenedBefore: median(linksBefore),
    linksOpenedAfter: median(linksAfter),
  }
  report('signals', figures)
  return figures
}

if (isMain(import.meta.url)) await run()
