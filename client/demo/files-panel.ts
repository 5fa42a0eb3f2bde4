/**
 * The files panel (`node.files`, client/files/types.ts): drop a file on the
 * panel (or choose one) and the node cuts, hashes and serves it; its
 * `weft:` link is shown with a copy button and a share link, the page's own
 * address with the link in the fragment (`#file=…`, beside `#secret=…`).
 * Opening a link (pasted, or the page loaded with `#file=`) starts the
 * download at once and shows it: a piece map coloured by the peer each piece
 * came from, have/total, peers and MB/s, a cancel button; when done, a
 * download link and a preview for images, audio and video. Below, the files
 * this tab holds, whole or in part, refreshed with the page's other panels.
 *
 * What arrives from other peers is untrusted: names and types are shown as
 * text only, a download link's blob is always application/octet-stream (a
 * blob URL has this page's origin, so an HTML "file" opened from it must not
 * render), and only image, audio and video types are previewed, SVG never.
 */
import { errorText, formatBytes, h, setText, shortId, showError, showOk } from './dom.ts'
import { fileParamOf, formatRate, linkHints, previewKind, shareLink } from './files-util.ts'
import type { FileDownload, FileInfo, FileProgress, FilesApi, StoredFileInfo } from './node-api.ts'
import { PieceMap } from './piece-map.ts'

export interface FilesElements {
  /** The panel: files dropped anywhere on it are added. */
  panel: HTMLElement
  unavailable: HTMLElement
  body: HTMLElement
  drop: HTMLElement
  input: HTMLInputElement
  choose: HTMLButtonElement
  /** "Hashing…" while an add runs. */
  adding: HTMLElement
  /** The last file added: its link, a copy button, the share link. */
  added: HTMLElement
  openForm: HTMLFormElement
  openInput: HTMLInputElement
  msg: HTMLElement
  /** Where the download being watched is shown. */
  download: HTMLElement
  listBody: HTMLTableSectionElement
  listEmpty: HTMLElement
  count: HTMLElement
}

interface Row {
  tr: HTMLTableRowElement
  name: HTMLButtonElement
  size: HTMLElement
  state: HTMLElement
}

export class FilesPanel {
  private files: FilesApi | undefined
  private me = ''
  private watched: DownloadView | undefined
  private readonly rows = new Map<string, Row>()
  private readonly uris = new Map<string, string>()
  private listing = false
  private adds: Promise<void> = Promise.resolve()
  private addsPending = 0

  constructor(private readonly el: FilesElements) {}

  /** No `node.files` in this build: say so instead of the controls. */
  unavailable(): void {
    this.el.unavailable.hidden = false
    this.el.body.hidden = true
  }

