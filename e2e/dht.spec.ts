/**
 * The Chord DHT in real browsers (issue 6): eight tabs, each its own browser
 * context; an always-on `weft-peer` process keeps the data when tabs go.
 * Records are owned (issue 9): each tab writes its own namespace, and the
 * others read it by naming its author.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, test } from '@playwright/test'
import { closePeer, openPeer, openPeers, type Peer, serverAndPeers, until } from './fixtures.ts'

type DhtW = {
  node: {
    id: string
    dht: {
      put(k: string, v: unknown): Promise<void>
      get(k: string, opts?: { author?: string }): Promise<unknown>
      delete(k: string): Promise<void>
      provide(k: string): Promise<void>
      findProviders(k: string): Promise<string[]>
    }
    inspect(): { ring: { successors: string[] } }
  }
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const env = serverAndPeers()
const peers = env.peers

/** Each tab reads every key of `authors` (key -> the id of the tab that wrote it); returns, per tab, the keys that came back wrong. */
async function readAll(ps: Peer[], authors: Record<string, string>): Promise<string[][]> {
  return Promise.all(
    ps.map((p) =>
      p.page.evaluate(async (authors) => {
        const bad: string[] = []
        for (const [k, author] of Object.entries(authors)) {
          const v = (await (window as unknown as DhtW).node.dht.get(k, { author })) as
            | { k: string }
            | undefined
          if (v?.k !== k) bad.push(k)
        }
        return bad
      }, authors),
    ),
  )
}

/**
 * The keys some tab still cannot read after the records have had up to 15 s to be handed to the joining tabs
 * (a read right after a join may reach an owner the handoff has not reached yet); [] once every tab reads all.
 */
async function readEventually(ps: Peer[], authors: Record<string, string>): Promise<string[]> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const missing = (await readAll(ps, authors)).flat()
    if (missing.length === 0 || Date.now() > deadline) return missing
    await new Promise((r) => setTimeout(r, 250))
  }
}

/**
 * Close `p`, then wait until none of the tabs that stay has it among its successors: the next tab to
 * leave hands its records to a live successor, not to the one that just left.
 */
async function leave(p: Peer, stay: Peer[]): Promise<void> {
  await closePeer(p)
  await until(
    async () =>
      (
        await Promise.all(
          stay.map((q) => q.page.evaluate(() => (window as unknown as DhtW).node.inspect().ring.successors)),
        )
      ).every((s) => !s.includes(p.id)),
    30_000,
    `the ring without ${p.id.slice(0, 8)}`,
  )
}

/** Every tab has at least `n` successors. */
async function ringOf(ps: Peer[], n: number): Promise<boolean> {
  const s = await Promise.all(
    ps.map((p) => p.page.evaluate(() => (window as unknown as DhtW).node.inspect().ring.successors)),
  )
  return s.every((x) => x.length >= n)
}

/** What each tab's DHT sees (successors, records held, counters): the message of a failed read. */
async function dhtViews(ps: Peer[]): Promise<string> {
  const views = await Promise.all(
    ps.map((p) =>
      p.page.evaluate(() => {
        const n = (
          window as unknown as {
            node: { inspect(): { ring: { successors: string[] } }; stats(): Record<string, number> }
          }
        ).node
        const dht = Object.entries(n.stats()).filter(
          ([k, v]) => v && (k.startsWith('dht') || k.startsWith('route')),
        )
        return {
          successors: n.inspect().ring.successors.map((x) => x.slice(0, 8)),
          ...Object.fromEntries(dht),
        }
      }),
    ),
  )
  return JSON.stringify(Object.fromEntries(ps.map((p, i) => [p.id.slice(0, 8), views[i]])))
}

async function ringFormed(ps: Peer[]): Promise<boolean> {
  const succ = await Promise.all(
    ps.map((p) => p.page.evaluate(() => (window as unknown as DhtW).node.inspect().ring.successors[0])),
  )
  const ids = ps.map((p) => p.id).sort()
  // Each node's first successor is the next id on the sorted circle.
  return ps.every((p, i) => succ[i] === ids[(ids.indexOf(p.id) + 1) % ids.length])
}

test('eight tabs: 100 puts from random tabs read back by author from every tab; another tab cannot overwrite; two tabs close, all still readable', async ({
  browser,
}) => {
  peers.push(...(await openPeers(browser, env.server.url, 8, { network: 'dht8' })))
  await until(() => ringFormed(peers), 60_000, 'ring formed')
  const keys = Array.from({ length: 100 }, (_, i) => `key-${i}`)
  // Puts from random tabs (seeded choice so a failure replays).
  let seed = 12345
  const pick = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return peers[seed % peers.length] as Peer
  }
  const authors: Record<string, string> = {}
  const byTab = new Map<Peer, string[]>()
  for (const k of keys) {
    const p = pick()
    byTab.set(p, [...(byTab.get(p) ?? []), k])
    authors[k] = p.id
  }
  // The tabs write at once, each its own keys one after another.
  await Promise.all(
    [...byTab].map(([p, ks]) =>
      p.page.evaluate(async (ks) => {
        for (const k of ks) await (window as unknown as DhtW).node.dht.put(k, { k, at: Date.now() })
      }, ks),
    ),
  )
  const bad = (await readAll(peers, authors)).flat()
  expect(bad, bad.length ? await dhtViews(peers) : '').toEqual([])
  // Another tab writes and deletes the same key: in its own namespace. The author's record stands.
  const k0 = 'key-0'
  const other = peers.find((p) => p.id !== authors[k0]) as Peer
  await other.page.evaluate((k) => (window as unknown as DhtW).node.dht.put(k, 'not yours'), k0)
  await other.page.evaluate((k) => (window as unknown as DhtW).node.dht.delete(k), k0)
  expect(await other.page.evaluate((k) => (window as unknown as DhtW).node.dht.get(k), k0)).toBeUndefined()
  expect(
    await other.page.evaluate(({ k, author }) => (window as unknown as DhtW).node.dht.get(k, { author }), {
      k: k0,
      author: authors[k0] as string,
    }),
  ).toEqual(expect.objectContaining({ k: k0 }))
  // Close two tabs: replicas on their successors keep every key readable.
  const [gone1, gone2] = [peers[2] as Peer, peers[5] as Peer]
  await closePeer(gone1)
  await closePeer(gone2)
  peers.splice(5, 1)
  peers.splice(2, 1)
  const afterBad = (await readAll(peers, authors)).flat()
  expect(afterBad, afterBad.length ? await dhtViews(peers) : '').toEqual([])
})

