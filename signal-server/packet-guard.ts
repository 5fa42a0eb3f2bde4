/**
 * A bounded socket.io packet decoder: socket.io-parser's Decoder behind a
 * guard that looks at every packet before it is parsed or held.
 *
 * Why: socket.io-parser parses any packet up to maxHttpBufferSize, and keeps
 * a BINARY_EVENT header (parsed) until all the attachments it announces
 * have arrived, with no deadline. A socket that sends a 127 KiB header of
 * `[{},{},…]` announcing one attachment and never sends it holds megabytes of
 * parsed objects for ever; 1,600 of them ran the server out of heap.
 *
 * What the guard allows, by packet type and event name (read from the packet
 * text before any parsing: `51-["register",…` → type 5, one attachment,
 * event `register`):
 *
 *   event      text at most             attachments           each attachment
 *   register   8 KiB, ≤ 64 JSON values  0–2 (key, signature)  ≤ 256 bytes
 *   relay      512 B, ≤ 16 JSON values  0–1 (the frame)       (engine.io's maxHttpBufferSize)
 *   signal     signalMaxBytes + 1 KiB   none
 *   peers, any other event, ACK, CONNECT: 1 KiB, none; DISCONNECT: 64 B
 *   BINARY_ACK, CONNECT_ERROR (a server never asks for them): refused
 *   CONNECT: once per connection. socket.io adds a namespace socket a tick
 *   after a CONNECT and refuses one for a namespace the client is in only
 *   from then on: 1,000 CONNECTs in one TCP chunk made 1,000 sockets (and
 *   connections), each held until its registration deadline; and a client
 *   that left the namespace could join it again, for ever, on one session.
 *
 * A binary header must be followed by its attachments within
 * `binaryDeadlineMs`. So one socket holds at most one waiting packet of at
 * most ~9 KiB, for at most the deadline, and one source at most that times
 * its socket limit. Headers over 1 KiB (only older clients, which listed
 * servers in `register`, send those) also share one budget of
 * `maxPendingBinaryBytes` for all sockets; smaller ones (every current
 * client's) are always taken, their memory bounded by the number of sockets,
 * so attackers filling the budget cannot keep current clients out.
 *
 * A packet over a bound is refused: counted by reason, and the connection
 * is closed (the decoder throws, as it does for a malformed packet, and
 * socket.io closes the connection). An honest client never sends one. On a
 * missed deadline the waiting packet is freed at once and the decoder hands
 * socket.io a CONNECT_ERROR packet, which a client may never send, so
 * socket.io closes the connection.
 */
import { Decoder, Encoder, PacketType } from 'socket.io-parser'

export type PacketRefusal =
  /** Text longer than its event allows. */
  | 'too-large'
  /** Attachments on an event that carries none. */
  | 'binary-not-allowed'
  | 'too-many-attachments'
  | 'attachment-too-large'
  /** A binary header with more JSON values than its event can need. */
  | 'too-complex'
  /** Attachments did not arrive in time. */
  | 'binary-timeout'
  /** All sockets together already hold maxPendingBinaryBytes of waiting packets. */
  | 'busy'
  /** A packet type clients never send (BINARY_ACK, CONNECT_ERROR). */
  | 'bad-type'
  /** A second CONNECT on one connection (socket.io would add a namespace socket for each). */
  | 'connect-again'
  /** Anything socket.io-parser itself refuses. */
  | 'malformed'

export interface PacketLimits {
  /** The server's signal bound; a signal packet may be this long plus 1 KiB of envelope. */
  signalMaxBytes: number
  /** Attachments must complete within this. */
  binaryDeadlineMs: number
  /** Bytes of unfinished binary packets with headers over 1 KiB all sockets may hold together. */
  maxPendingBinaryBytes: number
}

/** What socket.io's `parser` option takes. */
export interface ParserModule {
  Encoder: typeof Encoder
  Decoder: typeof Decoder
}

export interface PacketGuard {
  parser: ParserModule
  /** Bytes of unfinished binary packets held now, all sockets. */
  pendingBytes(): number
  /** Unfinished binary packets held now. */
  pendingPackets(): number
}

