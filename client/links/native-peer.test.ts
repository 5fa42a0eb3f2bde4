/**
 * NativePeer (the browser bundle's stand-in for simple-peer) against real
 * simple-peer, in Node: NativePeer runs over a stack's RTCPeerConnection as a
 * browser's (@roamhq/wrtc, which behaves like one, and node-datachannel's
 * polyfill through the adapter), simple-peer over another, both offering and
 * answering, raw and through createWebRtcPipe (what the dialer uses). Then
 * the signal format, candidates before the description, the bound on them,
 * and simple-peer's error codes.
 */
import SimplePeer from 'simple-peer'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { until } from '../../test/until.ts'
import {
  CERT_KEEP_MS,
  dropWarmOffer,
  NativePeer,
  prewarmOffer,
  usableCertificate,
  withCertificate,
} from './native-peer.ts'
import { sdpFingerprint } from './pipe.ts'
import { createWebRtcPipe, rtcErrorKey, type SimplePeerCtor, type WebRtcPipe } from './webrtc.ts'
import { type AdaptedWrtc, adaptWrtc, WRTC_MODULES } from './wrtc-adapter.ts'

type Stack = 'node-datachannel' | '@roamhq/wrtc' | 'werift'
const stacks = new Map<Stack, AdaptedWrtc>()

beforeAll(async () => {
  for (const s of ['node-datachannel', '@roamhq/wrtc', 'werift'] as const)
    stacks.set(s, adaptWrtc(await import(WRTC_MODULES[s])))
}, 60_000)
const wrtc = (s: Stack) => stacks.get(s) as AdaptedWrtc

const SimplePeerNode = SimplePeer as unknown as SimplePeerCtor

/** Two pipes whose signals go straight to each other; resolves when both are open. */
async function pipePair(
  a: { ctor: SimplePeerCtor; stack: Stack },
  b: { ctor: SimplePeerCtor; stack: Stack },
): Promise<[WebRtcPipe, WebRtcPipe]> {
  const holder: { a?: WebRtcPipe; b?: WebRtcPipe } = {}
  holder.a = createWebRtcPipe({
    SimplePeer: a.ctor,
    initiator: true,
    wrtc: wrtc(a.stack),
    sendSignal: (s) => holder.b?.signal(structuredClone(s)),
  })
  holder.b = createWebRtcPipe({
    SimplePeer: b.ctor,
    initiator: false,
    wrtc: wrtc(b.stack),
    sendSignal: (s) => holder.a?.signal(structuredClone(s)),
  })
  await Promise.all([holder.a.opened, holder.b.opened])
  return [holder.a, holder.b]
}

function collect(pipe: WebRtcPipe): Uint8Array[] {
  const got: Uint8Array[] = []
  pipe.onData((b) => got.push(b))
  return got
}

interface Side {
  ctor: SimplePeerCtor
  stack: Stack
}
const native = (stack: Stack): Side => ({ ctor: NativePeer, stack })
const simple = (stack: Stack): Side => ({ ctor: SimplePeerNode, stack })

