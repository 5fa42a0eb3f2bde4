/**
 * A value the overlay carries: any JSON-compatible value, or a Uint8Array,
 * nested in any way. What goes in comes out equal (a Uint8Array stays one).
 */
export type Value = null | boolean | number | string | Uint8Array | Value[] | { [key: string]: Value }

/** Is `v` a Value (plain data, no cycles checked beyond depth)? Used at trust boundaries. */
export function isValue(v: unknown, depth = 0): v is Value {
  if (depth > 64) return false
  if (v === null) return true
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return true
    case 'number':
      return Number.isFinite(v)
    case 'object': {
      if (v instanceof Uint8Array) return true
      if (Array.isArray(v)) return v.every((x) => isValue(x, depth + 1))
      const proto = Object.getPrototypeOf(v)
      if (proto !== Object.prototype && proto !== null) return false
      for (const x of Object.values(v as Record<string, unknown>)) if (!isValue(x, depth + 1)) return false
      return true
    }
    default:
      return false
  }
}
