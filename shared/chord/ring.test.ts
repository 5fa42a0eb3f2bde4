import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  addPow2,
  between,
  betweenRightIncl,
  bigIntToId,
  closerToTarget,
  distance,
  fingerStarts,
  fromOrigin,
  idToBigInt,
  RING_BITS,
  successorIn,
  successorIndex,
} from './ring.ts'

const MOD = 1n << 160n
const id = (n: bigint) => bigIntToId(n)
const ZERO = id(0n)
const MAX = id(MOD - 1n)

const arbId = fc
  .uint8Array({ minLength: 20, maxLength: 20 })
  .map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(''))
// Ids near the ends of the circle, where wrap-around bugs live.
const arbEdgyId = fc.oneof(
  arbId,
  fc.bigInt({ min: 0n, max: 1000n }).map(id),
  fc.bigInt({ min: MOD - 1000n, max: MOD - 1n }).map(id),
)

/** Reference: x ∈ (a, b) by clockwise distances. */
function refBetween(x: bigint, a: bigint, b: bigint): boolean {
  const d = (p: bigint, q: bigint) => (((q - p) % MOD) + MOD) % MOD
  if (a === b) return x !== a
  return d(a, x) > 0n && d(a, x) < d(a, b)
}

describe('ring arithmetic', () => {
  it('converts ids to BigInt and back, 40 lowercase hex characters, modulo 2^160', () => {
    expect(id(0n)).toBe('0'.repeat(40))
    expect(id(MOD)).toBe('0'.repeat(40))
    expect(id(-1n)).toBe('f'.repeat(40))
    expect(idToBigInt('f'.repeat(40))).toBe(MOD - 1n)
    fc.assert(fc.property(arbId, (x) => id(idToBigInt(x)) === x))
  })

  it('adds powers of two with wrap-around', () => {
    expect(addPow2(ZERO, 0)).toBe(id(1n))
    expect(addPow2(MAX, 0)).toBe(ZERO)
    expect(addPow2(ZERO, 159)).toBe(`8${'0'.repeat(39)}`)
    expect(addPow2(`8${'0'.repeat(39)}`, 159)).toBe(ZERO)
  })

  it('finger starts are id + 2^i for i = 0 … 159, wrapping', () => {
    const s = fingerStarts(MAX)
    expect(s).toHaveLength(RING_BITS)
    expect(s[0]).toBe(ZERO)
    expect(s[1]).toBe(id(1n))
    expect(s[159]).toBe(id((MOD - 1n + (1n << 159n)) % MOD))
    fc.assert(
      fc.property(arbEdgyId, fc.integer({ min: 0, max: 159 }), (x, i) => {
        const st = fingerStarts(x)[i] as string
        return st === addPow2(x, i) && distance(x, st) === 1n << BigInt(i)
      }),
      { numRuns: 200 },
    )
  })

  it('distance is clockwise and wraps', () => {
    expect(distance(id(10n), id(3n))).toBe(MOD - 7n)
    expect(distance(id(3n), id(10n))).toBe(7n)
    expect(distance(MAX, ZERO)).toBe(1n)
    expect(distance(ZERO, ZERO)).toBe(0n)
  })

  it('open interval (a, b), with wrap-around and a = b meaning the whole ring but a', () => {
    const [a, b, c] = [id(10n), id(20n), id(30n)]
    expect(between(id(15n), a, b)).toBe(true)
    expect(between(a, a, b)).toBe(false)
    expect(between(b, a, b)).toBe(false)
    expect(between(c, a, b)).toBe(false)
    // wrapping: (30, 10) holds 31 … 2^160-1, 0 … 9
    expect(between(MAX, c, a)).toBe(true)
    expect(between(ZERO, c, a)).toBe(true)
    expect(between(id(5n), c, a)).toBe(true)
    expect(between(id(15n), c, a)).toBe(false)
    // (a, a) is every id but a
    expect(between(a, a, a)).toBe(false)
    expect(between(b, a, a)).toBe(true)
    fc.assert(
      fc.property(arbEdgyId, arbEdgyId, arbEdgyId, (x, p, q) => {
        return between(x, p, q) === refBetween(idToBigInt(x), idToBigInt(p), idToBigInt(q))
      }),
      { numRuns: 2000 },
    )
  })

  it('half-open interval (a, b]: b included; (a, a] is the whole ring', () => {
    const [a, b] = [id(10n), id(20n)]
    expect(betweenRightIncl(b, a, b)).toBe(true)
    expect(betweenRightIncl(a, a, b)).toBe(false)
    expect(betweenRightIncl(a, a, a)).toBe(true)
    expect(betweenRightIncl(ZERO, MAX, ZERO)).toBe(true)
    fc.assert(
      fc.property(arbEdgyId, arbEdgyId, arbEdgyId, (x, p, q) => {
        return betweenRightIncl(x, p, q) === (x === q || between(x, p, q))
      }),
    )
  })

  it('orders candidates by how closely they precede a target', () => {
    const t = id(100n)
    const xs = [id(50n), id(99n), MAX, id(10n), t, id(150n)]
    expect(xs.sort(closerToTarget(t))).toEqual([t, id(99n), id(50n), id(10n), MAX, id(150n)])
    fc.assert(
      fc.property(fc.uniqueArray(arbEdgyId, { minLength: 2, maxLength: 20 }), arbEdgyId, (ys, target) => {
        const sorted = [...ys].sort(closerToTarget(target))
        const d = (x: string) => distance(x, target)
        for (let i = 1; i < sorted.length; i++)
          if (d(sorted[i - 1] as string) > d(sorted[i] as string)) return false
        return true
      }),
    )
  })

  it('finds the successor of a position among sorted ids, wrapping past the top', () => {
    const ids = [id(10n), id(20n), id(30n)]
    expect(successorIn(ids, id(15n))).toBe(id(20n))
    expect(successorIn(ids, id(20n))).toBe(id(20n))
    expect(successorIn(ids, id(31n))).toBe(id(10n))
    expect(successorIn(ids, ZERO)).toBe(id(10n))
    expect(successorIn([], ZERO)).toBeUndefined()
    expect(successorIndex([], ZERO)).toBe(-1)
    fc.assert(
      fc.property(fc.uniqueArray(arbId, { minLength: 1, maxLength: 30 }), arbEdgyId, (ys, k) => {
        const sorted = [...ys].sort()
        const s = successorIn(sorted, k) as string
        if (sorted.includes(k)) return s === k
        // s is one of the ids and none lies strictly between k and s, clockwise.
        return sorted.includes(s) && sorted.every((y) => !between(y, k, s))
      }),
    )
  })
})

describe('fromOrigin', () => {
  it('orders as sorting by clockwise distance from the origin does', () => {
    fc.assert(
      fc.property(arbEdgyId, fc.array(arbEdgyId, { maxLength: 20 }), (o, xs) => {
        const all = [...xs, o, ...xs.slice(0, 3)]
        const byDistance = [...all].sort((a, b) => {
          const da = distance(o, a)
          const db = distance(o, b)
          return da < db ? -1 : da > db ? 1 : 0
        })
        expect([...all].sort(fromOrigin(o))).toEqual(byDistance)
      }),
    )
  })
})
