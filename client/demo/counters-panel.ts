/** Live counters from node.stats(): headline tiles with rates, and every counter in a table below. */
import { formatBytes, formatCount, h, setText } from './dom.ts'

const TILES: { key: string; label: string; bytes?: boolean; rate?: boolean }[] = [
  { key: 'peers', label: 'Links' },
  { key: 'meshPeers', label: 'Mesh links' },
  { key: 'relayPeers', label: 'Relayed links' },
  { key: 'messagesIn', label: 'Messages in', rate: true },
  { key: 'messagesOut', label: 'Messages out', rate: true },
  { key: 'signalsOut', label: 'Signals sent' },
  { key: 'bytesIn', label: 'Bytes in', bytes: true, rate: true },
  { key: 'bytesOut', label: 'Bytes out', bytes: true, rate: true },
  { key: 'relayBytesOut', label: 'Relay bytes out', bytes: true },
]

interface Tile {
  value: HTMLElement
  rate: HTMLElement
  last: number | undefined
}

export class CountersPanel {
  private readonly tiles = new Map<string, Tile>()
  private readonly allRows = new Map<string, HTMLElement>()
  private prev: { at: number; stats: Record<string, number> } | undefined

  constructor(
    grid: HTMLElement,
    private readonly allBody: HTMLTableSectionElement,
    private readonly allCount: HTMLElement,
  ) {
    for (const t of TILES) {
      const value = h('span', { class: 'value' }, '–')
      const rate = h('span', { class: 'rate' }, t.rate ? '\u00a0' : '')
      grid.append(
        h(
          'div',
          { class: 'tile', 'data-testid': `counter-${t.key}` },
          h('span', { class: 'tile-label' }, t.label),
          value,
          rate,
        ),
      )
      this.tiles.set(t.key, { value, rate, last: undefined })
    }
  }

  update(stats: Record<string, number>): void {
    const now = performance.now()
    const dt = this.prev ? (now - this.prev.at) / 1000 : 0
    for (const t of TILES) {
      const tile = this.tiles.get(t.key)
      if (!tile) continue
      const v = stats[t.key] ?? 0
      setText(tile.value, t.bytes ? formatBytes(v) : formatCount(v))
      if (tile.last !== undefined && tile.last !== v) pulse(tile.value)
      tile.last = v
      if (t.rate && this.prev && dt > 0) {
        const per = Math.max(0, (v - (this.prev.stats[t.key] ?? 0)) / dt)
        setText(
          tile.rate,
          per === 0
            ? '\u00a0'
            : `${t.bytes ? formatBytes(Math.round(per)) : per.toFixed(per < 10 ? 1 : 0)}/s`,
        )
      }
    }
    const keys = Object.keys(stats).sort()
    for (const k of keys) {
      let cell = this.allRows.get(k)
      if (!cell) {
        cell = h('td', { class: 'num' })
        this.allRows.set(k, cell)
        const tr = h('tr', null, h('th', { scope: 'row' }, h('code', null, k)), cell)
        // Insert in sorted position: counters appear as events first happen.
        const after = [...this.allRows.keys()].sort().indexOf(k)
        this.allBody.insertBefore(tr, this.allBody.children[after] ?? null)
      }
      setText(cell, formatCount(stats[k] ?? 0))
    }
    setText(this.allCount, `(${keys.length})`)
    this.prev = { at: now, stats: { ...stats } }
  }
}

function pulse(el: HTMLElement): void {
  if (typeof el.animate !== 'function' || matchMedia('(prefers-reduced-motion: reduce)').matches) return
  el.animate([{ color: 'var(--accent)' }, { color: 'inherit' }], { duration: 900, easing: 'ease-out' })
}