  attach(files: FilesApi, me: string): void {
    this.files = files
    this.me = me
    const el = this.el
    el.choose.disabled = false
    el.input.disabled = false
    for (const c of el.openForm.elements) (c as HTMLInputElement).disabled = false

    el.choose.addEventListener('click', () => el.input.click())
    el.input.addEventListener('change', () => {
      const picked = [...(el.input.files ?? [])]
      el.input.value = ''
      for (const f of picked) this.add(f)
    })
    // Dropping anywhere on the panel adds the files; the drop zone lights up while one is over it.
    let depth = 0
    const hasFiles = (ev: DragEvent) => [...(ev.dataTransfer?.types ?? [])].includes('Files')
    el.panel.addEventListener('dragenter', (ev) => {
      if (!hasFiles(ev)) return
      ev.preventDefault()
      depth++
      el.drop.classList.add('over')
    })
    el.panel.addEventListener('dragover', (ev) => {
      if (!hasFiles(ev)) return
      ev.preventDefault()
      if (ev.dataTransfer) ev.dataTransfer.dropEffect = 'copy'
    })
    el.panel.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1)
      if (!depth) el.drop.classList.remove('over')
    })
    el.panel.addEventListener('drop', (ev) => {
      if (!hasFiles(ev)) return
      ev.preventDefault()
      depth = 0
      el.drop.classList.remove('over')
      for (const f of [...(ev.dataTransfer?.files ?? [])]) this.add(f)
    })
    // A file dropped beside the panel would make the browser open it in place of the page (and
    // close the node): the page refuses such drops.
    for (const type of ['dragover', 'drop'] as const)
      addEventListener(type, (ev) => {
        if (hasFiles(ev) && !el.panel.contains(ev.target as Node | null)) {
          ev.preventDefault()
          if (ev.dataTransfer) ev.dataTransfer.dropEffect = 'none'
        }
      })

    el.openForm.addEventListener('submit', (ev) => {
      ev.preventDefault()
      const ref = el.openInput.value.trim()
      if (!ref) return showError(el.msg, new TypeError('paste a weft: link or a file id'))
      this.open(ref)
    })
    el.listBody.addEventListener('click', (ev) => this.onRowClick(ev))
    el.added.addEventListener('click', (ev) => {
      const b = (ev.target as Element | null)?.closest<HTMLButtonElement>('button[data-copy]')
      if (b) copy(b, b.dataset.copy ?? '')
    })

    // A link in the address opens at once; a new one pasted into the address bar too.
    const fromHash = () => {
      const ref = fileParamOf(location.hash)
      if (ref && ref !== this.watched?.ref) {
        el.openInput.value = ref
        this.open(ref)
      }
    }
    addEventListener('hashchange', fromHash)
    fromHash()
    void this.refresh()
  }

  /** Redraw the list of files held here (the page calls this with its other panels). */
  async refresh(): Promise<void> {
    const files = this.files
    if (!files || this.listing) return
    this.listing = true
    try {
      this.render(await files.list())
    } catch (err) {
      showError(this.el.msg, err)
    } finally {
      this.listing = false
    }
  }

  /** Add a file; adds run one after another (each hashes the whole file). */
  private add(file: File): void {
    const files = this.files
    if (!files) return
    this.addsPending++
    this.showAdding(file)
    this.adds = this.adds.then(async () => {
      this.showAdding(file)
      try {
        const info = await files.add(file, { name: file.name, ...(file.type ? { type: file.type } : {}) })
        this.showAdded(info)
        showOk(this.el.msg, `Added “${info.name ?? shortId(info.id)}”: share its link.`)
      } catch (err) {
        showError(this.el.msg, err)
      } finally {
        if (--this.addsPending === 0) this.el.adding.hidden = true
        void this.refresh()
      }
    })
  }

  private showAdding(file: File): void {
    const more = this.addsPending > 1 ? ` (${this.addsPending - 1} more waiting)` : ''
    this.el.adding.replaceChildren(
      h('progress', { 'aria-label': 'Hashing' }),
      h('span', { class: 'what' }, `Hashing “${file.name}” (${formatBytes(file.size)})…${more}`),
    )
    this.el.adding.hidden = false
  }

  private showAdded(info: FileInfo): void {
    const share = shareLink(location.href, info.uri)
    this.el.added.dataset.id = info.id
    this.el.added.replaceChildren(
      h(
        'div',
        { class: 'file-title' },
        h('strong', null, info.name ?? shortId(info.id)),
        h('span', { class: 'muted' }, ` ${formatBytes(info.size)}`),
      ),
      h('code', { class: 'uri', title: info.uri }, info.uri),
      h(
        'div',
        { class: 'file-actions' },
        h(
          'button',
          { type: 'button', class: 'small', 'data-copy': info.uri, 'aria-label': 'Copy weft link' },
          'Copy link',
        ),
        h(
          'button',
          { type: 'button', class: 'small', 'data-copy': share, 'aria-label': 'Copy share link' },
          'Copy share link',
        ),
        h('a', { href: share, target: '_blank', rel: 'noopener', class: 'share' }, 'Share link ↗'),
      ),
    )
    this.el.added.hidden = false
  }

  /** Start (or resume) a download and watch it here; one is watched at a time. */
  private open(ref: string): void {
    const files = this.files
    if (!files) return
    // Opening the link being fetched again changes nothing (it would restart the view).
    if (this.watched?.ref === ref && this.watched.running) return
    showError(this.el.msg, null)
    this.watched?.close()
    this.watched = undefined
    const ac = new AbortController()
    let dl: FileDownload
    try {
      dl = files.get(ref, { signal: ac.signal })
    } catch (err) {
      // A malformed link: TypeError, saying what is wrong.
      this.el.download.replaceChildren()
      showError(this.el.msg, err)
      return
    }
    // The address names the file too, so a reload resumes the download.
    if (fileParamOf(location.hash) !== ref) history.replaceState(null, '', shareLink(location.href, ref))
    this.watched = new DownloadView(this.el.download, dl, ac, ref, this.me, (err) => {
      if (err) showError(this.el.msg, err)
      void this.refresh()
    })
  }

  private render(list: StoredFileInfo[]): void {
    list.sort((a, b) => (a.name ?? a.id).localeCompare(b.name ?? b.id))
    const live = new Set(list.map((f) => f.id))
    for (const [id, r] of this.rows)
      if (!live.has(id)) {
        r.tr.remove()
        this.rows.delete(id)
        this.uris.delete(id)
      }
    let prev: HTMLTableRowElement | null = null
    for (const f of list) {
      let r = this.rows.get(f.id)
      if (!r) {
        r = newRow(f)
        this.rows.set(f.id, r)
      }
      // Rows are updated in place: a focused button keeps its focus.
      this.uris.set(f.id, f.uri)
      setText(r.name, f.name ?? shortId(f.id))
      r.name.title = f.uri
      setText(r.size, formatBytes(f.size))
      setText(r.state, f.complete ? 'complete' : `${f.have}/${f.total} pieces`)
      r.state.className = f.complete ? 'state complete' : 'state partial'
      r.tr.classList.toggle('partial', !f.complete)
      const want: ChildNode | null = prev ? prev.nextSibling : this.el.listBody.firstChild
      if (want !== r.tr) this.el.listBody.insertBefore(r.tr, want)
      prev = r.tr
    }
    this.el.listEmpty.hidden = list.length > 0
    const whole = list.filter((f) => f.complete).length
    setText(
      this.el.count,
      list.length
        ? `${list.length} file${list.length === 1 ? '' : 's'} here${whole < list.length ? `, ${list.length - whole} partial` : ''}`
        : '',
    )
  }

  private onRowClick(ev: Event): void {
    const b = (ev.target as Element | null)?.closest<HTMLButtonElement>('button')
    const id = b?.closest('tr')?.dataset.id
    if (!b || !id) return
    const uri = this.uris.get(id) ?? id
    if (b.dataset.act === 'copy') copy(b, uri)
    else if (b.dataset.act === 'open') {
      this.el.openInput.value = uri
      this.open(uri)
    } else if (b.dataset.act === 'remove') void this.remove(id, b)
  }

  private async remove(id: string, b: HTMLButtonElement): Promise<void> {
    const files = this.files
    if (!files) return
    b.disabled = true
    try {
      await files.remove(id)
      if (this.el.added.dataset.id === id) this.el.added.hidden = true
      showOk(this.el.msg, `Removed ${shortId(id)}: this tab no longer holds or serves it.`)
    } catch (err) {
      showError(this.el.msg, err)
    } finally {
      b.disabled = false
      void this.refresh()
    }
  }
}

