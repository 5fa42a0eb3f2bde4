/**
 * The demo page's Files panel (issue 13, item 5) in real browsers: tab A
 * adds an image through the panel's file chooser, tab B opens A's share
 * link (the demo with the file in its fragment) and downloads it by itself:
 * the piece map fills with pieces from A, the save link gives the same
 * bytes, and the image is previewed (decoded, not just an element); at a
 * phone's width (390 px) the panel still fits; A, opening its own file, and
 * B, reloaded, see every piece held already. Then
 * the named errors: a malformed link (TypeError) and a cancelled download
 * (AbortError) are shown in the panel; a file dropped on the panel is added,
 * and removed, leaves the list; a file past the storage limit (the page's
 * `?filesMaxBytes=`) is refused as StorageFullError.
 */
import { createHash, randomBytes } from 'node:crypto'
import { crc32, deflateSync } from 'node:zlib'
import { type Browser, type BrowserContext, expect, type Page, test } from '@playwright/test'
import { type SignalServerProcess, startSignalServer } from './fixtures.ts'

let server: SignalServerProcess
const contexts: BrowserContext[] = []

test.beforeAll(async () => {
  server = await startSignalServer()
})
test.afterEach(async () => {
  await Promise.all(contexts.splice(0).map((c) => c.close()))
})
test.afterAll(async () => {
  await server?.stop()
})

async function openDemo(
  browser: Browser,
  url: string,
): Promise<{ page: Page; id: string; errors: string[] }> {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 } })
  contexts.push(ctx)
  const page = await ctx.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  await page.goto(url)
  const id = await page.evaluate(
    async () => (await (window as unknown as { overlay: Promise<{ id: string }> }).overlay).id,
  )
  return { page, id, errors }
}

/** A PNG of w × h random RGB pixels, stored without compression gains: about 3·w·h bytes. */
function randomPng(w: number, h: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data])
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(td))
    return Buffer.concat([len, td, crc])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr.set([8, 2, 0, 0, 0], 8) // 8 bits, RGB, deflate, no filter method, no interlace
  const rows: Buffer[] = []
  for (let y = 0; y < h; y++) rows.push(Buffer.concat([Buffer.from([0]), randomBytes(w * 3)]))
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