describe('NativePeer links with simple-peer through createWebRtcPipe', () => {
  const cases: [string, Side, Side][] = [
    [
      'NativePeer (@roamhq/wrtc) offers, simple-peer (node-datachannel) answers',
      native('@roamhq/wrtc'),
      simple('node-datachannel'),
    ],
    [
      'simple-peer (node-datachannel) offers, NativePeer (@roamhq/wrtc) answers',
      simple('node-datachannel'),
      native('@roamhq/wrtc'),
    ],
    [
      'NativePeer (node-datachannel) offers, simple-peer (werift) answers',
      native('node-datachannel'),
      simple('werift'),
    ],
    [
      'simple-peer (@roamhq/wrtc) offers, NativePeer (node-datachannel) answers',
      simple('@roamhq/wrtc'),
      native('node-datachannel'),
    ],
    ['NativePeer offers, NativePeer answers (@roamhq/wrtc)', native('@roamhq/wrtc'), native('@roamhq/wrtc')],
  ]
  it.each(cases)('%s: bytes both ways, fingerprints, close', async (_, a, b) => {
    const [pa, pb] = await pipePair(a, b)
    const atA = collect(pa)
    const atB = collect(pb)
    pa.send(new Uint8Array([1, 2, 3]))
    pb.send(new Uint8Array([4, 5]))
    await until('both messages', () => atA.length === 1 && atB.length === 1)
    expect(atB[0]).toEqual(new Uint8Array([1, 2, 3]))
    expect(atA[0]).toEqual(new Uint8Array([4, 5]))
    expect(atA[0]?.constructor).toBe(Uint8Array)
    expect(pa.iceState()).toMatch(/^(connected|completed)$/)
    // The states each end went through: a candidate pair worked (what the upgrade schedule reads).
    const worked = (p: WebRtcPipe) => p.iceSeen().some((s) => s === 'connected' || s === 'completed')
    expect([worked(pa), worked(pb)]).toEqual([true, true])
    // The DTLS fingerprints each side reads from the SDPs match crosswise (the link handshake binds them).
    const fa = pa.fingerprints()
    const fb = pb.fingerprints()
    expect(fa).not.toBeNull()
    expect(fa?.local).toBe(fb?.remote)
    expect(fa?.remote).toBe(fb?.local)
    const closedB = new Promise<string>((r) => pb.onClose(r))
    pa.close('bye')
    // The other end sees the close: as a channel or ICE close, or, when the closing stack tore down
    // without a word on the wire (simple-peer over node-datachannel did, in 3 of many runs), as ICE
    // failing once the consent checks go unanswered. (weft's links say goodbye in a frame first.)
    expect(await closedB).toMatch(/closed|ice-closed|ice-failed|error:/)
    expect(worked(pa)).toBe(true) // (kept after the close)
  })

  it('backpressure: bufferedAmount rises above the high water under a burst, drained() resolves (on bufferedamountlow), every byte arrives in order', async () => {
    const [pa, pb] = await pipePair(native('node-datachannel'), simple('@roamhq/wrtc'))
    const got = collect(pb)
    const chunk = 64 * 1024
    let sent = 0
    let peak = 0
    for (let i = 0; i < 64; i++) {
      const b = new Uint8Array(chunk).fill(i)
      pa.send(b)
      sent++
      peak = Math.max(peak, pa.bufferedAmount())
    }
    expect(peak).toBeGreaterThanOrEqual(1024 * 1024) // drained() waits for a bufferedamountlow event
    await pa.drained()
    await until('the whole burst', () => got.length === sent)
    expect(got.map((b) => b[0])).toEqual(Array.from({ length: sent }, (_, i) => i))
    pa.close()
    pb.close()
  })
})

/** A stack whose RTCPeerConnection records the order of remote descriptions and added candidates. */
function recording(base: AdaptedWrtc, log: string[]): AdaptedWrtc {
  const Base = base.RTCPeerConnection as unknown as typeof RTCPeerConnection
  class Recorder extends Base {
    override setRemoteDescription(d: RTCSessionDescriptionInit): Promise<void> {
      log.push(`remote:${d.type}`)
      return super.setRemoteDescription(d)
    }
    override addIceCandidate(c?: RTCIceCandidateInit | null): Promise<void> {
      log.push('candidate')
      return super.addIceCandidate(c)
    }
  }
  return { ...base, RTCPeerConnection: Recorder as unknown as AdaptedWrtc['RTCPeerConnection'] }
}

