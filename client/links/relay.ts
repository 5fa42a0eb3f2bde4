/**
 * A Pipe through the signal server's traffic relay, for peers that cannot
 * open a direct WebRTC connection (or that run with relay: 'force'). The
 * server enforces a byte-rate quota per node; this side paces itself with a
 * token bucket a little under it, so frames wait here (bounded) instead of
 * being dropped there.
 */
import type { SignalClient } from '../signal-client.ts'
import { dataSlot, type Pipe } from './pipe.ts'

export interface RelayPipeOptions {
  signal: SignalClient
  peer: string
  /** Pace sends to this many bytes per second. @default 200 KiB/s (the server allows 256 KiB/s) */
  bytesPerSec?: number
  /** Most bytes waiting here for the pacer before sends fail. @default 4 MiB */
  maxQueueBytes?: number
  /**
   * Relay session id, agreed through the `relay` signal. Every frame carries
   * it, so frames of an old relay link to the same peer never mix into a new one.
   */
  sid: number
}

/** Prefix a frame with its 4-byte relay session id. */
function withSid(sid: number, frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + frame.length)
  new DataView(out.buffer).setUint32(0, sid)
  out.set(frame, 4)
  return out
}

/** The session id of a relayed frame, or -1 when it is too short to carry one. */
export function relaySid(frame: Uint8Array): number {
  return frame.length < 5 ? -1 : new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0)
}

export interface RelayPipe extends Pipe {
  readonly sid: number
  /** Feed a frame the server relayed from the peer (with its session id prefix). */
  deliver(frame: Uint8Array): void
}

export function createRelayPipe(opts: RelayPipeOptions): RelayPipe {
  const rate = opts.bytesPerSec ?? 200 * 1024
  const maxQueue = opts.maxQueueBytes ?? 4 * 1024 * 1024
  let tokens = rate
  let last = Date.now()
  const queue: Uint8Array[] = []
  let queued = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  let closed = false
  const data = dataSlot()
  let onClose: (reason: string) => void = () => {}
  let drainWaiters: (() => void)[] = []

  const refill = () => {
    const now = Date.now()
    tokens = Math.min(rate, tokens + ((now - last) / 1000) * rate)
    last = now
  }
  const pump = () => {
    timer = undefined
    if (closed) return
    refill()
    while (queue.length > 0 && tokens >= (queue[0] as Uint8Array).length) {
      const f = queue.shift() as Uint8Array
      queued -= f.length
      tokens -= f.length
      if (!opts.signal.relay(opts.peer, withSid(opts.sid, f))) {
        // The server is unreachable: frames would be lost anyway, and the link heartbeat will notice.
        queue.length = 0
        queued = 0
        break
      }
    }
    if (queued < maxQueue / 4) {
      const ws = drainWaiters
      drainWaiters = []
      for (const w of ws) w()
    }
    if (queue.length > 0) {
      const need = (queue[0] as Uint8Array).length - tokens
      timer = setTimeout(pump, Math.max(5, (need / rate) * 1000))
    }
  }
  const finish = (reason: string) => {
    if (closed) return
    closed = true
    clearTimeout(timer)
    queue.length = 0
    for (const w of drainWaiters) w()
    drainWaiters = []
    onClose(reason)
  }

  return {
    transport: 'relay',
    sid: opts.sid,
    send(bytes) {
      if (closed) return
      if (queued + bytes.length > maxQueue) return finish('relay-queue-full')
      queue.push(bytes)
      queued += bytes.length
      if (!timer) pump()
    },
    bufferedAmount: () => queued,
    drained() {
      if (closed || queued < maxQueue / 2) return Promise.resolve()
      return new Promise((resolve) => drainWaiters.push(resolve))
    },
    deliver(frame) {
      if (!closed && relaySid(frame) === opts.sid) data.emit(frame.subarray(4))
    },
    onData(fn) {
      data.set(fn)
    },
    onClose(fn) {
      onClose = fn
    },
    close(reason = 'closed') {
      finish(reason)
    },
    fingerprints: () => null,
  }
}
