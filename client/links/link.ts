/**
 * A Link: an authenticated, chunked, heartbeated message channel to one peer over any Pipe.
 * Nothing above a Link knows whether WebRTC or the server relay carries it.
 *
 * Handshake (Kind.Link frames, before anything else is accepted): hello and proof each way (on
 * WebRTC the hellos may have come with the offer and answer, `early`, and the answering side's
 * proof by signal after its answer, `earlyProof`), bound to both keys, the connection and the
 * network; a private network's admission tag; on the relay, a secure channel. The protocol and
 * its checks: handshake.ts.
 *
 * Receiving is a trust boundary, and anyone can open a link (a `relay` signal through the server
 * is enough). What arrives waits in one bounded queue and is processed in arrival order by one
 * loop, within a decode and inflate budget per link (recv-queue.ts):
 * - before the link is open, a message must be a small (HANDSHAKE_MAX_BYTES), whole, uncompressed
 *   Kind.Link frame holding a hello, proof or bye; anything else closes the link unread
 *   (`drop.before-auth`): nothing is reassembled, inflated or decoded for a peer that has not
 *   proven its key.
 * - once open, pieces are opened (on a secure channel), chunks reassembled, bodies inflated and
 *   decoded (at most MAX_VALUE_ITEMS msgpack objects).
 * When the link closes the queue is dropped and the loop stops.
 *
 * Then: ping/pong heartbeats give the RTT; silence for `deadAfterMs` closes the link, and so does
 * silence after the transport stalls (liveness.ts). Frames over 16 KiB travel as chunks; sends
 * wait on the pipe's buffer (backpressure) in order; a failed send rejects only its promise.
 */
import { bytesEqual } from '../../shared/bytes.ts'
import type { BoxRecord } from '../../shared/crypto/box-record.ts'
import { type Channel, type ChannelKeys, createChannelKeys } from '../../shared/crypto/channel.ts'
import { LINK_NONCE_BYTES } from '../../shared/crypto/transcript.ts'
import { bump } from '../../shared/protocol.ts'
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
} from '../../shared/wire/frame.ts'
import { Emitter } from '../emitter.ts'
import { markPhase } from '../node/timeline.ts'
import * as hs from './handshake.ts'
import {
  ACCESS_DENIED,
  type LinkControl,
  linkControlValue,
  type OUTSIDER,
  parseLinkControl,
  plainControl,
  readHandshakeControl,
  SEALED_PIECE,
} from './link-control.ts'
import type { LinkEvents, LinkOptions, LinkState } from './link-types.ts'
import { Liveness } from './liveness.ts'
import type { Pipe } from './pipe.ts'
import { DEFAULT_RECV_LIMITS, RecvBudget, type RecvLimits, RecvQueue } from './recv-queue.ts'

// The link messages' forms and checks, for those who use a Link (the node, tests).
export * from './link-control.ts'

export type { LinkEvents, LinkOptions, LinkState } from './link-types.ts'
export { DEFAULT_RECV_LIMITS, type RecvLimits } from './recv-queue.ts'

