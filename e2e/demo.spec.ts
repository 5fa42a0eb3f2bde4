/**
 * The demo page in real browsers: three peers, each in its own browser
 * context, open `/` of the built signal server (one with relay=force). The
 * page must show each node's id and signal state, its links with their
 * transport, the network drawing, a chat that reaches every tab, live
 * counters, and the table and DHT panels (or say they are not in the build).
 * A join that fails must show the error's name to the person.
 */
import { type Browser, type BrowserContext, expect, type Page, test } from '@playwright/test'
import { freePort, type SignalServerProcess, startSignalServer } from './fixtures.ts'

interface DemoPeer {
  ctx: BrowserContext
  page: Page
  id: string
  errors: string[]
}

let server: SignalServerProcess
const opened: DemoPeer[] = []

test.beforeAll(async () => {
  server = await startSignalServer()
})

test.afterEach(async () => {
  await Promise.all(opened.splice(0).map((p) => p.ctx.close()))
})

test.afterAll(async () => {
  await server?.stop()
})

const short = (id: string) => id.slice(0, 8)

async function openDemo(browser: Browser, query: string): Promise<DemoPeer> {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 } })
  const page = await ctx.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  await page.goto(`${server.url}/?${query}`)
  // window.overlay is the Promise of the page's joinOverlay call (API.md).
  const id = await page.evaluate(
    async () => (await (window as unknown as { overlay: Promise<{ id: string }> }).overlay).id,
  )
  const peer = { ctx, page, id, errors }
  opened.push(peer)
  return peer
}

function counter(page: Page, key: string): Promise<number> {
  return page
    .getByTestId(`counter-${key}`)
    .locator('.value')
    .textContent()
    .then((t) => Number((t ?? '').replace(/[^\d.]/g, '')))
}

function linkRow(page: Page, peerId: string) {
  return page
    .getByRole('region', { name: 'Links' })
    .getByRole('row')
    .filter({ hasText: short(peerId) })
}

