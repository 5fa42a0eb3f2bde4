/**
 * The WebRTC stacks for Node, adapted for simple-peer: what each stack gets
 * wrong without the adapter is what these tests check it gets right with it
 * (writable descriptions, the promise form of getStats, the init-dictionary
 * RTCSessionDescription, node-datachannel's candidates held until the
 * answer), then real connections on each stack: simple-peer pairs, and
 * weft nodes on an in-process signal server with relay 'never'.
 */
import { createRequire } from 'node:module'
import SimplePeer from 'simple-peer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSignalServer, type SignalServer } from '../../signal-server/index.ts'
import { until } from '../../test/until.ts'
import { joinOverlay } from '../index.ts'
import type { WeftNode } from '../weft-node.ts'
import {
  type AdaptedWrtc,
  adaptWrtc,
  identifyWrtc,
  loadWrtc,
  WRTC_MODULES,
  WRTC_STACKS,
  withoutCandidates,
} from './wrtc-adapter.ts'

type Stack = (typeof WRTC_STACKS)[number]
const require = createRequire(import.meta.url)
const modules = new Map<Stack, unknown>()
const adapted = new Map<Stack, AdaptedWrtc>()

beforeAll(async () => {
  for (const s of WRTC_STACKS) {
    const mod: unknown = await import(WRTC_MODULES[s])
    modules.set(s, mod)
    adapted.set(s, adaptWrtc(mod))
  }
}, 60_000)

const mod = (s: Stack) => modules.get(s)
const wrtc = (s: Stack) => adapted.get(s) as AdaptedWrtc

/** The connection surface the tests use (the stacks' own typings differ). */
interface Pc {
  createDataChannel(label: string): unknown
  createOffer(): Promise<{ type: string; sdp?: string }>
  createAnswer(): Promise<{ type: string; sdp?: string }>
  setLocalDescription(d?: unknown): Promise<unknown>
  setRemoteDescription(d: unknown): Promise<void>
  readonly localDescription: { type: string; sdp: string } | null
  readonly iceGatheringState: string
  getStats: ((...args: unknown[]) => Promise<{ forEach(fn: (v: unknown) => void): void }>) & {
    length: number
  }
  onicecandidate: ((e: { candidate: unknown }) => void) | null
  addEventListener(type: string, fn: () => void): void
  close(): void
}
const newPc = (w: { RTCPeerConnection: unknown }): Pc =>
  new (w.RTCPeerConnection as new (c: RTCConfiguration) => Pc)({ iceServers: [] })

describe('identifying and adapting a stack', () => {
  it('tells the three stacks apart by their modules, also behind an ESM default export', () => {
    for (const s of WRTC_STACKS) expect(identifyWrtc(mod(s))).toBe(s)
    // `import * as wrtc from '@roamhq/wrtc'`: the CommonJS exports are the namespace's default.
    expect(identifyWrtc({ default: require('@roamhq/wrtc') })).toBe('@roamhq/wrtc')
    expect(identifyWrtc({})).toBeUndefined()
    expect(identifyWrtc(null)).toBeUndefined()
    expect(identifyWrtc({ RTCPeerConnection: class {}, RTCIceCandidate: class {} })).toBe('other')
  })

  it('refuses what is not a WebRTC implementation, naming what it expected', async () => {
    expect(() => adaptWrtc({})).toThrow(/RTCPeerConnection/)
    expect(() => adaptWrtc('werift')).toThrow(TypeError)
    expect(() => adaptWrtc({ RTCPeerConnection: class {} })).toThrow(/RTCIceCandidate/)
    const server = await createSignalServer({ port: 0, host: '127.0.0.1', log: () => {} })
    try {
      await expect(joinOverlay({ signal: server.address, wrtc: { nope: 1 } })).rejects.toThrow(TypeError)
    } finally {
      await server.close()
    }
  })

  it('is idempotent, and passes @roamhq/wrtc (browser-like already) through', () => {
    expect(adaptWrtc(wrtc('werift'))).toBe(wrtc('werift'))
    const roam = mod('@roamhq/wrtc') as { RTCPeerConnection: unknown; RTCSessionDescription: unknown }
    expect(wrtc('@roamhq/wrtc').RTCPeerConnection).toBe(roam.RTCPeerConnection)
    expect(wrtc('@roamhq/wrtc').RTCSessionDescription).toBe(roam.RTCSessionDescription)
    for (const s of WRTC_STACKS) expect(wrtc(s).stack).toBe(s)
  })

  it('loads a stack by name, the default first without one, and says why a name does not load', async () => {
    expect((await loadWrtc('werift'))?.stack).toBe('werift')
    expect((await loadWrtc())?.stack).toBe('node-datachannel')
    await expect(loadWrtc('nope' as Stack)).rejects.toThrow(/nope/)
  })
})

