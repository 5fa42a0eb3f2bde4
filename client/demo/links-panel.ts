/** The links panel: one row per open link, with its transport and round-trip time. */
import { h, idChip, setText } from './dom.ts'

export interface LinkRow {
  id: string
  transport: 'webrtc' | 'relay'
  rtt: number
  mesh: boolean
}

export class LinksPanel {
  private readonly rows = new Map<
    string,
    { tr: HTMLTableRowElement; transport: HTMLElement; rtt: HTMLElement; role: HTMLElement }
  >()

  constructor(
    private readonly tbody: HTMLTableSectionElement,
    private readonly empty: HTMLElement,
    private readonly count: HTMLElement,
  ) {}

  update(links: LinkRow[]): void {
    const sorted = [...links].sort((a, b) => (a.id < b.id ? -1 : 1))
    for (const [id, r] of this.rows)
      if (!sorted.some((l) => l.id === id)) {
        r.tr.remove()
        this.rows.delete(id)
      }
    let prev: HTMLTableRowElement | null = null
    for (const l of sorted) {
      let r = this.rows.get(l.id)
      if (!r) {
        const transport = h('span', { class: 'badge' })
        const rtt = h('td', { class: 'num' })
        const role = h('td', { class: 'muted' })
        const tr = h(
          'tr',
          { 'data-peer': l.id },
          h('td', null, idChip(l.id)),
          h('td', null, transport),
          rtt,
          role,
        )
        r = { tr, transport, rtt, role }
        this.rows.set(l.id, r)
      }
      setText(r.transport, l.transport)
      r.transport.className = `badge ${l.transport}`
      setText(r.rtt, Number.isFinite(l.rtt) ? `${l.rtt < 10 ? l.rtt.toFixed(1) : Math.round(l.rtt)} ms` : '…')
      setText(r.role, l.mesh ? 'mesh' : 'on demand')
      // Keep rows in id order without rebuilding the table.
      const want: ChildNode | null = prev ? prev.nextSibling : this.tbody.firstChild
      if (want !== r.tr) this.tbody.insertBefore(r.tr, want)
      prev = r.tr
    }
    this.empty.hidden = sorted.length > 0
    const relay = sorted.filter((l) => l.transport === 'relay').length
    setText(this.count, sorted.length ? `${sorted.length} open${relay ? ` · ${relay} relayed` : ''}` : '')
  }
}
