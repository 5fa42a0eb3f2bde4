/**
 * The sync table panel: every key of node.sync with its value, its lease
 * owner and a live countdown of the lease; a form to set a key (optionally
 * leased) and a button per row to delete it. A LeaseHeldError is explained
 * in words: who holds the key and for how long.
 */
import type { Value } from '../browser.ts'
import { formatLeft, formatValue, h, idChip, parseValueInput, setText, showError, showOk } from './dom.ts'
import type { SyncApi } from './node-api.ts'

export interface TableElements {
  form: HTMLFormElement
  key: HTMLInputElement
  value: HTMLInputElement
  lease: HTMLInputElement
  msg: HTMLElement
  body: HTMLTableSectionElement
  empty: HTMLElement
  count: HTMLElement
}

interface Row {
  tr: HTMLTableRowElement
  value: HTMLElement
  valueCell: HTMLElement
  owner: HTMLElement
  left: HTMLElement
}

export class TablePanel {
  private sync: SyncApi | undefined
  private me = ''
  /** Lease expiries this page learnt itself (its own sets, LeaseHeldErrors), for builds without sync.lease(). */
  private readonly knownExpiry = new Map<string, { owner: string; expires: number }>()
  private readonly countdowns = new Map<string, HTMLElement>()
  private readonly rows = new Map<string, Row>()
  private pending = 0

  constructor(private readonly el: TableElements) {}

  attach(sync: SyncApi, me: string): void {
    this.sync = sync
    this.me = me
    for (const c of this.el.form.elements) (c as HTMLInputElement).disabled = false
    this.el.form.addEventListener('submit', (ev) => {
      ev.preventDefault()
      void this.set()
    })
    this.el.body.addEventListener('click', (ev) => this.onRowClick(ev))
    sync.on('change', () => this.schedule())
    this.render()
    setInterval(() => this.tickCountdowns(), 200)
    // Leases expire without a change event: redraw owners now and then.
    setInterval(() => this.render(), 2000)
  }

  private schedule(): void {
    if (this.pending) return
    this.pending = requestAnimationFrame(() => {
      this.pending = 0
      this.render()
    })
  }

  private leaseOf(key: string): { owner: string; expires: number | undefined } | undefined {
    const sync = this.sync
    if (!sync) return undefined
    try {
      const l = sync.lease?.(key)
      if (l && typeof l.owner === 'string') return { owner: l.owner, expires: l.expires }
      const owner = sync.owner(key)
      if (!owner) return undefined
      const known = this.knownExpiry.get(key)
      return {
        owner,
        expires: known?.owner === owner && known.expires > Date.now() ? known.expires : undefined,
      }
    } catch {
      return undefined
    }
  }

  private render(): void {
    const sync = this.sync
    if (!sync) return
    let entries: [string, Value][]
    try {
      entries = sync.entries()
    } catch (err) {
      showError(this.el.msg, err)
      return
    }
    entries.sort((a, b) => (a[0] < b[0] ? -1 : 1))
    const live = new Set(entries.map(([k]) => k))
    for (const [key, r] of this.rows)
      if (!live.has(key)) {
        r.tr.remove()
        this.rows.delete(key)
      }
    this.countdowns.clear()
    let prev: HTMLTableRowElement | null = null
    for (const [key, value] of entries) {
      const lease = this.leaseOf(key)
      let r = this.rows.get(key)
      if (!r) {
        r = this.newRow(key)
        this.rows.set(key, r)
      }
      // Rows are updated in place, never rebuilt: a focused Delete button keeps its focus.
      const shown = formatValue(value)
      setText(r.value, shown)
      r.valueCell.title = formatValue(value, 4000)
      const ownerSig = lease?.owner ?? ''
      if (r.tr.dataset.owner !== ownerSig) {
        r.tr.dataset.owner = ownerSig
        r.owner.replaceChildren(lease ? idChip(lease.owner, this.me) : h('span', { class: 'muted' }, 'none'))
        r.tr.classList.toggle('owned', lease?.owner === this.me)
      }
      if (lease?.expires !== undefined) {
        this.countdowns.set(key, r.left)
        r.left.dataset.expires = String(lease.expires)
        setText(r.left, formatLeft(lease.expires))
      } else setText(r.left, lease ? 'leased' : '—')
      const want: ChildNode | null = prev ? prev.nextSibling : this.el.body.firstChild
      if (want !== r.tr) this.el.body.insertBefore(r.tr, want)
      prev = r.tr
    }
    this.el.empty.hidden = entries.length > 0
    setText(this.el.count, entries.length ? `${entries.length} key${entries.length === 1 ? '' : 's'}` : '')
  }

