/**
 * The chat: the lobby, broadcast to every tab on topic `chat`, and rooms,
 * each a topic `chat/<room>` published to with `node.publish` (topic
 * multicast: a message travels the room's tree and reaches only the tabs in
 * that room);
 * the room comes from the fragment (`#room=…`) or the Room field. Each
 * message is a string (an object with a `text` field is shown too, and a
 * broadcast on the room's topic as well, so other tools can talk to the
 * page). Every message shows its sender's short id and how many hops it
 * travelled.
 */
import type { Value } from '../browser.ts'
import { h, idChip, showError } from './dom.ts'

export const CHAT_TOPIC = 'chat'
export const DEFAULT_ROOM = 'lobby'
const MAX_LINES = 200
const MAX_TEXT = 500
const MAX_ROOM = 64

/** The topic of a chat room. */
export function roomTopic(room: string): string {
  return room === DEFAULT_ROOM ? CHAT_TOPIC : `${CHAT_TOPIC}/${room}`
}

/** A room name from user input: trimmed, at most 64 characters, `lobby` when empty. */
export function cleanRoom(input: string | null | undefined): string {
  const r = (input ?? '').trim().slice(0, MAX_ROOM)
  return r === '' ? DEFAULT_ROOM : r
}

export interface ChatNode {
  id: string
  broadcast(topic: string, data: Value): Promise<void>
  publish(topic: string, data: Value): Promise<void>
  subscribe(topic: string, fn: (data: Value, meta: { from: string; hops: number }) => void): () => void
}

export class ChatPanel {
  private room = DEFAULT_ROOM
  private leave: (() => void) | null = null

  constructor(
    private readonly log: HTMLOListElement,
    private readonly form: HTMLFormElement,
    private readonly input: HTMLInputElement,
    private readonly error: HTMLElement,
    private readonly roomInput: HTMLInputElement,
  ) {}

  attach(node: ChatNode, room: string): void {
    this.enter(node, cleanRoom(room))
    this.input.disabled = false
    this.roomInput.disabled = false
    for (const b of this.form.querySelectorAll('button')) b.disabled = false
    this.roomInput.addEventListener('change', () => {
      const next = cleanRoom(this.roomInput.value)
      if (next === this.room) return
      this.enter(node, next)
      const params = new URLSearchParams(location.hash.slice(1))
      if (next === DEFAULT_ROOM) params.delete('room')
      else params.set('room', next)
      history.replaceState(null, '', `#${params.toString()}`)
    })
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault()
      const text = this.input.value.trim().slice(0, MAX_TEXT)
      if (!text) return
      this.input.value = ''
      showError(this.error, null)
      this.add(node.id, text, 0, node.id)
      // The lobby is everyone: a broadcast. A room is its subscribers only: a publication.
      const sent =
        this.room === DEFAULT_ROOM
          ? node.broadcast(CHAT_TOPIC, text)
          : node.publish(roomTopic(this.room), text)
      sent.catch((err: unknown) => showError(this.error, err))
    })
  }

  /** Leave the room we are in (its tree), join `room`'s, start its log afresh. */
  private enter(node: ChatNode, room: string): void {
    this.leave?.()
    this.room = room
    this.roomInput.value = room
    this.log.replaceChildren(h('li', { class: 'placeholder' }, `Messages in room “${room}” appear here.`))
    this.leave = node.subscribe(roomTopic(room), (data, meta) => {
      // Our own messages are shown when sent; a publication delivered back to us must not double them.
      if (meta.from === node.id) return
      this.add(meta.from, textOf(data), meta.hops, node.id)
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
