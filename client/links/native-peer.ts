/**
 * NativePeer: the browser bundle's stand-in for simple-peer, over the
 * platform's RTCPeerConnection, for one ordered data channel with trickle ICE.
 *
 * simple-peer's prebuilt browser file carries its own Buffer, stream and
 * process shims (~29 KB gzip, a third of the bundle); createWebRtcPipe
 * (webrtc.ts) uses a small part of it, and this class is that part, taken
 * through the same seam (`Env.SimplePeer`). Node peers keep simple-peer
 * (client/index.ts, wrtc-adapter.ts), so both ends must agree on the wire, and
 * this class follows simple-peer 9.11's index.js for everything that shows:
 *
 *   signals out   {type:'offer'|'answer', sdp}
 *                 {type:'candidate', candidate:{candidate, sdpMLineIndex, sdpMid}}
 *   signals in    the same (an object, or its JSON); {renegotiate} and
 *                 {transceiverRequest} are accepted and ignored (no media);
 *                 anything else fails with ERR_SIGNALING
 *   channel       the initiator creates it (a random label, the channel
 *                 config given, here ordered); the answerer takes it from
 *                 `datachannel`
 *   candidates    that arrive before the remote description are queued
 *                 (at most MAX_PENDING; simple-peer keeps all) and added
 *                 once it is set
 *   connect       when ICE is connected/completed AND the channel is open
 *   close         destroy() (or a failure) closes channel and connection a
 *                 microtask later, then emits `error` (if any) and `close`
 *   errors        Errors with simple-peer's codes: ERR_WEBRTC_SUPPORT (thrown
 *                 by the constructor), ERR_PC_CONSTRUCTOR, ERR_CREATE_OFFER,
 *                 ERR_CREATE_ANSWER, ERR_SET_LOCAL_DESCRIPTION,
 *                 ERR_SET_REMOTE_DESCRIPTION, ERR_ADD_ICE_CANDIDATE,
 *                 ERR_SIGNALING, ERR_DATA_CHANNEL, ERR_CONNECTION_FAILURE,
 *                 ERR_ICE_CONNECTION_FAILURE, ERR_ICE_CONNECTION_CLOSED,
 *                 ERR_DESTROYED
 *
 * What webrtc.ts reads besides events (`_pc`, `_channel`, send, signal,
 * destroy) is kept under simple-peer's names. No streams, media, non-trickle
 * mode, getStats address lookup or write-before-connect: weft uses none.
 */
import type { Options as PeerOptions } from 'simple-peer'
import { markPhase } from '../node/timeline.ts'
import type { PeerInstance } from './webrtc.ts'

type Listener = (...args: never[]) => void

/** simple-peer's bufferedAmountLowThreshold until the pipe sets its own. */
const MAX_BUFFERED_AMOUNT = 64 * 1024
/** Chrome may leave a channel in 'closing' for good; this long in it counts as closed (simple-peer's hack). */
const CHANNEL_CLOSING_TIMEOUT = 5_000
/** Candidates held for a remote description that has not come (a peer's signals are not ours to trust). */
const MAX_PENDING = 64

/** An Error carrying a simple-peer-style `code` (err-code's way: an own property, even on a DOMException). */
export function withCode(err: unknown, code: string): Error & { code: string } {
  const e = err instanceof Error ? err : new Error(String(err))
  try {
    Object.defineProperty(e, 'code', { value: code, enumerable: true, configurable: true })
    return e as Error & { code: string }
  } catch {
    return Object.assign(new Error(e.message), { code })
  }
}

interface Rtc {
  RTCPeerConnection: new (config: RTCConfiguration) => RTCPeerConnection
  RTCIceCandidate?: new (init: RTCIceCandidateInit) => RTCIceCandidate
}

function randomLabel(): string {
  const b = crypto.getRandomValues(new Uint8Array(20))
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
}

/** A certificate this close to its expiry is not handed to a new connection (Chromium's last 30 days). */
const CERT_MARGIN_MS = 10 * 60_000