const SEALED_AAD = new Uint8Array([SEALED_PIECE])

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
  private readonly nonce: Uint8Array
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
  private earlyEchoed = false // the peer's channel hello, after its signalled one (`early`), came
  private gotProof = false
  private signalledSig: Uint8Array | undefined // opened on the peer's signalled proof: its signature
  private readonly live: Liveness
  private msgId = 0
  private sendChain: Promise<void> = Promise.resolve()
  private authTimer: ReturnType<typeof setTimeout> | undefined
  private readonly maxBytes: number
  private readonly recv: RecvLimits
  private readonly validators: Partial<Record<Kind, (body: Value) => boolean>>
  private started = false
  /** Pipe messages waiting for the receive loop, and its budgets (recv-queue.ts). */
  private readonly queue: RecvQueue
  private readonly budget: RecvBudget

  constructor(opts: LinkOptions) {
    super()
    this.opts = opts
    this.pipe = opts.pipe
    this.peer = opts.peer
    this.transport = opts.pipe.transport
    this.localMesh = opts.mesh
    this.nonce = opts.nonce ?? crypto.getRandomValues(new Uint8Array(LINK_NONCE_BYTES))
    this.secure = opts.secure ?? opts.pipe.transport === 'relay'
    this.maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.recv = { ...DEFAULT_RECV_LIMITS, ...opts.recv }
    this.queue = new RecvQueue(this.recv, opts.counters, (piece) => this.onQueued(piece))
    this.budget = new RecvBudget(this.recv, opts.counters)
    this.validators = { ...opts.validators, [Kind.Link]: (b: Value) => parseLinkControl(b) !== null }
    this.reassembler = createReassembler({
      maxMessageBytes: this.maxBytes,
      onDrop: (reason) => bump(opts.counters, `drop.chunk.${reason}`),
    })
    this.live = new Liveness({
      heartbeatMs: opts.heartbeatMs ?? 5000,
      deadAfterMs: opts.deadAfterMs ?? 20_000,
      stallGraceMs: opts.stallGraceMs ?? 3000,
      isOpen: () => this.state === 'open',
      ping: (ts) => void this.sendControl({ t: 'ping', ts }),
      dead: (reason) => this.close(reason),
      tick: (now) => this.reassembler.tick(now),
      stalled: () => this.emit('stall', undefined),
    })
    this.pipe.onData((b) => this.onPiece(b))
    this.pipe.onClose((reason) => this.finish(reason))
    this.pipe.onStall?.(() => this.live.stalled())
  }

  /** Begin the handshake (call once the pipe is open). */
  start(): void {
    if (this.started || this.state === 'closed') return
    this.started = true
    this.authTimer = setTimeout(() => this.close('auth-timeout'), this.opts.authTimeoutMs ?? 10_000)
    const keys = this.opts.channelKeys ?? createChannelKeys()
    this.channelKeys = keys
    const early = this.opts.early
    keys.then(
      (k) => {
        markPhase('hello-out') // (also when it went with our offer or answer: see `early`)
        void this.sendControl(hs.makeHello(this.opts, this.nonce, this.localMesh, k.publicKey))
      },
      () => this.close('no-keys'),
    )
    this.live.start()
    // What arrived before start (our hello goes first, then the answers to theirs). With the peer's
    // hello from the signalling, it is read first (our proof goes at once), then its signalled proof.
    if (!early) return this.queue.start()
    this.onControl(early)
      .then(() => this.takeSignalledProof())
      .then(
        () => this.queue.start(),
        () => this.close('handshake-failed'),
      )
  }

  /** The peer's proof by signal (`earlyProof`), if it verifies: open now, not a flight later. */
  private async takeSignalledProof(): Promise<void> {
    const e = this.opts.earlyProof
    if (!e || !this.th || this.gotProof || this.secure) return
    const ok = await e.catch(() => undefined)
    if (!ok || !this.th || !bytesEqual(ok.th, this.th))
      return bump(this.opts.counters, 'drop.signal.proof-bad')
    bump(this.opts.counters, 'link.proof-signalled')
    this.signalledSig = ok.proof.sig
    this.gotProof = true
    this.maybeOpen()
  }

  /** Bytes received and not yet read (the receive queue's; tests of its bound read it). */
  get queuedBytes(): number {
    return this.queue.waitingBytes
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
   * Write one pipe message as it is (sealed on a secure channel), in order with the link's
   * frames: what a test playing a hostile peer sends (one that completed the handshake holds the
   * channel keys, so it can seal anything). `sink` replaces the pipe for this piece (a test that
   * skips the relay pipe's pacing).
   */
  sendPiece(piece: Uint8Array, sink?: (bytes: Uint8Array) => void): Promise<void> {
    if (this.state === 'closed') return Promise.reject(new Error(`link to ${this.peer} closed`))
    const ch = this.channel
    const done = this.sendChain.then(() => this.writePiece(piece, ch, sink))
    this.sendChain = done.catch(() => {})
    return done
  }

  /**
   * One pipe message to the pipe: as it is, or sealed under `ch` (the channel when the write was
   * asked for: handshake messages go plain). The counter is taken now; the pipe gets the pieces
   * in counter order, even if one is written after the link closed (its goodbye).
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
    this.live.sent()
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
    this.live.heard()
    this.stats.bytesIn += piece.length
    this.queue.push(piece)
  }

  /** One pipe message from the receive loop, in arrival order; false: read no more. */
  private async onQueued(piece: Uint8Array): Promise<boolean> {
    if (this.state === 'closed') return false
    if (this.state === 'handshake') {
      await this.onHandshakePiece(piece)
      return true
    }
    const plain = this.channel ? await this.openPiece(piece) : piece
    if (plain === null) return false
    const whole = this.reassembler.push(plain, Date.now())
    if (whole) await this.onFrameBytes(whole)
    return true
  }

  /** Before the link is open: a small, whole, uncompressed Kind.Link frame holding a hello, proof or
   * bye, or the link closes unread. */
  private async onHandshakePiece(piece: Uint8Array): Promise<void> {
    const c = readHandshakeControl(piece)
    if (c === null || (c.t !== 'hello' && c.t !== 'proof' && c.t !== 'bye')) return this.refuseBeforeAuth()
    this.stats.messagesIn++
    await this.onControl(c)
  }

  /**
   * A pipe message on a secure channel: opened, or null when it is not a sealed piece or fails its
   * tag (rewritten, replayed, reordered, from another link): the link closes (`drop.channel.*`).
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
      if (!(await this.budget.wait('inflate', () => this.isClosed))) return
      const out = await inflateBody(body, this.maxBytes)
      // A bomb stopped at the limit still cost the inflating up to it.
      this.budget.spend('inflate', typeof out === 'string' ? this.maxBytes : out.length)
      if (this.state === 'closed') return
      if (typeof out === 'string') return this.dropFrame(out)
      body = out
    }
    if (!(await this.budget.wait('decode', () => this.isClosed))) return
    const t0 = performance.now()
    const f = decodeFrameBody(head.kind, body, { maxItems: this.recv.maxItems, validators: this.validators })
    this.budget.spend('decode', performance.now() - t0)
    if (typeof f === 'string') return this.dropFrame(f)
    this.stats.messagesIn++
    if (f.kind === Kind.Link) return this.onControl(parseLinkControl(f.body) as LinkControl)
    this.emit('frame', f)
  }

  private dropFrame(reason: FrameDecodeError): void {
    bump(this.opts.counters, `drop.frame.${reason}`)
  }

  private async onControl(c: LinkControl): Promise<void> {
    switch (c.t) {
      case 'hello': {
        if (this.remote) return this.secondHello(c)
        markPhase('hello-in')
        const fp = this.transport === 'relay' ? { local: '', remote: '' } : this.pipe.fingerprints()
        const mine = { nonce: this.nonce, keys: this.channelKeys as Promise<ChannelKeys> }
        const r = await (hs.aheadFor(this.opts, c, fp) ??
          hs.answerHello(this.opts, this.transport, mine, c, fp))
        if (typeof r === 'string') return this.close(r)
        if (this.isClosed) return
        this.remote = { pk: c.pk, nonce: c.nonce, ek: c.ek }
        this.remoteBox = c.box
        this.remoteMesh = c.mesh
        const { th, proof } = r
        this.th = th
        this.sentProof = true
        markPhase('proof-out')
        await this.sendControl(proof)
        return this.maybeOpen()
      }
      case 'proof': {
        const r = this.remote
        const th = this.th
        if (this.signalledSig && bytesEqual(c.sig, this.signalledSig)) return // (its copy: expected)
        if (!r || !th || this.gotProof) return bump(this.opts.counters, 'drop.link.unexpected-proof')
        const keys = this.channelKeys as Promise<ChannelKeys>
        const v = await hs.checkProof(c, this.opts, th, r, this.secure ? { keys } : undefined)
        if ('refuse' in v) return this.refuse(v.refuse)
        if ('close' in v) return this.close(v.close)
        this.channel = v.channel
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
        // Before the link is authenticated a refusal for the secret counts only when signed.
        if (c.reason !== ACCESS_DENIED || this.state === 'open') return this.finish(`bye:${c.reason}`)
        return this.finish(await hs.checkDenial(c, this.opts, this.th, this.remote?.pk))
      default:
        if (this.state === 'open') this.emit('control', c)
    }
  }

  /** A hello after the first: the peer's channel hello after its signalled one (handshake.ts laterHello). */
  private secondHello(c: hs.Hello): void {
    const v = hs.laterHello(c, this.opts.early, this.earlyEchoed)
    if (v === 'extra') return bump(this.opts.counters, 'drop.link.second-hello')
    this.earlyEchoed = true
    if (v === 'echo') {
      this.remoteBox = c.box ?? this.remoteBox // (the channel's: it came over DTLS)
      if (c.box && this.state === 'open') this.emit('box', undefined) // (opened on a signalled proof)
    } else {
      bump(this.opts.counters, 'link.auth-failed')
      this.close('hello-mismatch')
    }
  }

  private maybeOpen(): void {
    if (this.state !== 'handshake' || !this.sentProof || !this.gotProof) return
    markPhase('link-open')
    clearTimeout(this.authTimer)
    this.state = 'open'
    // A first RTT sample right away, so the demo and the connection manager have one.
    void this.sendControl({ t: 'ping', ts: Date.now() })
    this.emit('open', undefined)
  }

  /**
   * Refuse the link for the network's secret (`access-denied`: the peer proved a secret we do not
   * share; `outsider`: it proved none, and we are a private network's member). The peer is told
   * `bye access-denied`, in the clear like the handshake, signed over the transcript (checkDenial).
   */
  private refuse(reason: typeof ACCESS_DENIED | typeof OUTSIDER): void {
    bump(this.opts.counters, `link.refused.${reason}`)
    hs.sendDenial(this.opts, this.th, this.pipe)
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
      // A goodbye, written now (not after an async encode: the page may be gone a moment later), so
      // the other end does not wait for a heartbeat timeout; sealed on a secure channel (its counter now).
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
    this.queue.close()
    clearTimeout(this.authTimer)
    this.live.stop()
    this.emit('close', reason)
    this.removeAll()
  }
}
