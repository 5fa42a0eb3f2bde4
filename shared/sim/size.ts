/** A cheap structural size estimate (close to MessagePack's) for message counters. */
export function estimateSize(v: unknown): number {
  if (v === null || v === undefined || typeof v === 'boolean') return 1
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 128 ? 1 : 9
  if (typeof v === 'string') return v.length + (v.length < 32 ? 1 : 3)
  if (v instanceof Uint8Array) return v.length + 2
  if (Array.isArray(v)) {
    let n = 1
    for (const x of v) n += estimateSize(x)
    return n
  }
  if (typeof v === 'object') {
    let n = 1
    // for-in, not Object.entries: no array of pairs per message (the simulator sizes every one).
    const o = v as Record<string, unknown>
    for (const k in o) if (Object.hasOwn(o, k)) n += k.length + 1 + estimateSize(o[k])
    return n
  }
  return 1
}
