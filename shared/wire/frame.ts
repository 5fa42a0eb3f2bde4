/**
 * Frames: the unit every overlay message travels in.
 *
 *   frame = version:u8 (= 1)  kind:u8  flags:u8  body
 *
 * `kind` says which protocol module the body belongs to (Kind below); the
 * body is one msgpack Value (value.ts). Flag bit 0 says the body is
 * deflate-raw compressed; every other flag bit must be 0.
 *
 * Compression is opportunistic, as in p2p.today: a body of at least 1 KiB is
 * deflated, and the deflated form is sent only when it saves at least 10%.
 * Deflate is not even tried when a sample of the body looks incompressible
 * (`looksIncompressible`: random, encrypted or already compressed bytes):
 * deflating 64 KiB of random bytes took the sender more time than the data
 * channel took to carry them, and never saved anything.
 *
 * `maxMessageBytes` bounds the encoded body before compression, on both
 * sides: the sender refuses to build a larger frame, and the receiver stops
 * inflating (streaming, counting) as soon as the output passes it, so a small
 * compressed body cannot blow up in memory. `maxItems` bounds the msgpack
 * objects in a body (value.ts, MAX_VALUE_ITEMS): decoding costs time per
 * object, and the count is checked before anything is built. Decoding is a trust boundary: it
 * never throws or rejects; a bad frame gives null and, through `onDrop`, the
 * reason, so the caller can count drops per reason. The grammar is in
 * PROTOCOL.md beside this file.
 */
import { concatBytes } from '../bytes.ts'
import { MessageTooLargeError } from '../errors.ts'
import type { Value } from '../types.ts'
import { decodeValueOrWhy, encodeValueAfter, MAX_VALUE_ITEMS, SCAN_TOO_MANY_ITEMS } from './value.ts'

/** The version byte every frame starts with. 0xc0-0xcf are reserved for link markers (chunk.ts). */
export const WIRE_VERSION = 1

/** Bytes before the body: version, kind, flags. */
export const FRAME_HEADER_BYTES = 3

/** The protocol a frame belongs to. */
export const Kind = {
  Link: 1,
  Mesh: 2,
  Route: 3,
  Sync: 4,
  Chord: 5,
  Presence: 6,
  Swarm: 7,
  Topic: 8,
} as const
export type Kind = (typeof Kind)[keyof typeof Kind]

/** Flag bit 0: the body is deflate-raw compressed. */
export const FLAG_DEFLATE = 0x01
const KNOWN_FLAGS = FLAG_DEFLATE

/** Largest encoded body (msgpack, before compression): 4 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024

/** Bodies shorter than this are never compressed. */
export const COMPRESS_MIN_BYTES = 1024

/** How many bytes of a body `looksIncompressible` reads: all of a small body, else 64 runs of 64. */
const SAMPLE_RUNS = 64
const SAMPLE_RUN_BYTES = 64

/**
 * Bits per byte (order-0 entropy of the sample) above which deflate is not
 * tried: its Huffman stage cannot bring such bytes under 90%, and what its
 * matching could still find (long repeats of high-entropy bytes) is rare
 * in practice. Random bytes measure about 7.8-7.95 on a sample, text and
 * msgpack of structured data 3-6.
 */
const INCOMPRESSIBLE_BITS = 7.2

/**
 * Does `body` look like bytes deflate would not shrink by 10%? Judged from
 * the order-0 entropy of a sample of at most 4 KiB spread over the body, so
 * it costs microseconds where a deflate attempt of 64 KiB costs milliseconds.
 */
export function looksIncompressible(body: Uint8Array): boolean {
  const counts = new Uint32Array(256)
  const tally = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const b = body[i] as number
      counts[b] = (counts[b] as number) + 1
    }
  }
  let n = body.length
  if (n <= SAMPLE_RUNS * SAMPLE_RUN_BYTES) tally(0, n)
  else {
    const stride = Math.floor((n - SAMPLE_RUN_BYTES) / (SAMPLE_RUNS - 1))
    for (let r = 0; r < SAMPLE_RUNS; r++) tally(r * stride, r * stride + SAMPLE_RUN_BYTES)
    n = SAMPLE_RUNS * SAMPLE_RUN_BYTES
  }
  if (n === 0) return false
  let bits = 0
  for (const c of counts) if (c > 0) bits -= (c / n) * Math.log2(c / n)
  return bits > INCOMPRESSIBLE_BITS
}

