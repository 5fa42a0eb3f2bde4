/**
 * The DHT panel: put, get and delete a key; look it up (the node responsible
 * and the hops it took); provide a key and find its providers; and the ring
 * drawn with this node's fingers, successors and predecessor.
 *
 * Records are owned (BEP 44 style): put and delete always write this node's
 * own record; get and look up read the record of the author named in the
 * Author field (empty: this node), and every answer shows whose record it
 * is (its sequence and signing time in the tooltip). Clicking an id in the
 * results puts it in the Author field.
 */
import type { Value } from '../browser.ts'
import { errorText, formatValue, h, idChip, nodeIdIn, nodeIdsIn, parseValueInput } from './dom.ts'
import { type DhtApi, tryCall } from './node-api.ts'
import { drawRing, type RingInput } from './ring-view.ts'

export interface DhtElements {
  form: HTMLFormElement
  key: HTMLInputElement
  value: HTMLInputElement
  /** Whose record get and look up read: a node id, empty for this node. */
  author: HTMLInputElement
  buttons: Record<'put' | 'get' | 'delete' | 'lookup' | 'provide' | 'find', HTMLButtonElement>
  results: HTMLOListElement
  ring: SVGSVGElement
  ringNote: HTMLElement
}

type Op = keyof DhtElements['buttons']

const MAX_RESULTS = 8

export class DhtPanel {
  private dht: DhtApi | undefined
  private me = ''
  private known: () => string[] = () => []
  private lookup: RingInput['lookup']
  private busy = false

  constructor(private readonly el: DhtElements) {}