test('a file added in one tab, opened from its share link in another: piece map, same bytes, image preview', async ({
  browser,
}) => {
  test.setTimeout(60_000)
  const network = `files-${Date.now()}`
  const a = await openDemo(browser, `${server.url}/?network=${network}`)
  const filesA = a.page.getByRole('region', { name: 'Files' })

  // 450 × 450 random pixels: about 600 KB, three pieces of 256 KiB.
  const png = randomPng(450, 450)
  expect(png.length).toBeGreaterThan(2 * 256 * 1024)
  expect(png.length).toBeLessThanOrEqual(3 * 256 * 1024)
  const chooser = a.page.waitForEvent('filechooser')
  await filesA.getByRole('button', { name: 'Choose a file…' }).click()
  await (await chooser).setFiles({ name: 'noise.png', mimeType: 'image/png', buffer: png })

  // The link, and the share link: this page's address with the link in the fragment.
  const added = a.page.locator('#files-added')
  await expect(added).toBeVisible()
  const uri = (await added.locator('code.uri').textContent()) ?? ''
  expect(uri).toMatch(/^weft:\?xt=urn:weft:[0-9a-f]{64}&dn=noise\.png&xl=\d+$/)
  expect(uri).toContain(`xl=${png.length}`)
  const share = (await added.getByRole('link', { name: 'Share link ↗' }).getAttribute('href')) ?? ''
  const shareUrl = new URL(share)
  expect(shareUrl.searchParams.get('network')).toBe(network)
  expect(new URLSearchParams(shareUrl.hash.slice(1)).get('file')).toBe(uri)
  // A's list holds it, whole.
  await expect(filesA.getByRole('row').filter({ hasText: 'noise.png' })).toContainText('complete')

  // B opens the share link and the download starts by itself.
  const b = await openDemo(browser, share)
  const filesB = b.page.getByRole('region', { name: 'Files' })
  const map = b.page.locator('canvas.piece-map')
  await expect(map).toHaveAttribute('data-total', '3')
  await expect(map).toHaveAttribute('data-have', '3')
  await expect(map).toHaveAttribute('aria-label', 'Piece map: 3 of 3 pieces')
  // Every piece came from A (the only one holding it): A is the legend's one peer, with 3 pieces.
  const legend = b.page.getByRole('list', { name: 'Pieces by peer' })
  await expect(legend.locator('li')).toHaveCount(1)
  await expect(legend.locator(`li[data-peer="${a.id}"]`)).toContainText('3')
  await expect(filesB.locator('.figures')).toContainText('3/3 pieces')

  // Done: a save link named as the file, whose bytes are the ones added.
  const save = filesB.getByRole('link', { name: 'Save “noise.png”' })
  await expect(save).toBeVisible()
  await expect(save).toHaveAttribute('download', 'noise.png')
  const got = await b.page.evaluate(async () => {
    const a = document.querySelector<HTMLAnchorElement>('.done-line a.save')
    if (!a) throw new Error('no save link')
    const r = await fetch(a.href)
    const bytes = new Uint8Array(await r.arrayBuffer())
    const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
    return {
      size: bytes.length,
      sha256: [...hash].map((x) => x.toString(16).padStart(2, '0')).join(''),
      type: r.headers.get('content-type'),
    }
  })
  expect(got.size).toBe(png.length)
  expect(got.sha256).toBe(sha256(png))
  // The save link's copy is bytes, whatever the manifest's type says (never rendered as a page).
  expect(got.type).toBe('application/octet-stream')

  // The preview decoded the image: its natural size is the PNG's.
  const img = filesB.getByRole('img', { name: 'Preview of noise.png' })
  await expect(img).toBeVisible()
  await expect
    .poll(() => img.evaluate((el: HTMLImageElement) => [el.naturalWidth, el.naturalHeight]))
    .toEqual([450, 450])

  // Pointing at a cell names the piece and the peer it came from.
  await map.hover({ position: { x: 3, y: 3 } })
  await expect(map).toHaveAttribute('title', `piece 0: from ${a.id.slice(0, 8)}`)

  // B now holds it whole too, and lists it.
  await expect(filesB.getByRole('row').filter({ hasText: 'noise.png' })).toContainText('complete')

  // At a phone's width the panel, finished download and preview included, fits: no sideways
  // scrolling, every control inside the panel, tall enough and its label fitting in it.
  await b.page.setViewportSize({ width: 390, height: 844 })
  await expect
    .poll(() => b.page.evaluate(() => document.documentElement.scrollWidth))
    .toBeLessThanOrEqual(390)
  const fit = await b.page.evaluate(() => {
    const panel = document.querySelector('.panel.files')?.getBoundingClientRect()
    if (!panel) throw new Error('no files panel')
    const bad: string[] = []
    for (const el of document.querySelectorAll(
      '.panel.files :is(button, input:not([type=file]), a, canvas, img)',
    )) {
      const r = el.getBoundingClientRect()
      if (r.width === 0 && r.height === 0) continue
      const what = `${el.tagName} ${(el.textContent || el.getAttribute('aria-label') || el.getAttribute('alt') || '').trim().slice(0, 30)}`
      // Inside the list's scroller, being scrolled out of view is not being cut off.
      const inScroller = el.closest('.scroll') !== null
      if (r.left < panel.left - 0.5 || r.right > panel.right + 0.5) bad.push(`${what}: outside`)
      if (!inScroller && (r.top < panel.top - 0.5 || r.bottom > panel.bottom + 0.5))
        bad.push(`${what}: cut off`)
      if (el.tagName === 'BUTTON' && !el.matches('.link')) {
        if (r.height < 24) bad.push(`${what}: ${r.height} px tall`)
        if (el.scrollWidth > el.clientWidth + 1) bad.push(`${what}: label does not fit`)
      }
    }
    return bad
  })
  expect(fit).toEqual([])

  // A opens its own file from its list: every piece is already here, shown grey ("held before",
  // the view of a resumed download), with no peer in the legend, and the save link at once.
  await filesA.getByRole('button', { name: 'Open noise.png' }).click()
  const mapA = a.page.locator('canvas.piece-map')
  await expect(mapA).toHaveAttribute('data-have', '3')
  const legendA = a.page.getByRole('list', { name: 'Pieces by peer' })
  await expect(legendA).toContainText('held before3')
  await expect(legendA.locator('li[data-peer]')).toHaveCount(0)
  await expect(filesA.getByRole('link', { name: 'Save “noise.png”' })).toBeVisible()

  // B reloaded (its pieces kept in IndexedDB) opens the fragment's file again: every piece is
  // here before any peer sends one, and the save link is back.
  await b.page.reload()
  await b.page.evaluate(() => (window as unknown as { overlay: Promise<unknown> }).overlay.then(() => null))
  await expect(map).toHaveAttribute('data-have', '3')
  await expect(legend).toContainText('held before3')
  await expect(legend.locator('li[data-peer]')).toHaveCount(0)
  await expect(save).toBeVisible()
  expect(a.errors).toEqual([])
  expect(b.errors).toEqual([])
})