/**
 * The DTLS certificate of a node's connections (join time, issue 14):
 * without one, Chromium makes a key pair for every RTCPeerConnection, and
 * the first offer of a page took 20-25 ms where it takes ~5 with the
 * certificate ready; an answer likewise. Making one holds the page's main
 * thread for 10-15 ms (Chromium 156, this machine), so a returning page does
 * not: the certificate is kept in IndexedDB beside the identity of its slot
 * (browser.ts; an RTCCertificate is stored as it is, its key
 * non-extractable) and read with it (~1.5 ms), and made again when it has
 * less than CERT_KEEP_MS to live. A first visit makes it while its identity
 * is made. One per identity, never shared between two: the certificate only
 * names the DTLS key, a link is authenticated by its handshake (the node's
 * Ed25519 key), so to a peer or the server it says nothing the node's id
 * does not (an observer of the DTLS handshake on the path, who does not see
 * the id, can link the sessions that use it: README, Privacy). Undefined
 * where WebRTC or the call is missing, or it fails: each connection then
 * makes its own, as before.
 */
export function makeCertificate(): Promise<RTCCertificate | undefined> {
  const Pc = (globalThis as { RTCPeerConnection?: typeof RTCPeerConnection }).RTCPeerConnection
  if (typeof Pc?.generateCertificate !== 'function') return Promise.resolve(undefined)
  try {
    return Pc.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' } as EcKeyGenParams).then(
      (c) => c,
      () => undefined,
    )
  } catch {
    return Promise.resolve(undefined)
  }
}

/** A saved certificate is used again while it has at least this long to live (Chromium's live 30 days). */
export const CERT_KEEP_MS = 2 * 24 * 3600_000

/** `saved` (read back from IndexedDB) if it is an RTCCertificate good for CERT_KEEP_MS more. */
export function usableCertificate(saved: unknown, now = Date.now()): RTCCertificate | undefined {
  const C = (globalThis as { RTCCertificate?: typeof RTCCertificate }).RTCCertificate
  if (typeof C !== 'function' || !(saved instanceof C)) return undefined
  return saved.expires > now + CERT_KEEP_MS ? saved : undefined
}

/** NativePeer, whose connections use `cert` while it is good for more than CERT_MARGIN_MS. */
export function withCertificate(cert: RTCCertificate): typeof NativePeer {
  return class extends NativePeer {
    constructor(opts: PeerOptions = {}) {
      // Past it (a page open for weeks): this connection makes its own, the node's next join a new one.
      if (cert.expires > Date.now() + CERT_MARGIN_MS)
        opts = { ...opts, config: { ...opts.config, certificates: [cert] } }
      super(opts)
    }
  }
}

/**
 * The page's first offer, made ahead (join time, issue 14): joinOverlay calls
 * `prewarmOffer` as soon as its certificate is read from IndexedDB (or made),
 * while the identity loads and the server's challenge comes, and the node
 * again as its first registration goes out (a no-op if one is made). This
 * makes the RTCPeerConnection (15-40 ms of the main thread in a page's
 * first, as Chromium starts WebRTC; made as the registration went out, it
 * held up the server's answer that long), its data channel and its offer.
 * The first dial then takes all
 * three, sets the ICE servers the registration brought (`setConfiguration`:
 * nothing is gathered before the offer is set, and the servers are not in
 * the SDP) and sends the offer at once. Only for a connection like the ones
 * webrtc.ts makes (initiator, this certificate, an ordered channel, the
 * platform's RTCPeerConnection); one at a time, closed if no dial takes it
 * within WARM_MS or when its node closes (`dropWarmOffer`).
 */
interface Warm {
  pc: RTCPeerConnection
  channel: RTCDataChannel
  offer: Promise<RTCSessionDescriptionInit>
  cert: RTCCertificate
  timer: ReturnType<typeof setTimeout>
}
let warm: Warm | undefined
const WARM_MS = 30_000
/** The only channel configuration webrtc.ts asks for. */
const WARM_CHANNEL = JSON.stringify({ ordered: true })

export function prewarmOffer(cert: RTCCertificate): void {
  const Pc = (globalThis as { RTCPeerConnection?: typeof RTCPeerConnection }).RTCPeerConnection
  if (warm || typeof Pc !== 'function') return
  markPhase('warm-offer')
  try {
    const pc = new Pc({ iceServers: [], certificates: [cert] })
    const channel = pc.createDataChannel(randomLabel(), JSON.parse(WARM_CHANNEL))
    const offer = pc.createOffer()
    offer.catch(() => {})
    const timer = setTimeout(() => {
      if (warm?.pc === pc) dropWarmOffer(cert)
    }, WARM_MS)
    warm = { pc, channel, offer, cert, timer }
  } catch {}
}

