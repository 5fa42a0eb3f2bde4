/**
 * The Value codec: a Value (shared/types.ts) <-> MessagePack bytes.
 *
 * Why @msgpack/msgpack: it is small (about 8 KB gzipped, no dependencies),
 * well kept (the reference JavaScript implementation of the spec, typed,
 * maintained), and binary-native: a Uint8Array is written as msgpack `bin`
 * and read back as a Uint8Array, with no base64 detour as JSON would need.
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
 * Decoding is a trust boundary and never throws. Before the library sees the
 * bytes, `scanMsgpack` walks them once, allocating nothing, and rejects:
 * extension types (including msgpack's timestamp), the never-used byte 0xc1,
 * map keys that are not strings, nesting deeper than isValue allows (64),
 * declared lengths the input cannot hold, and trailing bytes. So a hostile
 * 4 MiB input cannot make the decoder build a million-level stack or a huge
 * sparse array. After decoding, `__proto__` keys (refused by the library),
 * non-finite numbers and anything else `isValue` refuses give null, and so do
 * strings that are not well-formed (invalid UTF-8 can decode to lone
 * surrogates), so every decoded Value can be encoded again by a relay.
 */
import { DecodeError, Decoder, Encoder, type ExtensionCodecType } from '@msgpack/msgpack'
import { isValue, type Value } from '../types.ts'

/** Deepest nesting a Value may have: the same bound as `isValue`. */
export const MAX_VALUE_DEPTH = 64

/** A codec with no extensions: nothing is encoded as one, and any extension on input is an error. */
const NO_EXTENSIONS: ExtensionCodecType<undefined> = Object.freeze({
  tryToEncode: () => null,
  decode: (_data: Uint8Array, type: number): never => {
    throw new DecodeError(`msgpack extension type ${type} is not allowed`)
  },
})

type StringCheck = (s: string) => boolean
const isWellFormed: StringCheck =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s)

/**
 * Walk a Value already accepted by isValue. Checks every string and key is
 * well-formed and that no key is `__proto__`; notes whether -0 occurs. When
 * `copyBytes`, replaces each Uint8Array with a plain copy (decoded values only).
 */
function walk(v: Value, seen: { negZero: boolean }, copyBytes: boolean): boolean {
  if (typeof v === 'string') return isWellFormed(v)
  if (typeof v === 'number') {
    if (Object.is(v, -0)) seen.negZero = true
    return true
  }
  if (v === null || typeof v === 'boolean' || v instanceof Uint8Array) return true
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i] as Value
      if (copyBytes && x instanceof Uint8Array) v[i] = plainCopy(x)
      else if (!walk(x, seen, copyBytes)) return false
    }
    return true
  }
  for (const k of Object.keys(v)) {
    if (k === '__proto__' || !isWellFormed(k)) return false
    const x = v[k] as Value
    if (copyBytes && x instanceof Uint8Array) v[k] = plainCopy(x)
    else if (!walk(x, seen, copyBytes)) return false
  }
  return true
}

function plainCopy(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.byteLength)
  out.set(b)
  return out
}

/**
 * Encode a Value as MessagePack. Throws a TypeError for something that is not
 * a Value or would not come back equal (a lone surrogate, a `__proto__` key):
 * that is a bug in the caller, not input from a peer.
 */
export function encodeValue(v: Value): Uint8Array {
  const seen = { negZero: false }
  if (!isValue(v) || !walk(v, seen, false)) throw new TypeError('not a Value that can travel on the wire')
  const encoder = new Encoder({ extensionCodec: NO_EXTENSIONS, forceIntegerToFloat: seen.negZero })
  return encoder.encode(v)
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
export function decodeValueResult(bytes: Uint8Array): { value: Value } | null {
  try {
    // A plain view: the library's `bin` results are subarrays of its input, and a Buffer's would be Buffers.
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (!scanMsgpack(view, MAX_VALUE_DEPTH)) return null
    const decoder = new Decoder({ extensionCodec: NO_EXTENSIONS, mapKeyConverter: stringKeyOnly })
    const v: unknown = decoder.decode(view)
    if (!isValue(v)) return null
    if (v instanceof Uint8Array) return { value: plainCopy(v) }
    return walk(v, { negZero: false }, true) ? { value: v } : null
  } catch {
    return null
  }
}

function stringKeyOnly(key: unknown): string {
  if (typeof key !== 'string') throw new DecodeError('map keys must be strings')
  return key
}

/**
 * Check that `b` holds exactly one msgpack object made only of the types a
 * Value uses, with string map keys and nesting of at most `maxDepth`. Runs in
 * one pass with a stack of at most maxDepth + 1 counters.
 */
export function scanMsgpack(b: Uint8Array, maxDepth: number): boolean {
  const len = b.length
  // remaining[d]: items still to read in the open container at depth d (a map counts keys and values).
  const remaining: number[] = []
  const isMap: boolean[] = []
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  let pos = 0
  for (;;) {
    if (pos >= len) return false
    const depth = remaining.length
    if (depth > maxDepth) return false
    const top = depth - 1
    const expectKey = top >= 0 && isMap[top] === true && (remaining[top] as number) % 2 === 0
    const h = b[pos] as number
    let head = 1 // bytes of the header, the type byte included
    let payload = 0 // bytes after the header
    let items = -1 // for a container: its number of elements (map: entries)
    let map = false
    let str = false
    if (h <= 0x7f || h >= 0xe0) {
      // positive or negative fixint
    } else if (h <= 0x8f) {
      items = h & 0x0f
      map = true
    } else if (h <= 0x9f) {
      items = h & 0x0f
    } else if (h <= 0xbf) {
      payload = h & 0x1f
      str = true
    } else {
      const need = (n: number) => pos + n < len
      switch (h) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          break
        case 0xc4:
        case 0xd9:
          if (!need(1)) return false
          head = 2
          payload = view.getUint8(pos + 1)
          str = h === 0xd9
          break
        case 0xc5:
        case 0xda:
          if (!need(2)) return false
          head = 3
          payload = view.getUint16(pos + 1)
          str = h === 0xda
          break
        case 0xc6:
        case 0xdb:
          if (!need(4)) return false
          head = 5
          payload = view.getUint32(pos + 1)
          str = h === 0xdb
          break
        case 0xca:
          head = 5
          break
        case 0xcb:
          head = 9
          break
        case 0xcc:
        case 0xd0:
          head = 2
          break
        case 0xcd:
        case 0xd1:
          head = 3
          break
        case 0xce:
        case 0xd2:
          head = 5
          break
        case 0xcf:
        case 0xd3:
          head = 9
          break
        case 0xdc:
        case 0xde:
          if (!need(2)) return false
          head = 3
          items = view.getUint16(pos + 1)
          map = h === 0xde
          break
        case 0xdd:
        case 0xdf:
          if (!need(4)) return false
          head = 5
          items = view.getUint32(pos + 1)
          map = h === 0xdf
          break
        default:
          // 0xc1 (never used) and every extension type: 0xc7-0xc9, 0xd4-0xd8
          return false
      }
    }
    if (expectKey && !str) return false
    pos += head + payload
    if (pos > len) return false
    if (items > 0) {
      const count = map ? items * 2 : items
      if (count > len - pos) return false // every item takes at least one byte
      remaining.push(count)
      isMap.push(map)
      continue
    }
    // One item read: close every container it completes.
    for (;;) {
      const d = remaining.length - 1
      if (d < 0) return pos === len
      const left = (remaining[d] as number) - 1
      if (left > 0) {
        remaining[d] = left
        break
      }
      remaining.pop()
      isMap.pop()
    }
  }
}
