import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { arbLargeValue, arbValue, exactlyEqual } from '../../test/arbitraries.ts'
import { isValue, type Value } from '../types.ts'
import {
  CHUNK_BYTES,
  CHUNK_HEADER_BYTES,
  CHUNK_MARKER,
  CHUNK_PAYLOAD_BYTES,
  createReassembler,
  type ReassemblerOptions,
  splitMessage,
} from './chunk.ts'
import { DEFAULT_MAX_MESSAGE_BYTES, decodeFrame, encodeFrame, FRAME_HEADER_BYTES, Kind } from './frame.ts'

/** A frame-like message of `n` bytes: version byte, then a pattern that makes misplaced bytes visible. */
function message(n: number, seed = 0): Uint8Array {
  const m = new Uint8Array(n)
  for (let i = 0; i < n; i++) m[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff
  m[0] = 1
  return m
}

function header(msgId: number, index: number, count: number, length: number): Uint8Array {
  const h = new Uint8Array(CHUNK_HEADER_BYTES)
  const v = new DataView(h.buffer)
  v.setUint8(0, CHUNK_MARKER)
  v.setUint32(1, msgId)
  v.setUint16(5, index)
  v.setUint16(7, count)
  v.setUint32(9, length)
  return h
}

function withHeader(chunk: Uint8Array, msgId: number, index: number, count: number, length: number) {
  const out = chunk.slice()
  out.set(header(msgId, index, count, length))
  return out
}

/** Feed pieces; return the messages that came out, and the reassembler. */
function feed(pieces: Uint8Array[], opts: ReassemblerOptions = {}, now = 0) {
  const r = createReassembler(opts)
  const out: Uint8Array[] = []
  for (const p of pieces) {
    const m = r.push(p, now)
    if (m !== null) out.push(m)
  }
  return { out, r }
}

/** A seeded Fisher-Yates shuffle, in place. */
function shuffle<T>(xs: T[], seed: number): T[] {
  let s = seed >>> 0
  for (let i = xs.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    const j = s % (i + 1)
    ;[xs[i], xs[j]] = [xs[j] as T, xs[i] as T]
  }
  return xs
}

/** Interleave queues, keeping each queue's order; `picks` chooses which queue goes next. */
function interleave<T>(queues: T[][], picks: number[]): T[] {
  const qs = queues.map((q) => [...q])
  const out: T[] = []
  let k = 0
  for (;;) {
    const open = qs.filter((q) => q.length > 0)
    if (open.length === 0) return out
    const q = open[(picks[k++ % Math.max(picks.length, 1)] ?? 0) % open.length] as T[]
    out.push(q.shift() as T)
  }
}

describe('splitMessage', () => {
  it('sends a message of up to 16 KiB as it is, and a larger one as chunks of at most 16 KiB', () => {
    const small = message(CHUNK_BYTES)
    expect(splitMessage(small, 1)).toEqual([small])
    expect(splitMessage(small, 1)[0]).toBe(small)
    for (const n of [CHUNK_BYTES + 1, 2 * CHUNK_PAYLOAD_BYTES, 2 * CHUNK_PAYLOAD_BYTES + 1, 100_000]) {
      const chunks = splitMessage(message(n), 7)
      expect(chunks).toHaveLength(Math.ceil(n / CHUNK_PAYLOAD_BYTES))
      chunks.forEach((c, i) => {
        expect(c.length).toBeLessThanOrEqual(CHUNK_BYTES)
        expect(Array.from(c.subarray(0, CHUNK_HEADER_BYTES))).toEqual(
          Array.from(header(7, i, chunks.length, n)),
        )
      })
      expect(chunks.slice(0, -1).every((c) => c.length === CHUNK_BYTES)).toBe(true)
    }
  })

  it('refuses a message over the maximum with MessageTooLargeError', () => {
    const limit = DEFAULT_MAX_MESSAGE_BYTES + FRAME_HEADER_BYTES
    expect(splitMessage(message(limit), 1)).toHaveLength(Math.ceil(limit / CHUNK_PAYLOAD_BYTES))
    expect(() => splitMessage(message(limit + 1), 1)).toThrow(
      expect.objectContaining({ name: 'MessageTooLargeError' }),
    )
    expect(() => splitMessage(message(2000), 1, 1000)).toThrow(
      expect.objectContaining({ name: 'MessageTooLargeError', size: 2000, limit: 1003 }),
    )
  })

  it('refuses a bad msgId or something that is not a frame', () => {
    expect(() => splitMessage(message(10), -1)).toThrow(RangeError)
    expect(() => splitMessage(message(10), 2 ** 32)).toThrow(RangeError)
    expect(() => splitMessage(message(10), 1.5)).toThrow(RangeError)
    expect(() => splitMessage(new Uint8Array(0), 1)).toThrow(TypeError)
    expect(() => splitMessage(new Uint8Array([CHUNK_MARKER, 0]), 1)).toThrow(TypeError)
  })
})

describe('reassembler', () => {
  it('reassembles frames of any Value through any interleaving of several messages', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(arbValue, arbLargeValue(20_000), arbLargeValue(70_000)), {
          minLength: 1,
          maxLength: 5,
        }),
        fc.array(fc.nat(), { maxLength: 64 }),
        fc.boolean(),
        async (bodies, picks, shuffleWithin) => {
          const frames = await Promise.all(
            bodies.map((body, i) => encodeFrame({ kind: Kind.Mesh, body }, { compress: i % 2 === 0 })),
          )
          const queues = frames.map((f, i) => splitMessage(f, 1000 + i))
          // optionally also scramble each message's own chunks
          if (shuffleWithin) for (const [i, q] of queues.entries()) shuffle(q, (picks[i] ?? 0) + i)
          const { out, r } = feed(interleave(queues, picks))
          expect(out).toHaveLength(frames.length)
          for (const m of out) {
            const i = frames.findIndex((f) => f.length === m.length && f.every((b, j) => b === m[j]))
            expect(i).toBeGreaterThanOrEqual(0)
            const frame = await decodeFrame(m)
            expect(exactlyEqual(frame?.body as Value, bodies[i] as Value)).toBe(true)
          }
          expect(r.stats()).toEqual({ partial: 0, partialBytes: 0, dropped: {} })
        },
      ),
      { numRuns: 40 },
    )
  })

  it('reassembles incompressible multi-chunk messages shuffled within and across messages', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 120_000 }), { minLength: 1, maxLength: 6 }),
        fc.integer(),
        (sizes, seed) => {
          const msgs = sizes.map((n, i) => message(n, i))
          const pieces = shuffle(
            msgs.flatMap((m, i) => splitMessage(m, i)),
            seed,
          )
          const { out, r } = feed(pieces)
          expect(out).toHaveLength(msgs.length)
          const sorted = (xs: Uint8Array[]) => [...xs].sort((a, b) => a.length - b.length || a[1]! - b[1]!)
          // compare as sets: same lengths and same bytes
          for (const m of out)
            expect(msgs.some((x) => x.length === m.length && x.every((b, j) => b === m[j]))).toBe(true)
          expect(sorted(out).map((m) => m.length)).toEqual(sorted(msgs).map((m) => m.length))
          expect(r.stats().partial).toBe(0)
        },
      ),
      { numRuns: 60 },
    )
  })

  it('returns small messages as they are and in order between chunks', () => {
    const big = splitMessage(message(40_000), 5)
    const a = message(10, 1)
    const b = message(CHUNK_BYTES, 2)
    const { out } = feed([big[0]!, a, big[1]!, b, big[2]!])
    expect(out).toEqual([a, b, message(40_000)])
  })

  it('drops malformed and inconsistent pieces, counting each reason', () => {
    const n = 3 * CHUNK_PAYLOAD_BYTES - 10 // three chunks
    const [c0, c1, c2] = splitMessage(message(n), 9) as [Uint8Array, Uint8Array, Uint8Array]
    const cases: [string, Uint8Array[]][] = [
      ['empty', [new Uint8Array(0)]],
      ['oversize', [message(CHUNK_BYTES + 1)]],
      ['marker', [new Uint8Array([0xc0, 1, 2])]],
      ['marker', [new Uint8Array([0xcf])]],
      ['short', [c0.subarray(0, CHUNK_HEADER_BYTES - 1)]],
      ['header', [withHeader(c0, 9, 3, 3, n)]], // index out of range
      ['header', [withHeader(c0, 9, 0, 4, n)]], // count does not match length
      ['header', [withHeader(c0, 9, 0, 0, 0)]], // empty message
      ['header', [c0.subarray(0, c0.length - 1)]], // payload one byte short
      ['header', [withHeader(c0, 9, 0, 1, 100)]], // one chunk, wrong payload size
      ['too-large', [withHeader(c0, 9, 0, 257, 4 * 1024 * 1024 + 4)]],
      ['changed', [c0, withHeader(c1, 9, 1, 4, 3 * CHUNK_PAYLOAD_BYTES + 1)]],
      ['duplicate', [c0, c0]],
      ['duplicate', [c2, c1, c2]],
    ]
    for (const [reason, pieces] of cases) {
      const told: string[] = []
      const { out, r } = feed(pieces, { onDrop: (why) => told.push(why) })
      expect(out, reason).toEqual([])
      expect(r.stats().dropped, reason).toEqual({ [reason]: 1 })
      expect(told, reason).toEqual([reason])
      expect(r.stats().partial, reason).toBe(0)
      expect(r.stats().partialBytes, reason).toBe(0)
    }
  })

  it('ignores the rest of a dropped message, then accepts the id again after maxAgeMs', () => {
    const chunks = splitMessage(message(50_000), 3)
    const r = createReassembler({ maxAgeMs: 1000 })
    expect(r.push(chunks[0]!, 0)).toBeNull()
    expect(r.push(chunks[0]!, 0)).toBeNull() // duplicate: message dropped
    for (const c of chunks.slice(1)) expect(r.push(c, 10)).toBeNull()
    expect(r.stats()).toEqual({
      partial: 0,
      partialBytes: 0,
      dropped: { duplicate: 1, 'after-drop': chunks.length - 1 },
    })
    r.tick(2000)
    let out: Uint8Array | null = null
    for (const c of chunks) out = r.push(c, 2000)
    expect(out).toEqual(message(50_000))
  })

  it('holds at most maxPartial unfinished messages', () => {
    const msgs = Array.from({ length: 5 }, (_, i) => splitMessage(message(40_000, i), i))
    const r = createReassembler({ maxPartial: 4 })
    for (const m of msgs) r.push(m[0]!, 0)
    expect(r.stats().partial).toBe(4)
    expect(r.stats().dropped).toEqual({ 'too-many-partial': 1 })
    // the refused message's other chunks are counted, not kept; the others complete
    const done = msgs
      .flatMap((m) => m.slice(1))
      .map((c) => r.push(c, 1))
      .filter((x) => x !== null)
    expect(done).toHaveLength(4)
    expect(r.stats()).toEqual({
      partial: 0,
      partialBytes: 0,
      dropped: { 'too-many-partial': 1, 'after-drop': 2 },
    })
  })

  it('holds at most maxPartialBytes of unfinished payload', () => {
    const a = splitMessage(message(5 * CHUNK_PAYLOAD_BYTES, 1), 1)
    const b = splitMessage(message(5 * CHUNK_PAYLOAD_BYTES, 2), 2)
    const r = createReassembler({ maxPartialBytes: 6 * CHUNK_PAYLOAD_BYTES })
    for (const c of a.slice(0, 4)) r.push(c, 0)
    r.push(b[0]!, 0)
    r.push(b[1]!, 0)
    expect(r.stats().partialBytes).toBe(6 * CHUNK_PAYLOAD_BYTES)
    expect(r.push(b[2]!, 0)).toBeNull() // would pass the bound: b is dropped
    expect(r.stats()).toMatchObject({
      partial: 1,
      partialBytes: 4 * CHUNK_PAYLOAD_BYTES,
      dropped: { 'partial-bytes': 1 },
    })
    expect(r.push(a[4]!, 0)).toEqual(message(5 * CHUNK_PAYLOAD_BYTES, 1))
    expect(r.stats().partialBytes).toBe(0)
  })

  it('forgets unfinished messages maxAgeMs after their first chunk, on tick or on push', () => {
    const a = splitMessage(message(40_000, 1), 1)
    const b = splitMessage(message(40_000, 2), 2)
    const r = createReassembler({ maxAgeMs: 100 })
    r.push(a[0]!, 0)
    r.push(b[0]!, 50)
    r.tick(100) // a is exactly maxAgeMs old: kept
    expect(r.stats().partial).toBe(2)
    r.tick(101)
    expect(r.stats()).toMatchObject({ partial: 1, dropped: { timeout: 1 } })
    expect(r.push(a[1]!, 102)).toBeNull()
    expect(r.push(b[1]!, 151)).toBeNull() // b expires when its next chunk comes late
    expect(r.stats()).toEqual({ partial: 0, partialBytes: 0, dropped: { timeout: 2, 'after-drop': 2 } })
  })

  it('stays bounded and never throws under random and mutated pieces', async () => {
    const opts = { maxPartial: 4, maxPartialBytes: 100_000, maxAgeMs: 1000, maxMessageBytes: 200_000 }
    const valid = await Promise.all(
      [{ a: 'x'.repeat(30_000) }, crypto.getRandomValues(new Uint8Array(50_000)), [1, 2, 3]].map((body) =>
        encodeFrame({ kind: Kind.Sync, body }, { compress: false }),
      ),
    )
    const arbPiece = fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 40 }).map((b) => new Uint8Array([CHUNK_MARKER, ...b])),
      fc
        .tuple(fc.constantFrom(...valid), fc.nat(), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }))
        .map(([f, id, pick, at, byte]) => {
          const pieces = splitMessage(f, id % 4)
          const p = (pieces[pick % pieces.length] as Uint8Array).slice()
          if (at % 3 === 0) p[at % Math.min(p.length, 20)] = byte // mostly the header
          return p
        }),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(arbPiece, fc.nat(300)), { maxLength: 60 }), async (steps) => {
        const r = createReassembler(opts)
        let now = 0
        for (const [piece, dt] of steps) {
          now += dt
          const m = r.push(piece, now)
          if (dt > 250) r.tick(now)
          const s = r.stats()
          expect(s.partial).toBeLessThanOrEqual(opts.maxPartial)
          expect(s.partialBytes).toBeLessThanOrEqual(opts.maxPartialBytes)
          if (m !== null) {
            expect(m.length).toBeLessThanOrEqual(opts.maxMessageBytes + FRAME_HEADER_BYTES)
            const frame = await decodeFrame(m, { maxMessageBytes: opts.maxMessageBytes })
            if (frame !== null) expect(isValue(frame.body)).toBe(true)
          }
        }
      }),
      { numRuns: 200 },
    )
  })
})