interface EventRule {
  maxChars: number
  maxAttachments: number
  maxAttachmentBytes: number
  /** JSON values a binary header may contain (only checked for binary packets). */
  maxValues: number
}

/** What the text of a packet says before parsing: its type, attachments and event name. */
export interface PacketHead {
  type: number
  attachments: number
  /** The event name when the payload starts with a plain `["name"`, else null. */
  event: string | null
  /** Index where the JSON payload starts. */
  dataStart: number
}

/**
 * Read a packet's head the way socket.io-parser does (type digit, `N-` for
 * attachments, `/nsp,`, ack id), without parsing the payload. Null when the
 * head is not well-formed.
 */
export function inspectPacket(s: string): PacketHead | null {
  const type = s.charCodeAt(0) - 48
  if (!(type >= 0 && type <= 6)) return null
  let i = 1
  let attachments = 0
  if (type === PacketType.BINARY_EVENT || type === PacketType.BINARY_ACK) {
    const dash = s.indexOf('-', 1)
    if (dash < 2 || dash > 4) return null
    const digits = s.slice(1, dash)
    if (!/^[0-9]+$/.test(digits)) return null
    attachments = Number(digits)
    i = dash + 1
  }
  if (s[i] === '/') {
    const comma = s.indexOf(',', i)
    if (comma < 0 || comma - i > 128) return null
    i = comma + 1
  }
  let digits = 0
  while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) {
    if (++digits > 16) return null
    i++
  }
  const m = /^\["([a-z-]{1,32})"[,\]]/.exec(s.slice(i, i + 40))
  return { type, attachments, event: m ? (m[1] as string) : null, dataStart: i }
}

/** Counts the values of a parsed JSON value, stopping past `limit`. */
function countValues(x: unknown, limit: number): number {
  let n = 0
  const walk = (v: unknown): void => {
    if (++n > limit) return
    if (Array.isArray(v)) {
      for (const e of v) {
        walk(e)
        if (n > limit) return
      }
    } else if (typeof v === 'object' && v !== null) {
      for (const e of Object.values(v)) {
        walk(e)
        if (n > limit) return
      }
    }
  }
  walk(x)
  return n
}

/** Binary headers up to this long are not charged to the shared budget (a current client's register is ~200). */
const SMALL_HEADER_CHARS = 1024

const byteLength = (x: unknown): number =>
  ArrayBuffer.isView(x) ? x.byteLength : x instanceof ArrayBuffer ? x.byteLength : -1

