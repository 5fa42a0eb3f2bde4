/**
 * How the test network knows the nodes' cryptography has finished. WebCrypto
 * (signatures, sealing, hashing) is real asynchronous work on the
 * platform's threads; if the virtual clock moved on while a signature was
 * still being checked, its message would arrive seconds of virtual time
 * late. So while a test network is open, the process's `crypto.subtle`
 * methods are wrapped to count the operations under way (`inFlight`), and
 * the network settles only when none is. The wrappers call the originals
 * unchanged and are removed when the last network closes.
 */

type Subtle = Record<string, unknown>

const METHODS = [
  'decrypt',
  'deriveBits',
  'deriveKey',
  'digest',
  'encrypt',
  'exportKey',
  'generateKey',
  'importKey',
  'sign',
  'unwrapKey',
  'verify',
  'wrapKey',
] as const

let users = 0
let pending = 0

/** WebCrypto operations under way in this process (while watched). */
export function inFlight(): number {
  return pending
}

/** Start counting (one call per network); the returned function stops (the last one unwraps). */
export function watchCrypto(): () => void {
  const subtle = globalThis.crypto?.subtle as unknown as Subtle | undefined
  if (!subtle) return () => {}
  if (users++ === 0)
    for (const name of METHODS) {
      const original = subtle[name]
      if (typeof original !== 'function') continue
      Object.defineProperty(subtle, name, {
        configurable: true,
        writable: true,
        value(this: unknown, ...args: unknown[]) {
          const p = (original as (...a: unknown[]) => Promise<unknown>).apply(this, args)
          pending++
          const done = () => {
            pending--
          }
          // Counted down either way; the caller still gets (and must handle) the original promise.
          p.then(done, done)
          return p
        },
      })
    }
  let stopped = false
  return () => {
    if (stopped) return
    stopped = true
    if (--users === 0) for (const name of METHODS) delete subtle[name]
  }
}
