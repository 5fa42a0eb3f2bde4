/**
 * A Link: an authenticated, chunked, heartbeated message channel to one
 * peer over any Pipe. Nothing above a Link knows whether WebRTC or the
 * server relay carries it.
 *
 * Handshake (Kind.Link frames, before anything else is accepted; the
 * grammar is shared/crypto/PROTOCOL-crypto.md, section 1):
 *
 *   A → B  hello { pk, nonce, mesh, ek, box? }   B → A  hello { pk, nonce, mesh, ek, box? }
 *   A → B  proof { sig, adm? }                   B → A  proof { sig, adm? }
 *
 * `ek` is a fresh X25519 key per link. Once an end has the other's hello,
 * both compute the same transcript hash `th` (shared/crypto/transcript.ts:
 * the transport, the network as the server knows it, and for each end its
 * id, DTLS fingerprint from this connection's SDP ('' on the relay), nonce
 * and `ek`), and each signs "weft-link/2 proof\n" id ‖ th with its
 * identity key. A signal server that put itself in the middle would have to
 * terminate DTLS with its own certificates or swap in its own `ek`s: either
 * changes the transcript one end computes, so the other's proof fails. The
 * verifier first checks that the key meets the network's identity puzzle
 * (before any signature work) and hashes to the id it expected.
 *
 * In a private network (`networkKeys`) the proof also carries `adm`, an
 * HMAC of th under a key derived from the network's secret: a member
 * refuses a proof without one (`outsider`) or with a wrong one
 * (`access-denied`), checked before the signature; a node without the
 * secret refuses a proof that carries one (`access-denied`: it cannot join
 * that network). Either way the refusing end says `bye access-denied`.
 *
 * Secure channel (relay links, `secure`): after the peer's proof verifies,
 * both ends derive one AES-256-GCM key per direction from X25519 of the
 * `ek`s, salted with th (shared/crypto/channel.ts), and from then on every
 * pipe message, whole frames and chunks alike, is
 * 0xc2 ‖ AES-GCM(k, counter nonce, piece, aad = 0xc2). The relay sees sizes
 * and timing only; a piece it rewrites, replays, reorders or drops then
 * reinjects fails its tag, and so does a plain piece: the link closes
 * (`channel-forged`, `channel-plain`; counters `drop.channel.*`). WebRTC
 * links are not sealed a second time: DTLS already encrypts and
 * authenticates them, bound to the proofs by the fingerprints.
 *
 * The hello may carry the node's signed box record (`box`): the X25519 key
 * routed envelopes are sealed to (shared/router). It is kept, unverified,
 * in `remoteBox` for the host.
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
 * - once open, pieces are opened (on a secure channel), chunks are
 *   reassembled, bodies inflated and decoded within a budget per link:
 *   inflated bytes and milliseconds of decoding per second (token buckets;
 *   past them the loop waits and the queue absorbs, then drops). A body
 *   holds at most MAX_VALUE_ITEMS msgpack objects, so one frame's decoding
 *   is bounded; the loop yields to the event loop every few milliseconds,
 *   so no peer can hold it for long.
 * When the link closes the queue is dropped and the loop stops.
 *
 * Then: ping/pong heartbeats give the RTT; silence for `deadAfterMs` closes
 * the link. Frames larger than 16 KiB travel as chunks; sends wait on the
 * pipe's buffer (backpressure) and keep their order. A failed send rejects
 * the promise its caller holds and nothing else.
 */
import { concatBytes } from '../../shared/bytes.ts'
import type { BoxRecord } from '../../shared/crypto/box-record.ts'
import {
  type Channel,
  type ChannelKeys,
  createChannelKeys,
  deriveChannel,
} from '../../shared/crypto/channel.ts'
import type { NetworkKeys } from '../../shared/crypto/network.ts'
import { isX25519PublicKey } from '../../shared/crypto/primitives.ts'
import { LINK_NONCE_BYTES, linkProofBytes, linkTranscript } from '../../shared/crypto/transcript.ts'
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
import {
  ACCESS_DENIED,
  isHandshakePiece,
  type LinkControl,
  linkControlValue,
  OUTSIDER,
  parseLinkControl,
  SEALED_PIECE,
} from './link-control.ts'
import type { Pipe } from './pipe.ts'

export {
  ACCESS_DENIED,
  HANDSHAKE_MAX_BYTES,
  isHandshakePiece,
  type LinkControl,
  linkControlValue,
  OUTSIDER,
  parseLinkControl,
  SEALED_PIECE,
} from './link-control.ts'

const SEALED_AAD = new Uint8Array([SEALED_PIECE])

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

