/**
 * A Link: an authenticated, chunked, heartbeated message channel to one
 * peer over any Pipe. Nothing above a Link knows whether WebRTC or the
 * server relay carries it.
 *
 * Handshake (Kind.Link frames, before anything else is accepted):
 *
 *   A → B  hello { pk, nonce, mesh }     B → A  hello { pk, nonce, mesh }
 *   A → B  proof { sig }                 B → A  proof { sig }
 *
 * Each proof signs utf8("weft-link/1\n" transport \n signerId \n verifierId
 * \n signerFingerprint \n verifierFingerprint \n) || verifierNonce, where the
 * fingerprints are the DTLS certificate fingerprints from this connection's
 * SDPs (empty for the relay). A signal server that put itself in the middle
 * would terminate DTLS on both sides with its own certificates, so the
 * fingerprints each end sees would not match what the other signed. The
 * verifier first checks that the key meets the network's identity puzzle
 * (before any signature work) and hashes to the id it expected. A link whose
 * hello or proof fails is closed and counted.
 *
 * Receiving is a trust boundary, and anyone can open a link (a `relay`
 * signal through the server is enough). Everything that arrives goes into
 * one bounded queue (bytes and messages; overflow is dropped and counted)
 * and is processed in arrival order by one loop:
 * - before the link is open, a message must be a small (HANDSHAKE_MAX_BYTES),
 *   whole, uncompressed Kind.Link frame holding a hello, proof or bye;
 *   anything else closes the link unread (`drop.before-auth`): nothing is
 *   reassembled, inflated or decoded for a peer that has not proven its key.
 *   (An honest peer sends nothing else before its proof, and its proof is
 *   processed, in order, before whatever it sends once open.)
 * - once open, chunks are reassembled, bodies inflated and decoded within a
 *   budget per link: inflated bytes and milliseconds of decoding per second
 *   (token buckets; past them the loop waits and the queue absorbs, then
 *   drops). A body holds at most MAX_VALUE_ITEMS msgpack objects, so one
 *   frame's decoding is bounded; the loop yields to the event loop every few
 *   milliseconds, so no peer can hold it for long.
 * When the link closes the queue is dropped and the loop stops.
 *
 * Then: ping/pong heartbeats give the RTT; silence for `deadAfterMs` closes
 * the link. Frames larger than 16 KiB travel as chunks; sends wait on the
 * pipe's buffer (backpressure) and keep their order. A failed send rejects
 * the promise its caller holds and nothing else.
 */
import { concatBytes, utf8 } from '../../shared/bytes.ts'
import type { Identity } from '../../shared/identity/keys.ts'
import { isPublicKey } from '../../shared/identity/keys.ts'
import { meetsPuzzle } from '../../shared/identity/puzzle.ts'
import { bump, type Counters } from '../../shared/protocol.ts'
import type { Value } from '../../shared/types.ts'
import { createReassembler, splitMessage } from '../../shared/wire/chunk.ts'
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeFrameBody,
  encodeFrame,
  type Frame,
  type FrameDecodeError,
  inflateBody,
  Kind,
  readFrameHeader,
  WIRE_VERSION,
} from '../../shared/wire/frame.ts'
import { encodeValue, MAX_VALUE_ITEMS } from '../../shared/wire/value.ts'
import { Emitter } from '../emitter.ts'
import type { Pipe } from './pipe.ts'

export type LinkControl =
  | { t: 'hello'; pk: Uint8Array; nonce: Uint8Array; mesh: boolean }
  | { t: 'proof'; sig: Uint8Array }
  | { t: 'ping'; ts: number }
  | { t: 'pong'; ts: number }
  | { t: 'pex'; peers: string[] }
  | { t: 'role'; mesh: boolean }
  | { t: 'bye'; reason: string }

const MAX_PEX = 32

/** Largest link message read before the link is open: a hello or a proof is under 200 bytes. */
export const HANDSHAKE_MAX_BYTES = 512

