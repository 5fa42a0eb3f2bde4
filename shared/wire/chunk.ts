/**
 * Chunking: how a frame crosses a link whose messages are size-limited.
 *
 * A frame of at most CHUNK_BYTES (16 KiB) travels as it is: one link
 * message, whose first byte is the frame's version (1). A larger frame is
 * split into chunks, each one link message of at most CHUNK_BYTES, header
 * included:
 *
 *   chunk   = 0xc1  msgId:u32  index:u16  count:u16  length:u32  payload
 *
 * (big-endian). The first byte tells the two apart: frame versions stay
 * below 0xc0, and 0xc0-0xcf are reserved for link-level markers, of which
 * 0xc1 is the chunk. `msgId` is chosen by the sender, distinct among the
 * messages it has in flight on the link (a per-link counter). `length` is the
 * whole frame's size, `count` = ceil(length / CHUNK_PAYLOAD_BYTES), and every
 * chunk but the last carries exactly CHUNK_PAYLOAD_BYTES of payload: chunk
 * `index` holds bytes [index * CHUNK_PAYLOAD_BYTES, ...) of the frame.
 *
 * The link (an ordered, reliable data channel) keeps each message's chunks in
 * order, but the chunks of different messages may interleave. The
 * reassembler accepts any interleaving and any order within a message.
 *
 * A reassembler serves one link and trusts nothing: it holds at most
 * `maxPartial` unfinished messages and `maxPartialBytes` of their payload,
 * forgets a message `maxAgeMs` after its first chunk, and drops a message
 * whose chunks disagree (a changed count or length, an index out of range, a
 * duplicate index, a payload of the wrong size, a length over the maximum).
 * Each drop is counted by reason; the remaining chunks of a dropped message
 * are recognised (for maxAgeMs) and counted as `after-drop` instead of
 * starting a new partial message.
 */
import { MessageTooLargeError } from '../errors.ts'
import { DEFAULT_MAX_MESSAGE_BYTES, FRAME_HEADER_BYTES } from './frame.ts'

/** Largest link message: a small frame, or one chunk with its header. */
export const CHUNK_BYTES = 16 * 1024

/** The first byte of a chunk. */
export const CHUNK_MARKER = 0xc1

/** marker u8, msgId u32, index u16, count u16, length u32 */
export const CHUNK_HEADER_BYTES = 13

/** Payload of every chunk but the last. */
export const CHUNK_PAYLOAD_BYTES = CHUNK_BYTES - CHUNK_HEADER_BYTES

/** The first bytes reserved for link markers: no frame version may take them. */
const isMarkerByte = (b: number) => b >= 0xc0 && b <= 0xcf

/**
 * Split a frame into link messages: the frame itself when it fits in
 * CHUNK_BYTES, else its chunks. Throws MessageTooLargeError when the frame is
 * over maxMessageBytes + FRAME_HEADER_BYTES (maxMessageBytes bounds a frame's body).
 */
export function splitMessage(
  frame: Uint8Array,
  msgId: number,
  maxMessageBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
): Uint8Array[] {
  const limit = maxMessageBytes + FRAME_HEADER_BYTES
  if (frame.length > limit) throw new MessageTooLargeError(frame.length, limit)
  if (!Number.isInteger(msgId) || msgId < 0 || msgId > 0xffffffff) throw new RangeError(`bad msgId ${msgId}`)
  if (frame.length === 0 || isMarkerByte(frame[0] as number)) throw new TypeError('not a frame')
  if (frame.length <= CHUNK_BYTES) return [frame]
  const count = Math.ceil(frame.length / CHUNK_PAYLOAD_BYTES)
  if (count > 0xffff) throw new MessageTooLargeError(frame.length, 0xffff * CHUNK_PAYLOAD_BYTES)
  const out: Uint8Array[] = []
  for (let index = 0; index < count; index++) {
    const payload = frame.subarray(index * CHUNK_PAYLOAD_BYTES, (index + 1) * CHUNK_PAYLOAD_BYTES)
    const chunk = new Uint8Array(CHUNK_HEADER_BYTES + payload.length)
    const view = new DataView(chunk.buffer)
    view.setUint8(0, CHUNK_MARKER)
    view.setUint32(1, msgId)
    view.setUint16(5, index)
    view.setUint16(7, count)
    view.setUint32(9, frame.length)
    chunk.set(payload, CHUNK_HEADER_BYTES)
    out.push(chunk)
  }
  return out
}

/** Why the reassembler dropped a piece or a message; the keys of `stats().dropped`. */
export const ChunkDropReason = {
  /** An empty link message. */
  Empty: 'empty',
  /** A whole (unchunked) message larger than CHUNK_BYTES. */
  Oversize: 'oversize',
  /** A first byte in the reserved marker range that is not CHUNK_MARKER. */
  Marker: 'marker',
  /** A chunk shorter than its header. */
  Short: 'short',
  /** A header that contradicts itself (count vs length, index out of range, payload size). */
  Header: 'header',
  /** A declared length over maxMessageBytes + FRAME_HEADER_BYTES. */
  TooLarge: 'too-large',
  /** A chunk whose count or length differs from earlier chunks of its message. */
  Changed: 'changed',
  /** A second chunk with the same index. */
  Duplicate: 'duplicate',
  /** A new message while maxPartial are unfinished. */
  TooManyPartial: 'too-many-partial',
  /** A chunk that would take the unfinished payload over maxPartialBytes. */
  PartialBytes: 'partial-bytes',
  /** A message still unfinished maxAgeMs after its first chunk. */
  Timeout: 'timeout',
  /** A chunk of a message already dropped. */
  AfterDrop: 'after-drop',
} as const
export type ChunkDropReason = (typeof ChunkDropReason)[keyof typeof ChunkDropReason]

