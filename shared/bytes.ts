/** Small byte helpers shared by every module (no Buffer: browsers have none). */

const HEX_CODES = new TextEncoder().encode('0123456789abcdef')
const decoder = new TextDecoder()

/**
 * Lowercase hex. Built as one flat string (not by `+=`, which leaves a chain
 * of small strings that long-lived keys, such as cached node ids, carry along).
 */
export function toHex(bytes: Uint8Array): string {
  const out = new Uint8Array(bytes.length * 2)
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number
    out[2 * i] = HEX_CODES[b >> 4] as number
    out[2 * i + 1] = HEX_CODES[b & 15] as number
  }
  return decoder.decode(out)
}

/** Parse lowercase or uppercase hex; returns null for odd length or a non-hex digit. */
export function fromHex(hex: string): Uint8Array | null {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return null
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

const encoder = new TextEncoder()
export function utf8(s: string): Uint8Array {
  return encoder.encode(s)
}

/** SHA-256 through WebCrypto (browsers and Node 20 both have globalThis.crypto.subtle). */
export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>))
}

/** A 40-hex-character id: the first 160 bits of SHA-256(data). Node ids and Chord keys. */
export async function id160(data: Uint8Array): Promise<string> {
  return toHex((await sha256(data)).subarray(0, 20))
}

export function isNodeId(s: unknown): s is string {
  return typeof s === 'string' && s.length === 40 && /^[0-9a-f]{40}$/.test(s)
}