  attach(dht: DhtApi, me: string, known: () => string[]): void {
    this.dht = dht
    this.me = me
    this.known = known
    this.el.key.disabled = false
    this.el.value.disabled = false
    this.el.author.disabled = false
    this.el.author.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') void this.run('get')
    })
    // An id shown in the results becomes the author to read.
    this.el.results.addEventListener('click', (ev) => {
      const chip = (ev.target as Element | null)?.closest?.('.id-chip')
      const id = chip?.getAttribute('title')
      if (id) this.el.author.value = id === this.me ? '' : id
    })
    this.enable(true)
    const { buttons } = this.el
    for (const op of Object.keys(buttons) as Op[])
      buttons[op].addEventListener('click', () => void this.run(op))
    this.el.form.addEventListener('submit', (ev) => ev.preventDefault())
    this.el.key.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') void this.run('get')
    })
    this.el.value.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') void this.run('put')
    })
    const ringHelpers = [dht.fingers, dht.successors, dht.predecessor].filter(
      (f) => typeof f === 'function',
    ).length
    this.el.ringNote.hidden = ringHelpers > 0
    this.drawRing()
    setInterval(() => this.drawRing(), 2000)
  }

  private enable(on: boolean): void {
    const { buttons } = this.el
    for (const op of Object.keys(buttons) as Op[]) {
      const unsupported = op === 'lookup' && typeof this.dht?.lookup !== 'function'
      buttons[op].disabled = !on || unsupported
      if (unsupported) buttons[op].title = 'lookup is not available in this build'
    }
  }

  drawRing(): void {
    const dht = this.dht
    if (!dht) return
    const fingers = nodeIdsIn(tryCall(dht.fingers?.bind(dht)))
    const successors = nodeIdsIn(tryCall(dht.successors?.bind(dht)))
    const predecessor = nodeIdIn(tryCall(dht.predecessor?.bind(dht)))
    drawRing(this.el.ring, {
      me: this.me,
      known: this.known(),
      fingers,
      successors,
      predecessor,
      lookup: this.lookup,
    })
  }

  private async run(op: Op): Promise<void> {
    const dht = this.dht
    if (!dht || this.busy) return
    const key = this.el.key.value
    if (!key) {
      this.el.key.focus()
      return this.report(op, '', 'error', 'enter a key')
    }
    const authorText = this.el.author.value.trim().toLowerCase()
    if (authorText && !/^[0-9a-f]{40}$/.test(authorText) && (op === 'get' || op === 'lookup')) {
      this.el.author.focus()
      return this.report(op, key, 'error', 'an author is a node id: 40 hex characters (empty: you)')
    }
    const author = authorText || this.me
    this.busy = true
    this.enable(false)
    const t0 = performance.now()
    try {
      let out: Node | string
      switch (op) {
        case 'put':
          await dht.put(key, parseValueInput(this.el.value.value) as Value)
          out = h('span', null, 'stored as ', idChip(this.me, this.me))
          break
        case 'get':
          out = await this.read(dht, key, author)
          break
        case 'delete':
          await dht.delete(key)
          out = h('span', null, 'deleted the record of ', idChip(this.me, this.me))
          break
        case 'provide':
          await dht.provide(key)
          out = 'this node now provides it'
          break
        case 'find': {
          const ps = await dht.findProviders(key)
          out = ps.length
            ? h('span', { class: 'chips' }, ...ps.map((p) => idChip(p, this.me)))
            : 'no providers'
          break
        }
        case 'lookup': {
          // Where this author's record for the key lives: id160(author ":" key).
          const r = await dht.lookup?.(key, { author })
          const node = nodeIdIn(r)
          const hops = (r as { hops?: unknown } | undefined)?.hops
          this.lookup = { key, position: await keyPosition(`${author}:${key}`), node }
          this.drawRing()
          out = h(
            'span',
            null,
            node ? idChip(node, this.me) : 'no node',
            typeof hops === 'number' ? ` in ${hops} hop${hops === 1 ? '' : 's'}` : '',
          )
          break
        }
      }
      this.report(op, key, 'ok', out, performance.now() - t0)
    } catch (err) {
      const { name, message } = errorText(err)
      this.report(op, key, 'error', h('span', null, h('strong', null, name), message ? `: ${message}` : ''))
    } finally {
      this.busy = false
      this.enable(true)
    }
  }

  /** get: the value and whose record it is; its sequence and signing time in the tooltip when the build tells. */
  private async read(dht: DhtApi, key: string, author: string): Promise<Node | string> {
    const whose = idChip(author, this.me)
    if (typeof dht.getRecord === 'function') {
      const rec = await dht.getRecord(key, { author })
      if (!rec) return h('span', null, 'none by ', whose)
      const version = { title: `seq ${rec.seq}, signed ${new Date(rec.time).toISOString()}` }
      if (rec.deleted || rec.value === undefined) return h('span', version, 'deleted by ', whose)
      return h('span', version, h('code', null, formatValue(rec.value)), ' by ', whose)
    }
    const v = await dht.get(key, { author })
    return v === undefined
      ? h('span', null, 'none by ', whose)
      : h('span', null, h('code', null, formatValue(v)), ' by ', whose)
  }

  private report(op: Op, key: string, kind: 'ok' | 'error', out: Node | string, ms?: number): void {
    this.el.results.querySelector('.placeholder')?.remove()
    const label = {
      put: 'put',
      get: 'get',
      delete: 'delete',
      lookup: 'lookup',
      provide: 'provide',
      find: 'providers',
    }[op]
    this.el.results.prepend(
      h(
        'li',
        { class: kind },
        h('span', { class: 'op' }, label),
        h('span', { class: 'key', title: key }, key),
        h('span', { class: 'ms' }, ms === undefined ? '' : `${Math.round(ms)} ms`),
        h('span', { class: 'out' }, out),
      ),
    )
    while (this.el.results.children.length > MAX_RESULTS) this.el.results.lastElementChild?.remove()
  }
}

/** A key's place on the ring: the first 160 bits of SHA-256(key), as the DHT places it. */
async function keyPosition(key: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(key)))
  return [...d.subarray(0, 20)].map((b) => b.toString(16).padStart(2, '0')).join('')
}