describe('NativePeer speaks simple-peer signals', () => {
  it("sends {type:'offer', sdp} then {type:'candidate', candidate:{candidate, sdpMLineIndex, sdpMid}}", async () => {
    const peer = new NativePeer({
      initiator: true,
      wrtc: wrtc('@roamhq/wrtc') as never,
      config: { iceServers: [] },
    })
    const signals: Record<string, unknown>[] = []
    peer.on('signal', (s: Record<string, unknown>) => signals.push(s))
    await until('an offer and a candidate', () => signals.some((s) => s.type === 'candidate'))
    expect(signals[0]?.type).toBe('offer')
    expect(Object.keys(signals[0] ?? {}).sort()).toEqual(['sdp', 'type'])
    expect(signals[0]?.sdp).toMatch(/m=application .* webrtc-datachannel/)
    const c = signals.find((s) => s.type === 'candidate') as { candidate: Record<string, unknown> }
    expect(Object.keys(c.candidate).sort()).toEqual(['candidate', 'sdpMLineIndex', 'sdpMid'])
    expect(c.candidate.candidate).toMatch(/^candidate:/)
    // JSON round trip (simple-peer takes a string signal too).
    expect(() => peer.signal(JSON.stringify({ renegotiate: true }))).not.toThrow()
    peer.destroy()
  })

  it('candidates that arrive before the remote description are queued, then added after it', async () => {
    const offerer = new SimplePeer({
      initiator: true,
      trickle: true,
      wrtc: wrtc('@roamhq/wrtc') as never,
      config: { iceServers: [] },
    })
    const fromOfferer: { candidate?: unknown; sdp?: string }[] = []
    offerer.on('signal', (s) => fromOfferer.push(s as { candidate?: unknown; sdp?: string }))
    await until('the offer and candidates', () => fromOfferer.filter((s) => s.candidate).length >= 1)
    await new Promise((r) => setTimeout(r, 200)) // let the rest of the (loopback) candidates come
    const log: string[] = []
    const answerer = new NativePeer({
      wrtc: recording(wrtc('@roamhq/wrtc'), log) as never,
      config: { iceServers: [] },
    })
    answerer.on('signal', (s: SimplePeer.SignalData) => offerer.signal(s))
    const connected = Promise.all([
      new Promise((r) => answerer.once('connect', r)),
      new Promise((r) => offerer.once('connect', r)),
    ])
    const candidates = fromOfferer.filter((s) => s.candidate)
    // Candidates first, the offer last (an overlay path and the server path may reorder them).
    for (const s of candidates) answerer.signal(s)
    expect(log).toEqual([])
    for (const s of fromOfferer.filter((x) => x.sdp)) answerer.signal(s)
    offerer.removeAllListeners('signal')
    offerer.on('signal', (s) => answerer.signal(s))
    await connected
    expect(log[0]).toBe('remote:offer')
    expect(log.filter((x) => x === 'candidate').length).toBeGreaterThanOrEqual(candidates.length)
    answerer.destroy()
    offerer.destroy()
  })

  it('attack: a flood of candidates before any description is bounded (64 kept, the rest dropped and counted in droppedCandidates)', async () => {
    const log: string[] = []
    const peer = new NativePeer({
      wrtc: recording(wrtc('@roamhq/wrtc'), log) as never,
      config: { iceServers: [] },
    })
    const candidate = {
      candidate: 'candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host',
      sdpMLineIndex: 0,
      sdpMid: '0',
    }
    for (let i = 0; i < 10_000; i++) peer.signal({ type: 'candidate', candidate })
    expect(peer.droppedCandidates).toBe(10_000 - 64)
    expect(log).toEqual([])
    peer.destroy()
  })
})