describe.each(['node-datachannel', 'werift'] as const)('%s, adapted', (stack) => {
  it('offers and answers are plain objects whose sdp simple-peer may write', async () => {
    const a = newPc(wrtc(stack))
    const b = newPc(wrtc(stack))
    try {
      a.createDataChannel('x')
      const offer = await a.createOffer()
      expect(Object.getPrototypeOf(offer)).toBe(Object.prototype)
      expect(offer.type).toBe('offer')
      offer.sdp = `${offer.sdp}` // what simple-peer's sdpTransform does; threw on both stacks
      await a.setLocalDescription(offer)
      await b.setRemoteDescription(offer)
      const answer = await b.createAnswer()
      answer.sdp = `${answer.sdp}`
      expect(answer.type).toBe('answer')
      expect(answer.sdp).toMatch(/^a=fingerprint:/m)
    } finally {
      a.close()
      b.close()
    }
  })

  it('getStats is the promise form (no declared parameter) and resolves to a report', async () => {
    const raw = newPc(mod(stack) as { RTCPeerConnection: unknown })
    const pc = newPc(wrtc(stack))
    try {
      if (stack === 'werift') expect(raw.getStats.length).toBe(1) // what sent simple-peer down its callback branch
      expect(pc.getStats.length).toBe(0)
      const report = await pc.getStats()
      expect(typeof report.forEach).toBe('function')
    } finally {
      raw.close()
      pc.close()
    }
  })

  it('RTCSessionDescription takes the init dictionary and stays writable', () => {
    const D = wrtc(stack).RTCSessionDescription
    const d = new D({ type: 'answer', sdp: 'v=0\r\n' })
    expect(d).toMatchObject({ type: 'answer', sdp: 'v=0\r\n' })
    d.sdp = 'v=1\r\n'
    expect(d.sdp).toBe('v=1\r\n')
  })
})

describe('node-datachannel: an offer keeps its candidates until the answer', () => {
  it('strips candidate lines and nothing else', () => {
    const sdp =
      'v=0\r\na=fingerprint:sha-256 AA\r\na=candidate:1 1 UDP 1 10.0.0.1 9 typ host\r\na=end-of-candidates\r\n'
    expect(withoutCandidates(sdp)).toBe('v=0\r\na=fingerprint:sha-256 AA\r\n')
  })

  it('holds candidate events and SDP lines while the offer is out, and hands them over with the answer', async () => {
    const raw = newPc(mod('node-datachannel') as { RTCPeerConnection: unknown })
    const a = newPc(wrtc('node-datachannel'))
    const b = newPc(wrtc('node-datachannel'))
    try {
      let rawEvents = 0
      let events = 0
      raw.onicecandidate = (e) => {
        if (e.candidate) rawEvents++
      }
      a.onicecandidate = (e) => {
        if (e.candidate) events++
      }
      for (const pc of [raw, a]) {
        pc.createDataChannel('x')
        await pc.setLocalDescription(await pc.createOffer())
      }
      await until(
        'both gathered',
        () => raw.iceGatheringState === 'complete' && a.iceGatheringState === 'complete',
      )
      // Unadapted, the candidates go out at once, and into the SDP simple-peer sends.
      expect(rawEvents).toBeGreaterThan(0)
      expect(raw.localDescription?.sdp).toMatch(/^a=candidate:/m)
      expect(events).toBe(0)
      const offer = a.localDescription
      expect(offer?.type).toBe('offer')
      expect(offer?.sdp).toMatch(/^a=fingerprint:/m)
      expect(offer?.sdp).not.toMatch(/^a=candidate:/m)
      await b.setRemoteDescription(offer)
      await a.setRemoteDescription(await b.createAnswer())
      expect(events).toBe(rawEvents)
    } finally {
      for (const pc of [raw, a, b]) pc.close()
    }
  })
})