/** Close the offer made ahead with `cert` if no dial took it (its node closed). */
export function dropWarmOffer(cert: RTCCertificate): void {
  const w = warm
  if (!w || w.cert !== cert) return
  warm = undefined
  clearTimeout(w.timer)
  w.pc.close()
}

/** The offer made ahead, for a connection `opts` describes (its ICE servers set), or undefined. */
function takeWarm(opts: PeerOptions, wrtc: Partial<Rtc>): Warm | undefined {
  const w = warm
  if (!w || opts.initiator !== true || wrtc !== globalThis) return undefined
  if (opts.config?.certificates?.[0] !== w.cert || JSON.stringify(opts.channelConfig ?? {}) !== WARM_CHANNEL)
    return undefined
  warm = undefined
  clearTimeout(w.timer)
  try {
    w.pc.setConfiguration({ iceServers: [], ...opts.config })
    return w
  } catch {
    w.pc.close()
    return undefined
  }
}

export class NativePeer implements PeerInstance {
  _pc: RTCPeerConnection | null = null
  _channel: RTCDataChannel | null = null
  readonly initiator: boolean
  destroyed = false
  destroying = false
  /** Candidates dropped beyond MAX_PENDING before the remote description came. */
  droppedCandidates = 0
  private connected = false
  private pcReady = false
  private channelReady = false
  private pending: RTCIceCandidateInit[] = []
  private closingTimer: ReturnType<typeof setInterval> | undefined
  private listeners = new Map<string, Listener[]>()
  private readonly rtc: Rtc

  constructor(opts: PeerOptions = {}) {
    this.initiator = opts.initiator === true
    const wrtc = (opts.wrtc && typeof opts.wrtc === 'object' ? opts.wrtc : globalThis) as Partial<Rtc>
    if (typeof wrtc.RTCPeerConnection !== 'function')
      throw withCode(new Error('No WebRTC support: Not a supported browser'), 'ERR_WEBRTC_SUPPORT')
    this.rtc = wrtc as Rtc
    const ahead = takeWarm(opts, wrtc)
    let pc: RTCPeerConnection
    try {
      // No default STUN servers (simple-peer's are Google's): webrtc.ts always passes the ones to use.
      pc = ahead?.pc ?? new wrtc.RTCPeerConnection({ iceServers: [], ...opts.config })
    } catch (err) {
      this.destroy(withCode(err, 'ERR_PC_CONSTRUCTOR'))
      return
    }
    this._pc = pc
    pc.oniceconnectionstatechange = () => this.onIceStateChange()
    pc.onicegatheringstatechange = () => this.onIceStateChange()
    pc.onconnectionstatechange = () => {
      if (!this.destroyed && pc.connectionState === 'failed')
        this.destroy(withCode(new Error('Connection failed.'), 'ERR_CONNECTION_FAILURE'))
    }
    pc.onicecandidate = (e) => {
      if (this.destroyed || !e.candidate) return
      const { candidate, sdpMLineIndex, sdpMid } = e.candidate
      this.emit('signal', { type: 'candidate', candidate: { candidate, sdpMLineIndex, sdpMid } })
    }
    if (ahead) {
      this.setupData(ahead.channel)
      ahead.offer.then(
        (offer) => this.describe(offer, true),
        (err) => this.destroy(withCode(err, 'ERR_CREATE_OFFER')),
      )
    } else if (this.initiator) {
      this.setupData(pc.createDataChannel(randomLabel(), opts.channelConfig ?? {}))
      // simple-peer offers a task later (a Chrome crash when createOffer runs at once).
      setTimeout(() => this.negotiate(), 0)
    } else {
      pc.ondatachannel = (e) => this.setupData(e.channel)
    }
  }

  on(event: string, fn: Listener): this {
    const list = this.listeners.get(event)
    if (list) list.push(fn)
    else this.listeners.set(event, [fn])
    return this
  }

  once(event: string, fn: Listener): this {
    const wrapped = (...args: never[]) => {
      this.off(event, wrapped)
      fn(...args)
    }
    return this.on(event, wrapped)
  }

