/**
 * WebRTC for Node peers: the `wrtc` option of joinOverlay takes any of the
 * three WebRTC stacks that install from the registry, as the module a user
 * imports, and this adapter makes each behave the way simple-peer expects a
 * browser to behave.
 *
 *   node-datachannel/polyfill   libdatachannel (C++), prebuilt per platform
 *   werift                      pure TypeScript
 *   @roamhq/wrtc                Google's libwebrtc (a fork of node-webrtc), prebuilt
 *
 * simple-peer writes `offer.sdp = …` on what createOffer/createAnswer return
 * and builds descriptions with `new RTCSessionDescription({ type, sdp })`.
 * node-datachannel's and werift's descriptions have a read-only `sdp`, and
 * werift's constructor is `(sdp, type)`; werift's `getStats(selector?)`
 * declares one parameter, which simple-peer takes for the legacy callback
 * form, so its stats callback (and with it `connect`) never comes. The
 * adapter subclasses the stack's RTCPeerConnection so that offers and
 * answers are plain `{ type, sdp }` objects, getStats is the promise form,
 * and RTCSessionDescription builds plain objects from an init dictionary.
 * @roamhq/wrtc already behaves like a browser and passes through unchanged.
 *
 * node-datachannel needs one more thing. A browser that offers and is
 * reached by the answerer's DTLS handshake before the answer has arrived
 * waits for the answer's certificate fingerprint; libdatachannel fails the
 * handshake ("certificate verify failed") and the connection with it. The
 * answerer gets there first whenever it can start ICE checks from the
 * offer's candidates while the answer is still on its way through the
 * signal server (measured here: 3 dials in 12 between two Node peers). So
 * a node-datachannel connection keeps its candidates to itself, out of the
 * offer's SDP and the trickle, until it has the other side's description;
 * then the offerer's own checks open the path and the handshake finds the
 * fingerprint in place.
 */

/** What the adapter needs of a stack's RTCPeerConnection (simple-peer uses more, untouched). */
interface PeerConnectionLike {
  createOffer(options?: RTCOfferOptions): Promise<unknown>
  createAnswer(options?: RTCAnswerOptions): Promise<unknown>
  setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void>
  getStats(selector?: unknown): Promise<unknown>
  readonly localDescription: unknown
  close(): void
}

/** The part of a WebRTC implementation simple-peer uses. */
export interface WrtcImplementation {
  RTCPeerConnection: new (config?: RTCConfiguration) => PeerConnectionLike
  RTCSessionDescription: new (init: RTCSessionDescriptionInit) => RTCSessionDescriptionInit
  RTCIceCandidate: new (init: RTCIceCandidateInit) => unknown
}

/** Which stack a `wrtc` module is. 'other': an implementation we do not know, adapted all the same. */
export type WrtcStack = 'node-datachannel' | 'werift' | '@roamhq/wrtc' | 'other'

/** A WebRTC implementation ready for simple-peer, and the stack it came from. */
export interface AdaptedWrtc extends WrtcImplementation {
  readonly stack: WrtcStack
}

/** The module each stack is loaded from, in the order a Node peer tries them (the default first). */
export const WRTC_MODULES: Readonly<Record<Exclude<WrtcStack, 'other'>, string>> = {
  'node-datachannel': 'node-datachannel/polyfill',
  werift: 'werift',
  '@roamhq/wrtc': '@roamhq/wrtc',
}

type Ctor = abstract new (...args: never[]) => unknown
type AnyRecord = Record<string, unknown>

const isCtor = (v: unknown): v is Ctor => typeof v === 'function'
const isRecord = (v: unknown): v is AnyRecord =>
  (typeof v === 'object' || typeof v === 'function') && v !== null

/**
 * The implementation object inside what the user passed: the module itself,
 * or its `default` export (`import * as wrtc from '@roamhq/wrtc'` gives a
 * namespace whose `default` is the CommonJS exports), or undefined.
 */