function newRow(f: StoredFileInfo): Row {
  const label = f.name ?? shortId(f.id)
  const name = h('button', {
    type: 'button',
    class: 'link',
    'data-act': 'open',
    'aria-label': `Open ${label}`,
  })
  const size = h('td', { class: 'num size' })
  const state = h('span', { class: 'state' })
  const tr = h(
    'tr',
    { 'data-id': f.id },
    h('td', { class: 'name' }, name),
    size,
    h('td', null, state),
    h(
      'td',
      { class: 'actions' },
      h(
        'button',
        { type: 'button', class: 'small', 'data-act': 'copy', 'aria-label': `Copy link of ${label}` },
        'Copy link',
      ),
      h(
        'button',
        { type: 'button', class: 'small danger', 'data-act': 'remove', 'aria-label': `Remove ${label}` },
        'Remove',
      ),
    ),
  )
  return { tr, name, size, state }
}

function copy(button: HTMLButtonElement, text: string): void {
  const was = button.dataset.label ?? button.textContent ?? ''
  button.dataset.label = was
  const say = (t: string) => {
    setText(button, t)
    setTimeout(() => setText(button, was), 1500)
  }
  navigator.clipboard.writeText(text).then(
    () => say('Copied'),
    () => say('Copy failed'),
  )
}

/** One download on screen: its figures, piece map, cancel button, and when done its link and preview. */
class DownloadView {
  private readonly map: PieceMap
  private readonly figures: HTMLElement
  private readonly title: HTMLElement
  private readonly cancel: HTMLButtonElement
  private readonly result: HTMLElement
  private readonly off: (() => void)[] = []
  private readonly urls: string[] = []
  private total = 0
  private closed = false
  /** Not yet done, failed or closed. */
  running = true

