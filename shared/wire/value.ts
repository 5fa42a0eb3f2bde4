/**
 * The Value codec: a Value (shared/types.ts) <-> MessagePack bytes.
 *
 * Why MessagePack: compact, binary-native (a Uint8Array is written as `bin`
 * and read back as a Uint8Array, with no base64 detour as JSON would need),
 * and documented well enough that anyone can write a peer. Why our own codec
 * rather than @msgpack/msgpack: a Value uses eight of its types and no
 * extensions, and the library's extension, timestamp and key-cache machinery
 * cost 5.4 KB of the browser bundle (gzip), which kept the client over its
 * 75 KB budget. The encoding choices are the library's defaults (smallest
 * integer form, float64 for the rest, str/bin/array/map by length), so the
 * bytes are the same.
 *
 * What goes in comes out equal:
 * - numbers: integers travel as msgpack ints, everything else as float64;
 *   a value holding -0 (which msgpack's int encoding would turn into 0) is
 *   encoded with every number as float64, so -0 survives;
 * - strings must be well-formed UTF-16 (a lone surrogate cannot be UTF-8);
 * - a Uint8Array comes back a plain Uint8Array (never a Buffer, never a view
 *   into the frame it came in), anywhere in the value;
 * - objects come back plain objects (prototype Object.prototype).
 *
 * Decoding is a trust boundary and never throws. Before the decoder sees the
 * bytes, `scanMsgpack` walks them once, allocating nothing, and rejects:
 * extension types (including msgpack's timestamp), the never-used byte 0xc1,
 * map keys that are not strings, nesting deeper than isValue allows (64),
 * declared lengths the input cannot hold, trailing bytes, and more than
 * MAX_VALUE_ITEMS objects (it stops counting there). So a hostile 4 MiB
 * input cannot make the decoder build a million-level stack, a huge sparse
 * array, or four million tiny objects. Then one pass builds the Value:
 * `__proto__` keys and non-finite numbers give null, and so does invalid
 * UTF-8 (the decoder is fatal, so no string decodes to a lone surrogate).
 * Every decoded Value is one `isValue` accepts and can be encoded again by
 * a relay.
 */

import { MessageTooLargeError } from '../errors.ts'
import { isValue, type Value } from '../types.ts'
import { SCAN_MALFORMED, scanMsgpackItems } from './scan.ts'

export { SCAN_MALFORMED, SCAN_TOO_MANY_ITEMS, scanMsgpack, scanMsgpackItems } from './scan.ts'

/** Deepest nesting a Value may have: the same bound as `isValue`. */
export const MAX_VALUE_DEPTH = 64

/**
 * Most msgpack objects in one encoded Value (every scalar, container and
 * map key counts one). Decoding costs time per object, not per byte: 4 MiB
 * of one-byte nils is four million objects and took a Node peer seconds to
 * decode. The largest message a protocol sends holds some tens of
 * thousands (a sync version list of 4,096 items is about 25,000); at this
 * bound the costliest shape (one map of 32 Ki distinct keys) decodes in
 * tens of ms, and about 100 ms on a core shared five ways.
 */
export const MAX_VALUE_ITEMS = 65_536

const utf8Encoder = new TextEncoder()
// fatal: invalid UTF-8 is refused, not patched with U+FFFD into a value the sender never sent.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

/** Room a large write leaves after itself when the encoder's buffer grows for it. */
const SLACK_BYTES = 64

/** A growable byte buffer for the encoder. */
class Writer {
  buf = new Uint8Array(256)
  view = new DataView(this.buf.buffer)
  pos = 0
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    // Doubling, or at once to what a large write needs and a little more (a big bin or string:
    // a few fields may follow it), so that the buffer often ends exactly full (no copy to trim it).
    let size = this.buf.length * 2
    if (size < this.pos + n) size = this.pos + n + SLACK_BYTES
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.view = new DataView(next.buffer)
  }
  u8(x: number): void {
    this.ensure(1)
    this.buf[this.pos++] = x
  }
  head(tag: number, width: 1 | 2 | 4, n: number): void {
    this.ensure(1 + width)
    this.buf[this.pos++] = tag
    if (width === 1) this.view.setUint8(this.pos, n)
    else if (width === 2) this.view.setUint16(this.pos, n)
    else this.view.setUint32(this.pos, n)
    this.pos += width
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }
}

