/**
 * Hybrid logical clocks (Kulkarni et al., 2014): timestamps that follow
 * physical time where clocks agree and still order causally where they do
 * not. A timestamp is [wallMs, counter]; compare lexicographically, then by
 * author id for a total order every replica agrees on.
 *
 * Clock-skew tolerance: a remote timestamp more than `maxSkewMs` ahead of
 * our own clock is refused (dropped and counted by the caller), so a node
 * with a clock far in the future cannot pin entries forever.
 */
export type Hlc = readonly [wall: number, counter: number]

/** @default 60_000: remote timestamps up to one minute ahead are accepted */
export const DEFAULT_MAX_SKEW_MS = 60_000

export function compareHlc(a: Hlc, b: Hlc): number {
  return a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] !== b[1] ? (a[1] < b[1] ? -1 : 1) : 0
}

/** Total order for last-writer-wins: HLC first, then author id. */
export function compareVersion(a: { hlc: Hlc; author: string }, b: { hlc: Hlc; author: string }): number {
  return compareHlc(a.hlc, b.hlc) || (a.author < b.author ? -1 : a.author > b.author ? 1 : 0)
}

export function isHlc(x: unknown): x is Hlc {
  return (
    Array.isArray(x) &&
    x.length === 2 &&
    Number.isSafeInteger(x[0]) &&
    Number.isSafeInteger(x[1]) &&
    (x[0] as number) >= 0 &&
    (x[1] as number) >= 0 &&
    (x[1] as number) < 0x100000000
  )
}

export interface HlcClock {
  /** A timestamp for a local event, greater than every one seen. */
  now(): Hlc
  /** Merge a remote timestamp; false (and no change) when it is beyond the skew tolerance. */
  observe(remote: Hlc): boolean
  /** The latest timestamp issued or observed. */
  last(): Hlc
}

export function createHlcClock(physical: () => number, maxSkewMs = DEFAULT_MAX_SKEW_MS): HlcClock {
  let wall = 0
  let counter = 0
  return {
    now() {
      const pt = Math.floor(physical())
      if (pt > wall) {
        wall = pt
        counter = 0
      } else counter++
      return [wall, counter]
    },
    observe(remote) {
      if (!isHlc(remote)) return false
      const pt = Math.floor(physical())
      if (remote[0] > pt + maxSkewMs) return false
      if (remote[0] > wall || (remote[0] === wall && remote[1] > counter)) {
        wall = remote[0]
        counter = remote[1]
      }
      return true
    },
    last: () => [wall, counter],
  }
}
