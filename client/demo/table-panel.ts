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

export class TablePanel {
  private sync: SyncApi | undefined
  private me = ''
  /** Lease expiries this page learnt itself (its own sets, LeaseHeldErrors), for builds without sync.lease(). */
  private readonly knownExpiry = new Map<string, { owner: string; expires: number }>()
  private readonly countdowns = new Map<string, HTMLElement>()
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
    this.countdowns.clear()
    const rows = entries.map(([key, value]) => {
      const lease = this.leaseOf(key)
      const left = h('span', { class: 'countdown' })
      if (lease?.expires !== undefined) {
        this.countdowns.set(key, left)
        left.dataset.expires = String(lease.expires)
        setText(left, formatLeft(lease.expires))
      } else setText(left, lease ? 'leased' : '—')
      const shown = formatValue(value)
      return h(
        'tr',
        { 'data-key': key, class: lease?.owner === this.me ? 'owned' : '' },
        h(
          'td',
          null,
          h(
            'button',
            { type: 'button', class: 'link', 'aria-label': `Edit ${key}`, title: 'Edit this key' },
            key,
          ),
        ),
        h('td', { class: 'value', title: formatValue(value, 4000) }, h('code', null, shown)),
        h('td', null, lease ? idChip(lease.owner, this.me) : h('span', { class: 'muted' }, 'none')),
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
    })
    this.el.body.replaceChildren(...rows)
    for (const b of this.el.body.querySelectorAll<HTMLButtonElement>('button[data-delete]'))
      b.addEventListener('click', () => void this.remove(b.dataset.delete ?? ''))
    for (const b of this.el.body.querySelectorAll<HTMLButtonElement>('button.link'))
      b.addEventListener('click', () => {
        const key = b.textContent ?? ''
        this.el.key.value = key
        const v = sync.get(key)
        this.el.value.value = typeof v === 'string' ? v : formatValue(v, 1e6)
        this.el.value.focus()
      })
    this.el.empty.hidden = entries.length > 0
    setText(this.el.count, entries.length ? `${entries.length} key${entries.length === 1 ? '' : 's'}` : '')
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