/** A length-prefixed header: the fix form below `fixLimit`, else 8/16/32-bit forms (tags in order). */
function lengthHead(w: Writer, n: number, fixBase: number, fixLimit: number, tags: readonly number[]): void {
  if (n < fixLimit) w.u8(fixBase | n)
  else if (tags.length === 3 && n < 0x100) w.head(tags[0] as number, 1, n)
  else if (n < 0x10000) w.head(tags[tags.length - 2] as number, 2, n)
  else w.head(tags[tags.length - 1] as number, 4, n)
}

function encodeNumber(w: Writer, n: number, floatOnly: boolean): void {
  if (!floatOnly && Number.isSafeInteger(n)) {
    if (n >= 0) {
      if (n < 0x80) return w.u8(n)
      if (n < 0x100) return w.head(0xcc, 1, n)
      if (n < 0x10000) return w.head(0xcd, 2, n)
      if (n < 0x100000000) return w.head(0xce, 4, n)
      w.ensure(9)
      w.buf[w.pos++] = 0xcf
      w.view.setUint32(w.pos, Math.floor(n / 0x100000000))
      w.view.setUint32(w.pos + 4, n >>> 0)
      w.pos += 8
      return
    }
    if (n >= -0x20) return w.u8(n & 0xff)
    w.ensure(9)
    if (n >= -0x80) {
      w.buf[w.pos++] = 0xd0
      w.view.setInt8(w.pos++, n)
    } else if (n >= -0x8000) {
      w.buf[w.pos++] = 0xd1
      w.view.setInt16(w.pos, n)
      w.pos += 2
    } else if (n >= -0x80000000) {
      w.buf[w.pos++] = 0xd2
      w.view.setInt32(w.pos, n)
      w.pos += 4
    } else {
      w.buf[w.pos++] = 0xd3
      w.view.setInt32(w.pos, Math.floor(n / 0x100000000))
      w.view.setUint32(w.pos + 4, n >>> 0)
      w.pos += 8
    }
    return
  }
  w.ensure(9)
  w.buf[w.pos++] = 0xcb
  w.view.setFloat64(w.pos, n)
  w.pos += 8
}

function encodeInto(w: Writer, v: Value, floatOnly: boolean): void {
  if (v === null) return w.u8(0xc0)
  if (v === false) return w.u8(0xc2)
  if (v === true) return w.u8(0xc3)
  if (typeof v === 'number') return encodeNumber(w, v, floatOnly)
  if (typeof v === 'string') {
    const b = utf8Encoder.encode(v)
    lengthHead(w, b.length, 0xa0, 32, [0xd9, 0xda, 0xdb])
    return w.bytes(b)
  }
  if (v instanceof Uint8Array) {
    if (v.length < 0x100) w.head(0xc4, 1, v.length)
    else lengthHead(w, v.length, 0, 0, [0xc4, 0xc5, 0xc6])
    return w.bytes(v)
  }
  if (Array.isArray(v)) {
    lengthHead(w, v.length, 0x90, 16, [0xdc, 0xdd])
    for (const x of v) encodeInto(w, x, floatOnly)
    return
  }
  const keys = Object.keys(v)
  lengthHead(w, keys.length, 0x80, 16, [0xde, 0xdf])
  for (const k of keys) {
    encodeInto(w, k, floatOnly)
    encodeInto(w, v[k] as Value, floatOnly)
  }
}

