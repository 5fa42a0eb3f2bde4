/**
 * The chat: broadcasts on topic `chat`, each message a string (an object
 * with a `text` field is shown too, so other tools can talk to the page).
 * Every message shows its sender's short id and how many hops it travelled.
 */
import type { Value } from '../browser.ts'
import { h, idChip, showError } from './dom.ts'

export const CHAT_TOPIC = 'chat'
const MAX_LINES = 200
const MAX_TEXT = 500

export interface ChatNode {
  id: string
  broadcast(topic: string, data: Value): Promise<void>
  subscribe(topic: string, fn: (data: Value, meta: { from: string; hops: number }) => void): () => void
}

export class ChatPanel {
  constructor(
    private readonly log: HTMLOListElement,
    private readonly form: HTMLFormElement,
    private readonly input: HTMLInputElement,
    private readonly error: HTMLElement,
  ) {}

  attach(node: ChatNode): void {
    node.subscribe(CHAT_TOPIC, (data, meta) => {
      // Our own messages are shown when sent; a mesh that echoes them back must not double them.
      if (meta.from === node.id) return
      this.add(meta.from, textOf(data), meta.hops, node.id)
    })
    this.input.disabled = false
    for (const b of this.form.querySelectorAll('button')) b.disabled = false
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault()
      const text = this.input.value.trim().slice(0, MAX_TEXT)
      if (!text) return
      this.input.value = ''
      showError(this.error, null)
      this.add(node.id, text, 0, node.id)
      node.broadcast(CHAT_TOPIC, text).catch((err: unknown) => showError(this.error, err))
    })
  }

  private add(from: string, text: string, hops: number, me: string): void {
    const stick = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 24
    this.log.querySelector('.placeholder')?.remove()
    const time = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    const meta = from === me ? 'sent' : `${hops} hop${hops === 1 ? '' : 's'}`
    this.log.append(
      h(
        'li',
        { class: from === me ? 'mine' : '' },
        h('div', { class: 'from' }, idChip(from, me), h('span', { class: 'meta' }, `${meta} · ${time}`)),
        h('div', { class: 'text' }, text),
      ),
    )
    while (this.log.children.length > MAX_LINES) this.log.firstElementChild?.remove()
    if (stick || from === me) this.log.scrollTop = this.log.scrollHeight
  }
}

function textOf(data: Value): string {
  if (typeof data === 'string') return data.slice(0, MAX_TEXT)
  if (typeof data === 'object' && data !== null && !(data instanceof Uint8Array) && !Array.isArray(data)) {
    const t = (data as Record<string, Value>).text
    if (typeof t === 'string') return t.slice(0, MAX_TEXT)
  }
  return JSON.stringify(data, (_k, x: unknown) =>
    x instanceof Uint8Array ? `‹${x.length} bytes›` : x,
  ).slice(0, MAX_TEXT)
}