/**
 * Could this link message be read before the link is open? A whole frame of
 * at most HANDSHAKE_MAX_BYTES, uncompressed, of Kind.Link: judged by its
 * first bytes, without decoding anything.
 */
export function isHandshakePiece(piece: Uint8Array): boolean {
  return (
    piece.length <= HANDSHAKE_MAX_BYTES &&
    piece[0] === WIRE_VERSION &&
    piece[1] === Kind.Link &&
    piece[2] === 0
  )
}

/** How a link paces what it receives (see the header). */
export interface RecvLimits {
  /** Bytes of link messages waiting to be processed. @default 16 MiB */
  maxQueueBytes: number
  /** Link messages waiting to be processed. @default 4096 */
  maxQueueMessages: number
  /** Milliseconds of decoding (msgpack and validators) per second, once the burst is spent. @default 100 */
  decodeMsPerSec: number
  /** @default 200 */
  decodeBurstMs: number
  /** Inflated bytes per second, once the burst is spent. @default 32 MiB */
  inflateBytesPerSec: number
  /** @default 16 MiB */
  inflateBurstBytes: number
  /** Most msgpack objects in one frame's body. @default MAX_VALUE_ITEMS (65,536) */
  maxItems: number
}

export const DEFAULT_RECV_LIMITS: Readonly<RecvLimits> = {
  maxQueueBytes: 16 * 1024 * 1024,
  maxQueueMessages: 4096,
  decodeMsPerSec: 100,
  decodeBurstMs: 200,
  inflateBytesPerSec: 32 * 1024 * 1024,
  inflateBurstBytes: 16 * 1024 * 1024,
  maxItems: MAX_VALUE_ITEMS,
}

/** The receive loop hands the event loop back after this much work in one go. */
const SLICE_MS = 8

const nextTask = () => new Promise<void>((r) => setTimeout(r, 0))
const DEBUG =
  (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.WEFT_DEBUG === '1'

/** Validate a Kind.Link body; null for anything malformed. */
export function parseLinkControl(v: Value): LinkControl | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return null
  const o = v as Record<string, Value>
  switch (o.t) {
    case 'hello':
      return o.pk instanceof Uint8Array &&
        o.pk.length === 32 &&
        o.nonce instanceof Uint8Array &&
        o.nonce.length === 32 &&
        typeof o.mesh === 'boolean'
        ? { t: 'hello', pk: o.pk, nonce: o.nonce, mesh: o.mesh }
        : null
    case 'proof':
      return o.sig instanceof Uint8Array && o.sig.length === 64 ? { t: 'proof', sig: o.sig } : null
    case 'ping':
    case 'pong':
      return typeof o.ts === 'number' && Number.isFinite(o.ts) ? { t: o.t, ts: o.ts } : null
    case 'pex':
      return Array.isArray(o.peers) &&
        o.peers.length <= MAX_PEX &&
        o.peers.every((p) => typeof p === 'string' && /^[0-9a-f]{40}$/.test(p))
        ? { t: 'pex', peers: o.peers as string[] }
        : null
    case 'role':
      return typeof o.mesh === 'boolean' ? { t: 'role', mesh: o.mesh } : null
    case 'bye':
      return typeof o.reason === 'string' && o.reason.length <= 64 ? { t: 'bye', reason: o.reason } : null
    default:
      return null
  }
}

