/**
 * A chat room on weft, as small as it gets: messages go to everyone by
 * broadcast (the mesh), the room's topic is a key of the replicated table
 * (so a newcomer sees it at once), and the page loads weft from the signal
 * server that serves it (`/weft.mjs`). Open it in several tabs or browsers:
 *   STATIC_DIR=examples/chat/public npm start   → http://localhost:8080
 * Its test (../chat.spec.ts) drives three tabs with weft/testing/playwright,
 * without any test code in here.
 */
import { joinOverlay } from '/weft.mjs'

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id))
const MAX_TEXT = 500
const MAX_LINES = 200

const node = await joinOverlay({ signal: location.origin, network: 'chat' }).catch((err) => {
  $('status').textContent = 'could not join'
  $('error').textContent = `${err.name}: ${err.message}`
  throw err
})

// ---------------------------------------------------------------- who is here
const showStatus = () => {
  const n = node.peers().length
  $('status').textContent = `you are ${node.id.slice(0, 8)} · ${n} link${n === 1 ? '' : 's'}`
}
node.on('peer:connect', showStatus)
node.on('peer:disconnect', showStatus)
showStatus()

// ---------------------------------------------------------------- messages
function add(from, text) {
  const li = document.createElement('li')
  li.className = from === node.id ? 'msg mine' : 'msg'
  const who = document.createElement('span')
  who.className = 'who'
  who.textContent = from.slice(0, 8)
  const body = document.createElement('span')
  body.className = 'text'
  body.textContent = text // text, never markup: a peer is a stranger
  li.append(who, body)
  $('log').append(li)
  while ($('log').children.length > MAX_LINES) $('log').firstElementChild?.remove()
}

node.subscribe('chat', (data, { from }) => {
  // Anything may arrive: show a message only if it is one.
  if (from === node.id || typeof data?.text !== 'string') return
  add(from, data.text.slice(0, MAX_TEXT))
})

$('chat').addEventListener('submit', (ev) => {
  ev.preventDefault()
  const input = /** @type {HTMLInputElement} */ ($('msg'))
  const text = input.value.trim().slice(0, MAX_TEXT)
  if (!text) return
  input.value = ''
  add(node.id, text)
  node.broadcast('chat', { text }).catch((err) => {
    $('error').textContent = `${err.name}: ${err.message}`
  })
})

// ---------------------------------------------------------------- the topic (a table key)
const showTopic = () => {
  const topic = node.sync.get('topic')
  $('topic').textContent = typeof topic === 'string' ? topic : ''
}
node.sync.on('change', ({ key }) => {
  if (key === 'topic') showTopic()
})
showTopic()

$('topic-form').addEventListener('submit', (ev) => {
  ev.preventDefault()
  const input = /** @type {HTMLInputElement} */ ($('topic-input'))
  const topic = input.value.trim().slice(0, 100)
  if (!topic) return
  input.value = ''
  node.sync.set('topic', topic).then(showTopic, (err) => {
    $('error').textContent = `${err.name}: ${err.message}`
  })
})

for (const el of document.querySelectorAll('input, button')) el.removeAttribute('disabled')
