/**
 * The sync table in real browsers (issue 5): five tabs, each its own browser
 * context; leases contended across tabs; a reload and a return after being
 * away both come back with the whole table.
 */
import { expect, test } from '@playwright/test'
import { blankPage, join_, openPeer, type Peer, serverAndPeers, until } from './fixtures.ts'

type SyncW = {
  node: {
    id: string
    sync: {
      set(k: string, v: unknown, o?: { leaseMs?: number }): Promise<void>
      get(k: string): unknown
      delete(k: string): Promise<void>
      entries(): [string, unknown][]
      owner(k: string): string | undefined
    }
    close(): Promise<void>
  }
}

const env = serverAndPeers()
const peers = env.peers

const get = (p: Peer, k: string) => p.page.evaluate((k) => (window as unknown as SyncW).node.sync.get(k), k)
const owner = (p: Peer, k: string) =>
  p.page.evaluate((k) => (window as unknown as SyncW).node.sync.owner(k), k)
const entries = (p: Peer) => p.page.evaluate(() => (window as unknown as SyncW).node.sync.entries())

async function setIn(p: Peer, k: string, v: unknown, leaseMs?: number) {
  return p.page.evaluate(
    async ({ k, v, leaseMs }) => {
      try {
        await (window as unknown as SyncW).node.sync.set(k, v, leaseMs === undefined ? {} : { leaseMs })
        return { ok: true }
      } catch (e) {
        const err = e as Error & { owner?: string; expires?: number }
        return { ok: false, name: err.name, owner: err.owner, expires: err.expires }
      }
    },
    { k, v, leaseMs },
  )
}

test('a set in one tab shows in all five; a delete too', async ({ browser }) => {
  for (let i = 0; i < 5; i++) peers.push(await openPeer(browser, env.server.url, { network: 'sync5' }))
  expect(await setIn(peers[1] as Peer, 'greeting', { text: 'hi', bytes: new Uint8Array([1, 2, 3]) })).toEqual(
    { ok: true },
  )
  await until(
    async () => (await Promise.all(peers.map((p) => get(p, 'greeting')))).every((v) => v !== undefined),
    20_000,
    'set seen everywhere',
  )
  for (const p of peers) {
    const v = await p.page.evaluate(() => {
      const g = (window as unknown as SyncW).node.sync.get('greeting') as { text: string; bytes: Uint8Array }
      return { text: g.text, bytes: g.bytes instanceof Uint8Array ? Array.from(g.bytes) : null }
    })
    expect(v).toEqual({ text: 'hi', bytes: [1, 2, 3] })
  }
  await peers[3]?.page.evaluate(() => (window as unknown as SyncW).node.sync.delete('greeting'))
  await until(
    async () => (await Promise.all(peers.map((p) => get(p, 'greeting')))).every((v) => v === undefined),
    20_000,
    'delete seen everywhere',
  )
})

test('two tabs contend for a leased key: the holder keeps it, the other gets LeaseHeldError', async ({
  browser,
}) => {
  for (let i = 0; i < 3; i++) peers.push(await openPeer(browser, env.server.url, { network: 'lease' }))
  const [a, b, c] = peers as [Peer, Peer, Peer]
  expect(await setIn(a, 'door', 'a', 4000)).toEqual({ ok: true })
  await until(
    async () => (await Promise.all(peers.map((p) => owner(p, 'door')))).every((o) => o === a.id),
    20_000,
    'lease seen',
  )
  // b and c cannot write or delete while the lease lives; the error names the owner and the expiry.
  const refused = await setIn(b, 'door', 'b', 4000)
  expect(refused).toMatchObject({ ok: false, name: 'LeaseHeldError', owner: a.id })
  expect(refused.expires).toBeGreaterThan(Date.now() - 1000)
  expect((await setIn(c, 'door', 'c')).name).toBe('LeaseHeldError')
  const del = await c.page.evaluate(() =>
    (window as unknown as SyncW).node.sync.delete('door').then(
      () => 'deleted',
      (e: Error) => e.name,
    ),
  )
  expect(del).toBe('LeaseHeldError')
  for (const p of peers) expect(await get(p, 'door')).toBe('a')
  // The owner renews and writes.
  expect(await setIn(a, 'door', 'renewed', 3000)).toEqual({ ok: true })
  await until(
    async () => (await Promise.all(peers.map((p) => get(p, 'door')))).every((v) => v === 'renewed'),
    20_000,
    'renewal seen',
  )
  // After expiry (plus the clock-skew grace) the other tab takes the key.
  await until(async () => (await setIn(b, 'door', 'b at last', 3000)).ok === true, 20_000, 'lease expired')
  await until(
    async () => (await Promise.all(peers.map((p) => owner(p, 'door')))).every((o) => o === b.id),
    20_000,
    'new owner seen',
  )
})