  off(event: string, fn: Listener): this {
    const list = this.listeners.get(event)
    if (list)
      this.listeners.set(
        event,
        list.filter((f) => f !== fn),
      )
    return this
  }

  private emit(event: string, ...args: unknown[]): void {
    for (const fn of this.listeners.get(event) ?? []) (fn as (...a: unknown[]) => void)(...args)
  }

  get bufferSize(): number {
    return this._channel?.bufferedAmount ?? 0
  }

  signal(input: unknown): void {
    if (this.destroying) return
    const pc = this._pc
    if (this.destroyed || !pc)
      throw withCode(new Error('cannot signal after peer is destroyed'), 'ERR_DESTROYED')
    let data = input
    if (typeof data === 'string') {
      try {
        data = JSON.parse(data)
      } catch {
        data = {}
      }
    }
    const d = (data && typeof data === 'object' ? data : {}) as {
      type?: RTCSdpType
      sdp?: string
      candidate?: RTCIceCandidateInit
      renegotiate?: unknown
      transceiverRequest?: unknown
    }
    if (d.candidate) {
      if (pc.remoteDescription?.type) this.addCandidate(d.candidate)
      else if (this.pending.length < MAX_PENDING) this.pending.push(d.candidate)
      else this.droppedCandidates++
    }
    if (d.sdp) {
      markPhase(d.type === 'offer' ? 'rtc-offer-in' : 'rtc-answer-in')
      pc.setRemoteDescription({ type: d.type as RTCSdpType, sdp: d.sdp })
        .then(() => {
          if (this.destroyed) return
          for (const c of this.pending) this.addCandidate(c)
          this.pending = []
          if (pc.remoteDescription?.type === 'offer') this.answer()
        })
        .catch((err) => this.destroy(withCode(err, 'ERR_SET_REMOTE_DESCRIPTION')))
    }
    if (!d.sdp && !d.candidate && !d.renegotiate && !d.transceiverRequest)
      this.destroy(withCode(new Error('signal() called with invalid signal data'), 'ERR_SIGNALING'))
  }

  send(chunk: Uint8Array): void {
    if (this.destroying) return
    if (this.destroyed || !this._channel)
      throw withCode(new Error('cannot send after peer is destroyed'), 'ERR_DESTROYED')
    // TS's DOM typings want an ArrayBuffer-backed view; a pipe's bytes are one.
    this._channel.send(chunk as Uint8Array<ArrayBuffer>)
  }

  destroy(err?: Error): void {
    if (this.destroyed || this.destroying) return
    this.destroying = true
    // Like simple-peer: events that race the call still fire first.
    queueMicrotask(() => {
      this.destroyed = true
      this.destroying = false
      this.connected = false
      clearInterval(this.closingTimer)
      const ch = this._channel
      if (ch) {
        try {
          ch.close()
        } catch {}
        ch.onmessage = ch.onopen = ch.onclose = ch.onerror = ch.onbufferedamountlow = null
      }
      const pc = this._pc
      if (pc) {
        try {
          pc.close()
        } catch {}
        pc.oniceconnectionstatechange = pc.onicegatheringstatechange = null
        pc.onconnectionstatechange = pc.onsignalingstatechange = null
        pc.onicecandidate = null
        pc.ondatachannel = null
      }
      this._pc = null
      this._channel = null
      this.pending = []
      if (err) this.emit('error', err)
      this.emit('close')
    })
  }

  private addCandidate(c: RTCIceCandidateInit): void {
    const pc = this._pc
    if (!pc) return
    // Through the platform's RTCIceCandidate, as simple-peer does (some stacks take no plain init dictionary).
    let cand: RTCIceCandidate | RTCIceCandidateInit = c
    const fail = (err: unknown) => {
      // simple-peer ignores candidates the stack cannot use (mDNS `.local` names, no address).
      const address = (cand as { address?: string | null }).address
      if (address && !address.endsWith('.local')) this.destroy(withCode(err, 'ERR_ADD_ICE_CANDIDATE'))
      else console.warn('Ignoring unsupported ICE candidate.')
    }
    try {
      if (this.rtc.RTCIceCandidate) cand = new this.rtc.RTCIceCandidate(c)
      pc.addIceCandidate(cand).catch(fail)
    } catch (err) {
      fail(err)
    }
  }

