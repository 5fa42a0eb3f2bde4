/**
 * In-memory pipes for link tests: two ends wired back to back, as WebRTC
 * (with the DTLS fingerprints each end would see) or as the server's relay
 * (none), through a tap that may record, rewrite or drop what passes.
 */
import type { Pipe } from '../client/links/pipe.ts'

/**
 * What carries a message from one end to the other: a relay that may record,
 * rewrite (return other bytes) or drop (return null) what passes.
 */
export type Tap = (bytes: Uint8Array, from: 'a' | 'b') => Uint8Array | Uint8Array[] | null

/** Two in-memory pipes wired back to back, with the DTLS fingerprints each end would see. */
export function pipePair(fpA = 'sha-256 AA', fpB = 'sha-256 BB', seenByA = fpB, seenByB = fpA): [Pipe, Pipe] {
  return pipes('webrtc', fpA, fpB, seenByA, seenByB)
}

/** Two relay pipes through `tap` (no fingerprints: the relay has no DTLS). */
export function relayPair(tap: Tap = (b) => b): [Pipe, Pipe] {
  return pipes('relay', '', '', '', '', tap)
}

export function pipes(
  transport: 'webrtc' | 'relay',
  fpA: string,
  fpB: string,
  seenByA: string,
  seenByB: string,
  tap: Tap = (b) => b,
): [Pipe, Pipe] {
  const mk = (local: string, remote: string, side: 'a' | 'b') => {
    let onData: (b: Uint8Array) => void = () => {}
    let onClose: (r: string) => void = () => {}
    let closed = false
    const p = {
      transport,
      other: undefined as unknown as { deliver(b: Uint8Array): void; end(r: string): void },
      send(b: Uint8Array) {
        if (closed) return
        const out = tap(b.slice(), side)
        for (const x of out === null ? [] : Array.isArray(out) ? out : [out])
          queueMicrotask(() => p.other.deliver(x))
      },
      bufferedAmount: () => 0,
      drained: () => Promise.resolve(),
      onData(fn: (b: Uint8Array) => void) {
        onData = fn
      },
      onClose(fn: (r: string) => void) {
        onClose = fn
      },
      close(reason = 'closed') {
        if (closed) return
        closed = true
        onClose(reason)
        queueMicrotask(() => p.other.end('remote-closed'))
      },
      deliver(b: Uint8Array) {
        if (!closed) onData(b)
      },
      end(r: string) {
        if (closed) return
        closed = true
        onClose(r)
      },
      fingerprints: () => (transport === 'relay' ? null : { local, remote }),
    }
    return p
  }
  const a = mk(fpA, seenByA, 'a')
  const b = mk(fpB, seenByB, 'b')
  a.other = b
  b.other = a
  return [a, b]
}