/** Reads one object from bytes `scanMsgpack` has already checked (types, lengths, depth, string keys). */
class Reader {
  pos = 0
  readonly view: DataView
  constructor(readonly b: Uint8Array) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  }
  len(width: 1 | 2 | 4): number {
    const p = this.pos
    this.pos += width
    return width === 1 ? this.view.getUint8(p) : width === 2 ? this.view.getUint16(p) : this.view.getUint32(p)
  }
  take(n: number): Uint8Array {
    const p = this.pos
    this.pos += n
    return this.b.subarray(p, p + n)
  }
  num(read: (at: number) => number, width: number): number {
    const x = read(this.pos)
    this.pos += width
    return x
  }
  str(n: number): string {
    // Short ASCII strings (keys, ids, tags: most strings on the wire) without a TextDecoder call,
    // which costs more than the string: a map of many short keys decodes several times faster.
    if (n <= 32) {
      const b = this.b
      const p = this.pos
      let s = ''
      let i = 0
      for (; i < n; i++) {
        const c = b[p + i] as number
        if (c >= 0x80) break
        s += String.fromCharCode(c)
      }
      if (i === n) {
        this.pos += n
        return s
      }
    }
    return utf8Decoder.decode(this.take(n))
  }
  array(n: number): Value[] {
    const out: Value[] = []
    for (let i = 0; i < n; i++) out.push(this.value())
    return out
  }
  map(n: number): { [k: string]: Value } {
    const out: { [k: string]: Value } = {}
    for (let i = 0; i < n; i++) {
      const k = this.value()
      // Assigning "__proto__" would set the prototype: refuse it (the scanner already made keys strings).
      if (typeof k !== 'string' || k === '__proto__') throw new TypeError('bad map key')
      out[k] = this.value()
    }
    return out
  }
  value(): Value {
    const t = this.view.getUint8(this.pos++)
    const v = this.view
    if (t < 0x80) return t
    if (t < 0x90) return this.map(t & 0x0f)
    if (t < 0xa0) return this.array(t & 0x0f)
    if (t < 0xc0) return this.str(t & 0x1f)
    if (t >= 0xe0) return t - 0x100
    switch (t) {
      case 0xc0:
        return null
      case 0xc2:
        return false
      case 0xc3:
        return true
      case 0xc4:
        return this.take(this.len(1)).slice()
      case 0xc5:
        return this.take(this.len(2)).slice()
      case 0xc6:
        return this.take(this.len(4)).slice()
      case 0xca:
        return finite(this.num((p) => v.getFloat32(p), 4))
      case 0xcb:
        return finite(this.num((p) => v.getFloat64(p), 8))
      case 0xcc:
        return this.len(1)
      case 0xcd:
        return this.len(2)
      case 0xce:
        return this.len(4)
      case 0xcf:
        return this.num((p) => v.getUint32(p) * 0x100000000 + v.getUint32(p + 4), 8)
      case 0xd0:
        return this.num((p) => v.getInt8(p), 1)
      case 0xd1:
        return this.num((p) => v.getInt16(p), 2)
      case 0xd2:
        return this.num((p) => v.getInt32(p), 4)
      case 0xd3:
        return this.num((p) => v.getInt32(p) * 0x100000000 + v.getUint32(p + 4), 8)
      case 0xd9:
        return this.str(this.len(1))
      case 0xda:
        return this.str(this.len(2))
      case 0xdb:
        return this.str(this.len(4))
      case 0xdc:
        return this.array(this.len(2))
      case 0xdd:
        return this.array(this.len(4))
      case 0xde:
        return this.map(this.len(2))
      case 0xdf:
        return this.map(this.len(4))
      default:
        throw new TypeError(`msgpack type 0x${t.toString(16)} is not a Value`)
    }
  }
}

/** NaN and the infinities are not Values (JSON has none of them). */
function finite(x: number): number {
  if (!Number.isFinite(x)) throw new TypeError('not a finite number')
  return x
}

