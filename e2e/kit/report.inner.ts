/**
 * For e2e/kit.spec.ts: a test that passes and one that fails on purpose,
 * after writing the worker's signal server pid where the outer test looks.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, test } from 'weft/testing/playwright'

test('passes: prints nothing', async ({ weft }) => {
  const [a] = await weft.peers(1)
  expect(a.id).toMatch(/^[0-9a-f]{40}$/)
})

test('fails on purpose: the kit prints the server output, its counters and the peers', async ({ weft }) => {
  const [a, b] = await weft.peers(2)
  await weft.linked([a, b])
  writeFileSync(join(process.env.WEFT_KIT_OUT ?? '.', 'server.pid'), String(weft.server.pid))
  await b.page.evaluate(() => console.error('a console error of the app'))
  expect(a.id, 'this failure is the point of the test').toBe('not an id')
})