/** Why decodeFrame dropped a frame; the value is what `onDrop` receives. */
export const FrameDecodeError = {
  /** Fewer bytes than the 3-byte header. */
  Short: 'short',
  /** The version byte is not WIRE_VERSION. */
  Version: 'version',
  /** The kind byte is not one of Kind. */
  Kind: 'kind',
  /** A flag bit other than FLAG_DEFLATE is set. */
  Flags: 'flags',
  /** The body (raw, or once inflated) is larger than maxMessageBytes. */
  TooLarge: 'too-large',
  /** The compressed body is not valid deflate-raw. */
  Inflate: 'inflate',
  /** The body is not msgpack of a Value (see value.ts for what is refused). */
  Body: 'body',
  /** The body holds more msgpack objects than maxItems (found before anything is built). */
  Items: 'items',
  /** The validator for this kind said no (or threw). */
  Invalid: 'invalid',
} as const
export type FrameDecodeError = (typeof FrameDecodeError)[keyof typeof FrameDecodeError]

export interface Frame {
  kind: Kind
  body: Value
}

export interface EncodeFrameOptions {
  /**
   * Try deflate-raw on bodies of at least 1 KiB that do not look incompressible
   * (`looksIncompressible`); keep it only if it saves 10% or more.
   * @default true
   */
  compress?: boolean
  /**
   * Largest encoded body (before compression) that may be sent.
   * @default DEFAULT_MAX_MESSAGE_BYTES (4 MiB)
   */
  maxMessageBytes?: number
}

export interface DecodeFrameOptions {
  /**
   * Largest body (once inflated) accepted.
   * @default DEFAULT_MAX_MESSAGE_BYTES (4 MiB)
   */
  maxMessageBytes?: number
  /**
   * Most msgpack objects in the body (decoding costs time per object).
   * @default MAX_VALUE_ITEMS (65,536)
   */
  maxItems?: number
  /**
   * Per kind, a check of the body's shape; a frame whose validator returns false is dropped.
   * @default {} (any Value is accepted)
   */
  validators?: Partial<Record<Kind, (body: Value) => boolean>>
  /** Called with the reason each time a frame is dropped. */
  onDrop?: (reason: FrameDecodeError) => void
}

const KINDS: ReadonlySet<number> = new Set(Object.values(Kind))

export function isKind(k: unknown): k is Kind {
  return typeof k === 'number' && KINDS.has(k)
}

/**
 * Encode a frame. Throws MessageTooLargeError when the encoded body is over
 * maxMessageBytes, and TypeError for an unknown kind or a body that is not a Value.
 */
export async function encodeFrame(frame: Frame, opts: EncodeFrameOptions = {}): Promise<Uint8Array> {
  const max = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
  if (!isKind(frame.kind)) throw new TypeError(`unknown frame kind ${String(frame.kind)}`)
  // The body is encoded after room for the header, which is written in place when it goes plain.
  const framed = encodeValueAfter(frame.body, FRAME_HEADER_BYTES)
  const plain = framed.subarray(FRAME_HEADER_BYTES)
  if (plain.length > max) throw new MessageTooLargeError(plain.length, max)
  let out = framed
  let flags = 0
  if ((opts.compress ?? true) && plain.length >= COMPRESS_MIN_BYTES && !looksIncompressible(plain)) {
    const deflated = await runStream(plain, new CompressionStream('deflate-raw'), Number.POSITIVE_INFINITY)
    if (deflated !== null && deflated.length <= plain.length * 0.9) {
      out = new Uint8Array(FRAME_HEADER_BYTES + deflated.length)
      out.set(deflated, FRAME_HEADER_BYTES)
      flags |= FLAG_DEFLATE
    }
  }
  out[0] = WIRE_VERSION
  out[1] = frame.kind
  out[2] = flags
  return out
}