export interface LinkOptions {
  pipe: Pipe
  identity: Identity
  /**
   * The network as the signal server knows it (networkTag(name)): part of
   * the transcript both proofs sign, so a link cannot be carried over into
   * another network. @default ''
   */
  network?: string
  /**
   * A private network's keys: our proof carries an admission tag, and the
   * peer's must prove the same secret. Without them, a peer that proves one
   * is refused (its network is not ours).
   */
  networkKeys?: NetworkKeys
  /** Our signed box record, sent in the hello (the key routed envelopes to us are sealed to). */
  box?: () => BoxRecord | undefined
  /**
   * Seal every piece after the handshake (the secure channel). @default true
   * on the relay, false on WebRTC (DTLS encrypts it, bound by the fingerprints)
   */
  secure?: boolean
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
  private readonly nonce = crypto.getRandomValues(new Uint8Array(LINK_NONCE_BYTES))
  private remote: { pk: Uint8Array; nonce: Uint8Array; ek: Uint8Array } | undefined
  /** The box record the peer's hello carried (unverified: the host checks it once the link is open). */
  remoteBox: BoxRecord | undefined
  /** Our ephemeral X25519 keys for this link (made at start). */
  private channelKeys: Promise<ChannelKeys> | undefined
  /** The transcript hash, once both hellos are known. */
  private th: Uint8Array | undefined
  /** The secure channel, once the peer's proof verified (relay links). */
  private channel: Channel | undefined
  private readonly secure: boolean
  /** Sealed pieces reach the pipe in the order their counters were taken. */
  private pipeTail: Promise<void> = Promise.resolve()
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
    this.secure = opts.secure ?? opts.pipe.transport === 'relay'
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
    const keys = createChannelKeys()
    this.channelKeys = keys
    keys.then(
      (k) => {
        const box = this.opts.box?.()
        void this.sendControl({
          t: 'hello',
          pk: this.opts.identity.publicKey,
          nonce: this.nonce,
          mesh: this.localMesh,
          ek: k.publicKey,
          ...(box ? { box } : {}),
        })
      },
      () => this.close('no-keys'),
    )
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

  /** (A getter: TypeScript does not narrow it across awaits.) */
  private get isClosed(): boolean {
    return this.state === 'closed'
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
    return this.write({ kind: Kind.Link, body: linkControlValue(c) }).catch(() => {})
  }

  /**
   * Write one pipe message as it is (sealed on a secure channel), in order
   * with the link's frames: what a test playing a hostile peer sends (one
   * that completed the handshake holds the channel keys, so it can seal
   * anything). `sink` replaces the pipe for this piece (a test that skips
   * the relay pipe's pacing).
   */
  sendPiece(piece: Uint8Array, sink?: (bytes: Uint8Array) => void): Promise<void> {
    if (this.state === 'closed') return Promise.reject(new Error(`link to ${this.peer} closed`))
    const ch = this.channel
    const done = this.sendChain.then(() => this.writePiece(piece, ch, sink))
    this.sendChain = done.catch(() => {})
    return done
  }

  /**
   * One pipe message to the pipe: as it is, or sealed under `ch` (the
   * channel when the write was asked for: handshake messages go plain).
   * The counter is taken now; the pipe gets the pieces in counter order,
   * even if one is written after the link closed (its goodbye).
   */
  private writePiece(
    piece: Uint8Array,
    ch: Channel | undefined,
    sink = (b: Uint8Array) => this.pipe.send(b),
  ): Promise<void> {
    if (!ch) {
      sink(piece)
      this.stats.bytesOut += piece.length
      return Promise.resolve()
    }
    const sealing = ch.seal(piece, SEALED_AAD)
    // Seen as handled now: the chain below reads it only once the pieces before it are out, and a
    // channel that failed meanwhile (forged, closed) rejects at once (issue 9: nothing unhandled).
    sealing.catch(() => {})
    const sent = this.pipeTail
      .then(() => sealing)
      .then((sealed) => {
        const out = new Uint8Array(1 + sealed.length)
        out[0] = SEALED_PIECE
        out.set(sealed, 1)
        sink(out)
        this.stats.bytesOut += out.length
      })
    this.pipeTail = sent.catch(() => {})
    return sent
  }