/** Build the guarded parser; `refused(reason)` is called once per refused packet (for counters). */
export function createPacketGuard(
  limits: PacketLimits,
  refused: (reason: PacketRefusal) => void,
): PacketGuard {
  const small: EventRule = { maxChars: 1024, maxAttachments: 0, maxAttachmentBytes: 0, maxValues: 0 }
  const events: Record<string, EventRule> = {
    register: { maxChars: 8192, maxAttachments: 2, maxAttachmentBytes: 256, maxValues: 64 },
    relay: { maxChars: 512, maxAttachments: 1, maxAttachmentBytes: Number.POSITIVE_INFINITY, maxValues: 16 },
    signal: {
      maxChars: limits.signalMaxBytes + 1024,
      maxAttachments: 0,
      maxAttachmentBytes: 0,
      maxValues: 0,
    },
    peers: small,
  }
  let pendingBytes = 0
  let pendingPackets = 0
  /** The part of pendingBytes charged to maxPendingBinaryBytes (packets with large headers). */
  let budgetBytes = 0

  // socket.io-parser gives every decoder its own copy of its options; one shared, frozen copy does
  // (the server holds one decoder per socket), and its own attachment bound becomes ours: 2.
  const decoderOptions = Object.freeze({ reviver: undefined, maxAttachments: 2 })

  class GuardedDecoder extends Decoder {
    constructor() {
      super()
      Reflect.set(this, 'opts', decoderOptions)
    }

    /** Whether this connection sent its CONNECT (only one is taken). */
    private connected = false

    /**
     * The socket.io Client this decoder decodes for, when its 'decoded' listener is the shared one
     * engine-events.ts gives it (quickenClient): that finds the client here, with no function bound
     * per client.
     */
    owner: object | null = null

    /** The binary packet being reassembled, if any. */
    private waiting: {
      rule: EventRule
      expected: number
      got: number
      bytes: number
      /** Whether this packet is charged to the shared budget. */
      charged: boolean
      timer: ReturnType<typeof setTimeout>
    } | null = null

    override add(obj: unknown): void {
      if (typeof obj === 'string') this.addText(obj)
      else this.addBinary(obj)
    }

    private addText(s: string): void {
      if (this.waiting) return this.refuse('malformed')
      const head = inspectPacket(s)
      if (!head) return this.refuse('malformed')
      let rule: EventRule
      switch (head.type) {
        case PacketType.EVENT:
        case PacketType.BINARY_EVENT:
          rule = (
            head.event !== null && Object.hasOwn(events, head.event) ? events[head.event] : small
          ) as EventRule
          break
        case PacketType.DISCONNECT:
          rule = { ...small, maxChars: 64 }
          break
        case PacketType.CONNECT:
          if (this.connected) return this.refuse('connect-again')
          this.connected = true
          rule = small
          break
        case PacketType.ACK:
          rule = small
          break
        default:
          return this.refuse('bad-type')
      }
      if (s.length > rule.maxChars) return this.refuse('too-large')
      if (head.type !== PacketType.BINARY_EVENT) return this.inner(s)
      if (rule.maxAttachments === 0) return this.refuse('binary-not-allowed')
      if (head.attachments < 1 || head.attachments > rule.maxAttachments)
        return this.refuse('too-many-attachments')
      let values: number
      try {
        values = countValues(JSON.parse(s.slice(head.dataStart)), rule.maxValues)
      } catch {
        return this.refuse('malformed')
      }
      if (values > rule.maxValues) return this.refuse('too-complex')
      const charged = s.length > SMALL_HEADER_CHARS
      if (charged && budgetBytes + s.length > limits.maxPendingBinaryBytes) return this.refuse('busy')
      this.inner(s)
      const timer = setTimeout(() => this.expire(), limits.binaryDeadlineMs)
      timer.unref?.()
      this.waiting = { rule, expected: head.attachments, got: 0, bytes: s.length, charged, timer }
      pendingBytes += s.length
      if (charged) budgetBytes += s.length
      pendingPackets++
    }

    private addBinary(obj: unknown): void {
      const w = this.waiting
      const size = byteLength(obj)
      if (!w || size < 0) return this.refuse('malformed')
      if (size > w.rule.maxAttachmentBytes) return this.refuse('attachment-too-large')
      if (w.got + 1 < w.expected) {
        if (w.charged && budgetBytes + size > limits.maxPendingBinaryBytes) return this.refuse('busy')
        w.bytes += size
        pendingBytes += size
        if (w.charged) budgetBytes += size
      }
      w.got++
      // The last attachment completes the packet: socket.io-parser emits it from inside add().
      if (w.got === w.expected) this.release()
      this.inner(obj)
    }

    /** Hand to socket.io-parser; what it refuses is counted here and rethrown (socket.io then closes). */
    private inner(obj: unknown): void {
      try {
        super.add(obj)
      } catch (err) {
        this.release()
        refused('malformed')
        throw err
      }
    }

    private refuse(reason: PacketRefusal): never {
      this.destroy()
      refused(reason)
      throw new Error(`packet refused: ${reason}`)
    }

    private expire(): void {
      if (!this.waiting) return
      this.destroy()
      refused('binary-timeout')
      // A packet type no client may send: socket.io's Client answers it by closing the connection.
      this.emitReserved('decoded', { type: PacketType.CONNECT_ERROR, nsp: '/', data: 'binary-timeout' })
    }

    private release(): void {
      const w = this.waiting
      if (!w) return
      clearTimeout(w.timer)
      pendingBytes -= w.bytes
      if (w.charged) budgetBytes -= w.bytes
      pendingPackets--
      this.waiting = null
    }

    override destroy(): void {
      this.release()
      super.destroy()
    }
  }

  return {
    parser: { Encoder, Decoder: GuardedDecoder },
    pendingBytes: () => pendingBytes,
    pendingPackets: () => pendingPackets,
  }
}