describe("NativePeer's errors carry simple-peer's codes", () => {
  it('ERR_WEBRTC_SUPPORT without an RTCPeerConnection: thrown, and the pipe rejects with it', async () => {
    expect(() => new NativePeer({ wrtc: {} as never })).toThrow(
      expect.objectContaining({ code: 'ERR_WEBRTC_SUPPORT' }),
    )
    const pipe = createWebRtcPipe({ SimplePeer: NativePeer, initiator: true, wrtc: {}, sendSignal: () => {} })
    const err = await pipe.opened.catch((e: unknown) => e)
    expect(rtcErrorKey(err)).toBe('ERR_WEBRTC_SUPPORT')
  })

  it('ERR_SIGNALING for a signal that is none, ERR_SET_REMOTE_DESCRIPTION for a bad SDP (which closes the pipe); the pipe drops signals that are none', async () => {
    const answering = () =>
      createWebRtcPipe({
        SimplePeer: NativePeer,
        initiator: false,
        wrtc: wrtc('@roamhq/wrtc'),
        sendSignal: () => {},
      })
    for (const signal of [{ hello: 1 }, 'not json']) {
      const peer = new NativePeer({ initiator: false, wrtc: wrtc('@roamhq/wrtc') as never })
      const err = new Promise<unknown>((r) => peer.on('error', r))
      peer.signal(signal)
      expect(rtcErrorKey(await err)).toBe('ERR_SIGNALING')
      // Through the pipe, such a signal never reaches the stack: dropped, and the attempt goes on.
      const pipe = answering()
      let closed = false
      pipe.onClose(() => {
        closed = true
      })
      expect(pipe.signal(signal)).toBe(false)
      await new Promise((r) => setTimeout(r, 50))
      expect(closed).toBe(false)
      pipe.close()
    }
    const pipe = answering()
    const closed = new Promise<string>((r) => pipe.onClose(r))
    expect(pipe.signal({ type: 'offer', sdp: 'v=0 garbage' })).toBe(true)
    const err = await pipe.opened.catch((e: unknown) => e)
    expect(rtcErrorKey(err)).toBe('ERR_SET_REMOTE_DESCRIPTION')
    expect(await closed).toBe('error:ERR_SET_REMOTE_DESCRIPTION')
  })

  it('destroy() closes without an error, after which signal and send throw ERR_DESTROYED', async () => {
    const peer = new NativePeer({
      initiator: true,
      wrtc: wrtc('@roamhq/wrtc') as never,
      config: { iceServers: [] },
    })
    const errors: unknown[] = []
    peer.on('error', (e: unknown) => errors.push(e))
    const closed = new Promise((r) => peer.once('close', r))
    peer.destroy()
    peer.destroy() // twice is once
    await closed
    expect(errors).toEqual([])
    expect(peer._pc).toBeNull()
    expect(() => peer.signal({ renegotiate: true })).toThrow(
      expect.objectContaining({ code: 'ERR_DESTROYED' }),
    )
    expect(() => peer.send(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'ERR_DESTROYED' }))
  })

  it('text a peer sends arrives as its UTF-8 bytes, as simple-peer hands it out', async () => {
    const a = new SimplePeer({
      initiator: true,
      trickle: true,
      wrtc: wrtc('@roamhq/wrtc') as never,
      config: { iceServers: [] },
    })
    const b = new NativePeer({ wrtc: wrtc('@roamhq/wrtc') as never, config: { iceServers: [] } })
    a.on('signal', (s) => b.signal(s))
    b.on('signal', (s: SimplePeer.SignalData) => a.signal(s))
    await Promise.all([new Promise((r) => a.once('connect', r)), new Promise((r) => b.once('connect', r))])
    const got = new Promise<Uint8Array>((r) => b.once('data', r))
    a.send('héllo')
    expect(await got).toEqual(new TextEncoder().encode('héllo'))
    a.destroy()
    b.destroy()
  })
})

