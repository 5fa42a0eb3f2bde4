/**
 * Arithmetic on the Chord identifier circle: 160-bit ids written as 40
 * lowercase hex characters. Lexicographic order of equal-length lowercase hex
 * strings is numeric order, so interval checks compare strings and never
 * allocate; only finger starts and distances need BigInt.
 *
 * Intervals are the paper's, on a circle: (a, b) wraps past zero when a > b,
 * and an interval whose ends meet covers the whole circle but its end
 * ((a, a) is every id but a; (a, a] is every id).
 */

/** Bits in an id: the first 160 bits of SHA-256. */
export const RING_BITS = 160
/** Hex characters in an id. */
export const ID_HEX_LENGTH = 40

const MOD = 1n << BigInt(RING_BITS)

export function idToBigInt(id: string): bigint {
  return BigInt(`0x${id}`)
}

export function bigIntToId(x: bigint): string {
  return (((x % MOD) + MOD) % MOD).toString(16).padStart(ID_HEX_LENGTH, '0')
}

/** (id + 2^i) mod 2^160. */
export function addPow2(id: string, i: number): string {
  return bigIntToId(idToBigInt(id) + (1n << BigInt(i)))
}

/** The 160 finger starts of `id`: start[i] = (id + 2^i) mod 2^160, i = 0 … 159. */
export function fingerStarts(id: string): string[] {
  const base = idToBigInt(id)
  const out: string[] = new Array(RING_BITS)
  for (let i = 0; i < RING_BITS; i++) out[i] = bigIntToId(base + (1n << BigInt(i)))
  return out
}

/**
 * How many of `id`'s finger starts lie in (id, x]: start[i] = id + 2^i does
 * when 2^i ≤ distance(id, x), so they are start[0 … k - 1] with k the bit
 * length of that distance (all 160 when x = id: the whole ring).
 */
export function startsUpTo(id: string, x: string): number {
  if (x === id) return RING_BITS
  return Math.min(RING_BITS, distance(id, x).toString(2).length)
}

/** Clockwise distance from a to b: (b - a) mod 2^160. */
export function distance(a: string, b: string): bigint {
  return (((idToBigInt(b) - idToBigInt(a)) % MOD) + MOD) % MOD
}

/** x ∈ (a, b) on the circle. (a, a) is every id but a. */
export function between(x: string, a: string, b: string): boolean {
  if (a < b) return a < x && x < b
  if (a > b) return a < x || x < b
  return x !== a
}

/** x ∈ (a, b] on the circle. (a, a] is every id. */
export function betweenRightIncl(x: string, a: string, b: string): boolean {
  return x === b || between(x, a, b)
}

/**
 * Order ids by clockwise distance from `origin` (`origin` itself first), as
 * sorting by distance(origin, x) would, without BigInt: the ids past origin
 * in ascending order, then those before it, round the ring.
 */
export function fromOrigin(origin: string): (x: string, y: string) => number {
  return (x, y) => {
    if (x === y) return 0
    if (x === origin) return -1
    if (y === origin) return 1
    const xPast = x > origin
    if (xPast !== y > origin) return xPast ? -1 : 1
    return x < y ? -1 : 1
  }
}

/**
 * Order ids by how closely they precede `target` (clockwise distance to it,
 * smallest first): the order in which an iterative lookup tries candidates.
 * `target` itself sorts first.
 */
export function closerToTarget(target: string): (x: string, y: string) => number {
  return (x, y) => {
    if (x === y) return 0
    if (x === target) return -1
    if (y === target) return 1
    return between(x, y, target) ? -1 : 1
  }
}

/** The successor of `target` among `sorted` ids (ascending): the first id ≥ target, wrapping. */
export function successorIn(sorted: readonly string[], target: string): string | undefined {
  return sorted[successorIndex(sorted, target)]
}

/** Index form of successorIn (the index of the first id ≥ target, wrapping); -1 when empty. */
export function successorIndex(sorted: readonly string[], target: string): number {
  if (sorted.length === 0) return -1
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((sorted[mid] as string) < target) lo = mid + 1
    else hi = mid
  }
  return lo === sorted.length ? 0 : lo
}