export interface LinkOptions {
  pipe: Pipe
  identity: Identity
  /** The id we expect at the other end (we dialled it, or the server told us who signals). */
  peer: string
  /** Do we want this link in the broadcast mesh? */
  mesh: boolean
  /** Validators for the bodies of non-Link kinds (the node's protocols). */
  validators: Partial<Record<Kind, (body: Value) => boolean>>
  /** @default 5000 */
  heartbeatMs?: number
  /** Close after this long without hearing anything. @default 20000 */
  deadAfterMs?: number
  /** Close when the handshake does not finish in time. @default 10000 */
  authTimeoutMs?: number
  /** @default 4 MiB */
  maxMessageBytes?: number
  /** Counters shared by all links of a node (drops by reason). */
  counters: Counters
  /**
   * The network's identity puzzle (shared/identity/puzzle.ts): a hello whose
   * key does not meet it closes the link (`link.refused.puzzle`) before any
   * signature work. @default 0 (no puzzle)
   */
  puzzleBits?: number
  /** Receive queue and budgets. @default DEFAULT_RECV_LIMITS */
  recv?: Partial<RecvLimits>
}

export interface LinkEvents extends Record<string, unknown> {
  open: undefined
  frame: Frame
  control: LinkControl
  close: string
}

export type LinkState = 'handshake' | 'open' | 'closed'

export class Link extends Emitter<LinkEvents> {
  readonly peer: string
  readonly transport: 'webrtc' | 'relay'
  state: LinkState = 'handshake'
  /** Smoothed round-trip time in ms (NaN until the first pong). */
  rtt = Number.NaN
  /** Did the other end ask for (or agree to) a mesh link? */
  remoteMesh = false
  localMesh: boolean
  lastUsed = Date.now()
  readonly stats = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
  readonly openedAt = Date.now()

  readonly pipe: Pipe
  private readonly opts: LinkOptions
  private readonly reassembler
  private readonly nonce = crypto.getRandomValues(new Uint8Array(32))
  private remote: { pk: Uint8Array; nonce: Uint8Array } | undefined
  private sentProof = false
  private gotProof = false
  private lastHeard = Date.now()
  private msgId = 0
  private sendChain: Promise<void> = Promise.resolve()
  private readonly timers: ReturnType<typeof setInterval>[] = []
  private authTimer: ReturnType<typeof setTimeout> | undefined
  private readonly maxBytes: number
  private readonly recv: RecvLimits
  private readonly validators: Partial<Record<Kind, (body: Value) => boolean>>
  /** Link messages waiting for the receive loop, in arrival order (from `inboxHead` on). */
  private inbox: Uint8Array[] = []
  private inboxHead = 0
  private inboxBytes = 0
  private started = false
  private pumping = false
  private decodeTokens: number
  private inflateTokens: number
  private budgetAt = performance.now()

  constructor(opts: LinkOptions) {
    super()
    this.opts = opts
    this.pipe = opts.pipe
    this.peer = opts.peer
    this.transport = opts.pipe.transport
    this.localMesh = opts.mesh
    this.maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.recv = { ...DEFAULT_RECV_LIMITS, ...opts.recv }
    this.decodeTokens = this.recv.decodeBurstMs
    this.inflateTokens = this.recv.inflateBurstBytes
    this.validators = { ...opts.validators, [Kind.Link]: (b: Value) => parseLinkControl(b) !== null }
    this.reassembler = createReassembler({
      maxMessageBytes: this.maxBytes,
      onDrop: (reason) => bump(opts.counters, `drop.chunk.${reason}`),
    })
    this.pipe.onData((b) => this.onPiece(b))
    this.pipe.onClose((reason) => this.finish(reason))
  }

  /** Begin the handshake (call once the pipe is open). */
  start(): void {
    if (this.started || this.state === 'closed') return
    this.started = true
    this.authTimer = setTimeout(() => this.close('auth-timeout'), this.opts.authTimeoutMs ?? 10_000)
    void this.sendControl({
      t: 'hello',
      pk: this.opts.identity.publicKey,
      nonce: this.nonce,
      mesh: this.localMesh,
    })
    const hb = this.opts.heartbeatMs ?? 5000
    const dead = this.opts.deadAfterMs ?? 20_000
    this.timers.push(
      setInterval(() => {
        if (Date.now() - this.lastHeard > dead) return this.close('heartbeat-timeout')
        if (this.state === 'open') void this.sendControl({ t: 'ping', ts: Date.now() })
        this.reassembler.tick(Date.now())
      }, hb),
    )
    // What arrived before start (our hello goes first, then the answers to theirs).
    this.pump()
  }

