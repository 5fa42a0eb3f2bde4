/**
 * A Pipe over one WebRTC data channel, through simple-peer (Node) or its
 * stand-in NativePeer (native-peer.ts, the browser bundle), with trickle ICE.
 * Signals go out through `sendSignal` (the signal server, or later the
 * overlay) and come in through `signal()`.
 *
 * A brief ICE `disconnected` is not fatal (it often recovers): the pipe
 * tells its link (`onStall`), which checks the peer is still there
 * (liveness.ts); `failed`, or the channel closing, is. When the pipe fails
 * before it opens, `opened` rejects with the WebRTC stack's own error
 * (simple-peer's `ERR_*` code and message), so the dial can say why there
 * is no direct link.
 */
import type { Options as PeerOptions } from 'simple-peer'
import { dataSlot, type Pipe, sdpFingerprint } from './pipe.ts'

/**
 * The part of simple-peer's Instance this pipe uses: simple-peer itself (Node)
 * and NativePeer (native-peer.ts, the browser bundle) both have it.
 */
export interface PeerInstance {
  on(event: string, listener: (...args: never[]) => void): unknown
  once(event: string, listener: (...args: never[]) => void): unknown
  signal(data: unknown): void
  send(chunk: Uint8Array): void
  destroy(err?: Error): void
}

export type SimplePeerCtor = new (opts: PeerOptions) => PeerInstance

/**
 * High water: stop writing above this many buffered bytes; go on below LOW_WATER. As deep as a raw
 * RTCDataChannel driven well (issue 14): 1 MiB / 256 KiB held a file swarm to 12.9 MB/s where
 * 4 MiB / 1 MiB gives 14.9 (`npm run bench -- swarm`, raw 21.5-22.8 MB/s, same machine).
 */
const HIGH_WATER = 4 * 1024 * 1024
const LOW_WATER = 1024 * 1024
/**
 * ICE candidates one attempt takes from its peer; more are dropped (a peer's, or a server's, are
 * not ours to trust: each would be kept until the description came, then paired and checked).
 * An honest peer sends a handful per interface and STUN/TURN server.
 */
export const MAX_REMOTE_CANDIDATES = 256

export interface WebRtcPipeOptions {
  SimplePeer: SimplePeerCtor
  initiator: boolean
  /** A WebRTC implementation for Node (adapted by wrtc-adapter.ts); browsers have their own. */
  wrtc?: unknown
  sendSignal: (data: unknown) => void
  /** ICE servers; none on loopback. @default [] */
  iceServers?: RTCIceServer[]
}

export interface WebRtcPipe extends Pipe {
  /**
   * Feed a signal from the other end: ICE candidates (MAX_REMOTE_CANDIDATES),
   * and one description (the answer to our offer, or the offer we answer).
   * False for anything else, which is dropped (a second description, a
   * renegotiation, candidates past the bound).
   */
  signal(data: unknown): boolean
  /** Resolves when the data channel opens; rejects with the reason when the connection fails first. */
  readonly opened: Promise<void>
  /** The ICE connection state now ('new' when there is no connection). */
  iceState(): string
  /**
   * The ICE connection states the connection went through, in order, each
   * once (kept after it closes): did a candidate pair ever work? (upgrades.ts)
   */
  iceSeen(): readonly string[]
}

/** An error of a WebRTC attempt as one line: simple-peer's code and the stack's message. */
export function describeRtcError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null
  const message = typeof e?.message === 'string' ? e.message : String(err)
  const code = typeof e?.code === 'string' ? e.code : undefined
  return (code && !message.startsWith(code) ? `${code}: ${message}` : message).slice(0, 200)
}

/** The counter key of a WebRTC error: simple-peer's ERR_* code, else 'other' (bounded, never from a message). */
export function rtcErrorKey(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^ERR_[A-Z0-9_]{1,40}$/.test(code) ? code : 'other'
}

interface SimplePeerInternals {
  _pc?: RTCPeerConnection
  _channel?: RTCDataChannel
}

