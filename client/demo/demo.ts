/**
 * The weft demo page. It loads the library from the server's /weft.mjs, as
 * an embedding site would, joins on load with the address's parameters
 * (`?network=NAME&relay=force|auto|never&signal=URL&filesMaxBytes=N`, the signal server
 * defaulting to this page's origin; a private network's secret in the
 * fragment, `#secret=…`, which the browser never sends) and sets `window.overlay` to the
 * Promise of the node at once. Then it shows the node: its id and signal
 * state, its links, a drawing of the network it knows (every node present
 * in it), a name the tab sets as its presence state (`{ name }`), a chat,
 * live counters, and panels for the sync table, the DHT and files (a file
 * to open in the fragment too: `#file=<weft: link>`, files-panel.ts).
 */
import { joinOverlay } from '/weft.mjs'
import { ChatPanel } from './chat-panel.ts'
import { CountersPanel } from './counters-panel.ts'
import { DhtPanel } from './dht-panel.ts'
import { byId, errorText, h, setText, shortId, svgById } from './dom.ts'
import { FilesPanel } from './files-panel.ts'
import { LinksPanel } from './links-panel.ts'
import { NetworkView } from './network-view.ts'
import { dhtOf, filesOf, tryCall, type WeftNode } from './node-api.ts'
import { TablePanel } from './table-panel.ts'

declare global {
  interface Window {
    overlay: Promise<WeftNode>
  }
}

const REFRESH_MS = 1000

const params = new URLSearchParams(location.search)
const network = params.get('network') || 'default'
const relay = params.get('relay') || undefined
const signalParam = params.get('signal')
const signal = signalParam ? signalParam.split(',').map((u) => u.trim()) : location.origin
// The secret lives in the fragment: never sent to any server, shared with the link.
const secret = new URLSearchParams(location.hash.slice(1)).get('secret') || undefined
setupSecretForm(secret)
// How long the first join keeps trying (joinOverlay's timeoutMs; its default when absent).
const timeoutMs = Number(params.get('timeoutMs')) || undefined
// The most bytes of files this tab keeps (JoinOptions.files.maxBytes; the store's default when absent).
const filesMaxBytes = Number(params.get('filesMaxBytes')) || undefined

setText(byId('network-name'), network)
setText(byId('relay-mode'), relay ?? 'auto')
byId<HTMLAnchorElement>('new-peer').href = location.href
setSignalState('connecting')

// The panels exist before the node does, so nothing moves when it arrives.
const graph = new NetworkView(svgById('graph'), byId('graph-caption'))
const links = new LinksPanel(
  byId('links-body') as HTMLTableSectionElement,
  byId('links-empty'),
  byId('links-count'),
)
const counters = new CountersPanel(
  byId('counter-tiles'),
  byId('all-counters') as HTMLTableSectionElement,
  byId('all-count'),
)
const chat = new ChatPanel(
  byId('chat-log') as HTMLOListElement,
  byId('chat-form') as HTMLFormElement,
  byId('chat-input') as HTMLInputElement,
  byId('chat-error'),
  byId<HTMLInputElement>('chat-room'),
)
const filesPanel = new FilesPanel({
  panel: byId('files-h').closest('section') as HTMLElement,
  unavailable: byId('files-unavailable'),
  body: byId('files-body-wrap'),
  drop: byId('files-drop'),
  input: byId<HTMLInputElement>('files-input'),
  choose: byId<HTMLButtonElement>('files-choose'),
  adding: byId('files-adding'),
  added: byId('files-added'),
  openForm: byId<HTMLFormElement>('files-open-form'),
  openInput: byId<HTMLInputElement>('files-link'),
  msg: byId('files-msg'),
  download: byId('files-download'),
  listBody: byId('files-body') as HTMLTableSectionElement,
  listEmpty: byId('files-empty'),
  count: byId('files-count'),
})