export interface ReassemblerOptions {
  /**
   * Unfinished messages held at once.
   * @default 16
   */
  maxPartial?: number
  /**
   * Payload bytes held in unfinished messages, all together.
   * @default 8 MiB
   */
  maxPartialBytes?: number
  /**
   * How long an unfinished message is kept after its first chunk.
   * @default 30000
   */
  maxAgeMs?: number
  /**
   * Largest frame body; a frame may be FRAME_HEADER_BYTES more.
   * @default DEFAULT_MAX_MESSAGE_BYTES (4 MiB)
   */
  maxMessageBytes?: number
  /** Told of every drop as it happens (the node's counters), besides `stats().dropped`. */
  onDrop?: (reason: ChunkDropReason) => void
}

export interface ReassemblerStats {
  partial: number
  partialBytes: number
  dropped: Record<string, number>
}

export interface Reassembler {
  /** One link message in; a whole frame out when one is complete, else null. `now` in ms. */
  push(piece: Uint8Array, now: number): Uint8Array | null
  /** Forget unfinished messages older than maxAgeMs. */
  tick(now: number): void
  stats(): ReassemblerStats
}

interface PartialMessage {
  count: number
  length: number
  firstAt: number
  received: number
  bytes: number
  pieces: (Uint8Array | undefined)[]
}

/** A reassembler for one link. */
export function createReassembler(opts: ReassemblerOptions = {}): Reassembler {
  const maxPartial = opts.maxPartial ?? 16
  const maxPartialBytes = opts.maxPartialBytes ?? 8 * 1024 * 1024
  const maxAgeMs = opts.maxAgeMs ?? 30_000
  const maxFrame = (opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES) + FRAME_HEADER_BYTES
  // Bounded: a message id is remembered only after a drop, for maxAgeMs, and at most this many.
  const maxTombstones = maxPartial * 4

  const partials = new Map<number, PartialMessage>()
  const tombstones = new Map<number, number>() // msgId -> when it was dropped
  const dropped: Record<string, number> = {}
  let partialBytes = 0

  const count = (reason: ChunkDropReason): null => {
    dropped[reason] = (dropped[reason] ?? 0) + 1
    opts.onDrop?.(reason)
    return null
  }

  const dropMessage = (msgId: number, reason: ChunkDropReason, now: number): null => {
    const p = partials.get(msgId)
    if (p !== undefined) {
      partialBytes -= p.bytes
      partials.delete(msgId)
    }
    tombstones.delete(msgId) // re-insert: Map order is age order
    tombstones.set(msgId, now)
    if (tombstones.size > maxTombstones) {
      const oldest = tombstones.keys().next()
      if (!oldest.done) tombstones.delete(oldest.value)
    }
    return count(reason)
  }

  const expire = (now: number) => {
    for (const [msgId, p] of partials) if (now - p.firstAt > maxAgeMs) dropMessage(msgId, 'timeout', now)
    for (const [msgId, at] of tombstones) if (now - at > maxAgeMs) tombstones.delete(msgId)
  }

  return {
    push(piece, now) {
      if (piece.length === 0) return count('empty')
      const first = piece[0] as number
      if (!isMarkerByte(first)) return piece.length <= CHUNK_BYTES ? piece : count('oversize')
      if (first !== CHUNK_MARKER) return count('marker')
      if (piece.length < CHUNK_HEADER_BYTES) return count('short')

      const view = new DataView(piece.buffer, piece.byteOffset, piece.byteLength)
      const msgId = view.getUint32(1)
      const index = view.getUint16(5)
      const total = view.getUint16(7)
      const length = view.getUint32(9)
      const payload = piece.subarray(CHUNK_HEADER_BYTES)

      const at = tombstones.get(msgId)
      if (at !== undefined) {
        if (now - at <= maxAgeMs) return count('after-drop')
        tombstones.delete(msgId)
      }
      let p = partials.get(msgId)
      if (p !== undefined && now - p.firstAt > maxAgeMs) {
        dropMessage(msgId, 'timeout', now)
        return count('after-drop')
      }

      if (length > maxFrame) return dropMessage(msgId, 'too-large', now)
      const expectedPayload = index === total - 1 ? length - index * CHUNK_PAYLOAD_BYTES : CHUNK_PAYLOAD_BYTES
      if (
        length === 0 ||
        total !== Math.ceil(length / CHUNK_PAYLOAD_BYTES) ||
        index >= total ||
        payload.length !== expectedPayload
      ) {
        return dropMessage(msgId, 'header', now)
      }

      if (p === undefined) {
        if (partials.size >= maxPartial) return dropMessage(msgId, 'too-many-partial', now)
        p = { count: total, length, firstAt: now, received: 0, bytes: 0, pieces: new Array(total) }
        partials.set(msgId, p)
      } else if (p.count !== total || p.length !== length) {
        return dropMessage(msgId, 'changed', now)
      }
      if (p.pieces[index] !== undefined) return dropMessage(msgId, 'duplicate', now)
      if (partialBytes + payload.length > maxPartialBytes) return dropMessage(msgId, 'partial-bytes', now)

      // Copy into a plain Uint8Array: the link may reuse its buffer (and Buffer#slice would not copy).
      p.pieces[index] = new Uint8Array(payload)
      p.received++
      p.bytes += payload.length
      partialBytes += payload.length
      if (p.received < p.count) return null

      partials.delete(msgId)
      partialBytes -= p.bytes
      const out = new Uint8Array(p.length)
      for (let i = 0; i < p.count; i++) out.set(p.pieces[i] as Uint8Array, i * CHUNK_PAYLOAD_BYTES)
      return out
    },

    tick(now) {
      expire(now)
    },

    stats() {
      return { partial: partials.size, partialBytes, dropped: { ...dropped } }
    },
  }
}
