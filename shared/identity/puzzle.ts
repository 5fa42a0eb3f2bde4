/**
 * Identities cost something: an S/Kademlia-style static puzzle on the
 * public key. A key is accepted in a network whose difficulty is `bits` when
 * SHA-256("weft-id-puzzle/1" || publicKey) starts with `bits` zero bits.
 * The only way to meet it is to generate key pairs until one does (2^bits
 * tries on average), so a node pays once per identity, and an attacker pays
 * for every throw-away identity and every attempt to grind a chosen id (the
 * id is SHA-256(publicKey), so a ground id must pass the puzzle too).
 *
 * The puzzle hash is domain-separated from the id hash: ids stay uniformly
 * spread on the ring. Checking costs one SHA-256 of 48 bytes, synchronous
 * (sha256Sync), so validators can call it; results are cached per key.
 */
import { toHex, utf8 } from '../bytes.ts'
import { sha256Sync } from '../chord/sha256-sync.ts'

/**
 * The default difficulty: about 1,000 key pairs, a quarter of a second to
 * half a second of WebCrypto key generation in Chromium or Node on one core,
 * once per identity (measured with `npm run bench -- puzzle`).
 */
export const DEFAULT_PUZZLE_BITS = 10
/** No network asks for more: a hostile configuration cannot make a node spin for ever. */
export const MAX_PUZZLE_BITS = 24

const PREFIX = utf8('weft-id-puzzle/1')

/** Leading zero bits of the puzzle hash of `publicKey` (0 to 256). */
export function puzzleBits(publicKey: Uint8Array): number {
  const buf = new Uint8Array(PREFIX.length + publicKey.length)
  buf.set(PREFIX)
  buf.set(publicKey, PREFIX.length)
  const h = sha256Sync(buf)
  let bits = 0
  for (const b of h) {
    if (b === 0) {
      bits += 8
      continue
    }
    bits += Math.clz32(b) - 24
    break
  }
  return bits
}

// Bits by key (hex), bounded so a stream of strangers cannot grow it.
const CACHE_MAX = 4096
const cache = new Map<string, number>()

/** Does `publicKey` meet a difficulty of `bits`? (Cached; never throws.) */
export function meetsPuzzle(publicKey: Uint8Array, bits: number): boolean {
  if (bits <= 0) return true
  if (!(publicKey instanceof Uint8Array)) return false
  const hex = toHex(publicKey)
  let have = cache.get(hex)
  if (have === undefined) {
    have = puzzleBits(publicKey)
    cache.set(hex, have)
    if (cache.size > CACHE_MAX) {
      const oldest = cache.keys().next().value
      if (oldest !== undefined) cache.delete(oldest)
    }
  }
  return have >= bits
}

/** A difficulty given in options: an integer from 0 to MAX_PUZZLE_BITS, else a TypeError naming the rule. */
export function checkPuzzleBits(bits: unknown, what = 'puzzleBits'): number {
  if (!Number.isInteger(bits) || (bits as number) < 0 || (bits as number) > MAX_PUZZLE_BITS)
    throw new TypeError(`${what} must be an integer from 0 to ${MAX_PUZZLE_BITS}`)
  return bits as number
}