  get isMesh(): boolean {
    return this.localMesh && this.remoteMesh
  }

  /** Send a frame; resolves once it is handed to the pipe (after backpressure). */
  send(frame: Frame): Promise<void> {
    if (this.state !== 'open') return Promise.reject(new Error(`link to ${this.peer} is ${this.state}`))
    this.lastUsed = Date.now()
    return this.write(frame)
  }

  sendControl(c: LinkControl): Promise<void> {
    if (this.state === 'closed') return Promise.resolve()
    return this.write({ kind: Kind.Link, body: c as unknown as Value }).catch(() => {})
  }

  private write(frame: Frame): Promise<void> {
    const id = this.msgId++ >>> 0
    // Encode eagerly (errors such as MessageTooLargeError reach the caller), write in order.
    const encoded = encodeFrame(frame, { maxMessageBytes: this.maxBytes }).then((bytes) =>
      splitMessage(bytes, id, this.maxBytes),
    )
    // Awaited only once the sends before it are written: until then a rejection (a message too
    // large) must not count as unhandled. The caller gets it through `done`.
    encoded.catch(() => {})
    const done = this.sendChain.then(async () => {
      const pieces = await encoded
      for (const p of pieces) {
        if (this.state === 'closed') throw new Error(`link to ${this.peer} closed`)
        if (this.pipe.bufferedAmount() > 0) await this.pipe.drained()
        this.pipe.send(p)
        this.stats.bytesOut += p.length
      }
      this.stats.messagesOut++
    })
    this.sendChain = done.catch(() => {})
    return done
  }

  // ------------------------------------------------------------------ receiving

  private onPiece(piece: Uint8Array): void {
    if (this.state === 'closed') return
    this.lastHeard = Date.now()
    this.stats.bytesIn += piece.length
    const waiting = this.inbox.length - this.inboxHead
    if (waiting >= this.recv.maxQueueMessages || this.inboxBytes + piece.length > this.recv.maxQueueBytes)
      return bump(this.opts.counters, 'drop.link.recv-queue')
    this.inbox.push(piece)
    this.inboxBytes += piece.length
    this.pump()
  }

  /** Start the receive loop unless it runs (or the link has not started, or is closed). */
  private pump(): void {
    if (this.pumping || !this.started || this.state === 'closed') return
    this.pumping = true
    void this.drain()
  }

  /** The receive loop: one message at a time, in arrival order, until the queue is empty. */
  private async drain(): Promise<void> {
    let slice = performance.now()
    try {
      while (this.state !== 'closed' && this.inboxHead < this.inbox.length) {
        const piece = this.inbox[this.inboxHead] as Uint8Array
        this.inbox[this.inboxHead++] = EMPTY
        this.inboxBytes -= piece.length
        if (this.inboxHead > 1024 && this.inboxHead * 2 > this.inbox.length) {
          this.inbox = this.inbox.slice(this.inboxHead)
          this.inboxHead = 0
        }
        if (this.state === 'handshake') await this.onHandshakePiece(piece)
        else {
          const whole = this.reassembler.push(piece, Date.now())
          if (whole) await this.onFrameBytes(whole)
        }
        if (performance.now() - slice > SLICE_MS) {
          await nextTask()
          slice = performance.now()
        }
      }
    } catch {
      // Not expected (every step guards itself); the loop must still never reject.
      bump(this.opts.counters, 'link.recv-error')
    } finally {
      this.pumping = false
    }
  }