test('three peers: ids, links with their transport, the drawing, a chat reaching every tab, live counters', async ({
  browser,
}) => {
  test.setTimeout(60_000)
  const network = `demo-e2e-${Date.now()}`
  // The three open at once.
  const [a, b, c] = await Promise.all([
    openDemo(browser, `network=${network}`),
    openDemo(browser, `network=${network}`),
    openDemo(browser, `network=${network}&relay=force`),
  ])
  const all = [a, b, c]

  for (const p of all) {
    const idEl = p.page.locator('#node-id')
    await expect(idEl).toHaveText(short(p.id))
    await expect(idEl).toHaveAttribute('title', p.id)
    await expect(p.page.getByRole('button', { name: 'Copy node id' })).toBeEnabled()
    await expect(p.page.getByRole('status', { name: 'Signal server state' })).toHaveText('registered')
    await expect(p.page.locator('#network-name')).toHaveText(network)
  }
  await expect(c.page.locator('#relay-mode')).toHaveText('force')

  // Links: a and b talk WebRTC; everything to c goes through the relay.
  await expect(linkRow(a.page, b.id)).toContainText('webrtc')
  await expect(linkRow(a.page, c.id)).toContainText('relay')
  await expect(linkRow(b.page, c.id)).toContainText('relay')
  await expect(linkRow(c.page, a.id)).toContainText('relay')
  await expect(linkRow(c.page, b.id)).toContainText('relay')
  // The RTT fills in from the heartbeats.
  await expect(linkRow(a.page, b.id)).toContainText(/\d ms/)

  // The drawing holds all three nodes, this one marked.
  await expect(a.page.locator('#graph .node')).toHaveCount(3)
  await expect(a.page.locator('#graph .node.me')).toHaveCount(1)
  await expect(a.page.locator('#graph .edge.relay')).toHaveCount(1)
  await expect(a.page.locator('#graph-caption')).toContainText('3 nodes known')
  await expect(a.page.locator('#graph-caption')).toContainText('3 present')

  // Presence: a name typed in one tab is its presence state; every tab's drawing labels it so.
  const name = `ann${Math.random().toString(36).slice(2, 6)}`
  await b.page.getByRole('textbox', { name: 'Your name' }).fill(name)
  await expect(b.page.locator('#graph .node.me .label')).toHaveText(`${name} (you)`)
  for (const p of [a, c])
    await expect(p.page.locator('#graph .node .label').filter({ hasText: name })).toHaveCount(1)

  // Counters are live.
  await expect(b.page.getByTestId('counter-peers').locator('.value')).toHaveText('2')
  await expect(c.page.getByTestId('counter-relayPeers').locator('.value')).toHaveText('2')
  const outBefore = await counter(a.page, 'messagesOut')
  const inBefore = await counter(c.page, 'messagesIn')

  // Chat: typed in one tab (Enter sends), shown in every other with the sender and hop count.
  const text = `hello from a ${Math.random().toString(36).slice(2, 8)}`
  const box = a.page.getByRole('textbox', { name: 'Message' })
  await box.fill(text)
  await box.press('Enter')
  await expect(box).toHaveValue('')
  await expect(a.page.getByRole('log', { name: 'Chat history' })).toContainText(text)
  for (const p of [b, c]) {
    const line = p.page
      .getByRole('log', { name: 'Chat history' })
      .getByRole('listitem')
      .filter({ hasText: text })
    await expect(line).toHaveCount(1)
    await expect(line).toContainText(short(a.id))
    await expect(line).toContainText(/\d hops?/)
  }
  // And the other way, with the Send button, from the relayed peer.
  const reply = `reply from c ${Math.random().toString(36).slice(2, 8)}`
  await c.page.getByRole('textbox', { name: 'Message' }).fill(reply)
  await c.page.getByRole('button', { name: 'Send' }).click()
  await expect(
    a.page.getByRole('log', { name: 'Chat history' }).getByRole('listitem').filter({ hasText: reply }),
  ).toContainText(short(c.id))

  await expect.poll(() => counter(a.page, 'messagesOut')).toBeGreaterThan(outBefore)
  await expect.poll(() => counter(c.page, 'messagesIn')).toBeGreaterThan(inBefore)

  // The table and DHT panels: working controls when the build has them, a clear note when not.
  const has = await a.page.evaluate(async () => {
    const node = await (window as unknown as { overlay: Promise<{ sync?: unknown; dht?: unknown }> }).overlay
    return { sync: node.sync !== undefined, dht: node.dht !== undefined }
  })
  const table = a.page.getByRole('region', { name: 'Sync table' })
  const dht = a.page.getByRole('region', { name: 'DHT' })
  if (has.sync) await expect(table.getByRole('textbox', { name: 'Table key' })).toBeEnabled()
  else await expect(table).toContainText('Not available in this build')
  if (has.dht) await expect(dht.getByRole('textbox', { name: 'DHT key' })).toBeEnabled()
  else await expect(dht).toContainText('Not available in this build')

  if (has.sync) {
    // A leased key shows its owner in every tab, and another tab's write is refused with LeaseHeldError.
    await table.getByRole('textbox', { name: 'Table key' }).fill('leader')
    await table.getByRole('textbox', { name: 'Table value' }).fill('"a"')
    await table.getByRole('spinbutton', { name: 'Lease (s)' }).fill('30')
    await table.getByRole('button', { name: 'Set', exact: true }).click()
    const cTable = c.page.getByRole('region', { name: 'Sync table' })
    const row = cTable.getByRole('row').filter({ hasText: 'leader' })
    await expect(row).toContainText(short(a.id))
    await expect(row).toContainText(/\d s/)
    await cTable.getByRole('textbox', { name: 'Table key' }).fill('leader')
    await cTable.getByRole('textbox', { name: 'Table value' }).fill('"c"')
    await cTable.getByRole('button', { name: 'Set', exact: true }).click()
    await expect(cTable.getByRole('status')).toContainText('LeaseHeldError')
  }
  if (has.dht) {
    await dht.getByRole('textbox', { name: 'DHT key' }).fill('e2e/demo')
    await dht.getByRole('textbox', { name: 'DHT value' }).fill('{"n": 7}')
    await dht.getByRole('button', { name: 'Put', exact: true }).click()
    await expect(dht.getByRole('list', { name: 'DHT results' })).toContainText('stored')
    const bDht = b.page.getByRole('region', { name: 'DHT' })
    await bDht.getByRole('textbox', { name: 'DHT key' }).fill('e2e/demo')
    // Records are owned: b reads a's record by naming its author, and sees whose it is.
    await bDht.getByRole('textbox', { name: 'DHT author' }).fill(a.id)
    await bDht.getByRole('button', { name: 'Get', exact: true }).click()
    const bResults = bDht.getByRole('list', { name: 'DHT results' })
    await expect(bResults).toContainText('{"n":7}')
    await expect(bResults).toContainText(short(a.id))
  }

  for (const p of all) expect(p.errors, `page errors in ${short(p.id)}`).toEqual([])
})

