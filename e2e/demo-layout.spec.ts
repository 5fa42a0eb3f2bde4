/**
 * The demo page's layout at a desktop (1440 px) and a phone (390 px) width
 * (and at 1024 and 700 px, between the layout's breakpoints),
 * with a full mesh of four tabs: screenshots go to test-results/ (look at
 * them), and the facts a person would notice are asserted from bounding
 * boxes: every control wide enough to use and its label fitting in it, no
 * two labels or controls on top of each other, nothing cut off by its panel
 * (the "All counters" box included, opened), no sideways scrolling; every
 * tab counts the same links for the same mesh; the drawing's colours are
 * the ones the legend and the Links panel say.
 */
import { mkdirSync } from 'node:fs'
import { type Browser, type BrowserContext, expect, type Page, test } from '@playwright/test'
import { type SignalServerProcess, startSignalServer } from './fixtures.ts'

let server: SignalServerProcess
const contexts: BrowserContext[] = []

test.beforeAll(async () => {
  server = await startSignalServer()
  mkdirSync('test-results', { recursive: true })
})
test.afterAll(async () => {
  await Promise.all(contexts.splice(0).map((c) => c.close()))
  await server?.stop()
})

async function openDemo(browser: Browser, network: string): Promise<{ page: Page; id: string }> {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } })
  contexts.push(ctx)
  const page = await ctx.newPage()
  await page.goto(`${server.url}/?network=${network}`)
  const id = await page.evaluate(
    async () => (await (window as unknown as { overlay: Promise<{ id: string }> }).overlay).id,
  )
  return { page, id }
}

interface Box {
  what: string
  panel: string
  x: number
  y: number
  w: number
  h: number
}

/** Everything the layout facts are about, measured in the page. */
function measure(page: Page) {
  return page.evaluate(() => {
    const visible = (el: Element) => {
      const r = el.getBoundingClientRect()
      const st = getComputedStyle(el)
      return r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && !el.closest('[hidden]')
    }
    const describe = (el: Element) => {
      const text = (el.getAttribute('aria-label') ?? el.textContent ?? '').trim().replace(/\s+/g, ' ')
      return `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} "${text.slice(0, 30)}"`
    }
    const box = (el: Element) => {
      const r = el.getBoundingClientRect()
      const panel = el.closest('.panel')?.querySelector('h2')?.textContent ?? 'page'
      return { what: describe(el), panel, x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height }
    }
    const controls = [...document.querySelectorAll('input, button, summary, select, textarea')].filter(
      visible,
    )
    // Labels: form labels' text, legend and caption entries, the tiles' labels, panel captions.
    const labels = [
      ...document.querySelectorAll(
        '.fields label > span, .fields label, .legend li, .ring-figure figcaption > span, .tile-label, .panel > header > *',
      ),
    ].filter((el) => visible(el) && !el.classList.contains('sr-only'))
    // A label's own text box (a label element also holds its input).
    const textBox = (el: Element) => {
      if (el.tagName === 'LABEL') {
        const range = document.createRange()
        const first = el.firstChild
        if (first) {
          range.selectNodeContents(first)
          const r = range.getBoundingClientRect()
          return { ...box(el), x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height }
        }
      }
      return box(el)
    }
    const panels = [...document.querySelectorAll('.panel')].filter(visible).map((p) => ({
      ...box(p),
      what: p.querySelector('h2')?.textContent ?? '?',
    }))
    const outside = [...document.querySelectorAll('.panel')].filter(visible).flatMap((p) => {
      const pr = p.getBoundingClientRect()
      return [
        ...p.querySelectorAll(
          'input, button, summary, label, .tile, .legend li, table, .scroll, svg, figcaption, .panel > header > *',
        ),
      ]
        .filter(visible)
        .filter((el) => {
          const r = el.getBoundingClientRect()
          // Inside a scroller, being scrolled out of view is not being cut off.
          const scroller = el.parentElement?.closest('.scroll, .results, .chat-log')
          if (scroller && scroller !== el && p.contains(scroller)) return false
          return (
            r.left < pr.left - 0.5 ||
            r.right > pr.right + 0.5 ||
            r.bottom > pr.bottom + 0.5 ||
            r.top < pr.top - 0.5
          )
        })
        .map((el) => box(el).what)
    })
    const unfit = controls
      .filter((el) => el.tagName === 'BUTTON' && el.scrollWidth > el.clientWidth + 1)
      .map((el) => describe(el))
    const counters = document.querySelector('.counters')
    const allScroll = document.querySelector('.all-counters .scroll')
    return {
      controls: controls.map((el) => ({
        ...box(el),
        inline: el.matches('button.link'),
        number: el.matches('input[type=number]'),
      })),
      // The parts of a DHT answer that carry text: what was asked and what came back.
      results: [...document.querySelectorAll('.results li:not(.placeholder) :is(.key, .out)')]
        .filter(visible)
        .map(box),
      labels: labels.map(textBox),
      panels,
      outside,
      unfit,
      pageWidth: document.documentElement.scrollWidth,
      allCounters: allScroll
        ? {
            box: box(allScroll),
            panel: counters ? box(counters) : undefined,
            rows: allScroll.querySelectorAll('tr').length,
            visibleRows: [...allScroll.querySelectorAll('tr')].filter((tr) => {
              const r = tr.getBoundingClientRect()
              const s = allScroll.getBoundingClientRect()
              return r.top >= s.top - 0.5 && r.bottom <= s.bottom + 0.5
            }).length,
            scrollable: getComputedStyle(allScroll).overflowY === 'auto',
          }
        : undefined,
    }
  })
}