  /**
   * Before the link is open: a small, whole, uncompressed Kind.Link frame
   * holding a hello, proof or bye, or the link closes without reading more.
   */
  private async onHandshakePiece(piece: Uint8Array): Promise<void> {
    if (!isHandshakePiece(piece)) return this.refuseBeforeAuth()
    const f = decodeFrameBody(Kind.Link, piece.subarray(3), { maxItems: 32, validators: this.validators })
    const c = typeof f === 'string' ? null : parseLinkControl(f.body)
    if (c === null || (c.t !== 'hello' && c.t !== 'proof' && c.t !== 'bye')) return this.refuseBeforeAuth()
    this.stats.messagesIn++
    await this.onControl(c)
  }

  private refuseBeforeAuth(): void {
    bump(this.opts.counters, 'drop.before-auth')
    this.close('before-auth')
  }

  /** Once open: a whole frame, inflated and decoded within the link's budget. */
  private async onFrameBytes(bytes: Uint8Array): Promise<void> {
    const head = readFrameHeader(bytes, this.maxBytes)
    if (typeof head === 'string') return this.dropFrame(head)
    let body = head.body
    if (head.deflated) {
      if (!(await this.budget('inflate'))) return
      const out = await inflateBody(body, this.maxBytes)
      // A bomb stopped at the limit still cost the inflating up to it.
      this.inflateTokens -= typeof out === 'string' ? this.maxBytes : out.length
      if (this.state === 'closed') return
      if (typeof out === 'string') return this.dropFrame(out)
      body = out
    }
    if (!(await this.budget('decode'))) return
    const t0 = performance.now()
    const f = decodeFrameBody(head.kind, body, { maxItems: this.recv.maxItems, validators: this.validators })
    this.decodeTokens -= performance.now() - t0
    if (typeof f === 'string') return this.dropFrame(f)
    this.stats.messagesIn++
    if (f.kind === Kind.Link) return this.onControl(parseLinkControl(f.body) as LinkControl)
    this.emit('frame', f)
  }

  private dropFrame(reason: FrameDecodeError): void {
    bump(this.opts.counters, `drop.frame.${reason}`)
  }