/**
 * Connect two simple-peers. `holdAnswerMs`: the answerer's signals reach
 * the offerer only after this long, the way an answer through a busy signal
 * server lags; `connectedEarly` tells whether either side's ICE connected
 * before that, which is how libdatachannel came to fail its DTLS handshake.
 */
async function connectPair(
  offerer: unknown,
  answerer: unknown,
  holdAnswerMs = 0,
): Promise<{ error?: string; connectedEarly: boolean }> {
  const a = new SimplePeer({
    initiator: true,
    trickle: true,
    wrtc: offerer as never,
    config: { iceServers: [] },
  })
  const b = new SimplePeer({ trickle: true, wrtc: answerer as never, config: { iceServers: [] } })
  let released = holdAnswerMs === 0
  let connectedEarly = false
  const watch = (s: string) => {
    if (!released && (s === 'connected' || s === 'completed')) connectedEarly = true
  }
  a.on('iceStateChange', watch)
  b.on('iceStateChange', watch)
  const release = new Promise<void>((r) =>
    setTimeout(() => {
      released = true
      r()
    }, holdAnswerMs),
  )
  a.on('signal', (s) => b.signal(s))
  b.on('signal', (s) => void release.then(() => !a.destroyed && a.signal(s)))
  try {
    const error = await new Promise<string | undefined>((resolve) => {
      let n = 0
      const done = () => ++n === 2 && resolve(undefined)
      const fail = (err: Error & { code?: string }) => resolve(`${err.code}: ${err.message}`)
      a.once('connect', done)
      b.once('connect', done)
      a.once('error', fail)
      b.once('error', fail)
    })
    return error === undefined ? { connectedEarly } : { error, connectedEarly }
  } finally {
    a.destroy()
    b.destroy()
  }
}

describe('simple-peer connects on each stack', () => {
  const pairs: [Stack, Stack][] = [
    ['node-datachannel', 'node-datachannel'],
    ['werift', 'werift'],
    ['@roamhq/wrtc', '@roamhq/wrtc'],
    ['node-datachannel', '@roamhq/wrtc'],
    ['@roamhq/wrtc', 'werift'],
    ['werift', 'node-datachannel'],
  ]
  it.each(pairs)('%s offers, %s answers', async (offerer, answerer) => {
    expect(await connectPair(wrtc(offerer), wrtc(answerer))).toEqual({ connectedEarly: false })
  })

  it('node-datachannel: nothing connects before the answer is back, so a late answer is no race', async () => {
    const ndc = wrtc('node-datachannel')
    // Unheld (the same stack, adapted as an unknown one): the answerer connects from the offer's
    // candidates while the answer is still away; libdatachannel's DTLS then failed in 1 dial of 4.
    const raw = mod('node-datachannel') as Record<string, unknown>
    const unheld = adaptWrtc({
      RTCPeerConnection: raw.RTCPeerConnection,
      RTCSessionDescription: raw.RTCSessionDescription,
      RTCIceCandidate: raw.RTCIceCandidate,
    })
    expect(unheld.stack).toBe('other')
    expect((await connectPair(unheld, ndc, 500)).connectedEarly).toBe(true)
    for (let i = 0; i < 3; i++) expect(await connectPair(ndc, ndc, 500)).toEqual({ connectedEarly: false })
    expect(await connectPair(ndc, wrtc('@roamhq/wrtc'), 500)).toEqual({ connectedEarly: false })
  })
})