const options = {
  signal: Array.isArray(signal) && signal.length === 1 ? (signal[0] as string) : signal,
  network,
  ...(secret ? { secret } : {}),
  ...(relay ? { relay: relay as 'auto' | 'force' | 'never' } : {}),
  ...(timeoutMs ? { timeoutMs } : {}),
  ...(filesMaxBytes ? { files: { maxBytes: filesMaxBytes } } : {}),
  // joinOverlay keeps trying (timeoutMs, 30 s) while the server is down: say so as it goes.
  onSignal: (s: { state: string; retryInMs?: number; error?: { reason: string } }) =>
    setSignalState(
      s.state,
      s.state === 'down' && s.retryInMs !== undefined
        ? `retrying in ${Math.ceil(s.retryInMs / 1000)} s (${s.error?.reason ?? 'down'})`
        : s.state,
    ),
}
// Set synchronously, so a script (or a test) can await the node right after load.
window.overlay = joinOverlay(options)
window.overlay.then(start, fail)

function setSignalState(state: string, label = state): void {
  const pill = byId('signal-state')
  setText(pill, label)
  pill.className = `pill ${state}`
}

function fail(err: unknown): void {
  setSignalState('down')
  setText(byId('node-id'), 'not joined')
  graph.say('Not joined.')
  const { name, message } = errorText(err)
  const servers = Array.isArray(options.signal) ? options.signal.join(', ') : options.signal
  const hint =
    name === 'SignalError'
      ? `Is a weft signal server running at ${servers}? Start one with npm start.`
      : name === 'TypeError' && /relay/.test(message)
        ? 'The relay parameter is one of force, auto or never.'
        : name === 'AccessDeniedError'
          ? "This network's members know another secret: set it above (it stays in this page's address)."
          : ''
  const retry = h('button', { type: 'button', class: 'small' }, 'Retry')
  retry.addEventListener('click', () => location.reload())
  const banner = byId('banner')
  banner.replaceChildren(
    h('div', null, h('strong', null, name), message ? `: ${message}` : ''),
    hint && h('div', { class: 'hint' }, hint),
    retry,
  )
  banner.hidden = false
  console.error('weft demo: joinOverlay failed', err)
}

function start(node: WeftNode): void {
  document.title = `weft · ${shortId(node.id)} · ${network}`
  const idEl = byId('node-id')
  setText(idEl, shortId(node.id))
  idEl.title = node.id
  idEl.dataset.nodeId = node.id
  const copy = byId<HTMLButtonElement>('copy-id')
  copy.disabled = false
  copy.addEventListener('click', () => {
    navigator.clipboard.writeText(node.id).then(
      () => flash(copy, 'Copied'),
      () => flash(copy, 'Copy failed'),
    )
  })

  // Leave politely: peers see the links close at once instead of timing out.
  addEventListener('pagehide', () => void node.close())
  // A page restored from the back-forward cache has a closed node: join again.
  addEventListener('pageshow', (ev) => {
    if (ev.persisted) location.reload()
  })

  setSignalState(node.inspect().signal)
  node.on('signal', (state) => setSignalState(state))

  chat.attach(node, new URLSearchParams(location.hash.slice(1)).get('room') ?? '')
  attachName(node)

  const refresh = () => {
    const seen = tryCall(() => node.inspect())
    if (!seen || seen.closed) return
    links.update(seen.links)
    const present = tryCall(() => node.presence.get())
    graph.update({ me: node.id, topology: seen.topology, links: seen.links, ...(present ? { present } : {}) })
    const stats = tryCall(() => node.stats())
    if (stats) counters.update(stats)
    void filesPanel.refresh()
  }
  refresh()
  setInterval(refresh, REFRESH_MS)
  // Links appear at once, not at the next refresh.
  let soon = 0
  const refreshSoon = () => {
    if (soon) return
    soon = requestAnimationFrame(() => {
      soon = 0
      refresh()
    })
  }
  node.on('peer:connect', refreshSoon)
  node.on('peer:disconnect', refreshSoon)
  node.on('presence', refreshSoon)

  new TablePanel({
    form: byId('table-form') as HTMLFormElement,
    key: byId('table-key') as HTMLInputElement,
    value: byId('table-value') as HTMLInputElement,
    lease: byId('table-lease') as HTMLInputElement,
    msg: byId('table-msg'),
    body: byId('table-body') as HTMLTableSectionElement,
    empty: byId('table-empty'),
    count: byId('table-count'),
  }).attach(node.sync, node.id)

  const btn = (id: string) => byId<HTMLButtonElement>(id)
  new DhtPanel({
    form: byId('dht-form') as HTMLFormElement,
    key: byId('dht-key') as HTMLInputElement,
    value: byId('dht-value') as HTMLInputElement,
    author: byId('dht-author') as HTMLInputElement,
    buttons: {
      put: btn('dht-put'),
      get: btn('dht-get'),
      delete: btn('dht-delete'),
      lookup: btn('dht-lookup'),
      provide: btn('dht-provide'),
      find: btn('dht-find'),
    },
    results: byId('dht-results') as HTMLOListElement,
    ring: svgById('ring'),
    ringNote: byId('ring-note'),
  }).attach(dhtOf(node), node.id, () => knownIds(node))

  const files = filesOf(node)
  if (files) filesPanel.attach(files, node.id)
  else filesPanel.unavailable()
}

