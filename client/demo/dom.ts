/** Small DOM and formatting helpers for the demo page (no framework). */

type Child = Node | string | number | null | undefined | false
type Attrs = Record<string, string | number | boolean | undefined | null>

/** Create an HTML element: attributes (false/null/undefined are left out) and children (strings become text). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  setAttrs(el, attrs)
  append(el, children)
  return el
}

const SVG_NS = 'http://www.w3.org/2000/svg'

/** Create an SVG element. */
export function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag)
  setAttrs(el, attrs)
  append(el, children)
  return el
}

function setAttrs(el: Element, attrs: Attrs | null): void {
  if (!attrs) return
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    el.setAttribute(k, v === true ? '' : String(v))
  }
}

function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue
    el.append(typeof c === 'number' ? String(c) : c)
  }
}

/** The element with this id; the page's HTML is static, so a missing one is a bug. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id)
  if (!el) throw new Error(`demo page: no element #${id}`)
  return el as T
}

/** The page's <svg> element of that id (the drawings). */
export function svgById(id: string): SVGSVGElement {
  const el = document.getElementById(id)
  if (!(el instanceof SVGSVGElement)) throw new Error(`demo page: no <svg> element #${id}`)
  return el
}

/** Set text only when it changed (no needless layout or screen-reader noise). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text
}

/** The short form of a node id shown everywhere on the page. */
export function shortId(id: string): string {
  return id.slice(0, 8)
}

/** A stable colour per node id, so one node looks the same in every panel. */
export function colorOf(id: string): string {
  const hue = Number.parseInt(id.slice(0, 6), 16) % 360
  return `hsl(${Number.isNaN(hue) ? 0 : hue} 65% 50%)`
}

/** A small coloured dot and the short id, with the full id as a tooltip. */
export function idChip(id: string, me?: string): HTMLElement {
  return h(
    'span',
    { class: 'id-chip', title: id },
    h('span', { class: 'dot', style: `background:${colorOf(id)}`, 'aria-hidden': 'true' }),
    h('code', null, shortId(id)),
    id === me && h('span', { class: 'you' }, 'you'),
  )
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '–'
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

export function formatCount(n: number): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US') : '–'
}

/** Seconds left until `expires` (ms since epoch), for lease countdowns. */
export function formatLeft(expires: number, now = Date.now()): string {
  const left = (expires - now) / 1000
  if (left <= 0) return 'expired'
  if (left < 60) return `${left.toFixed(1)} s`
  const m = Math.floor(left / 60)
  return `${m} min ${Math.floor(left - m * 60)} s`
}

/** A Value in one line: JSON, with byte arrays shown as bytes. */
export function formatValue(v: unknown, max = 120): string {
  let text: string
  if (v === undefined) text = '—'
  else
    try {
      text =
        JSON.stringify(v, (_k, x: unknown) => {
          if (!(x instanceof Uint8Array)) return x
          const head = [...x.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ')
          return `‹${x.length} bytes${x.length ? `: ${head}${x.length > 8 ? ' …' : ''}` : ''}›`
        }) ?? String(v)
    } catch {
      text = String(v)
    }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

/** What a person typed as a value: JSON if it parses, else the text itself. */
export function parseValueInput(text: string): unknown {
  const t = text.trim()
  if (t === '') return text
  try {
    return JSON.parse(t)
  } catch {
    return text
  }
}

/** `Name: message` of any thrown thing. */
export function errorText(err: unknown): { name: string; message: string } {
  if (err instanceof Error) return { name: err.name || 'Error', message: err.message }
  if (typeof err === 'object' && err !== null) {
    const o = err as { name?: unknown; message?: unknown }
    return { name: String(o.name ?? 'Error'), message: String(o.message ?? '') }
  }
  return { name: 'Error', message: String(err) }
}

/** Show an error in a panel's message line, named, or clear it with null. */
export function showError(el: HTMLElement, err: unknown): void {
  el.replaceChildren()
  el.classList.remove('ok')
  el.removeAttribute('title')
  if (err === null) return
  const { name, message } = errorText(err)
  el.append(h('strong', null, name), message ? `: ${message}` : '')
}

/** Show a success note in a panel's message line. */
export function showOk(el: HTMLElement, text: string): void {
  el.replaceChildren(text)
  el.classList.add('ok')
  el.removeAttribute('title')
}

/** The first 40-hex-digit node id inside x (a string, or an object's id/node field), if any. */
export function nodeIdIn(x: unknown): string | undefined {
  if (typeof x === 'string') return /^[0-9a-f]{40}$/.test(x) ? x : undefined
  if (typeof x === 'object' && x !== null) {
    const o = x as Record<string, unknown>
    for (const k of ['id', 'node', 'nodeId', 'peer', 'successor', 'owner']) {
      const v = nodeIdIn(o[k])
      if (v) return v
    }
  }
  return undefined
}

/** Node ids in a list whose items are ids or objects carrying one. */
export function nodeIdsIn(xs: unknown): string[] {
  if (!Array.isArray(xs)) {
    const one = nodeIdIn(xs)
    return one ? [one] : []
  }
  const out: string[] = []
  for (const x of xs) {
    const id = nodeIdIn(x)
    if (id && !out.includes(id)) out.push(id)
  }
  return out
}