  private newRow(key: string): Row {
    const value = h('code')
    const valueCell = h('td', { class: 'value' }, value)
    const owner = h('td')
    const left = h('span', { class: 'countdown' })
    const tr = h(
      'tr',
      { 'data-key': key },
      h(
        'td',
        null,
        h('button', { type: 'button', class: 'link', 'aria-label': `Edit ${key}`, 'data-edit': key }, key),
      ),
      valueCell,
      owner,
      h('td', { class: 'num' }, left),
      h(
        'td',
        { class: 'actions' },
        h(
          'button',
          { type: 'button', class: 'small danger', 'aria-label': `Delete ${key}`, 'data-delete': key },
          'Delete',
        ),
      ),
    )
    return { tr, value, valueCell, owner, left }
  }

  private onRowClick(ev: Event): void {
    const b = (ev.target as Element | null)?.closest('button')
    if (!b || !this.sync) return
    const del = b.getAttribute('data-delete')
    if (del !== null) return void this.remove(del)
    const key = b.getAttribute('data-edit')
    if (key === null) return
    // The value goes back as JSON, so setting it again stores the same value.
    this.el.key.value = key
    this.el.value.value = formatValue(this.sync.get(key), 1e6)
    this.el.value.focus()
  }

  private tickCountdowns(): void {
    for (const el of this.countdowns.values()) setText(el, formatLeft(Number(el.dataset.expires)))
  }

  private async set(): Promise<void> {
    const sync = this.sync
    if (!sync) return
    const key = this.el.key.value
    if (!key) return showError(this.el.msg, new Error('enter a key'))
    const value = parseValueInput(this.el.value.value) as Value
    const leaseText = this.el.lease.value.trim()
    const leaseS = leaseText === '' ? 0 : Number(leaseText)
    if (!Number.isFinite(leaseS) || leaseS < 0)
      return showError(this.el.msg, new RangeError('the lease is a number of seconds'))
    const leaseMs = Math.round(leaseS * 1000)
    try {
      await (leaseMs > 0 ? sync.set(key, value, { leaseMs }) : sync.set(key, value))
      if (leaseMs > 0) this.knownExpiry.set(key, { owner: this.me, expires: Date.now() + leaseMs })
      showOk(this.el.msg, `Set “${key}”${leaseMs > 0 ? `, leased to you for ${leaseS} s` : ''}.`)
    } catch (err) {
      this.explain(err)
    }
    this.render()
  }

  private async remove(key: string): Promise<void> {
    const sync = this.sync
    if (!sync) return
    try {
      await sync.delete(key)
      this.knownExpiry.delete(key)
      showOk(this.el.msg, `Deleted “${key}”.`)
    } catch (err) {
      this.explain(err)
    }
    this.render()
  }

  private explain(err: unknown): void {
    const e = err as { name?: unknown; key?: unknown; owner?: unknown; expires?: unknown }
    if (e?.name === 'LeaseHeldError' && typeof e.owner === 'string') {
      const key = typeof e.key === 'string' ? e.key : this.el.key.value
      const expires = typeof e.expires === 'number' ? e.expires : undefined
      if (expires !== undefined) this.knownExpiry.set(key, { owner: e.owner, expires })
      const m = this.el.msg
      m.classList.remove('ok')
      m.title = 'Only the owner of a live lease can change or delete its key.'
      m.replaceChildren(
        h('strong', null, 'LeaseHeldError'),
        `: “${key}” is leased by `,
        idChip(e.owner, this.me),
        expires !== undefined ? ` for ${formatLeft(expires)} more` : '',
      )
      return
    }
    showError(this.el.msg, err)
  }
}