describe('weft nodes on each stack, direct links only', () => {
  let server: SignalServer
  const nodes: WeftNode[] = []
  beforeAll(async () => {
    server = await createSignalServer({ port: 0, host: '127.0.0.1', log: () => {} })
  })
  afterAll(async () => {
    // Together: each close lingers about a second for its leave to spread (one by one, seconds per pair).
    await Promise.all(nodes.splice(0).map((n) => n.close()))
    await server.close()
  })
  const join = async (network: string, w: unknown, extra: Record<string, unknown> = {}) => {
    const n = await joinOverlay({
      signal: server.address,
      network,
      relay: 'never',
      wrtc: w,
      ...extra,
    })
    nodes.push(n)
    return n
  }

  it.each([
    ['node-datachannel', 'node-datachannel'],
    ['werift', 'werift'],
    ['@roamhq/wrtc', '@roamhq/wrtc'],
    ['werift', 'node-datachannel'],
  ] as [Stack, Stack][])('%s and %s link over WebRTC and answer a request', async (s1, s2) => {
    const network = `stacks-${s1}-${s2}`.replace(/[^a-z-]/g, '')
    // The modules as a user imports them: the adapter is applied by joinOverlay.
    const a = await join(network, mod(s1))
    const b = await join(network, mod(s2))
    b.handle('add', (d) => (d as { x: number; y: number }).x + (d as { x: number; y: number }).y)
    await until('a linked to b', () => a.peers().some((p) => p.id === b.id))
    expect(a.peers()).toEqual([{ id: b.id, transport: 'webrtc' }])
    expect(await a.request(b.id, 'add', { x: 2, y: 40 })).toBe(42)
    const big = crypto.getRandomValues(new Uint8Array(1 << 16)).map((v, i) => v ^ i)
    const sent = new Uint8Array(1 << 20).map((_, i) => big[i & 0xffff] as number)
    const got = new Promise<Uint8Array>((resolve) => b.subscribe('big', (d) => resolve(d as Uint8Array)))
    await a.send(b.id, 'big', sent)
    // (Not toEqual: vitest compares a megabyte element by element for seconds.)
    expect(Buffer.compare(await got, sent)).toBe(0)
  })

  it('without a wrtc option, a node loads the installed default and links directly', async () => {
    const n = await join('stacks-default', undefined)
    const m = await join('stacks-default', undefined)
    await until('linked', () => n.peers().length === 1)
    expect(n.peers()).toEqual([{ id: m.id, transport: 'webrtc' }])
  })

  const broken = {
    RTCPeerConnection: class {
      constructor() {
        throw new Error('no UDP sockets in this sandbox')
      }
    },
    RTCSessionDescription: class {},
    RTCIceCandidate: class {},
  }

  it("relay 'never': a direct link that fails says why, in the NoRouteError and a counter", async () => {
    const a = await join('stacks-broken', broken)
    // Any id above a's: a offers first, so its own WebRTC fails before a signal leaves.
    const err = await a.request('f'.repeat(40), 'x', null).catch((e: Error) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as Error).name).toBe('NoRouteError')
    expect((err as Error).message).toContain('ERR_PC_CONSTRUCTOR: no UDP sockets in this sandbox')
    expect(a.stats()['dial.webrtc-failed.ERR_PC_CONSTRUCTOR']).toBe(1)
  })

  it("relay 'auto': the relay link that replaces a failed direct one is counted with the WebRTC error", async () => {
    const a = await join('stacks-fallback', broken, { relay: 'auto' })
    const b = await join('stacks-fallback', mod('node-datachannel'), { relay: 'auto' })
    await until('linked', () => a.peers().length === 1)
    expect(a.peers()).toEqual([{ id: b.id, transport: 'relay' }])
    expect(a.stats()['dial.webrtc-failed.ERR_PC_CONSTRUCTOR']).toBeGreaterThanOrEqual(1)
    expect(a.stats()['dial.relay-fallback']).toBeGreaterThanOrEqual(1)
  })
})