test('named errors in the panel: a malformed link, a cancelled download; a dropped file is added, and removed', async ({
  browser,
}) => {
  test.setTimeout(60_000)
  const network = `files-err-${Date.now()}`
  const a = await openDemo(browser, `${server.url}/?network=${network}`)
  const files = a.page.getByRole('region', { name: 'Files' })
  const msg = a.page.locator('#files-msg')
  const link = files.getByRole('textbox', { name: 'Open a link' })

  await link.fill('weft:?xt=urn:weft:nothex')
  await files.getByRole('button', { name: 'Open', exact: true }).click()
  await expect(msg).toContainText('TypeError')
  // A malformed link is not put in the address (a reload would only fail again).
  expect(new URL(a.page.url()).hash).not.toContain('file=')

  // A file nobody has: the download looks for providers until it is cancelled.
  await link.fill('ab'.repeat(32))
  await files.getByRole('button', { name: 'Open', exact: true }).click()
  await expect(files.locator('.figures')).toContainText('finding peers')
  // The address names it, so a reload would resume it.
  expect(new URLSearchParams(new URL(a.page.url()).hash.slice(1)).get('file')).toBe('ab'.repeat(32))
  await files.getByRole('button', { name: 'Cancel' }).click()
  await expect(msg).toContainText('AbortError')

  // Drop a small file on the panel (drag and drop, as from the desktop), then remove it: it leaves the list.
  const dataTransfer = await a.page.evaluateHandle(() => {
    const dt = new DataTransfer()
    dt.items.add(new File(['hello'], 'note.txt', { type: 'text/plain' }))
    return dt
  })
  const zone = a.page.locator('#files-drop')
  await zone.dispatchEvent('dragenter', { dataTransfer })
  await expect(zone).toHaveClass(/over/)
  await zone.dispatchEvent('drop', { dataTransfer })
  await expect(zone).not.toHaveClass(/over/)
  const row = files.getByRole('row').filter({ hasText: 'note.txt' })
  await expect(row).toContainText('complete')
  await row.getByRole('button', { name: 'Remove note.txt' }).click()
  await expect(row).toHaveCount(0)
  await expect(msg).toContainText('Removed')
  expect(a.errors).toEqual([])
})

test("a file past the tab's storage limit is refused by name: StorageFullError", async ({ browser }) => {
  test.setTimeout(60_000)
  // The smallest limit joinOverlay takes, 1 MiB, and a file of 1.5 MiB.
  const a = await openDemo(browser, `${server.url}/?network=files-full-${Date.now()}&filesMaxBytes=1048576`)
  const files = a.page.getByRole('region', { name: 'Files' })
  const chooser = a.page.waitForEvent('filechooser')
  await files.getByRole('button', { name: 'Choose a file…' }).click()
  await (await chooser).setFiles({
    name: 'big.bin',
    mimeType: 'application/octet-stream',
    buffer: randomBytes(1.5 * 1024 * 1024),
  })
  await expect(a.page.locator('#files-msg')).toContainText('StorageFullError')
  await expect(a.page.locator('#files-adding')).toBeHidden()
  await expect(a.page.locator('#files-added')).toBeHidden()
  await expect(files.getByRole('row').filter({ hasText: 'big.bin' })).toHaveCount(0)
  expect(a.errors).toEqual([])
})
