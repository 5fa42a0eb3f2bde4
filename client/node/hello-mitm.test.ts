/**
 * A hostile signal server tries to stand in the middle of a direct link
 * whose proofs are made before the channel opens (attempt-hello.ts). It
 * passes b's offer (with b's hello) on to a and keeps a's answer; then it
 * sends b a provisional answer with a's SDP and its own answer carrying a's
 * hello, and sends a a renegotiating offer of its own, so that each end's
 * DTLS session goes to the server while the proofs bind the real peers'
 * fingerprints. @roamhq/wrtc takes a renegotiation as Chromium does (a new
 * DTLS certificate tears the association down and sets up a new one).
 * Found by review; before the fix both ends opened a `webrtc` link through
 * the server, which read every frame. Now each pipe takes one description,
 * and neither end gets a direct link: both fall back to the relay.
 */
import SimplePeer from 'simple-peer'
import { io } from 'socket.io-client'
import { afterEach, expect, it } from 'vitest'
import { generateIdentity } from '../../shared/identity/keys.ts'
import { createSignalServer } from '../../signal-server/index.ts'
import { loadWrtc } from '../links/wrtc-adapter.ts'
import { OverlayNode } from '../overlay.ts'
import type { SignalData } from './signal-data.ts'

const cleanup: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

type Rtc = SignalData & { t: 'rtc' }
type Sdp = { type: string; sdp: string; candidate?: RTCIceCandidateInit }

it("a server that renegotiates each end onto itself gets no direct link, and reads no link's frames", async () => {
  const s = await createSignalServer({ port: 0, host: '127.0.0.1', puzzleBits: 0 })
  cleanup.push(() => s.close())
  const wrtc = await loadWrtc('@roamhq/wrtc')
  const { RTCPeerConnection: Pc } = wrtc as unknown as { RTCPeerConnection: typeof RTCPeerConnection }
  const hooks: Record<string, (data: Rtc) => boolean> = {}
  const make = async (name: string) => {
    const identity = await generateIdentity({ puzzleBits: 0 })
    const node = new OverlayNode(
      { SimplePeer: SimplePeer as never, io: io as never, identity },
      { signal: s.address, network: 'mitm', puzzleBits: 0, wrtc, directTimeoutMs: 15_000 },
    )
    cleanup.push(() => node.close())
    const client = node.signalClient
    const send = client.signal.bind(client)
    // What the node hands the server: the server keeps what it likes.
    client.signal = (to, data) => {
      const d = data as SignalData
      return d.t === 'rtc' && hooks[name]?.(d) ? Promise.resolve() : send(to, data)
    }
    return node
  }
  const a = await make('a')
  const b = await make('b')
  const inject = (node: OverlayNode, from: string, data: unknown) =>
    (node.signalClient as unknown as { emit(e: string, p: unknown): void }).emit('signal', { from, data })
  const noCandidates = (sdp: string) =>
    sdp
      .split('\r\n')
      .filter((l) => !l.startsWith('a=candidate') && !l.startsWith('a=end-of-candidates'))
      .join('\r\n')

  // The server's own two ends, relaying between them whatever they get.
  const toA = new Pc({ iceServers: [] })
  const toB = new Pc({ iceServers: [] })
  cleanup.push(() => {
    toA.close()
    toB.close()
  })
  const read: Uint8Array[] = []
  const chA = toA.createDataChannel('m')
  let chB: RTCDataChannel | undefined
  chA.binaryType = 'arraybuffer'
  chA.onmessage = (e) => {
    read.push(new Uint8Array(e.data as ArrayBuffer))
    if (chB?.readyState === 'open') chB.send(e.data as ArrayBuffer)
  }
  toB.ondatachannel = (e) => {
    chB = e.channel
    chB.binaryType = 'arraybuffer'
    chB.onmessage = (m) => {
      read.push(new Uint8Array(m.data as ArrayBuffer))
      if (chA.readyState === 'open') chA.send(m.data as ArrayBuffer)
    }
  }
  const candidate = (c: RTCIceCandidate) => ({
    type: 'candidate',
    candidate: { candidate: c.candidate, sdpMLineIndex: c.sdpMLineIndex, sdpMid: c.sdpMid },
  })
  toA.onicecandidate = (e) => {
    if (e.candidate) inject(a, b.id, { t: 'rtc', s: candidate(e.candidate), mesh: true, o: true })
  }
  toB.onicecandidate = (e) => {
    if (e.candidate) inject(b, a.id, { t: 'rtc', s: candidate(e.candidate), mesh: true })
  }

  let phase = 0
  const bCandidates: RTCIceCandidateInit[] = []
  hooks.b = (data) => {
    const sdp = data.s as Sdp
    if (sdp.type === 'offer' && phase === 0) {
      inject(a, b.id, { ...data, s: { ...sdp, sdp: noCandidates(sdp.sdp) } })
      void toB.setRemoteDescription({ type: 'offer', sdp: sdp.sdp }).then(() => {
        for (const c of bCandidates.splice(0)) void toB.addIceCandidate(c).catch(() => {})
      })
    } else if (sdp.type === 'candidate' && sdp.candidate) {
      if (toB.remoteDescription) void toB.addIceCandidate(sdp.candidate).catch(() => {})
      else bCandidates.push(sdp.candidate)
    }
    return true // nothing of b's reaches a but what the server makes
  }
  hooks.a = (data) => {
    const sdp = data.s as Sdp
    if (sdp.type === 'answer' && phase === 0) {
      phase = 1
      void attack({ ...data, s: { ...sdp, sdp: noCandidates(sdp.sdp) } })
    } else if (sdp.type === 'answer') void toA.setRemoteDescription(sdp as RTCSessionDescriptionInit)
    else if (sdp.type === 'candidate' && sdp.candidate && phase >= 2)
      void toA.addIceCandidate(sdp.candidate).catch(() => {})
    return true
  }
  async function attack(aAnswer: Rtc) {
    // b: a provisional answer with a's SDP, then the server's own answer carrying a's hello.
    inject(b, a.id, { t: 'rtc', s: { type: 'pranswer', sdp: (aAnswer.s as Sdp).sdp }, mesh: true })
    await new Promise((r) => setTimeout(r, 200))
    await toB.setLocalDescription(await toB.createAnswer())
    inject(b, a.id, {
      t: 'rtc',
      s: { type: 'answer', sdp: toB.localDescription?.sdp },
      mesh: true,
      h: aAnswer.h,
    })
    // a: a renegotiating offer from the server's other end.
    phase = 2
    await toA.setLocalDescription(await toA.createOffer())
    inject(a, b.id, { t: 'rtc', s: { type: 'offer', sdp: toA.localDescription?.sdp }, mesh: true, o: true })
  }

  await a.start()
  await b.start() // resolves at b's first open link: over the relay, the direct attempt given up
  const end = Date.now() + 30_000
  while (a.links.get(b.id)?.state !== 'open' && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
  a.handle('echo', (v) => v)
  expect(await b.request(a.id, 'echo', 'secret-over-the-link')).toBe('secret-over-the-link')
  expect(a.links.get(b.id)?.transport).toBe('relay')
  expect(b.links.get(a.id)?.transport).toBe('relay')
  // The renegotiating offer never reached a's stack.
  expect(a.stats()['drop.signal.description']).toBeGreaterThanOrEqual(1)
  const text = new TextDecoder().decode(new Uint8Array(read.flatMap((x) => [...x])))
  expect(text).not.toContain('secret-over-the-link')
}, 60_000)