describe('a saved DTLS certificate is used again while it has long to live', () => {
  it('takes an RTCCertificate good for more than CERT_KEEP_MS, and nothing else', () => {
    const g = globalThis as { RTCCertificate?: unknown }
    const had = g.RTCCertificate
    class FakeCertificate {
      constructor(readonly expires: number) {}
    }
    g.RTCCertificate = FakeCertificate
    try {
      const now = 1_000_000
      const fresh = new FakeCertificate(now + CERT_KEEP_MS + 1)
      expect(usableCertificate(fresh, now)).toBe(fresh)
      // Too close to its expiry: a new one is made (and saved) instead.
      expect(usableCertificate(new FakeCertificate(now + CERT_KEEP_MS), now)).toBeUndefined()
      // What IndexedDB gave back is not a certificate: an older record, another program's, a browser's bug.
      for (const v of [undefined, null, 'cert', { expires: now + 10 * CERT_KEEP_MS }])
        expect(usableCertificate(v, now)).toBeUndefined()
      // No RTCCertificate here at all (WebRTC off): none is used.
      g.RTCCertificate = undefined
      expect(usableCertificate(fresh, now)).toBeUndefined()
    } finally {
      g.RTCCertificate = had
    }
  })
})

/** A platform RTCPeerConnection that records what is done with it (no WebRTC runs). */
class FakePc {
  static made: FakePc[] = []
  closed = false
  configs: RTCConfiguration[] = []
  channels: RTCDataChannelInit[] = []
  offers = 0
  localDescription: RTCSessionDescriptionInit | null = null
  remoteDescription = null
  constructor(readonly config: RTCConfiguration) {
    FakePc.made.push(this)
  }
  createDataChannel(_label: string, init: RTCDataChannelInit) {
    this.channels.push(init)
    return { readyState: 'connecting', close() {} }
  }
  async createOffer() {
    this.offers++
    return { type: 'offer' as const, sdp: `v=0 offer ${this.offers}` }
  }
  async setLocalDescription(d: RTCSessionDescriptionInit) {
    this.localDescription = d
  }
  setConfiguration(c: RTCConfiguration) {
    this.configs.push(c)
  }
  close() {
    this.closed = true
  }
}

