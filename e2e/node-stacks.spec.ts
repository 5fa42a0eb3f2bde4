/**
 * A Node peer on each WebRTC stack for Node links with Chromium tabs over
 * WebRTC, nothing relayed (relay 'never' on every side). The Node peer is
 * the built package, given the stack's module the way a user imports it;
 * tabs are opened until the Node peer has both roles (it offers to tabs
 * with a higher id, answers tabs with a lower one).
 */
import { expect, test } from '@playwright/test'
import { openPeer, type Peer, peersOf, serverAndPeers, until } from './fixtures.ts'

type TabNode = {
  node: {
    handle(m: string, fn: (d: unknown, meta: { from: string }) => unknown): () => void
    request(to: string, m: string, d: unknown): Promise<unknown>
  }
}

interface NodePeer {
  id: string
  peers(): { id: string; transport: string }[]
  stats(): Record<string, number>
  handle(m: string, fn: (d: unknown, meta: { from: string }) => unknown): () => void
  request(to: string, m: string, d: unknown): Promise<unknown>
  close(): Promise<void>
}

const env = serverAndPeers()

/** Each stack's module, imported as its README shows. */
const stacks: Record<string, () => Promise<unknown>> = {
  // import wrtc from 'node-datachannel/polyfill'
  'node-datachannel': async () => (await import('node-datachannel/polyfill')).default,
  // import * as werift from 'werift'
  werift: async () => import('werift'),
  // import wrtc from '@roamhq/wrtc'
  '@roamhq/wrtc': async () => (await import('@roamhq/wrtc')).default,
}

for (const [stack, load] of Object.entries(stacks)) {
  test(`a Node peer on ${stack} links with tabs over WebRTC, both offering and answering`, async ({
    browser,
  }) => {
    const network = `node-${stack.replace(/[^a-z]/g, '')}`
    // The built package, as `import { joinOverlay } from 'weft'` gives it in Node.
    const built = '../dist/client/index.js'
    const weft = await import(built)
    const node: NodePeer = await weft.joinOverlay({
      signal: env.server.url,
      network,
      relay: 'never',
      wrtc: await load(),
    })
    try {
      node.handle('whoami', (_d, meta) => ({ you: meta.from, me: node.id }))
      const tabs: Peer[] = []
      // Lower ids offer: a tab below the node makes it answer, one above makes it offer.
      while (!(tabs.some((t) => t.id < node.id) && tabs.some((t) => t.id > node.id)) && tabs.length < 8) {
        const tab = await openPeer(browser, env.server.url, { network, relay: 'never' })
        env.peers.push(tab)
        tabs.push(tab)
      }
      expect(tabs.some((t) => t.id < node.id) && tabs.some((t) => t.id > node.id)).toBe(true)
      await until(
        () => tabs.every((t) => node.peers().some((p) => p.id === t.id)),
        60_000,
        `the ${stack} node linked to all ${tabs.length} tabs`,
      )
      for (const t of tabs) {
        expect(node.peers()).toContainEqual({ id: t.id, transport: 'webrtc' })
        expect(await peersOf(t)).toContainEqual({ id: node.id, transport: 'webrtc' })
        await t.page.evaluate(() =>
          (window as unknown as TabNode).node.handle('twice', (d) => (d as number) * 2),
        )
        expect(await node.request(t.id, 'twice', 21)).toBe(42)
        const answer = await t.page.evaluate(
          (to) => (window as unknown as TabNode).node.request(to, 'whoami', null),
          node.id,
        )
        expect(answer).toEqual({ you: t.id, me: node.id })
      }
      const stats = node.stats()
      expect(stats['link.opened.relay'] ?? 0).toBe(0)
      // What failed on the way (a retry may have followed), for the log.
      const failed = Object.entries(stats).filter(([k]) => k.startsWith('dial.webrtc-'))
      console.log(`${stack}: ${tabs.length} tabs linked; failed direct attempts: ${JSON.stringify(failed)}`)
    } finally {
      await node.close()
    }
  })
}