const NAME_KEY = 'weft-demo-name'

/** The name field: the tab's presence state is `{ name }` (kept for the next visit), sent as it is typed. */
function attachName(node: WeftNode): void {
  const input = byId<HTMLInputElement>('presence-name')
  input.disabled = false
  const send = () => {
    const name = input.value.trim()
    try {
      localStorage.setItem(NAME_KEY, name)
    } catch {
      // Storage may be off (private mode): the name still goes out.
    }
    node.presence.set(name ? { name } : null).catch((err) => console.warn('weft demo: presence.set', err))
  }
  let saved = ''
  try {
    saved = localStorage.getItem(NAME_KEY) ?? ''
  } catch {}
  if (saved) {
    input.value = saved
    send()
  }
  // At most one record per 250 ms goes out anyway (presence coalesces); wait for a pause in typing.
  let timer = 0
  input.addEventListener('input', () => {
    clearTimeout(timer)
    timer = window.setTimeout(send, 300)
  })
}

/** Every node id this node knows of: itself, its neighbours and theirs. */
function knownIds(node: WeftNode): string[] {
  const topo = tryCall(() => node.inspect().topology) ?? {}
  return [...new Set(Object.entries(topo).flatMap(([k, v]) => [k, ...v]))]
}

function flash(button: HTMLButtonElement, text: string): void {
  const was = button.dataset.label ?? button.textContent ?? ''
  button.dataset.label = was
  setText(button, text)
  setTimeout(() => setText(button, was), 1500)
}

/** The secret field: shows the fragment's secret, sets a new one (or a random one) and joins again. */
function setupSecretForm(current: string | undefined): void {
  const form = byId<HTMLFormElement>('secret-form')
  const input = byId<HTMLInputElement>('secret-input')
  input.value = current ?? ''
  byId('secret-new').addEventListener('click', () => {
    // 128 random bits, base64url: beyond guessing, whatever the key stretching.
    const b = crypto.getRandomValues(new Uint8Array(16))
    input.value = btoa(String.fromCharCode(...b))
      .replace(/\+/g, '-')
      .replace(/\//g, '_')
      .replace(/=+$/, '')
    input.type = 'text'
  })
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    const v = input.value.trim()
    // A file being opened stays in the fragment: the page opens it again once joined.
    const frag = new URLSearchParams(location.hash.slice(1))
    if (v) frag.set('secret', v)
    else frag.delete('secret')
    location.hash = frag.toString()
    location.reload()
  })
}