  /**
   * Wait until the link's inflate or decode bucket is not in debt (the
   * cost of a frame is only known afterwards, so a bucket may go below
   * zero once). False when the link closed meanwhile.
   */
  private async budget(which: 'inflate' | 'decode'): Promise<boolean> {
    for (;;) {
      const now = performance.now()
      const dt = (now - this.budgetAt) / 1000
      this.budgetAt = now
      const r = this.recv
      this.decodeTokens = Math.min(r.decodeBurstMs, this.decodeTokens + dt * r.decodeMsPerSec)
      this.inflateTokens = Math.min(r.inflateBurstBytes, this.inflateTokens + dt * r.inflateBytesPerSec)
      if (this.state === 'closed') return false
      const [tokens, rate] =
        which === 'decode'
          ? [this.decodeTokens, r.decodeMsPerSec]
          : [this.inflateTokens, r.inflateBytesPerSec]
      if (tokens >= 0) return true
      bump(this.opts.counters, `link.recv-throttled.${which}`)
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(1000, Math.max(5, (-tokens / rate) * 1000))),
      )
    }
  }

  private async onControl(c: LinkControl): Promise<void> {
    if (DEBUG)
      console.log(
        `[link ${this.opts.identity.id.slice(0, 4)}<-${this.peer.slice(0, 4)} ${this.transport}] ${c.t}`,
      )
    switch (c.t) {
      case 'hello': {
        if (this.remote) return bump(this.opts.counters, 'drop.link.second-hello')
        // The network's identity puzzle first: a key that fails it gets no signature work from us.
        if (!meetsPuzzle(c.pk, this.opts.puzzleBits ?? 0)) {
          bump(this.opts.counters, 'link.refused.puzzle')
          return this.close('puzzle')
        }
        if (!isPublicKey(c.pk) || (await this.opts.identity.idOf(c.pk)) !== this.peer) {
          bump(this.opts.counters, 'link.auth-failed')
          return this.close('wrong-key')
        }
        this.remote = { pk: c.pk, nonce: c.nonce }
        this.remoteMesh = c.mesh
        const fp = this.fingerprints()
        if (!fp) return this.close('no-fingerprint')
        const sig = await this.opts.identity.sign(
          proofBytes(this.transport, this.opts.identity.id, this.peer, fp.local, fp.remote, c.nonce),
        )
        this.sentProof = true
        await this.sendControl({ t: 'proof', sig })
        return this.maybeOpen()
      }
      case 'proof': {
        const r = this.remote
        if (!r || this.gotProof) return bump(this.opts.counters, 'drop.link.unexpected-proof')
        const fp = this.fingerprints()
        if (!fp) return this.close('no-fingerprint')
        const ok = await this.opts.identity.verify(
          r.pk,
          proofBytes(this.transport, this.peer, this.opts.identity.id, fp.remote, fp.local, this.nonce),
          c.sig,
        )
        if (!ok) {
          bump(this.opts.counters, 'link.auth-failed')
          return this.close('bad-proof')
        }
        this.gotProof = true
        return this.maybeOpen()
      }
      case 'ping':
        return this.sendControl({ t: 'pong', ts: c.ts })
      case 'pong': {
        const sample = Date.now() - c.ts
        if (sample >= 0 && sample < 120_000)
          this.rtt = Number.isNaN(this.rtt) ? sample : 0.8 * this.rtt + 0.2 * sample
        return
      }
      case 'role':
        this.remoteMesh = c.mesh
        this.emit('control', c)
        return
      case 'bye':
        return this.finish(`bye:${c.reason}`)
      default:
        if (this.state === 'open') this.emit('control', c)
    }
  }

  private maybeOpen(): void {
    if (this.state !== 'handshake' || !this.sentProof || !this.gotProof) return
    clearTimeout(this.authTimer)
    this.state = 'open'
    // A first RTT sample right away, so the demo and the connection manager have one.
    void this.sendControl({ t: 'ping', ts: Date.now() })
    this.emit('open', undefined)
  }

  private fingerprints(): { local: string; remote: string } | null {
    if (this.transport === 'relay') return { local: '', remote: '' }
    return this.pipe.fingerprints()
  }

  /** Change whether we want this link in the mesh, and tell the other end. */
  setMesh(mesh: boolean): void {
    if (this.localMesh === mesh) return
    this.localMesh = mesh
    void this.sendControl({ t: 'role', mesh })
  }

  close(reason = 'closed'): void {
    if (this.state === 'closed') return
    if (this.state === 'open') {
      // A goodbye, written now (not after an async encode: the page may be gone a moment later),
      // so the other end does not wait for a heartbeat timeout.
      try {
        const body = encodeValue({ t: 'bye', reason: reason.slice(0, 64) })
        const frame = new Uint8Array(3 + body.length)
        frame.set([WIRE_VERSION, Kind.Link, 0])
        frame.set(body, 3)
        this.pipe.send(frame)
      } catch {}
      this.finish(reason)
      // Let the goodbye leave before the transport goes.
      setTimeout(() => this.pipe.close(reason), 100)
      return
    }
    this.pipe.close(reason)
    this.finish(reason)
  }

  private finish(reason: string): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    // Whatever waits to be processed goes with the link; the receive loop stops at its next step.
    this.inbox = []
    this.inboxHead = 0
    this.inboxBytes = 0
    clearTimeout(this.authTimer)
    for (const t of this.timers) clearInterval(t)
    this.emit('close', reason)
    this.removeAll()
  }
}

const EMPTY = new Uint8Array(0)

function proofBytes(
  transport: string,
  signer: string,
  verifier: string,
  signerFp: string,
  verifierFp: string,
  verifierNonce: Uint8Array,
): Uint8Array {
  return concatBytes(
    utf8(`weft-link/1\n${transport}\n${signer}\n${verifier}\n${signerFp}\n${verifierFp}\n`),
    verifierNonce,
  )
}
