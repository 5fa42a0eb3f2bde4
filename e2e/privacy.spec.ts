/**
 * Privacy in real browsers (issue 11).
 *
 * - Two `relay: 'force'` tabs: every WebSocket frame each page exchanges
 *   with the signal server (what a recording server gets, as Playwright sees
 *   it on the wire) holds none of the plaintext of a unicast, a request, its
 *   reply or a broadcast between them.
 * - A private network: two members link and share broadcasts, table entries
 *   and DHT records, which their replicas hold sealed; a tab without the
 *   secret and one with another secret, in the same network, never link and
 *   get AccessDeniedError.
 */
import { expect, type Page, test } from '@playwright/test'
import { blankPage, type Peer, peersOf, serverAndPeers, until } from './fixtures.ts'

const env = serverAndPeers()

type W = {
  node: {
    id: string
    peers(): { id: string }[]
    send(to: string, topic: string, data: unknown): Promise<void>
    request(to: string, method: string, data: unknown): Promise<unknown>
    handle(method: string, fn: (d: unknown) => unknown): void
    broadcast(topic: string, data: unknown): Promise<void>
    subscribe(topic: string, fn: (d: unknown) => void): void
    sync: { set(k: string, v: unknown): Promise<void>; get(k: string): unknown }
    dht: {
      put(k: string, v: unknown): Promise<void>
      get(k: string, o?: { author?: string }): Promise<unknown>
    }
  }
  got: unknown[]
}

/** Join from a new tab in its own context; the tab's WebSocket frames (both ways) are recorded. */
async function tab(
  browser: import('@playwright/test').Browser,
  opts: Record<string, unknown>,
): Promise<{ peer: Peer; frames: string[]; error?: string }> {
  const ctx = await browser.newContext()
  const page = await blankPage(ctx, env.server.url)
  const frames: string[] = []
  page.on('websocket', (ws) => {
    const keep = (f: { payload: string | Buffer }) =>
      frames.push(typeof f.payload === 'string' ? f.payload : f.payload.toString('latin1'))
    ws.on('framesent', keep)
    ws.on('framereceived', keep)
  })
  const out = await join(page, opts)
  const peer = { ctx, page, id: out.id ?? '' }
  env.peers.push(peer)
  return { peer, frames, ...(out.error ? { error: out.error } : {}) }
}

function join(page: Page, opts: Record<string, unknown>): Promise<{ id?: string; error?: string }> {
  return page.evaluate(
    async ({ signal, opts }) => {
      const weft = await import(/* @vite-ignore */ `${signal}/weft.mjs`)
      try {
        const node = await weft.joinOverlay({ signal, ...opts })
        const w = window as unknown as { node: unknown; got: unknown[] }
        w.node = node
        w.got = []
        return { id: node.id as string }
      } catch (e) {
        return { error: (e as Error).name }
      }
    },
    { signal: env.server.url, opts },
  )
}

test('two relay=force tabs: a recording server finds none of the plaintext of unicast, request, reply, broadcast', async ({
  browser,
}) => {
  const [a, b] = await Promise.all([
    tab(browser, { network: 'rec', relay: 'force' }),
    tab(browser, { network: 'rec', relay: 'force' }),
  ])
  await until(async () => (await peersOf(a.peer)).some((p) => p.id === b.peer.id), 30_000, 'a and b to link')
  await b.peer.page.evaluate(() => {
    const w = window as unknown as W
    w.node.subscribe('notes', (d) => w.got.push(d))
    w.node.subscribe('news', (d) => w.got.push(d))
    w.node.handle('ask', (d) => (d === 'REQUEST-where-is-the-key' ? 'REPLY-under-the-flowerpot' : 'no'))
  })
  const answer = await a.peer.page.evaluate(async (to) => {
    const w = window as unknown as W
    await w.node.send(to, 'notes', 'UNICAST-the-vault-code-is-4711')
    const r = await w.node.request(to, 'ask', 'REQUEST-where-is-the-key')
    await w.node.broadcast('news', 'BROADCAST-meet-at-the-mill')
    return r
  }, b.peer.id)
  expect(answer).toBe('REPLY-under-the-flowerpot')
  await until(
    async () => (await b.peer.page.evaluate(() => (window as unknown as W).got.length)) === 2,
    20_000,
    'the unicast and the broadcast',
  )
  const all = [...a.frames, ...b.frames]
  // The link's traffic went through the server (relay events carry its pieces)...
  expect(all.filter((f) => f.includes('relay')).length).toBeGreaterThan(4)
  // ...and none of it in the clear.
  for (const s of ['UNICAST-the-vault', 'REQUEST-where-is', 'REPLY-under-the', 'BROADCAST-meet-at'])
    expect(
      all.some((f) => f.includes(s)),
      s,
    ).toBe(false)
})

test('a private network: members link and share broadcast, table and DHT; others get AccessDeniedError', async ({
  browser,
}) => {
  const secret = 'Zq3v0Lr8mWk2yXc5PbN7tA'
  const [a, b] = await Promise.all([
    tab(browser, { network: 'team', secret }),
    tab(browser, { network: 'team', secret, relay: 'force' }),
  ])
  await until(
    async () => (await peersOf(a.peer)).some((p) => p.id === b.peer.id),
    30_000,
    'the members to link',
  )
  const [outsider, guesser] = await Promise.all([
    tab(browser, { network: 'team' }),
    tab(browser, { network: 'team', secret: 'not-the-secret' }),
  ])
  expect(outsider.error).toBe('AccessDeniedError')
  expect(guesser.error).toBe('AccessDeniedError')

  await b.peer.page.evaluate(() => {
    const w = window as unknown as W
    w.node.subscribe('news', (d) => w.got.push(d))
  })
  await a.peer.page.evaluate(async () => {
    const w = window as unknown as W
    await w.node.broadcast('news', 'BROADCAST-for-members')
    await w.node.sync.set('plan', 'TABLE-for-members')
    await w.node.dht.put('doc', 'DHT-for-members')
  })
  await until(
    async () =>
      b.peer.page.evaluate(
        () =>
          (window as unknown as W).got.includes('BROADCAST-for-members') &&
          (window as unknown as W).node.sync.get('plan') === 'TABLE-for-members',
      ),
    20_000,
    'the broadcast and the table entry at b',
  )
  // (What a replica and the ring hold at rest is sealed: client/privacy.test.ts checks it on the node's
  // internals, which a page cannot reach through the WeftNode it is given.)
  const read = await b.peer.page.evaluate(
    async (author) => (window as unknown as W).node.dht.get('doc', { author }),
    a.peer.id,
  )
  expect(read).toBe('DHT-for-members')
  // The relayed member's frames to the server hold none of it either.
  for (const s of ['BROADCAST-for', 'TABLE-for', 'DHT-for'])
    expect(b.frames.some((f) => f.includes(s))).toBe(false)
  expect((await peersOf(a.peer)).map((p) => p.id)).toEqual([b.peer.id])
})
