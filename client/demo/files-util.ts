/**
 * The files panel's pure helpers (no DOM): the page address with a file in
 * its fragment, the hints a `weft:` link carries for the page before the
 * manifest arrives, which files the page previews, and the piece map's
 * geometry. Everything here reads untrusted text (an address, a pasted link,
 * a manifest's type from another peer) and never throws.
 */

/** The fragment parameter that names a file to open: `#file=<uri-encoded weft: link>`. */
export const FILE_PARAM = 'file'

/** The file named by a page's fragment (`#file=…`, alongside `#secret=…`), if any. */
export function fileParamOf(hash: string): string | undefined {
  const v = new URLSearchParams(hash.replace(/^#/, '')).get(FILE_PARAM)?.trim()
  return v ? v : undefined
}

/**
 * The page's address that opens `uri` on load: the same query (network,
 * relay, signal) and the same fragment (a private network's secret), with
 * `file` set to the link.
 */
export function shareLink(href: string, uri: string): string {
  const url = new URL(href)
  const frag = new URLSearchParams(url.hash.replace(/^#/, ''))
  frag.set(FILE_PARAM, uri)
  url.hash = frag.toString()
  return url.href
}

/** Longest name hint shown (a manifest's name is at most 255 characters too). */
const MAX_HINT_NAME = 255
/** Largest size hint believed: 16,384 pieces of 1 MiB (PROTOCOL-swarm.md). */
const MAX_HINT_SIZE = 16384 * 1024 * 1024

/**
 * The name and size a link says (`dn`, `xl`): hints to show until the
 * manifest arrives, never trusted over it. A bare id, or anything that is
 * not a `weft:?` link, has none; `node.files.get` is the one to judge it.
 */
export function linkHints(text: string): { name?: string; size?: number } {
  const t = text.trim()
  if (!t.toLowerCase().startsWith('weft:?') || t.length > 2048) return {}
  let q: URLSearchParams
  try {
    q = new URLSearchParams(t.slice('weft:?'.length))
  } catch {
    return {}
  }
  const out: { name?: string; size?: number } = {}
  const dn = q.get('dn')
  // No control characters in what the page shows (they could reorder or hide text).
  if (dn && dn.length <= MAX_HINT_NAME && !hasControl(dn)) out.name = dn
  const xl = q.get('xl')
  if (xl && /^\d{1,16}$/.test(xl)) {
    const n = Number(xl)
    if (n <= MAX_HINT_SIZE) out.size = n
  }
  return out
}

/** C0 and C1 control characters (U+0000-U+001F, U+007F-U+009F). */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true
  }
  return false
}

export type PreviewKind = 'image' | 'audio' | 'video'

/**
 * Which element previews a file of this media type, if any. The type comes
 * from the manifest, that is from whoever added the file: only image, audio
 * and video types are previewed, and never SVG (an SVG opened from its blob
 * URL would run its scripts with this page's origin).
 */
export function previewKind(type: string | undefined): PreviewKind | undefined {
  if (!type) return undefined
  const m = /^(image|audio|video)\/([a-z0-9][a-z0-9.+-]*)\s*(;.*)?$/i.exec(type.trim())
  if (!m) return undefined
  const kind = (m[1] as string).toLowerCase() as PreviewKind
  const sub = (m[2] as string).toLowerCase()
  if (sub.includes('svg')) return undefined
  return kind
}

/** The piece map's cells: their size in CSS pixels, and how many columns and rows. */
export interface PieceGrid {
  cell: number
  cols: number
  rows: number
}

const MAX_CELL = 18
const MIN_CELL = 2

/**
 * Cells for `total` pieces in a box `width` wide and at most `maxHeight`
 * tall: as large as fits (at most 18 px, so a 3-piece file is not three
 * bars), at least 2 px (16,384 pieces then take more height, and the map
 * grows rather than dropping pieces).
 */
export function pieceGrid(total: number, width: number, maxHeight: number): PieceGrid {
  const w = Math.max(1, Math.floor(width))
  if (!(total > 0)) return { cell: MAX_CELL, cols: Math.max(1, Math.floor(w / MAX_CELL)), rows: 0 }
  let cell = Math.floor(Math.sqrt((w * Math.max(1, maxHeight)) / total))
  cell = Math.max(MIN_CELL, Math.min(MAX_CELL, cell))
  // The square-root estimate ignores the last row's rounding: shrink until it fits.
  while (cell > MIN_CELL && Math.ceil(total / Math.floor(w / cell)) * cell > maxHeight) cell--
  const cols = Math.max(1, Math.min(total, Math.floor(w / cell)))
  return { cell, cols, rows: Math.ceil(total / cols) }
}

/** A transfer rate in megabytes per second (10^6, as network rates are written). */
export function formatRate(bytesPerSec: number): string {
  if (!Number.isFinite(bytesPerSec) || bytesPerSec < 0) return '–'
  const mb = bytesPerSec / 1e6
  return `${mb < 10 ? mb.toFixed(2) : mb.toFixed(1)} MB/s`
}