describe('the first offer, made while the server answers the registration', () => {
  const g = globalThis as { RTCPeerConnection?: unknown }
  const had = g.RTCPeerConnection
  const cert = { expires: Date.now() + 30 * 86_400_000 } as RTCCertificate
  const other = { expires: Date.now() + 30 * 86_400_000 } as RTCCertificate
  afterEach(() => {
    dropWarmOffer(cert)
    g.RTCPeerConnection = had
    FakePc.made = []
    vi.useRealTimers()
  })
  const signals = (p: NativePeer) => {
    const got: { type?: string; sdp?: string }[] = []
    p.on('signal', (s: never) => got.push(s))
    return got
  }

  it('the first dial like webrtc.ts makes takes it: no new connection, the ICE servers set on it, its offer sent', async () => {
    g.RTCPeerConnection = FakePc
    prewarmOffer(cert)
    expect(FakePc.made).toHaveLength(1)
    const warm = FakePc.made[0] as FakePc
    expect(warm.config).toEqual({ iceServers: [], certificates: [cert] })
    expect(warm.channels).toEqual([{ ordered: true }])
    const servers = [{ urls: 'stun:stun.example:3478' }]
    const Peer = withCertificate(cert)
    const p = new Peer({ initiator: true, config: { iceServers: servers }, channelConfig: { ordered: true } })
    const out = signals(p)
    expect(FakePc.made).toHaveLength(1)
    expect(p._pc).toBe(warm as unknown as RTCPeerConnection)
    expect(warm.configs).toEqual([{ iceServers: servers, certificates: [cert] }])
    await vi.waitFor(() => expect(out).toEqual([{ type: 'offer', sdp: 'v=0 offer 1' }]))
    // Taken once: the next dial makes its own connection.
    new Peer({ initiator: true, config: { iceServers: [] }, channelConfig: { ordered: true } })
    expect(FakePc.made).toHaveLength(2)
  })

  it('its offer goes out as it is set, not after: once, and set all the same', async () => {
    let set!: () => void
    class SlowPc extends FakePc {
      override setLocalDescription(d: RTCSessionDescriptionInit) {
        return new Promise<void>((resolve) => {
          set = () => {
            this.localDescription = d
            resolve()
          }
        })
      }
    }
    g.RTCPeerConnection = SlowPc
    prewarmOffer(cert)
    const p = new (withCertificate(cert))({
      initiator: true,
      config: { iceServers: [] },
      channelConfig: { ordered: true },
    })
    const out = signals(p)
    await vi.waitFor(() => expect(out).toEqual([{ type: 'offer', sdp: 'v=0 offer 1' }]))
    const pc = FakePc.made[0] as FakePc
    expect(pc.localDescription).toBeNull()
    set()
    await vi.waitFor(() => expect(pc.localDescription).toEqual({ type: 'offer', sdp: 'v=0 offer 1' }))
    await new Promise((r) => setTimeout(r, 10))
    expect(out).toHaveLength(1)
  })

  it('a signal listener that throws on its early offer ends the connection (no unhandled rejection)', async () => {
    g.RTCPeerConnection = FakePc
    prewarmOffer(cert)
    const p = new (withCertificate(cert))({
      initiator: true,
      config: { iceServers: [] },
      channelConfig: { ordered: true },
    })
    const errors: { code?: string }[] = []
    p.on('error', (e: never) => errors.push(e))
    p.on('signal', () => {
      throw new Error('listener')
    })
    await vi.waitFor(() => expect(errors.map((e) => e.code)).toEqual(['ERR_SET_LOCAL_DESCRIPTION']))
    expect(p.destroyed).toBe(true)
    expect((FakePc.made[0] as FakePc).closed).toBe(true)
  })

  it('a connection unlike it (answering, another certificate or channel, a Node stack) makes its own', () => {
    g.RTCPeerConnection = FakePc
    prewarmOffer(cert)
    const base = {
      initiator: true,
      config: { iceServers: [], certificates: [cert] },
      channelConfig: { ordered: true },
    }
    new NativePeer({ ...base, initiator: false })
    new NativePeer({ ...base, config: { iceServers: [], certificates: [other] } })
    new NativePeer({ ...base, channelConfig: { ordered: false } })
    new NativePeer({ ...base, wrtc: { RTCPeerConnection: FakePc } as never })
    expect(FakePc.made).toHaveLength(5)
    expect((FakePc.made[0] as FakePc).closed).toBe(false) // still there for a dial like it
    new NativePeer(base)
    expect(FakePc.made).toHaveLength(5)
  })

  it('one no dial takes is closed after 30 s, or when its node closes; one at a time', () => {
    vi.useFakeTimers()
    g.RTCPeerConnection = FakePc
    prewarmOffer(cert)
    prewarmOffer(cert)
    expect(FakePc.made).toHaveLength(1)
    vi.advanceTimersByTime(29_000)
    expect((FakePc.made[0] as FakePc).closed).toBe(false)
    vi.advanceTimersByTime(1_000)
    expect((FakePc.made[0] as FakePc).closed).toBe(true)
    prewarmOffer(cert)
    dropWarmOffer(other) // another node's: not this one
    expect((FakePc.made[1] as FakePc).closed).toBe(false)
    dropWarmOffer(cert)
    expect((FakePc.made[1] as FakePc).closed).toBe(true)
    new NativePeer({ initiator: true, config: { certificates: [cert] }, channelConfig: { ordered: true } })
    expect(FakePc.made).toHaveLength(3)
  })
})

