import { describe, expect, it } from 'vitest'
import { fileParamOf, formatRate, linkHints, pieceGrid, previewKind, shareLink } from './files-util.ts'

const ID = 'ab'.repeat(32)
const URI = `weft:?xt=urn:weft:${ID}&dn=clip%20one.webm&xl=600000`

describe('share link', () => {
  it('puts the link in the fragment, keeping the query and the secret, and reads it back', () => {
    const href = shareLink('https://demo.example/?network=n1&relay=force#secret=s%2Bx', URI)
    const url = new URL(href)
    expect(url.search).toBe('?network=n1&relay=force')
    const frag = new URLSearchParams(url.hash.slice(1))
    expect(frag.get('secret')).toBe('s+x')
    expect(frag.get('file')).toBe(URI)
    expect(fileParamOf(url.hash)).toBe(URI)
  })

  it('replaces a file already in the fragment', () => {
    const first = shareLink('https://demo.example/', URI)
    const again = shareLink(first, ID)
    expect(fileParamOf(new URL(again).hash)).toBe(ID)
    expect(new URL(again).hash.match(/file=/g)).toHaveLength(1)
  })

  it('finds no file in an empty fragment or an empty parameter', () => {
    expect(fileParamOf('')).toBeUndefined()
    expect(fileParamOf('#secret=x')).toBeUndefined()
    expect(fileParamOf('#file=&secret=x')).toBeUndefined()
  })
})

describe('link hints', () => {
  it('reads the name and size a link carries', () => {
    expect(linkHints(URI)).toEqual({ name: 'clip one.webm', size: 600000 })
  })

  it('has none for a bare id or anything else', () => {
    expect(linkHints(ID)).toEqual({})
    expect(linkHints('magnet:?xt=urn:btih:x&dn=a')).toEqual({})
  })

  it('drops a name with control characters and a size past the largest file', () => {
    expect(linkHints(`weft:?xt=urn:weft:${ID}&dn=a%0Ab&xl=1`)).toEqual({ size: 1 })
    expect(linkHints(`weft:?xt=urn:weft:${ID}&xl=${16384 * 1024 * 1024 + 1}`)).toEqual({})
    expect(linkHints(`weft:?xt=urn:weft:${ID}&xl=-1`)).toEqual({})
    expect(linkHints(`weft:?xt=urn:weft:${ID}&dn=${'a'.repeat(256)}`)).toEqual({})
  })
})

describe('previews', () => {
  it('previews images, audio and video by type', () => {
    expect(previewKind('image/png')).toBe('image')
    expect(previewKind('audio/ogg')).toBe('audio')
    expect(previewKind('video/webm; codecs="vp9"')).toBe('video')
    expect(previewKind('IMAGE/JPEG')).toBe('image')
  })

  it('never previews SVG, HTML, or a malformed or missing type', () => {
    expect(previewKind('image/svg+xml')).toBeUndefined()
    expect(previewKind('text/html')).toBeUndefined()
    expect(previewKind('image/')).toBeUndefined()
    expect(previewKind('image/png<script>')).toBeUndefined()
    expect(previewKind(undefined)).toBeUndefined()
    expect(previewKind('')).toBeUndefined()
  })
})

describe('piece grid', () => {
  it('shows a few pieces as large cells on one row', () => {
    expect(pieceGrid(3, 400, 150)).toEqual({ cell: 18, cols: 3, rows: 1 })
  })

  it('fits many pieces within the height, every piece a cell', () => {
    for (const total of [64, 1000, 4096, 16384]) {
      const g = pieceGrid(total, 500, 150)
      expect(g.cols * g.rows, `${total} pieces`).toBeGreaterThanOrEqual(total)
      expect(g.cols * g.cell, `${total} pieces`).toBeLessThanOrEqual(500)
      if (g.cell > 2) expect(g.rows * g.cell, `${total} pieces`).toBeLessThanOrEqual(150)
    }
  })

  it('grows taller rather than dropping pieces when even 2 px cells do not fit', () => {
    const g = pieceGrid(16384, 300, 150)
    expect(g.cell).toBe(2)
    expect(g.cols * g.rows).toBeGreaterThanOrEqual(16384)
  })

  it('has no rows before the manifest', () => {
    expect(pieceGrid(0, 300, 150).rows).toBe(0)
  })
})

describe('rate', () => {
  it('writes megabytes per second', () => {
    expect(formatRate(2_500_000)).toBe('2.50 MB/s')
    expect(formatRate(25_000_000)).toBe('25.0 MB/s')
    expect(formatRate(Number.NaN)).toBe('–')
  })
})
