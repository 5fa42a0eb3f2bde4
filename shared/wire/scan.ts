/**
 * The one-pass check of msgpack bytes that comes before any decoding (see
 * value.ts's header): only the types a Value uses, string map keys, bounded
 * nesting and a bounded number of objects. Allocates nothing per object.
 */

/** What `scanMsgpackItems` found wrong: not msgpack of a Value, or more objects than allowed. */
export const SCAN_MALFORMED = -1
export const SCAN_TOO_MANY_ITEMS = -2

/**
 * Check that `b` holds exactly one msgpack object made only of the types a
 * Value uses, with string map keys and nesting of at most `maxDepth`. Runs in
 * one pass with a stack of at most maxDepth + 1 counters.
 */
export function scanMsgpack(b: Uint8Array, maxDepth: number): boolean {
  return scanMsgpackItems(b, maxDepth, Number.POSITIVE_INFINITY) >= 0
}

/**
 * scanMsgpack that also counts the msgpack objects (every scalar, container
 * and map key counts one) and gives up as soon as there are more than
 * `maxItems`: the count, or SCAN_MALFORMED, or SCAN_TOO_MANY_ITEMS. Its cost
 * is bounded by min(bytes, maxItems) steps, and it allocates two small arrays.
 */
export function scanMsgpackItems(b: Uint8Array, maxDepth: number, maxItems: number): number {
  const len = b.length
  // remaining[d]: items still to read in the open container at depth d (a map counts keys and values).
  const remaining = new Float64Array(maxDepth + 2)
  const isMap = new Uint8Array(maxDepth + 2)
  let depth = 0
  let pos = 0
  let count = 0
  for (;;) {
    if (pos >= len || depth > maxDepth) return SCAN_MALFORMED
    if (++count > maxItems) return SCAN_TOO_MANY_ITEMS
    const expectKey = depth > 0 && isMap[depth - 1] === 1 && (remaining[depth - 1] as number) % 2 === 0
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
      switch (h) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          break
        case 0xc4:
        case 0xd9:
          if (pos + 1 >= len) return SCAN_MALFORMED
          head = 2
          payload = b[pos + 1] as number
          str = h === 0xd9
          break
        case 0xc5:
        case 0xda:
          if (pos + 2 >= len) return SCAN_MALFORMED
          head = 3
          payload = u16(b, pos + 1)
          str = h === 0xda
          break
        case 0xc6:
        case 0xdb:
          if (pos + 4 >= len) return SCAN_MALFORMED
          head = 5
          payload = u32(b, pos + 1)
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
          if (pos + 2 >= len) return SCAN_MALFORMED
          head = 3
          items = u16(b, pos + 1)
          map = h === 0xde
          break
        case 0xdd:
        case 0xdf:
          if (pos + 4 >= len) return SCAN_MALFORMED
          head = 5
          items = u32(b, pos + 1)
          map = h === 0xdf
          break
        default:
          // 0xc1 (never used) and every extension type: 0xc7-0xc9, 0xd4-0xd8
          return SCAN_MALFORMED
      }
    }
    if (expectKey && !str) return SCAN_MALFORMED
    pos += head + payload
    if (pos > len) return SCAN_MALFORMED
    if (items > 0) {
      const n = map ? items * 2 : items
      if (n > len - pos) return SCAN_MALFORMED // every item takes at least one byte
      remaining[depth] = n
      isMap[depth] = map ? 1 : 0
      depth++
      continue
    }
    // One item read: close every container it completes.
    for (;;) {
      if (depth === 0) return pos === len ? count : SCAN_MALFORMED
      const left = (remaining[depth - 1] as number) - 1
      if (left > 0) {
        remaining[depth - 1] = left
        break
      }
      depth--
    }
  }
}

function u16(b: Uint8Array, at: number): number {
  return ((b[at] as number) << 8) | (b[at + 1] as number)
}

function u32(b: Uint8Array, at: number): number {
  return (
    (b[at] as number) * 0x1000000 +
    (((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number))
  )
}
