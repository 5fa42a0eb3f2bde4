/**
 * The magnet-style link to a file:
 *
 *     weft:?xt=urn:weft:<id>&dn=<name>&xl=<bytes>
 *
 * `xt` (exact topic) names the file by its id, 64 hex characters (the
 * SHA-256 of its manifest); `dn` (display name) and `xl` (exact length) are
 * hints for the page before the manifest arrives, never trusted over it (the
 * manifest's own name and size are what the id commits to). A link is
 * untrusted input (pasted, clicked, received): `parseFileRef` checks every
 * part and says what is wrong rather than guessing.
 */
import { isFileName, MAX_PIECE_SIZE, MAX_PIECES, MAX_URI_CHARS } from './limits.ts'

export const URI_PREFIX = 'weft:?'
export const XT_PREFIX = 'urn:weft:'
/** Most parameters in a link (unknown ones are allowed, as in magnet links, and ignored). */
export const MAX_URI_PARAMS = 16

/** What a link (or a bare id) names. */
export interface FileRef {
  /** 64 lowercase hex characters. */
  id: string
  /** Display name hint. */
  name?: string
  /** Size hint in bytes. */
  size?: number
}

/** A file id: 64 lowercase hex characters. */
export function isFileId(s: unknown): s is string {
  return typeof s === 'string' && s.length === 64 && /^[0-9a-f]{64}$/.test(s)
}

/** The link to a file. */
export function fileUri(
  id: string,
  hints: { name?: string | undefined; size?: number | undefined } = {},
): string {
  let uri = `${URI_PREFIX}xt=${XT_PREFIX}${id}`
  if (hints.name !== undefined) uri += `&dn=${encodeURIComponent(hints.name)}`
  if (hints.size !== undefined) uri += `&xl=${hints.size}`
  return uri
}

/**
 * Read a link, or a bare id (64 hex characters, either case). Returns the
 * reference, or a sentence saying what is wrong. Surrounding white space is
 * ignored; in the query, `+` stands for a space. Never throws.
 */
export function parseFileRef(input: unknown): FileRef | string {
  if (typeof input !== 'string') return 'a file link must be a string'
  if (input.length > MAX_URI_CHARS) return `a file link is at most ${MAX_URI_CHARS} characters`
  const s = input.trim()
  if (/^[0-9a-fA-F]{64}$/.test(s)) return { id: s.toLowerCase() }
  if (s.slice(0, URI_PREFIX.length).toLowerCase() !== URI_PREFIX)
    return `not a file link: expected "${URI_PREFIX}xt=${XT_PREFIX}<64 hex characters>" or a 64-character id`
  const params = s.slice(URI_PREFIX.length).split('&')
  if (params.length > MAX_URI_PARAMS) return `a file link has at most ${MAX_URI_PARAMS} parameters`
  let id: string | undefined
  let name: string | undefined
  let size: number | undefined
  for (const p of params) {
    const eq = p.indexOf('=')
    if (eq <= 0) return `malformed parameter "${p.slice(0, 32)}"`
    const key = p.slice(0, eq)
    let value: string
    try {
      value = decodeURIComponent(p.slice(eq + 1).replace(/\+/g, ' '))
    } catch {
      return `parameter ${key} is not valid percent-encoding`
    }
    switch (key) {
      case 'xt': {
        if (id !== undefined) return 'more than one xt'
        if (value.slice(0, XT_PREFIX.length).toLowerCase() !== XT_PREFIX)
          return `xt must start with ${XT_PREFIX}`
        const hex = value.slice(XT_PREFIX.length)
        if (!/^[0-9a-fA-F]{64}$/.test(hex)) return 'xt must end with the file id, 64 hex characters'
        id = hex.toLowerCase()
        break
      }
      case 'dn':
        if (name !== undefined) return 'more than one dn'
        if (!isFileName(value))
          return 'dn must be a file name (1-255 characters, no control characters or slashes)'
        name = value
        break
      case 'xl': {
        if (size !== undefined) return 'more than one xl'
        const n = /^[0-9]{1,16}$/.test(value) ? Number(value) : Number.NaN
        if (!Number.isSafeInteger(n) || n > MAX_PIECES * MAX_PIECE_SIZE) return 'xl must be a size in bytes'
        size = n
        break
      }
      default:
        break // other magnet parameters (tr, ws, ...) mean nothing here
    }
  }
  if (id === undefined) return `a file link needs xt=${XT_PREFIX}<id>`
  return { id, ...(name !== undefined ? { name } : {}), ...(size !== undefined ? { size } : {}) }
}
