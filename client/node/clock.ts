/**
 * Time for the node's host side (the glue, the dialer, the connection
 * manager, persistence): the clock and the timers, in one object the node is
 * built with. Production uses the platform's (`realClock`); an in-memory test
 * network gives a virtual one, so a whole node runs on simulated time.
 * (The protocols in shared/ never see timers: the host ticks them.)
 */

/** A timer's handle, as the clock that made it returns it. */
export type TimerId = number | object

export interface Clock {
  /** Milliseconds (Unix time for the real clock). */
  now(): number
  setTimeout(fn: () => void, ms: number): TimerId
  clearTimeout(id: TimerId | undefined): void
  setInterval(fn: () => void, ms: number): TimerId
  clearInterval(id: TimerId | undefined): void
  /** Resolves after `ms` (a timer of this clock). */
  sleep(ms: number): Promise<void>
}

type PlatformTimer = ReturnType<typeof setTimeout>

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as PlatformTimer | undefined),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (id) => clearInterval(id as PlatformTimer | undefined),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
}