  private negotiate(): void {
    const pc = this._pc
    if (this.destroyed || this.destroying || !pc) return
    pc.createOffer()
      .then((offer) => this.describe(offer))
      .catch((err) => this.destroy(withCode(err, 'ERR_CREATE_OFFER')))
  }

  private answer(): void {
    const pc = this._pc
    if (this.destroyed || !pc) return
    pc.createAnswer()
      .then((answer) => this.describe(answer))
      .catch((err) => this.destroy(withCode(err, 'ERR_CREATE_ANSWER')))
  }

  /**
   * Set our offer or answer and send it (trickle: at once, candidates follow). An offer made
   * ahead goes out `early`, as setting it starts (~10 ms in Chromium): its SDP is the one sent
   * either way, its candidates come only once it is set, and the answer waits on the
   * connection's operations chain behind it (the first dial's part of join time, issue 14).
   */
  private describe(desc: RTCSessionDescriptionInit, early = false): void {
    const pc = this._pc
    if (this.destroyed || !pc) return
    const sent = early && desc.type === 'offer' && typeof desc.sdp === 'string'
    if (sent) {
      markPhase('rtc-offer-out')
      try {
        this.emit('signal', { type: desc.type, sdp: desc.sdp })
      } catch (err) {
        // As a listener's throw after the description was set ends the connection, so does this one.
        return this.destroy(withCode(err, 'ERR_SET_LOCAL_DESCRIPTION'))
      }
    }
    pc.setLocalDescription(desc)
      .then(() => {
        if (this.destroyed || sent) return
        const local = pc.localDescription ?? desc
        markPhase(local.type === 'offer' ? 'rtc-offer-out' : 'rtc-answer-out')
        this.emit('signal', { type: local.type, sdp: local.sdp })
      })
      .catch((err) => this.destroy(withCode(err, 'ERR_SET_LOCAL_DESCRIPTION')))
  }

  private setupData(ch: RTCDataChannel | undefined): void {
    if (!ch)
      return this.destroy(
        withCode(new Error('Data channel event is missing `channel` property'), 'ERR_DATA_CHANNEL'),
      )
    this._channel = ch
    ch.binaryType = 'arraybuffer'
    ch.bufferedAmountLowThreshold = MAX_BUFFERED_AMOUNT
    ch.onmessage = (e: MessageEvent) => {
      if (this.destroyed) return
      // simple-peer's stream hands text out as its UTF-8 bytes.
      const d: unknown = e.data
      if (d instanceof ArrayBuffer) this.emit('data', new Uint8Array(d))
      else if (typeof d === 'string') this.emit('data', new TextEncoder().encode(d))
    }
    ch.onopen = () => {
      markPhase('rtc-channel-open')
      if (this.connected || this.destroyed) return
      this.channelReady = true
      this.maybeReady()
    }
    ch.onclose = () => {
      if (!this.destroyed) this.destroy()
    }
    ch.onerror = (e: Event) => {
      const ev = e as Event & { error?: unknown; message?: string }
      const err = ev.error instanceof Error ? ev.error : new Error(`Datachannel error: ${ev.message}`)
      this.destroy(withCode(err, 'ERR_DATA_CHANNEL'))
    }
    let closing = false
    this.closingTimer = setInterval(() => {
      if (this._channel?.readyState === 'closing') {
        if (closing && !this.destroyed) this.destroy()
        closing = true
      } else closing = false
    }, CHANNEL_CLOSING_TIMEOUT)
  }

  private onIceStateChange(): void {
    const pc = this._pc
    if (this.destroyed || !pc) return
    const state = pc.iceConnectionState
    this.emit('iceStateChange', state, pc.iceGatheringState)
    if (state === 'connected' || state === 'completed') {
      markPhase('ice-connected')
      this.pcReady = true
      this.maybeReady()
    }
    if (state === 'failed')
      this.destroy(withCode(new Error('Ice connection failed.'), 'ERR_ICE_CONNECTION_FAILURE'))
    if (state === 'closed')
      this.destroy(withCode(new Error('Ice connection closed.'), 'ERR_ICE_CONNECTION_CLOSED'))
  }

  private maybeReady(): void {
    if (this.connected || this.destroyed || !this.pcReady || !this.channelReady) return
    this.connected = true
    this.emit('connect')
  }
}
