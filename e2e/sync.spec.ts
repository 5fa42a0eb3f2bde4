/**
 * The sync table in real browsers (issue 5): five tabs, each its own browser
 * context; leases contended across tabs; a reload and a return after being
 * away both come back with the whole table. Peers come from the testing kit
 * (weft/testing/playwright): tabs without an app, where the kit joins.
 */

import { expect, test, type WeftPeer } from 'weft/testing/playwright'
import type { Value } from '../client/api.ts'

const get = (p: WeftPeer, k: string) => p.evaluate((node, k) => node.sync.get(k), k)
const owner = (p: WeftPeer, k: string) => p.evaluate((node, k) => node.sync.owner(k), k)
const entries = (p: WeftPeer) => p.evaluate((node) => node.sync.entries())
const all = <T>(peers: readonly WeftPeer[], f: (p: WeftPeer) => Promise<T>) => Promise.all(peers.map(f))

function setIn(p: WeftPeer, k: string, v: Value, leaseMs?: number) {
  return p.evaluate(
    async (node, { k, v, leaseMs }) => {
      try {
        await node.sync.set(k, v, leaseMs === undefined ? {} : { leaseMs })
        return { ok: true }
      } catch (e) {
        const err = e as Error & { owner?: string; expires?: number }
        return { ok: false, name: err.name, owner: err.owner, expires: err.expires }
      }
    },
    { k, v, leaseMs },
  )
}

test('a set in one tab shows in all five; a delete too', async ({ weft }) => {
  const peers = await weft.peers(5, { network: 'sync5', parallel: true })
  const greeting = { text: 'hi', bytes: new Uint8Array([1, 2, 3]) }
  expect(await setIn(peers[1], 'greeting', greeting)).toEqual({ ok: true })
  // Equal everywhere, the bytes a Uint8Array again.
  await weft.synced(peers, 'greeting', greeting, { timeoutMs: 20_000 })
  await peers[3].evaluate((node) => node.sync.delete('greeting'))
  await weft.synced(peers, 'greeting', (v) => v === undefined, { timeoutMs: 20_000 })
})

test('two tabs contend for a leased key: the holder keeps it, the other gets LeaseHeldError', async ({
  weft,
}) => {
  const peers = await weft.peers(3, { network: 'lease', parallel: true })
  const [a, b, c] = peers
  // (Joined at once, a tab may still be alone: the 4 s lease must reach the others while it lives.)
  await weft.linked(peers)
  expect(await setIn(a, 'door', 'a', 4000)).toEqual({ ok: true })
  await expect
    .poll(() => all(peers, (p) => owner(p, 'door')), { timeout: 20_000, message: 'lease seen' })
    .toEqual([a.id, a.id, a.id])
  // b and c cannot write or delete while the lease lives; the error names the owner and the expiry.
  const refused = await setIn(b, 'door', 'b', 4000)
  expect(refused).toMatchObject({ ok: false, name: 'LeaseHeldError', owner: a.id })
  expect(refused.expires).toBeGreaterThan(Date.now() - 1000)
  expect((await setIn(c, 'door', 'c')).name).toBe('LeaseHeldError')
  const del = await c.evaluate((node) =>
    node.sync.delete('door').then(
      () => 'deleted',
      (e: Error) => e.name,
    ),
  )
  expect(del).toBe('LeaseHeldError')
  for (const p of peers) expect(await get(p, 'door')).toBe('a')
  // The owner renews and writes.
  expect(await setIn(a, 'door', 'renewed', 3000)).toEqual({ ok: true })
  await weft.synced(peers, 'door', 'renewed', { timeoutMs: 20_000 })
  // After expiry (plus the clock-skew grace) the other tab takes the key.
  await expect
    .poll(async () => (await setIn(b, 'door', 'b at last', 3000)).ok, {
      timeout: 20_000,
      message: 'lease expired',
    })
    .toBe(true)
  await expect
    .poll(() => all(peers, (p) => owner(p, 'door')), { timeout: 20_000, message: 'new owner seen' })
    .toEqual([b.id, b.id, b.id])
})

test('two tabs grab one lease at the same instant: every tab agrees on one owner at once', async ({
  weft,
}) => {
  const peers = await weft.peers(3, { network: 'race', parallel: true })
  const [a, b] = peers
  await weft.linked(peers)
  expect(await setIn(a, 'warmup', 1)).toEqual({ ok: true })
  await b.waitForKey('warmup', 1, { timeoutMs: 20_000 })
  const [ra, rb] = await Promise.all([setIn(a, 'door', 'a', 30_000), setIn(b, 'door', 'b', 30_000)])
  expect(ra.ok || rb.ok).toBe(true)
  let winner = ''
  // Long before the 30 s lease ends, every replica names the same owner and holds the owner's value.
  await expect
    .poll(
      async () => {
        const os = await all(peers, (p) => owner(p, 'door'))
        const vs = await all(peers, (p) => get(p, 'door'))
        winner = os[0] ?? ''
        return (
          !!winner && os.every((o) => o === winner) && vs.every((v) => v === (winner === a.id ? 'a' : 'b'))
        )
      },
      { timeout: 5000, message: 'one owner everywhere' },
    )
    .toBe(true)
  const loser = winner === a.id ? b : a
  const refused = await setIn(loser, 'door', 'mine', 30_000)
  expect(refused).toMatchObject({ ok: false, name: 'LeaseHeldError', owner: winner })
})

test('a reloaded tab comes back with the table and its id; a returning tab catches up', async ({ weft }) => {
  const peers = await weft.peers(3, { network: 'persist', parallel: true })
  const [a, b] = peers
  for (let i = 0; i < 10; i++) expect(await setIn(a, `k${i}`, i)).toEqual({ ok: true })
  await expect
    .poll(async () => (await entries(b)).length, { timeout: 20_000, message: 'b has the table' })
    .toBe(10)
  // Reload b: same id, and the table comes back from IndexedDB (not only from peers).
  const id = b.id
  await new Promise((r) => setTimeout(r, 800)) // saves are throttled to one per 250 ms
  expect(await b.reload()).toBe(id)
  expect(await b.evaluate((node) => node.stats()['sync.accepted.import'])).toBe(10)
  await expect
    .poll(async () => (await entries(b)).length, { timeout: 20_000, message: 'b has the table after reload' })
    .toBe(10)
  // Close b's tab; others write meanwhile; b returns (same browser profile) and catches up.
  await b.leave()
  for (let i = 10; i < 15; i++) expect(await setIn(a, `k${i}`, i)).toEqual({ ok: true })
  await a.evaluate((node) => node.sync.delete('k0'))
  expect(await b.rejoin()).toBe(id)
  await expect
    .poll(async () => (await entries(b)).length === 14 && (await get(b, 'k0')) === undefined, {
      timeout: 30_000,
      message: 'b caught up',
    })
    .toBe(true)
  expect(await get(b, 'k14')).toBe(14)
})