function implementationOf(mod: unknown): AnyRecord | undefined {
  if (!isRecord(mod)) return undefined
  if (isCtor(mod.RTCPeerConnection)) return mod
  const d = mod.default
  return isRecord(d) && isCtor(d.RTCPeerConnection) ? d : undefined
}

/** Tell the stacks apart by what each module exports and the others do not. */
export function identifyWrtc(mod: unknown): WrtcStack | undefined {
  if (isAdapted(mod)) return mod.stack
  const impl = implementationOf(mod)
  if (!impl) return undefined
  if ('nonstandard' in impl && 'getUserMedia' in impl) return '@roamhq/wrtc'
  if ('RTCIceGatherer' in impl && 'RtpPacket' in impl) return 'werift'
  if ('RTCError' in impl && 'RTCSctpTransport' in impl && !('MediaStream' in impl)) return 'node-datachannel'
  return 'other'
}

const adapted = new WeakSet<object>()

function isAdapted(v: unknown): v is AdaptedWrtc {
  return isRecord(v) && adapted.has(v)
}

/** `{ type, sdp }` as a plain object whose fields simple-peer may write. */
function plainDescription(d: unknown): RTCSessionDescriptionInit {
  const o = isRecord(d) ? d : {}
  const type = o.type as RTCSdpType
  return typeof o.sdp === 'string' ? { type, sdp: o.sdp } : { type }
}

/** An SDP without its candidate lines (they travel by trickle instead). */
export function withoutCandidates(sdp: string): string {
  return sdp
    .split(/\r?\n/)
    .filter((line) => !line.startsWith('a=candidate:') && line !== 'a=end-of-candidates')
    .join('\r\n')
}

type PeerConnectionCtor = WrtcImplementation['RTCPeerConnection']

/** Offers and answers as plain objects, and the promise form of getStats. */
function plainPeerConnection(Base: PeerConnectionCtor): PeerConnectionCtor {
  return class PlainPeerConnection extends Base {
    override async createOffer(options?: RTCOfferOptions): Promise<RTCSessionDescriptionInit> {
      return plainDescription(await super.createOffer(options))
    }
    override async createAnswer(options?: RTCAnswerOptions): Promise<RTCSessionDescriptionInit> {
      return plainDescription(await super.createAnswer(options))
    }
    // Zero declared parameters: simple-peer picks the promise form by `getStats.length === 0`.
    override getStats(): Promise<unknown> {
      return super.getStats()
    }
  }
}

/**
 * node-datachannel: plain descriptions, and local candidates held back until
 * a remote description is applied (see the header). libdatachannel gathers
 * as soon as the data channel is created, before simple-peer even asks for
 * the offer, so holding starts with the connection; an answerer applies the
 * offer before it has candidates of its own, so it never holds any. The
 * polyfill calls `this.onicecandidate` (an instance field) for each
 * candidate, so the field becomes an accessor whose handler queues.
 */
