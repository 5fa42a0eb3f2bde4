/**
 * A presence record: one node's signed statement "I am here, with this
 * state" or "I have left", and its order.
 *
 * A record travels as `[body, publicKey, signature]`. The body is the
 * MessagePack array its author signs:
 *
 *   [session, seq, time, interval]          a leave
 *   [session, seq, time, interval, state]   present, with its state
 *
 * `session` is the author's clock when it started (a reloaded tab with the
 * same identity starts a later session), `seq` counts the session's
 * records from 1, `time` is the author's clock when it signed, and
 * `interval` the longest the author will wait before its next record (the
 * receiver's expiry is a multiple of it, options.ts). Records of one author
 * are ordered by (session, seq); a receiver keeps only the greatest. The
 * author id is not sent: it is `idOf(publicKey)`.
 *
 * The signature covers `SIGN_DOMAIN || body`, the exact bytes, so no relay
 * can alter a record and a presence signature is never valid as another
 * protocol's. The state is appended to the encoded prefix (0x94 becomes
 * 0x95), so its encoding is exactly the bytes after the prefix: its size is
 * known without decoding, and two states are compared by their bytes.
 */
import { bytesEqual, concatBytes, utf8 } from '../bytes.ts'
import { decodeValueResult, encodeValue } from '../wire/value.ts'

/** Prefix of every signed body: `weft/presence/1` and a newline. */
export const SIGN_DOMAIN = utf8('weft/presence/1\n')

/** Longest encoded prefix `[session, seq, time, interval]`: a fixarray byte and four uint64s. */
export const MAX_PREFIX_BYTES = 1 + 4 * 9

const FIXARRAY_4 = 0x94
const FIXARRAY_5 = 0x95

/** `[body, publicKey, signature]`: a record as it travels and as a table keeps it. */
export type WireRecord = [body: Uint8Array, publicKey: Uint8Array, signature: Uint8Array]

/** A parsed body. `state` is the state's encoding (absent for a leave). */
export interface RecordBody {
  session: number
  seq: number
  time: number
  interval: number
  state?: Uint8Array
}

/** What orders one author's records. */
export interface Version {
  session: number
  seq: number
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/** The bytes an author signs for `body`. */
export function signedBytes(body: Uint8Array): Uint8Array {
  return concatBytes(SIGN_DOMAIN, body)
}

/** Encode a body. `state` is an encoded Value (encodeValue), or undefined for a leave. */
export function encodeBody(b: RecordBody): Uint8Array {
  const prefix = encodeValue([b.session, b.seq, b.time, b.interval])
  if (b.state === undefined) return prefix
  const out = concatBytes(prefix, b.state)
  out[0] = FIXARRAY_5
  return out
}

/**
 * Parse a body, or null when it breaks the grammar: not a 4- or 5-array, a
 * field not a safe unsigned integer, an interval of 0, a prefix not in its
 * shortest encoding, or a state that is not exactly one Value. The caller
 * bounds the body's size first (a state larger than the limit is refused
 * before this decodes anything).
 */
export function parseBody(body: Uint8Array): RecordBody | null {
  const head = body[0]
  if (head !== FIXARRAY_4 && head !== FIXARRAY_5) return null
  // Decode the prefix alone: the four integers lead, each a complete MessagePack object.
  const ints: number[] = []
  let pos = 1
  for (let k = 0; k < 4; k++) {
    const r = readUint(body, pos)
    if (r === null) return null
    ints.push(r.value)
    pos = r.next
  }
  const [session, seq, time, interval] = ints as [number, number, number, number]
  if (interval < 1) return null
  // One encoding per record: the prefix must be the encoder's own (shortest) form.
  const prefix = encodeValue([session, seq, time, interval])
  if (prefix.length !== pos || !bytesEqual(prefix.subarray(1), body.subarray(1, pos))) return null
  if (head === FIXARRAY_4) return pos === body.length ? { session, seq, time, interval } : null
  const state = body.slice(pos)
  if (state.length === 0 || decodeValueResult(state) === null) return null
  return { session, seq, time, interval, state }
}

/** Read one MessagePack unsigned integer at `pos` (any width), or null. */
function readUint(b: Uint8Array, pos: number): { value: number; next: number } | null {
  const h = b[pos]
  if (h === undefined) return null
  if (h <= 0x7f) return { value: h, next: pos + 1 }
  const width = h === 0xcc ? 1 : h === 0xcd ? 2 : h === 0xce ? 4 : h === 0xcf ? 8 : 0
  if (width === 0 || pos + 1 + width > b.length) return null
  let v = 0
  for (let i = 1; i <= width; i++) v = v * 256 + (b[pos + i] as number)
  return isUint(v) ? { value: v, next: pos + 1 + width } : null
}

/** Negative, zero or positive as `a` orders before, with or after `b`. */
export function compareVersion(a: Version, b: Version): number {
  return a.session - b.session || a.seq - b.seq
}