const overlaps = (a: Box, b: Box) =>
  Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x) > 1 &&
  Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y) > 1
const contains = (a: Box, b: Box) =>
  a.x <= b.x + 0.5 && a.y <= b.y + 0.5 && a.x + a.w >= b.x + b.w - 0.5 && a.y + a.h >= b.y + b.h - 0.5

/** Pairs of boxes (within one panel) that sit on top of each other, one not holding the other. */
function collisions(boxes: Box[]): string[] {
  const out: string[] = []
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i] as Box
      const b = boxes[j] as Box
      if (a.panel !== b.panel || contains(a, b) || contains(b, a)) continue
      if (overlaps(a, b)) out.push(`${a.panel}: ${a.what} / ${b.what}`)
    }
  return out
}

test('the demo at 1440 and 390 px: usable controls, no overlaps, nothing clipped; links counted alike', async ({
  browser,
}) => {
  test.setTimeout(150_000)
  const network = `layout-${Date.now()}`
  // The four open at once.
  const tabs = await Promise.all(Array.from({ length: 4 }, () => openDemo(browser, network)))
  const [a] = tabs as [{ page: Page; id: string }]

  // A full mesh of four: every tab shows three links, in the tile, the Links panel and the drawing.
  for (const t of tabs) {
    await expect(t.page.getByTestId('counter-peers').locator('.value')).toHaveText('3', { timeout: 30_000 })
    await expect(t.page.locator('#links-count')).toHaveText(/^3 open/)
    await expect(t.page.locator('#graph-caption')).toContainText('3 links here')
    await expect(t.page.locator('#graph .node')).toHaveCount(4)
  }

  // The drawing colours a node by its id, as the Links panel's dots do, and the legend says so.
  await expect(a.page.locator('.legend')).toContainText('colour: node id')
  const colours = await a.page.evaluate(() => {
    const dot = (id: string) =>
      (document.querySelector(`#links-body tr[data-peer="${id}"] .dot`) as HTMLElement | null)?.style
        .background
    return [...document.querySelectorAll('#graph .node.peer')].map((g) => {
      const id = g.querySelector('title')?.textContent?.split('\n')[0] ?? ''
      const probe = document.createElement('span')
      probe.style.background = g.querySelector('.body')?.getAttribute('fill') ?? ''
      return { id, graph: probe.style.background, links: dot(id) }
    })
  })
  expect(colours).toHaveLength(3)
  for (const c of colours) expect(c.graph, c.id).toBe(c.links)

  // A DHT answer in the results list, and every counter listed, for the screenshots.
  const dht = a.page.getByRole('region', { name: 'DHT' })
  await dht.getByRole('textbox', { name: 'DHT key' }).fill('layout/check')
  await dht.getByRole('textbox', { name: 'DHT value' }).fill('"a value"')
  await dht.getByRole('button', { name: 'Put', exact: true }).click()
  await expect(dht.getByRole('list', { name: 'DHT results' })).toContainText('stored')
  await a.page.locator('.all-counters summary').click()

  // The two widths the issue names, and two in between (a small laptop, a tablet held upright).
  for (const [width, height] of [
    [1440, 900],
    [390, 844],
    [1024, 768],
    [700, 1000],
  ] as const) {
    await a.page.setViewportSize({ width, height })
    // Let the layout, the ring and the drawing settle (they re-fit on resize).
    await a.page.waitForTimeout(600)
    await a.page.screenshot({ path: `test-results/demo-${width}.png`, fullPage: true })
    const m = await measure(a.page)
    const at = `at ${width} px`

    expect(m.pageWidth, `no sideways scrolling ${at}`).toBeLessThanOrEqual(width)
    // Sizes: 24 px is WCAG 2.2's smallest target (2.5.8); ids written as links inside text are exempt.
    for (const c of m.controls.filter((c) => !c.inline)) {
      const minW = c.number ? 72 : c.what.startsWith('input') ? 120 : 40
      expect(c.w, `${c.panel}: ${c.what} wide enough ${at}`).toBeGreaterThanOrEqual(minW)
      expect(c.h, `${c.panel}: ${c.what} tall enough ${at}`).toBeGreaterThanOrEqual(24)
    }
    expect(m.unfit, `buttons whose label does not fit ${at}`).toEqual([])
    expect(m.results.length, `the DHT answer's key and outcome ${at}`).toBe(2)
    for (const r of m.results) expect(r.w, `${r.what} readable ${at}`).toBeGreaterThanOrEqual(100)
    expect(collisions(m.controls), `controls on top of each other ${at}`).toEqual([])
    expect(collisions(m.labels), `labels on top of each other ${at}`).toEqual([])
    expect(m.outside, `cut off by their panel ${at}`).toEqual([])

    // The opened "All counters" box: inside its panel, tall enough to read, scrolling for the rest.
    const all = m.allCounters
    expect(all, 'the All counters table').toBeDefined()
    if (!all?.panel) throw new Error('no counters panel')
    expect(all.box.y + all.box.h, `All counters inside its panel ${at}`).toBeLessThanOrEqual(
      all.panel.y + all.panel.h,
    )
    expect(all.visibleRows, `All counters rows readable ${at}`).toBeGreaterThanOrEqual(Math.min(all.rows, 6))
    expect(all.scrollable).toBe(true)
  }
})
