/**
 * A download's piece map: one cell per piece on a canvas (a file may have
 * 16,384 pieces: a canvas draws them where as many elements would not), a
 * piece's cell in the colour of the peer it came from (the colour that peer
 * has everywhere on the page, colorOf), grey for pieces this tab held before
 * the download started (a resumed one), and a legend of the peers by short
 * id with how many pieces each sent; pointing at a cell names its peer. The canvas carries `data-have` and
 * `data-total`, and says the same in its label, for tests and screen readers.
 */
import { colorOf, h, idChip, shortId } from './dom.ts'
import { pieceGrid } from './files-util.ts'

/** How tall the map may grow before its cells shrink (CSS pixels). */
const MAX_HEIGHT = 150
const GAP = 1
/** A cell's owner: none yet, held before the download, or a peer (its index in `peers`, from 2). */
const NONE = 0
const HELD = 1

export class PieceMap {
  private owner = new Uint16Array(0)
  private total = 0
  private have = 0
  private readonly peers: string[] = []
  private readonly counts = new Map<string, number>()
  private heldBefore = 0
  private frame = 0
  private legendDirty = true
  private grid = { cell: 0, cols: 1 }
  private readonly resize: ResizeObserver | undefined

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly legend: HTMLElement,
    private readonly me: string,
  ) {
    this.resize = typeof ResizeObserver === 'function' ? new ResizeObserver(() => this.schedule()) : undefined
    this.resize?.observe(canvas.parentElement ?? canvas)
    // Two peers' colours can be close (a colour is its node id's, as everywhere on the page):
    // pointing at a cell names the piece and its peer.
    canvas.addEventListener('pointermove', (ev) => {
      const i = this.indexAt(ev.offsetX, ev.offsetY)
      const o = i === undefined ? NONE : (this.owner[i] as number)
      canvas.title =
        i === undefined
          ? ''
          : `piece ${i}: ${o === NONE ? 'missing' : o === HELD ? 'held before' : `from ${shortId(this.peers[o - 2] ?? '')}`}`
    })
    this.schedule()
  }

  /** The file's piece count, once the manifest is known (the map is empty until then). */
  setTotal(total: number): void {
    if (total === this.total || !(total >= 0)) return
    const was = this.owner
    this.total = total
    this.owner = new Uint16Array(total)
    this.owner.set(was.subarray(0, total))
    this.recount()
  }

  /** The have-map at the start (piece 0 the high bit of byte 0): held pieces no event coloured yet are grey. */
  setHeld(bits: Uint8Array | undefined): void {
    if (!bits) return
    for (let i = 0; i < this.total; i++) {
      const held = ((bits[i >> 3] ?? 0) >> (7 - (i & 7))) & 1
      if (held && this.owner[i] === NONE) this.owner[i] = HELD
    }
    this.recount()
  }

  /** A piece kept, and who sent it. */
  piece(index: number, from: string): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.total) return
    let p = this.peers.indexOf(from)
    if (p < 0) {
      // 65,533 peers fit in a cell's owner; past that, the piece is shown as held.
      if (this.peers.length >= 0xffff - 2) return this.mark(index, HELD)
      p = this.peers.push(from) - 1
    }
    this.mark(index, p + 2)
  }

  destroy(): void {
    this.resize?.disconnect()
    if (this.frame) cancelAnimationFrame(this.frame)
  }

  /** The piece under a point of the canvas (CSS pixels), if any. */
  private indexAt(x: number, y: number): number | undefined {
    const { cell, cols } = this.grid
    if (!cell || x < 0 || y < 0) return undefined
    const col = Math.floor(x / cell)
    if (col >= cols) return undefined
    const i = Math.floor(y / cell) * cols + col
    return i < this.total ? i : undefined
  }

  private mark(index: number, owner: number): void {
    if (this.owner[index] === owner) return
    this.owner[index] = owner
    this.recount()
  }

  private recount(): void {
    let have = 0
    let held = 0
    this.counts.clear()
    for (let i = 0; i < this.total; i++) {
      const o = this.owner[i] as number
      if (o === NONE) continue
      have++
      if (o === HELD) held++
      else {
        const id = this.peers[o - 2] as string
        this.counts.set(id, (this.counts.get(id) ?? 0) + 1)
      }
    }
    this.have = have
    this.heldBefore = held
    this.legendDirty = true
    this.schedule()
  }

  private schedule(): void {
    if (this.frame) return
    this.frame = requestAnimationFrame(() => {
      this.frame = 0
      this.draw()
    })
  }

  private draw(): void {
    const c = this.canvas
    c.dataset.have = String(this.have)
    c.dataset.total = String(this.total)
    c.setAttribute(
      'aria-label',
      this.total ? `Piece map: ${this.have} of ${this.total} pieces` : 'Piece map: waiting for the manifest',
    )
    const width = (c.parentElement ?? c).clientWidth
    const { cell, cols, rows } = pieceGrid(this.total, width, MAX_HEIGHT)
    this.grid = { cell, cols }
    const cssH = Math.max(rows * cell, cell)
    const dpr = Math.min(3, window.devicePixelRatio || 1)
    c.style.height = `${cssH}px`
    c.width = Math.max(1, Math.round(width * dpr))
    c.height = Math.max(1, Math.round(cssH * dpr))
    const ctx = c.getContext('2d')
    if (ctx) {
      const css = getComputedStyle(c)
      const empty = css.getPropertyValue('--border').trim() || '#ddd'
      const held = css.getPropertyValue('--muted').trim() || '#888'
      const colours = this.peers.map(colorOf)
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0)
      ctx.clearRect(0, 0, width, cssH)
      const gap = cell > 4 ? GAP : 0
      for (let i = 0; i < this.total; i++) {
        const o = this.owner[i] as number
        ctx.fillStyle = o === NONE ? empty : o === HELD ? held : (colours[o - 2] as string)
        ctx.fillRect((i % cols) * cell, Math.floor(i / cols) * cell, cell - gap, cell - gap)
      }
    }
    if (this.legendDirty) this.drawLegend()
  }

  private drawLegend(): void {
    this.legendDirty = false
    const items: HTMLElement[] = []
    const byCount = [...this.counts].sort((a, b) => b[1] - a[1])
    for (const [id, n] of byCount)
      items.push(h('li', { 'data-peer': id }, idChip(id, this.me), h('span', { class: 'n' }, `${n}`)))
    if (this.heldBefore)
      items.push(
        h(
          'li',
          { title: 'Pieces this tab held before the download started' },
          h('span', { class: 'sw held' }),
          'held before',
          h('span', { class: 'n' }, `${this.heldBefore}`),
        ),
      )
    this.legend.replaceChildren(...items)
  }
}