test('two tabs grab one lease at the same instant: every tab agrees on one owner at once', async ({
  browser,
}) => {
  for (let i = 0; i < 3; i++) peers.push(await openPeer(browser, env.server.url, { network: 'race' }))
  const [a, b] = peers as [Peer, Peer]
  await until(
    async () => (await setIn(a, 'warmup', 1)).ok && (await get(b, 'warmup')) === 1,
    20_000,
    'linked',
  )
  const [ra, rb] = await Promise.all([setIn(a, 'door', 'a', 30_000), setIn(b, 'door', 'b', 30_000)])
  expect(ra.ok || rb.ok).toBe(true)
  let winner = ''
  // Long before the 30 s lease ends, every replica names the same owner and holds the owner's value.
  await until(
    async () => {
      const os = await Promise.all(peers.map((p) => owner(p, 'door')))
      const vs = await Promise.all(peers.map((p) => get(p, 'door')))
      winner = os[0] ?? ''
      return !!winner && os.every((o) => o === winner) && vs.every((v) => v === (winner === a.id ? 'a' : 'b'))
    },
    5000,
    'one owner everywhere',
  )
  const loser = winner === a.id ? b : a
  const refused = await setIn(loser, 'door', 'mine', 30_000)
  expect(refused).toMatchObject({ ok: false, name: 'LeaseHeldError', owner: winner })
})

test('a reloaded tab comes back with the table and its id; a returning tab catches up', async ({
  browser,
}) => {
  for (let i = 0; i < 3; i++) peers.push(await openPeer(browser, env.server.url, { network: 'persist' }))
  const [a, b] = peers as [Peer, Peer]
  for (let i = 0; i < 10; i++) expect(await setIn(a, `k${i}`, i)).toEqual({ ok: true })
  await until(async () => (await entries(b)).length === 10, 20_000, 'b has the table')
  // Reload b: same id, and the table comes back from IndexedDB (not only from peers).
  await new Promise((r) => setTimeout(r, 800)) // saves are throttled to one per 250 ms
  await b.page.reload()
  const back = await b.page.evaluate(async (signal) => {
    const weft = await import(/* @vite-ignore */ `${signal}/weft.mjs`)
    const node = await weft.joinOverlay({ signal, network: 'persist' })
    ;(window as unknown as { node: unknown }).node = node
    return { id: node.id as string, fromStorage: node.stats()['sync.accepted.import'] as number }
  }, env.server.url)
  expect(back.id).toBe(b.id)
  expect(back.fromStorage).toBe(10)
  await until(async () => (await entries(b)).length === 10, 20_000, 'b has the table after reload')
  // Close b's tab; others write meanwhile; b returns (same browser profile) and catches up.
  await b.page.evaluate(() => (window as unknown as SyncW).node.close())
  await b.page.close()
  for (let i = 10; i < 15; i++) expect(await setIn(a, `k${i}`, i)).toEqual({ ok: true })
  await a.page.evaluate(() => (window as unknown as SyncW).node.sync.delete('k0'))
  const page = await blankPage(b.ctx, env.server.url)
  const id = await join_(page, env.server.url, { network: 'persist' })
  expect(id).toBe(b.id)
  b.page = page
  await until(
    async () => (await entries(b)).length === 14 && (await get(b, 'k0')) === undefined,
    30_000,
    'b caught up',
  )
  expect(await get(b, 'k14')).toBe(14)
})