function candidateHoldingPeerConnection(Base: PeerConnectionCtor): PeerConnectionCtor {
  return class CandidateHoldingPeerConnection extends plainPeerConnection(Base) {
    /** Candidate events not yet handed to simple-peer; undefined once a remote description is set. */
    #held: unknown[] | undefined = []
    #handler: ((event: unknown) => void) | null = null
    constructor(config?: RTCConfiguration) {
      super(config)
      const deliver = (event: unknown) => {
        if (this.#held) this.#held.push(event)
        else this.#handler?.(event)
      }
      Object.defineProperty(this, 'onicecandidate', {
        configurable: true,
        enumerable: true,
        get: () => (this.#handler ? deliver : null),
        set: (fn: unknown) => {
          this.#handler = typeof fn === 'function' ? (fn as (event: unknown) => void) : null
        },
      })
    }
    override async createOffer(options?: RTCOfferOptions): Promise<RTCSessionDescriptionInit> {
      const offer = plainDescription(await super.createOffer(options))
      return this.#held && offer.sdp !== undefined ? { ...offer, sdp: withoutCandidates(offer.sdp) } : offer
    }
    // simple-peer sends `localDescription` (it has the candidates gathered so far) rather than the offer.
    override get localDescription(): unknown {
      const d = super.localDescription
      if (!this.#held || !isRecord(d) || typeof d.sdp !== 'string') return d
      return { type: d.type, sdp: withoutCandidates(d.sdp) }
    }
    override async setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
      await super.setRemoteDescription(description)
      const held = this.#held
      this.#held = undefined
      for (const event of held ?? []) this.#handler?.(event)
    }
    override close(): void {
      this.#held = undefined
      super.close()
    }
  }
}

/** A description constructor that takes the standard init dictionary and builds a writable object. */
class PlainSessionDescription {
  type: RTCSdpType
  sdp: string
  constructor(init: RTCSessionDescriptionInit) {
    this.type = init.type
    this.sdp = init.sdp ?? ''
  }
  toJSON(): RTCSessionDescriptionInit {
    return { type: this.type, sdp: this.sdp }
  }
}

/**
 * Make a WebRTC module usable by weft's links in Node: pass it the module of
 * node-datachannel/polyfill, werift or @roamhq/wrtc (or another
 * implementation with RTCPeerConnection, RTCSessionDescription and
 * RTCIceCandidate). Idempotent. Throws a TypeError naming what is missing.
 */
export function adaptWrtc(mod: unknown): AdaptedWrtc {
  if (isAdapted(mod)) return mod
  const impl = implementationOf(mod)
  const stack = identifyWrtc(mod)
  if (!impl || !stack)
    throw new TypeError(
      'wrtc: expected a WebRTC implementation with RTCPeerConnection (node-datachannel/polyfill, werift or @roamhq/wrtc)',
    )
  const { RTCIceCandidate } = impl
  if (!isCtor(RTCIceCandidate))
    throw new TypeError(`wrtc (${stack}): the module has no RTCIceCandidate constructor`)
  const Base = impl.RTCPeerConnection as PeerConnectionCtor
  const native = stack === '@roamhq/wrtc' && isCtor(impl.RTCSessionDescription)
  const out: WrtcImplementation = {
    RTCPeerConnection: native
      ? Base
      : stack === 'node-datachannel'
        ? candidateHoldingPeerConnection(Base)
        : plainPeerConnection(Base),
    RTCSessionDescription: native
      ? (impl.RTCSessionDescription as WrtcImplementation['RTCSessionDescription'])
      : PlainSessionDescription,
    RTCIceCandidate: RTCIceCandidate as WrtcImplementation['RTCIceCandidate'],
  }
  const result: AdaptedWrtc = { ...out, stack }
  adapted.add(result)
  return result
}

/** The stacks a Node peer tries when it is given none, best first: maintained and small before large. */
export const WRTC_STACKS: readonly Exclude<WrtcStack, 'other'>[] = [
  'node-datachannel',
  'werift',
  '@roamhq/wrtc',
]

/** Is this "package `name` is not installed" (rather than "it is installed and failed to load")? */
function notInstalled(err: unknown, name: string): boolean {
  const e = err as { code?: unknown; message?: unknown } | null
  return (
    (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') &&
    typeof e.message === 'string' &&
    e.message.includes(`'${name}`)
  )
}

/**
 * Node only: load and adapt a WebRTC stack. With a name, that stack (it
 * throws when it is not installed or does not load); without one, the first
 * of WRTC_STACKS that loads, or undefined when none is installed. `tried`
 * collects why each one that was tried did not load.
 */
export async function loadWrtc(
  stack?: Exclude<WrtcStack, 'other'>,
  tried: string[] = [],
): Promise<AdaptedWrtc | undefined> {
  for (const name of stack ? [stack] : WRTC_STACKS) {
    const specifier = WRTC_MODULES[name]
    try {
      return adaptWrtc(await import(specifier))
    } catch (err) {
      const why = notInstalled(err, name) ? 'not installed' : String((err as Error)?.message ?? err)
      tried.push(`${name}: ${why}`)
      if (stack) throw new Error(`wrtc: ${name} did not load (${why})`)
    }
  }
  return undefined
}