test('a failed join shows the error by name', async ({ browser }) => {
  // joinOverlay keeps trying for its timeoutMs (30 s by default; 3 s here) before it gives up.
  const ctx = await browser.newContext()
  const page = await ctx.newPage()
  try {
    const dead = `http://127.0.0.1:${await freePort()}`
    await page.goto(`${server.url}/?network=nowhere&timeoutMs=3000&signal=${encodeURIComponent(dead)}`)
    // Meanwhile the page says that it is retrying, and why.
    await expect(page.getByRole('status', { name: 'Signal server state' })).toHaveText(
      /^retrying in \d+ s \(unreachable\)$/,
    )
    const name = await page.evaluate(() =>
      (window as unknown as { overlay: Promise<unknown> }).overlay.then(
        () => 'joined',
        (err: Error) => err.name,
      ),
    )
    expect(name).toBe('SignalError')
    const alert = page.getByRole('alert')
    await expect(alert).toContainText('SignalError')
    await expect(alert).toContainText(dead)
    await expect(page.getByRole('status', { name: 'Signal server state' })).toHaveText('down')
    await expect(page.getByRole('button', { name: 'Retry' })).toBeVisible()
  } finally {
    await ctx.close()
  }
})

test('chat rooms: a message published in a room reaches the tabs in that room, and not the others', async ({
  browser,
}) => {
  const network = `rooms-${Math.random().toString(36).slice(2, 8)}`
  const [a, b, c] = await Promise.all([
    openDemo(browser, `network=${network}#room=blue`),
    openDemo(browser, `network=${network}#room=blue`),
    openDemo(browser, `network=${network}`),
  ])
  await expect(a.page.getByRole('textbox', { name: 'Room' })).toHaveValue('blue')
  await expect(c.page.getByRole('textbox', { name: 'Room' })).toHaveValue('lobby')
  // Both blue tabs are in the room's tree: attached under a parent, or its root.
  const inTree = (p: DemoPeer) =>
    p.page.evaluate(async () => {
      const node = await (window as unknown as { overlay: Promise<{ stats(): Record<string, number> }> })
        .overlay
      const s = node.stats()
      return (s['topics.attached'] ?? 0) + (s['topics.attached.root'] ?? 0)
    })
  await expect.poll(() => inTree(a), { timeout: 20_000 }).toBeGreaterThan(0)
  await expect.poll(() => inTree(b), { timeout: 20_000 }).toBeGreaterThan(0)
  // The lobby tab is linked (the three joined at once): a tab alone would not see the message either.
  const linksOf = (p: DemoPeer) =>
    p.page.evaluate(async () => {
      const node = await (window as unknown as { overlay: Promise<{ stats(): Record<string, number> }> })
        .overlay
      return node.stats().peers ?? 0
    })
  await expect.poll(() => linksOf(c), { timeout: 20_000 }).toBeGreaterThan(0)

  const text = `blue only ${Math.random().toString(36).slice(2, 8)}`
  await a.page.getByRole('textbox', { name: 'Message' }).fill(text)
  await a.page.getByRole('textbox', { name: 'Message' }).press('Enter')
  const inLog = (p: DemoPeer) =>
    p.page.getByRole('log', { name: 'Chat history' }).getByRole('listitem').filter({ hasText: text })
  await expect(inLog(b)).toHaveCount(1)
  await expect(inLog(b)).toContainText(short(a.id))
  // The lobby tab never shows it, however long it waits: it is not in the room.
  await b.page.waitForTimeout(1_000)
  await expect(inLog(c)).toHaveCount(0)

  // The lobby tab moves to blue, and b writes at once, while c's join of the blue tree is still under way:
  // the tree's repair (the root's history for a JOIN, a parent's digest on ATTACH) brings it to c. One send.
  await c.page.getByRole('textbox', { name: 'Room' }).fill('blue')
  await c.page.getByRole('textbox', { name: 'Room' }).press('Enter')
  await expect(c.page).toHaveURL(/#room=blue/)
  const later = `welcome c ${Math.random().toString(36).slice(2, 8)}`
  await b.page.getByRole('textbox', { name: 'Message' }).fill(later)
  await b.page.getByRole('button', { name: 'Send' }).click()
  const cLog = c.page.getByRole('log', { name: 'Chat history' }).getByRole('listitem')
  await expect(cLog.filter({ hasText: later })).toHaveCount(1, { timeout: 20_000 })
  // Once each: a, in blue all along, got it too.
  await expect(inLog(a)).toHaveCount(1)
  await expect(
    a.page.getByRole('log', { name: 'Chat history' }).getByRole('listitem').filter({ hasText: later }),
  ).toHaveCount(1)
  await c.page.waitForTimeout(1_000)
  await expect(cLog.filter({ hasText: later })).toHaveCount(1)
  for (const p of [a, b, c]) expect(p.errors).toEqual([])
})
