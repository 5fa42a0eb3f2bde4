/**
 * A Pipe over one WebRTC data channel, through simple-peer with trickle ICE.
 * Signals go out through `sendSignal` (the signal server, or later the
 * overlay) and come in through `signal()`.
 *
 * A brief ICE `disconnected` is not fatal (it often recovers); `failed`, or
 * the channel closing, is.
 */
import type { Instance as PeerInstance, Options as PeerOptions } from 'simple-peer'
import { dataSlot, type Pipe, sdpFingerprint } from './pipe.ts'

export type SimplePeerCtor = new (opts: PeerOptions) => PeerInstance

/** High water: stop writing above this many buffered bytes. */
const HIGH_WATER = 1024 * 1024
const LOW_WATER = 256 * 1024

export interface WebRtcPipeOptions {
  SimplePeer: SimplePeerCtor
  initiator: boolean
  /** A WebRTC implementation for Node (@roamhq/wrtc); browsers have their own. */
  wrtc?: unknown
  sendSignal: (data: unknown) => void
  /** ICE servers; none on loopback. @default [] */
  iceServers?: RTCIceServer[]
}

export interface WebRtcPipe extends Pipe {
  /** Feed a signal from the other end. */
  signal(data: unknown): void
  /** Resolves when the data channel opens; rejects when the connection fails first. */
  readonly opened: Promise<void>
}

interface SimplePeerInternals {
  _pc?: RTCPeerConnection
  _channel?: RTCDataChannel
}

export function createWebRtcPipe(opts: WebRtcPipeOptions): WebRtcPipe {
  const peer = new opts.SimplePeer({
    initiator: opts.initiator,
    trickle: true,
    config: { iceServers: opts.iceServers ?? [] },
    ...(opts.wrtc ? { wrtc: opts.wrtc as PeerOptions['wrtc'] } : {}),
    channelConfig: { ordered: true },
    allowHalfTrickle: false,
  })
  const internals = peer as unknown as SimplePeerInternals
  const data = dataSlot()
  let onClose: (reason: string) => void = () => {}
  let closed = false
  let drainWaiters: (() => void)[] = []
  const finish = (reason: string) => {
    if (closed) return
    closed = true
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
    peer.once('close', () => reject(new Error('closed before open')))
    peer.once('error', (err: Error) => reject(err))
  })
  opened.catch(() => {})
  peer.on('signal', (data: unknown) => {
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
  peer.on('close', () => finish('closed'))
  peer.on('error', (err: Error & { code?: string }) => finish(`error:${err.code ?? err.message}`))
  peer.on('iceStateChange', (state: string) => {
    if (state === 'failed' || state === 'closed') finish(`ice-${state}`)
  })

  return {
    transport: 'webrtc',
    opened,
    signal(data) {
      if (closed) return
      try {
        peer.signal(data as Parameters<PeerInstance['signal']>[0])
      } catch {
        finish('bad-signal')
      }
    },
    send(bytes) {
      if (closed) return
      try {
        peer.send(bytes)
      } catch {
        finish('send-failed')
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
      const local = sdpFingerprint(pc?.localDescription?.sdp)
      const remote = sdpFingerprint(pc?.remoteDescription?.sdp)
      return local && remote ? { local, remote } : null
    },
  }
}
