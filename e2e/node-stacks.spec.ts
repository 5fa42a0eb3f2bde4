/**
 * A Node peer on each WebRTC stack for Node links with Chromium tabs over
 * WebRTC, nothing relayed (relay 'never' on every side). The Node peer is
 * the built package, given the stack's module the way a user imports it,
 * and an identity whose id lies between the tabs' lowest and highest, so it
 * both offers (to tabs with a higher id) and answers (tabs with a lower).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from '@playwright/test'
import { exportIdentity, generateIdentity } from '../shared/identity/keys.ts'
import { DEFAULT_PUZZLE_BITS } from '../shared/identity/puzzle.ts'
import { openPeers, peersOf, serverAndPeers, until } from './fixtures.ts'

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

/**
 * A data folder holding an identity (meeting the network's puzzle) whose id
 * lies strictly between `low` and `high`: what `dataDir` loads. Each try is
 * one puzzle identity (about 0.25 s); three tabs span half the id space on
 * average, so a few tries do.
 */
async function dataDirWithIdBetween(low: string, high: string): Promise<string> {
  for (let tries = 0; tries < 400; tries++) {
    const identity = await generateIdentity({ extractable: true, puzzleBits: DEFAULT_PUZZLE_BITS })
    if (identity.id <= low || identity.id >= high) continue
    const dir = await mkdtemp(join(tmpdir(), 'weft-node-stack-'))
    await writeFile(join(dir, 'identity.pkcs8'), await exportIdentity(identity))
    return dir
  }
  throw new Error(`no identity between ${low} and ${high} in 400 tries`)
}

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
    const tabs = await openPeers(browser, env.server.url, 3, { network, relay: 'never' })
    env.peers.push(...tabs)
    const ids = tabs.map((t) => t.id).sort()
    const dataDir = await dataDirWithIdBetween(ids[0] as string, ids[2] as string)
    const node: NodePeer = await weft.joinOverlay({
      signal: env.server.url,
      network,
      relay: 'never',
      wrtc: await load(),
      dataDir,
    })
    try {
      node.handle('whoami', (_d, meta) => ({ you: meta.from, me: node.id }))
      // Lower ids offer: a tab below the node makes it answer, one above makes it offer.
      expect(tabs.some((t) => t.id < node.id) && tabs.some((t) => t.id > node.id)).toBe(true)
      // Both ends: a link is open at one end a moment before the other has checked the key proof.
      await until(
        async () =>
          tabs.every((t) => node.peers().some((p) => p.id === t.id)) &&
          (await Promise.all(tabs.map(peersOf))).every((ps) => ps.some((p) => p.id === node.id)),
        60_000,
        `the ${stack} node linked to all ${tabs.length} tabs, at both ends`,
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
      await rm(dataDir, { recursive: true, force: true })
    }
  })
}