test('findProviders finds a provider on another tab', async ({ browser }) => {
  peers.push(...(await openPeers(browser, env.server.url, 4, { network: 'prov' })))
  await until(() => ringFormed(peers), 60_000, 'ring formed')
  const [a, b, c] = peers as [Peer, Peer, Peer]
  await a.page.evaluate(() => (window as unknown as DhtW).node.dht.provide('service:chat'))
  await b.page.evaluate(() => (window as unknown as DhtW).node.dht.provide('service:chat'))
  const found = await c.page.evaluate(() =>
    (window as unknown as DhtW).node.dht.findProviders('service:chat'),
  )
  expect([...found].sort()).toEqual([a.id, b.id].sort())
  expect(
    await c.page.evaluate(() => (window as unknown as DhtW).node.dht.findProviders('service:none')),
  ).toEqual([])
})

/** Start `weft-peer` on `dataDir`; resolves with the process and its node id once it has joined. */
async function startWeftPeer(
  serverUrl: string,
  dataDir: string,
): Promise<{ proc: ChildProcess; id: string }> {
  const proc = spawn(
    process.execPath,
    [join(root, 'dist/client/peer-main.js'), '--signal', serverUrl, '--network', 'keep', '--data', dataDir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let out = ''
  proc.stdout?.on('data', (d) => {
    out += d
  })
  proc.stderr?.on('data', (d) => {
    out += d
  })
  await until(() => /weft-peer [0-9a-f]{40} joined/.test(out), 20_000, `weft-peer joined (${out})`)
  return { proc, id: (/weft-peer ([0-9a-f]{40}) joined/.exec(out) as RegExpExecArray)[1] as string }
}

async function stopWeftPeer(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return
  await new Promise<void>((resolve) => {
    proc.once('exit', () => resolve())
    proc.kill('SIGTERM')
  })
}

test('a weft-peer keeps the data: tabs write and all close, new tabs read it; it survives a restart from disk', async ({
  browser,
}) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-peer-'))
  let peer: { proc: ChildProcess; id: string } | undefined
  try {
    peer = await startWeftPeer(env.server.url, dataDir)
    peers.push(...(await openPeers(browser, env.server.url, 3, { network: 'keep' })))
    await until(
      async () => {
        const s = await Promise.all(
          peers.map((p) => p.page.evaluate(() => (window as unknown as DhtW).node.inspect().ring.successors)),
        )
        return s.every((x) => x.length >= 3)
      },
      60_000,
      'ring with the peer',
    )
    const keys = Array.from({ length: 20 }, (_, i) => `kept-${i}`)
    const authors: Record<string, string> = {}
    for (const [i, k] of keys.entries()) authors[k] = (peers[i % 3] as Peer).id
    // The three tabs write at once, each its own keys one after another.
    await Promise.all(
      peers.map((p) =>
        p.page.evaluate(
          async (ks) => {
            for (const k of ks) await (window as unknown as DhtW).node.dht.put(k, { k })
          },
          keys.filter((k) => authors[k] === p.id),
        ),
      ),
    )
    // Every tab goes away, one after another (each hands its records to its successors); only the weft-peer remains.
    while (peers.length > 0) await leave(peers.shift() as Peer, peers)
    peers.push(...(await openPeers(browser, env.server.url, 2, { network: 'keep' })))
    // The new tabs read once they are in the ring with the weft-peer (a read while a node is still joining may
    // reach an owner the records have not been handed to yet).
    await until(() => ringOf(peers, 2), 60_000, 'ring of the new tabs and the peer')
    // Their authors are gone: the new tabs read each record by its author's id.
    const missing = await readEventually(peers, authors)
    expect(missing, missing.length ? await dhtViews(peers) : '').toEqual([])
    // The peer keeps its share on disk: stopped while alone, restarted from its folder, same id, same data.
    while (peers.length > 0) await leave(peers.shift() as Peer, peers)
    await stopWeftPeer(peer.proc)
    const again = await startWeftPeer(env.server.url, dataDir)
    expect(again.id).toBe(peer.id)
    peer = again
    peers.push(await openPeer(browser, env.server.url, { network: 'keep' }))
    await until(() => ringOf(peers, 1), 60_000, 'ring of the new tab and the peer')
    const missingAfter = await readEventually(peers, authors)
    expect(missingAfter, missingAfter.length ? await dhtViews(peers) : '').toEqual([])
  } finally {
    if (peer) await stopWeftPeer(peer.proc)
    rmSync(dataDir, { recursive: true, force: true })
  }
})