export function createWebRtcPipe(opts: WebRtcPipeOptions): WebRtcPipe {
  let peer: PeerInstance
  try {
    peer = new opts.SimplePeer({
      initiator: opts.initiator,
      trickle: true,
      config: { iceServers: opts.iceServers ?? [] },
      ...(opts.wrtc ? { wrtc: opts.wrtc as PeerOptions['wrtc'] } : {}),
      channelConfig: { ordered: true },
      allowHalfTrickle: false,
    })
  } catch (err) {
    // No WebRTC here at all (simple-peer throws ERR_WEBRTC_SUPPORT): a pipe that failed.
    return failedPipe(err)
  }
  const internals = peer as unknown as SimplePeerInternals
  const data = dataSlot()
  let onClose: (reason: string) => void = () => {}
  let closed = false
  let drainWaiters: (() => void)[] = []
  let failOpen: (err: Error) => void = () => {}
  const finish = (reason: string, err?: Error) => {
    if (closed) return
    closed = true
    failOpen(err ?? new Error(reason))
    for (const w of drainWaiters) w()
    drainWaiters = []
    try {
      peer.destroy()
    } catch {}
    onClose(reason)
  }
  const opened = new Promise<void>((resolve, reject) => {
    peer.once('connect', () => {
      const ch = internals._channel
      if (ch) {
        ch.bufferedAmountLowThreshold = LOW_WATER
        ch.addEventListener('bufferedamountlow', () => {
          const ws = drainWaiters
          drainWaiters = []
          for (const w of ws) w()
        })
      }
      resolve()
    })
    failOpen = reject
  })
  opened.catch(() => {})
  // The SDPs as they went out and came in: the fingerprints' fallback while the connection's own
  // attributes lag (a loaded page can see the channel open before remoteDescription is set).
  const sdps: { local: string | undefined; remote: string | undefined } = {
    local: undefined,
    remote: undefined,
  }
  peer.on('signal', (data: unknown) => {
    sdps.local ??= sdpOf(data)
    if (!closed) opts.sendSignal(data)
  })
  peer.on('data', (chunk: Uint8Array) => {
    // Node's simple-peer hands out Buffers: pass a plain Uint8Array view on.
    if (!closed)
      data.emit(
        chunk.constructor !== Uint8Array
          ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
          : chunk,
      )
  })
  peer.on('close', () => finish('closed', new Error('the connection closed before it opened')))
  peer.on('error', (err: Error & { code?: string }) => finish(`error:${err.code ?? err.message}`, err))
  let onStall: (() => void) | undefined
  const seen: string[] = []
  let candidates = 0
  peer.on('iceStateChange', (state: string) => {
    if (!closed && !seen.includes(state)) seen.push(state)
    if (state === 'disconnected' && !closed) onStall?.()
    // simple-peer's own codes for these (it emits this event before it would fail by itself).
    if (state === 'failed')
      finish(
        'ice-failed',
        Object.assign(new Error('Ice connection failed.'), { code: 'ERR_ICE_CONNECTION_FAILURE' }),
      )
    if (state === 'closed')
      finish(
        'ice-closed',
        Object.assign(new Error('Ice connection closed.'), { code: 'ERR_ICE_CONNECTION_CLOSED' }),
      )
  })

  return {
    transport: 'webrtc',
    opened,
    signal(data) {
      if (closed) return true
      // One description from the peer, of the kind this end awaits; weft never renegotiates, and a
      // later offer or answer (a server's) would move the DTLS session away from what the proofs bind.
      const kind = signalKind(data)
      if (kind !== 'candidate' && (kind !== (opts.initiator ? 'answer' : 'offer') || sdps.remote))
        return false
      if (kind === 'candidate' && ++candidates > MAX_REMOTE_CANDIDATES) return false
      sdps.remote ??= sdpOf(data)
      try {
        peer.signal(data)
      } catch (err) {
        finish('bad-signal', err instanceof Error ? err : undefined)
      }
      return true
    },
    send(bytes) {
      if (closed) return
      try {
        peer.send(bytes)
      } catch (err) {
        finish('send-failed', err instanceof Error ? err : undefined)
      }
    },
    bufferedAmount: () => internals._channel?.bufferedAmount ?? 0,
    drained() {
      if (closed || (internals._channel?.bufferedAmount ?? 0) < HIGH_WATER) return Promise.resolve()
      return new Promise((resolve) => drainWaiters.push(resolve))
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
    fingerprints() {
      const pc = internals._pc
      const local = sdpFingerprint(pc?.localDescription?.sdp ?? sdps.local)
      const remote = sdpFingerprint(pc?.remoteDescription?.sdp ?? sdps.remote)
      return local && remote ? { local, remote } : null
    },
    iceState: () => internals._pc?.iceConnectionState ?? 'new',
    iceSeen: () => seen,
    onStall(fn) {
      onStall = fn
    },
  }
}

/** The SDP of an offer or answer signal (simple-peer's `{type, sdp}`), else undefined. */
function sdpOf(data: unknown): string | undefined {
  const kind = signalKind(data)
  return kind === 'offer' || kind === 'answer' ? (data as { sdp: string }).sdp : undefined
}

/** What a peer's signal is: an ICE candidate, an offer or answer with its SDP, or something else. */
function signalKind(data: unknown): 'candidate' | 'offer' | 'answer' | 'other' {
  if (typeof data !== 'object' || data === null) return 'other'
  const d = data as { type?: unknown; candidate?: unknown; sdp?: unknown; renegotiate?: unknown }
  if (d.renegotiate !== undefined || 'transceiverRequest' in d) return 'other'
  if (d.candidate !== undefined && d.sdp === undefined) return 'candidate'
  return (d.type === 'offer' || d.type === 'answer') && typeof d.sdp === 'string' && d.sdp !== ''
    ? d.type
    : 'other'
}

/** The pipe of an attempt that could not even start: `opened` rejects with why. */
function failedPipe(err: unknown): WebRtcPipe {
  const error = err instanceof Error ? err : new Error(String(err))
  const opened = Promise.reject(error)
  opened.catch(() => {})
  return {
    transport: 'webrtc',
    opened,
    signal: () => false,
    send() {},
    bufferedAmount: () => 0,
    drained: () => Promise.resolve(),
    onData() {},
    onClose() {},
    close() {},
    fingerprints: () => null,
    iceState: () => 'new',
    iceSeen: () => [],
  }
}