  private write(frame: Frame): Promise<void> {
    // Sealed when the channel exists as the write is asked for: the hello and the proof go plain.
    const ch = this.channel
    const id = this.msgId++ >>> 0
    // Encode eagerly (errors such as MessageTooLargeError reach the caller), write in order.
    // Pieces of files (Kind.Swarm) are mostly compressed media: trying deflate on them only costs time.
    const compress = frame.kind !== Kind.Swarm
    const encoded = encodeFrame(frame, { maxMessageBytes: this.maxBytes, compress }).then((bytes) =>
      splitMessage(bytes, id, this.maxBytes),
    )
    // Awaited only once the sends before it are written: until then a rejection (a message too
    // large) must not count as unhandled. The caller gets it through `done`.
    encoded.catch(() => {})
    const done = this.sendChain.then(async () => {
      const pieces = await encoded
      for (const p of pieces) {
        if (this.state === 'closed') throw new Error(`link to ${this.peer} closed`)
        if (this.pipe.bufferedAmount() > 0) {
          await this.pipe.drained()
          if (this.isClosed) throw new Error(`link to ${this.peer} closed`)
        }
        await this.writePiece(p, ch)
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
          const plain = this.channel ? await this.openPiece(piece) : piece
          if (plain === null) break
          const whole = this.reassembler.push(plain, Date.now())
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

  /**
   * A pipe message on a secure channel: opened, or null when it is not a
   * sealed piece or fails its tag (rewritten, replayed, reordered, from
   * another link): the link closes, counted (`drop.channel.*`).
   */
  private async openPiece(piece: Uint8Array): Promise<Uint8Array | null> {
    const ch = this.channel as Channel
    if (piece[0] !== SEALED_PIECE) {
      bump(this.opts.counters, 'drop.channel.plain')
      this.close('channel-plain')
      return null
    }
    const plain = await ch.open(piece.subarray(1), SEALED_AAD)
    if (plain === null) {
      // The channel counted why (drop.channel.forged | .short | .exhausted).
      this.close(`channel-${ch.failure ?? 'forged'}`)
      return null
    }
    return plain
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
        if (!isX25519PublicKey(c.ek)) {
          bump(this.opts.counters, 'link.auth-failed')
          return this.close('bad-ephemeral')
        }
        this.remote = { pk: c.pk, nonce: c.nonce, ek: c.ek }
        this.remoteBox = c.box
        this.remoteMesh = c.mesh
        const fp = this.fingerprints()
        if (!fp) return this.close('no-fingerprint')
        const mine = await (this.channelKeys as Promise<ChannelKeys>)
        if (this.isClosed) return
        const me = this.opts.identity.id
        this.th = await linkTranscript({
          transport: this.transport,
          network: this.opts.network ?? '',
          ends: [
            { id: me, nonce: this.nonce, ephemeral: mine.publicKey, fingerprint: fp.local },
            { id: this.peer, nonce: c.nonce, ephemeral: c.ek, fingerprint: fp.remote },
          ],
        })
        const [sig, adm] = await Promise.all([
          this.opts.identity.sign(linkProofBytes(this.th, me)),
          this.opts.networkKeys?.admissionProof(this.th, me),
        ])
        this.sentProof = true
        await this.sendControl(adm ? { t: 'proof', sig, adm } : { t: 'proof', sig })
        return this.maybeOpen()
      }
      case 'proof': {
        const r = this.remote
        const th = this.th
        if (!r || !th || this.gotProof) return bump(this.opts.counters, 'drop.link.unexpected-proof')
        // The network's secret before any signature work: an HMAC, checked in constant time.
        const nk = this.opts.networkKeys
        if (nk && !c.adm) return this.refuse(OUTSIDER)
        if (!nk && c.adm) return this.refuse(ACCESS_DENIED)
        if (nk && c.adm && !(await nk.checkAdmission(th, this.peer, c.adm))) return this.refuse(ACCESS_DENIED)
        const ok = await this.opts.identity.verify(r.pk, linkProofBytes(th, this.peer), c.sig)
        if (!ok) {
          bump(this.opts.counters, 'link.auth-failed')
          return this.close('bad-proof')
        }
        if (this.secure) {
          const channel = await deriveChannel({
            mine: await (this.channelKeys as Promise<ChannelKeys>),
            theirs: r.ek,
            transcript: th,
            counters: this.opts.counters,
          })
          if (!channel) {
            bump(this.opts.counters, 'link.auth-failed')
            return this.close('bad-ephemeral')
          }
          this.channel = channel
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

  /**
   * Refuse the link for the network's secret (`access-denied`: the peer
   * proved a secret we do not share; `outsider`: it proved none, and we are
   * a private network's member). The peer is told `bye access-denied`,
   * written now, in the clear like the handshake.
   */
  private refuse(reason: typeof ACCESS_DENIED | typeof OUTSIDER): void {
    bump(this.opts.counters, `link.refused.${reason}`)
    try {
      this.pipe.send(plainControl({ t: 'bye', reason: ACCESS_DENIED }))
    } catch {}
    this.finish(reason)
    setTimeout(() => this.pipe.close(reason), 100)
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
      // so the other end does not wait for a heartbeat timeout. On a secure channel it is sealed
      // (asynchronously: its counter is taken now, after every piece already under way).
      try {
        const bye = plainControl({ t: 'bye', reason: reason.slice(0, 64) })
        if (this.channel) this.writePiece(bye, this.channel).catch(() => {})
        else this.pipe.send(bye)
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

/** A whole, uncompressed Kind.Link frame, encoded at once (no await): a goodbye. */
function plainControl(c: LinkControl): Uint8Array {
  return concatBytes(new Uint8Array([WIRE_VERSION, Kind.Link, 0]), encodeValue(linkControlValue(c)))
}