describe('the fingerprints a WebRTC pipe gives the link transcript', () => {
  /** A stack whose connection shows no descriptions yet (a loaded page: the channel opened first). */
  class LaggingPeer {
    static last: LaggingPeer | undefined
    _pc: {
      localDescription: RTCSessionDescriptionInit | null
      remoteDescription: RTCSessionDescriptionInit | null
    } = { localDescription: null, remoteDescription: null }
    private handlers = new Map<string, ((...a: unknown[]) => void)[]>()
    fed: unknown[] = []
    constructor() {
      LaggingPeer.last = this
    }
    on(e: string, f: (...a: unknown[]) => void) {
      this.handlers.set(e, [...(this.handlers.get(e) ?? []), f])
    }
    once(e: string, f: (...a: unknown[]) => void) {
      this.on(e, f)
    }
    emit(e: string, ...a: unknown[]) {
      for (const f of this.handlers.get(e) ?? []) f(...a)
    }
    signal(d: unknown) {
      this.fed.push(d)
    }
    send() {}
    destroy() {}
  }
  const sdp = (fp: string) => `v=0\r\na=fingerprint:sha-256 ${fp}\r\n`

  it('from the offer and answer as they went out and came in, while the connection does not show them yet', () => {
    const pipe = createWebRtcPipe({
      SimplePeer: LaggingPeer as unknown as SimplePeerCtor,
      initiator: true,
      sendSignal: () => {},
    })
    const peer = LaggingPeer.last as LaggingPeer
    expect(pipe.fingerprints()).toBeNull()
    peer.emit('signal', { type: 'offer', sdp: sdp('AA:BB') })
    expect(pipe.fingerprints()).toBeNull() // no answer yet
    expect(pipe.signal({ type: 'candidate', candidate: {} })).toBe(true)
    expect(pipe.signal({ type: 'answer', sdp: sdp('cc:dd') })).toBe(true)
    // Nothing after the answer but candidates reaches the stack: a second answer, a provisional one,
    // a rollback, an offer, a renegotiation (a server moving the DTLS session elsewhere).
    for (const x of [
      { type: 'answer', sdp: sdp('EE:FF') },
      { type: 'pranswer', sdp: sdp('EE:FF') },
      { type: 'rollback' },
      { type: 'offer', sdp: sdp('EE:FF') },
      { renegotiate: true },
      { transceiverRequest: { kind: 'audio' } },
    ])
      expect(pipe.signal(x)).toBe(false)
    expect(peer.fed.map((d) => (d as { type: string }).type)).toEqual(['candidate', 'answer'])
    expect(pipe.fingerprints()).toEqual({ local: 'sha-256 AA:BB', remote: 'sha-256 CC:DD' })
    // Once the connection shows its descriptions, they are what counts.
    peer._pc = {
      localDescription: { type: 'offer', sdp: sdp('11:22') },
      remoteDescription: { type: 'answer', sdp: sdp('33:44') },
    }
    expect(pipe.fingerprints()).toEqual({ local: 'sha-256 11:22', remote: 'sha-256 33:44' })
  })

  it('an answering pipe takes one offer; an SDP whose fingerprint lines disagree binds nothing', () => {
    const pipe = createWebRtcPipe({
      SimplePeer: LaggingPeer as unknown as SimplePeerCtor,
      initiator: false,
      sendSignal: () => {},
    })
    expect(pipe.signal({ type: 'answer', sdp: sdp('AA') })).toBe(false)
    expect(pipe.signal({ type: 'offer', sdp: '' })).toBe(false)
    // A session-level line for one certificate, a media-level one for another (stacks use the media's).
    const two = `v=0\r\na=fingerprint:sha-256 AA:BB\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-256 CC:DD\r\n`
    expect(pipe.signal({ type: 'offer', sdp: two })).toBe(true)
    expect(pipe.signal({ type: 'offer', sdp: sdp('CC:DD') })).toBe(false)
    ;(LaggingPeer.last as LaggingPeer).emit('signal', { type: 'answer', sdp: sdp('11:22') })
    expect(pipe.fingerprints()).toBeNull()
    expect(sdpFingerprint(two)).toBeNull()
    const agreeing = `v=0\r\na=fingerprint:sha-256 aa:bb\r\nm=application 9\r\na=fingerprint:sha-256 AA:BB\r\n`
    expect(sdpFingerprint(agreeing)).toBe('sha-256 AA:BB')
  })
})