/** Decode a frame from a peer: the Frame, or null (and `onDrop(reason)`). Never throws, never rejects. */
export async function decodeFrame(bytes: Uint8Array, opts: DecodeFrameOptions = {}): Promise<Frame | null> {
  const drop = (reason: FrameDecodeError): null => {
    try {
      opts.onDrop?.(reason)
    } catch {
      // a failing counter must not turn a dropped frame into an exception
    }
    return null
  }
  const max = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
  const head = readFrameHeader(bytes, max)
  if (typeof head === 'string') return drop(head)
  let body = head.body
  if (head.deflated) {
    const inflated = await inflateBody(body, max)
    if (typeof inflated === 'string') return drop(inflated)
    body = inflated
  }
  const frame = decodeFrameBody(head.kind, body, opts)
  return typeof frame === 'string' ? drop(frame) : frame
}

/**
 * The first step of decodeFrame, synchronous and cheap: check the header
 * and the body's size. The kind, whether the body is deflated, and the body
 * (a view); or why the frame is dropped. Never throws.
 */
export function readFrameHeader(
  bytes: Uint8Array,
  maxMessageBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
): { kind: Kind; deflated: boolean; body: Uint8Array } | FrameDecodeError {
  if (bytes.length < FRAME_HEADER_BYTES) return FrameDecodeError.Short
  if (bytes[0] !== WIRE_VERSION) return FrameDecodeError.Version
  const kind = bytes[1]
  if (!isKind(kind)) return FrameDecodeError.Kind
  const flags = bytes[2] as number
  if ((flags & ~KNOWN_FLAGS) !== 0) return FrameDecodeError.Flags
  const body = bytes.subarray(FRAME_HEADER_BYTES)
  if (body.length > maxMessageBytes) return FrameDecodeError.TooLarge
  return { kind, deflated: (flags & FLAG_DEFLATE) !== 0, body }
}

/**
 * Inflate a deflate-raw body, streaming, and stop as soon as the output
 * passes `maxMessageBytes` (TooLarge); Inflate when it is not valid
 * deflate-raw. Never rejects.
 */
export async function inflateBody(
  body: Uint8Array,
  maxMessageBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
): Promise<Uint8Array | FrameDecodeError> {
  try {
    const inflated = await runStream(body, new DecompressionStream('deflate-raw'), maxMessageBytes)
    return inflated === null ? FrameDecodeError.TooLarge : inflated
  } catch {
    return FrameDecodeError.Inflate
  }
}

/**
 * The last step of decodeFrame, synchronous: decode a plain (inflated) body
 * and apply the kind's validator. Its cost is bounded by `maxItems`, so a
 * caller can time it and budget it. The Frame, or why it is dropped. Never throws.
 */
export function decodeFrameBody(
  kind: Kind,
  body: Uint8Array,
  opts: Pick<DecodeFrameOptions, 'maxItems' | 'validators'> = {},
): Frame | FrameDecodeError {
  try {
    const decoded = decodeValueOrWhy(body, opts.maxItems ?? MAX_VALUE_ITEMS)
    if (decoded === SCAN_TOO_MANY_ITEMS) return FrameDecodeError.Items
    if (typeof decoded === 'number') return FrameDecodeError.Body
    const value = decoded.value
    const validate = opts.validators?.[kind]
    if (validate !== undefined) {
      let ok = false
      try {
        ok = validate(value) === true
      } catch {
        ok = false
      }
      if (!ok) return FrameDecodeError.Invalid
    }
    return { kind, body: value }
  } catch {
    // Not expected (every step above guards itself); an exception must still never reach the caller.
    return FrameDecodeError.Body
  }
}

/**
 * Push `input` through a (de)compression stream and collect the output, giving
 * up (null) once it passes `limit` bytes: reading stops, the stream is
 * cancelled, and the rest is never inflated. Rejects if the stream errors.
 */
async function runStream(
  input: Uint8Array,
  stream: CompressionStream | DecompressionStream,
  limit: number,
): Promise<Uint8Array | null> {
  const writer = stream.writable.getWriter()
  // Errors surface on the reading side; these promises only need a handler.
  writer
    .write(input as Uint8Array<ArrayBuffer>)
    .then(() => writer.close())
    .catch(() => {})
  const reader = stream.readable.getReader()
  const parts: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.length
    if (total > limit) {
      await reader.cancel().catch(() => {})
      return null
    }
    parts.push(value)
  }
  if (parts.length === 1) return parts[0] as Uint8Array
  return concatBytes(...parts)
}