type StringCheck = (s: string) => boolean
const isWellFormed: StringCheck =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s)

/**
 * Walk a Value already accepted by isValue. Checks every string and key is
 * well-formed and that no key is `__proto__`; notes whether -0 occurs.
 */
function walk(v: Value, seen: { negZero: boolean; items: number }): boolean {
  seen.items++
  if (typeof v === 'string') return isWellFormed(v)
  if (typeof v === 'number') {
    if (Object.is(v, -0)) seen.negZero = true
    return true
  }
  if (v === null || typeof v === 'boolean' || v instanceof Uint8Array) return true
  if (Array.isArray(v)) {
    for (const x of v) if (!walk(x, seen)) return false
    return true
  }
  for (const k of Object.keys(v)) {
    seen.items++
    if (k === '__proto__' || !isWellFormed(k) || !walk(v[k] as Value, seen)) return false
  }
  return true
}

/**
 * Encode a Value as MessagePack. Throws a TypeError for something that is not
 * a Value or would not come back equal (a lone surrogate, a `__proto__` key):
 * that is a bug in the caller, not input from a peer. Throws
 * MessageTooLargeError for a Value of more than MAX_VALUE_ITEMS objects,
 * which no receiver would decode.
 */
export function encodeValue(v: Value): Uint8Array {
  return encodeValueAfter(v, 0)
}

/**
 * encodeValue, with `room` zero bytes before the value (a frame's header is
 * written there, saving a copy of the body). The result is its own buffer,
 * exactly that long.
 */
export function encodeValueAfter(v: Value, room: number): Uint8Array {
  const seen = { negZero: false, items: 0 }
  if (!isValue(v) || !walk(v, seen)) throw new TypeError('not a Value that can travel on the wire')
  if (seen.items > MAX_VALUE_ITEMS) {
    const err = new MessageTooLargeError(seen.items, MAX_VALUE_ITEMS)
    err.message = `a value of ${seen.items} items exceeds the limit of ${MAX_VALUE_ITEMS} items`
    throw err
  }
  const w = new Writer()
  w.pos = room
  encodeInto(w, v, seen.negZero)
  return w.pos === w.buf.length ? w.buf : w.buf.slice(0, w.pos)
}

/**
 * Decode MessagePack bytes into a Value; null for anything malformed or not a
 * Value. Never throws. The msgpack nil also gives null: where a null Value
 * must be told from a refusal, use decodeValueResult.
 */
export function decodeValue(bytes: Uint8Array): Value | null {
  return decodeValueResult(bytes)?.value ?? null
}

/** Like decodeValue, but a refusal (null) differs from a decoded null ({ value: null }). Never throws. */
export function decodeValueResult(
  bytes: Uint8Array,
  opts: { maxItems?: number } = {},
): { value: Value } | null {
  const r = decodeValueOrWhy(bytes, opts.maxItems ?? MAX_VALUE_ITEMS)
  return typeof r === 'number' ? null : r
}

/**
 * Decode, or say why not: SCAN_TOO_MANY_ITEMS when the bytes hold more than
 * `maxItems` objects (found before anything is built), else SCAN_MALFORMED.
 * Never throws.
 */
export function decodeValueOrWhy(
  bytes: Uint8Array,
  maxItems: number = MAX_VALUE_ITEMS,
): { value: Value } | number {
  try {
    // A plain view (a Buffer's subarrays would be Buffers); `bin` results are copies.
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const scanned = scanMsgpackItems(view, MAX_VALUE_DEPTH, maxItems)
    if (scanned < 0) return scanned
    // One pass builds a Value and nothing else: the scan bounded depth and made keys strings, the
    // reader refuses __proto__ keys and non-finite floats, and the fatal UTF-8 decoder refuses
    // what would decode to a lone surrogate. (isValue and walk afterwards cost as much again.)
    return { value: new Reader(view).value() }
  } catch {
    return SCAN_MALFORMED
  }
}
