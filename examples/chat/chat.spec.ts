/**
 * The chat example in three tabs, tested as an app would test itself: only
 * through weft/testing/playwright. The signal server of the test serves the
 * app's folder; each tab is a browser context of its own; the app's own
 * `joinOverlay` call is pointed at the test's server by the kit.
 */
import { fileURLToPath } from 'node:url'
import { expect, test } from 'weft/testing/playwright'

test.use({ weftServer: { serve: fileURLToPath(new URL('./public', import.meta.url)) } })

test('a message reaches everyone, the firewalled tab too', async ({ weft }) => {
  const [a, b, c] = await weft.peers(3, { url: '/', relay: ['auto', 'auto', 'force'], parallel: true })
  await weft.linked([a, b, c])
  // c is firewalled: every link it has goes through the signal server.
  await expect.poll(async () => (await c.links()).length).toBeGreaterThan(0)
  for (const link of await c.links()) expect(link.transport).toBe('relay')

  await a.page.fill('#msg', 'hi')
  await a.page.click('#send')
  for (const p of [a, b, c]) await expect(p.page.locator('.msg .text')).toHaveText(['hi'])
  await expect(b.page.locator('.msg .who')).toHaveText([a.id.slice(0, 8)])

  await c.page.fill('#msg', 'hello from behind a firewall')
  await c.page.click('#send')
  for (const p of [a, b, c])
    await expect(p.page.locator('.msg .text')).toHaveText(['hi', 'hello from behind a firewall'])
})

test('the topic is a table key: set in one tab, seen in all, and by a tab that comes later', async ({
  weft,
}) => {
  const [a, b] = await weft.peers(2, { url: '/', parallel: true })
  await weft.linked([a, b])
  await expect(a.page.locator('#status')).toHaveText(`you are ${a.id.slice(0, 8)} · 1 link`)

  await b.page.fill('#topic-input', 'p2p over lunch')
  await b.page.click('#set-topic')
  await weft.synced([a, b], 'topic', 'p2p over lunch')
  await expect(a.page.locator('#topic')).toHaveText('p2p over lunch')

  const late = await weft.peer({ url: '/' })
  await late.waitForKey('topic', 'p2p over lunch')
  await expect(late.page.locator('#topic')).toHaveText('p2p over lunch')
  // A message is not history: the newcomer sees only what is said after it came.
  await late.page.fill('#msg', 'hello, I am new')
  await late.page.click('#send')
  await expect(a.page.locator('.msg .text')).toHaveText(['hello, I am new'])
})