  constructor(
    private readonly root: HTMLElement,
    private readonly dl: FileDownload,
    private readonly ac: AbortController,
    readonly ref: string,
    me: string,
    ended: (err: unknown) => void,
  ) {
    const hints = linkHints(ref)
    this.title = h('strong', { class: 'file-name' }, hints.name ?? shortId(dl.id))
    this.figures = h('span', { class: 'figures', 'aria-live': 'off' })
    this.cancel = h('button', { type: 'button', class: 'small danger' }, 'Cancel')
    this.cancel.addEventListener('click', () => this.ac.abort())
    const canvas = h('canvas', { class: 'piece-map', role: 'img', 'aria-label': 'Piece map' })
    const legend = h('ul', { class: 'legend peers', 'aria-label': 'Pieces by peer' })
    this.result = h('div', { class: 'result' })
    root.replaceChildren(
      h(
        'div',
        { class: 'dl-head' },
        h(
          'div',
          { class: 'file-title' },
          this.title,
          hints.size !== undefined && h('span', { class: 'muted' }, ` ${formatBytes(hints.size)}`),
        ),
        this.cancel,
      ),
      this.figures,
      h('div', { class: 'map-box' }, canvas),
      legend,
      this.result,
    )
    root.hidden = false
    this.map = new PieceMap(canvas, legend, me)
    this.off.push(
      dl.on('progress', (p) => this.progress(p)),
      dl.on('piece', (e) => this.map.piece(e.index, e.from)),
    )
    this.progress(dl.progress())
    dl.done().then(
      () => {
        this.running = false
        if (this.closed) return
        this.progress(dl.progress())
        this.cancel.hidden = true
        void this.finish().then(() => ended(null), ended)
      },
      (err: unknown) => {
        this.running = false
        if (this.closed) return
        this.cancel.disabled = true
        this.root.classList.add('failed')
        setText(this.figures, `${this.figures.textContent ?? ''} · ${errorText(err).name}`)
        ended(err)
      },
    )
  }

  /** Stop watching: the download is aborted if it still runs (its pieces stay, and are served). */
  close(): void {
    this.closed = true
    this.running = false
    for (const f of this.off) f()
    this.ac.abort()
    this.map.destroy()
    for (const u of this.urls) URL.revokeObjectURL(u)
  }

  private progress(p: FileProgress): void {
    if (this.closed) return
    if (p.total && p.total !== this.total) {
      this.total = p.total
      this.map.setTotal(p.total)
      this.map.setHeld(this.dl.bits())
      const m = this.dl.manifest()
      if (m?.name) setText(this.title, m.name)
    }
    const parts = [
      p.total ? `${p.have}/${p.total} pieces` : 'finding peers…',
      `${p.peers} peer${p.peers === 1 ? '' : 's'}`,
      formatRate(p.bytesPerSec),
    ]
    if (p.size) parts.push(`${formatBytes(p.bytes)} of ${formatBytes(p.size)}`)
    setText(this.figures, parts.join(' · '))
  }

  private async finish(): Promise<void> {
    const m = this.dl.manifest()
    const blob = await this.dl.blob()
    if (this.closed) return
    const name = m?.name ?? `${this.dl.id.slice(0, 16)}.bin`
    // The link's copy is typed as bytes, whatever the manifest says: never rendered as a page.
    const save = URL.createObjectURL(new Blob([blob], { type: 'application/octet-stream' }))
    this.urls.push(save)
    const kind = previewKind(m?.type)
    let preview: HTMLElement | null = null
    if (kind) {
      const src = URL.createObjectURL(new Blob([blob], { type: m?.type ?? '' }))
      this.urls.push(src)
      preview =
        kind === 'image'
          ? h('img', { src, alt: `Preview of ${name}` })
          : kind === 'audio'
            ? h('audio', { src, controls: true, 'aria-label': `Preview of ${name}` })
            : h('video', { src, controls: true, playsinline: true, 'aria-label': `Preview of ${name}` })
    }
    this.result.replaceChildren(
      h(
        'div',
        { class: 'done-line' },
        h('a', { href: save, download: name, class: 'save' }, `Save “${name}”`),
        h('span', { class: 'muted' }, ` ${formatBytes(blob.size)}${m?.type ? ` · ${m.type}` : ''}`),
      ),
      ...(preview ? [h('div', { class: 'preview' }, preview)] : []),
    )
  }
}
