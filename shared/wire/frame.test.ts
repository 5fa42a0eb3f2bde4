import { deflateRawSync } from 'node:zlib'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { arbLargeValue, arbValue, exactlyEqual, isPlainDeep } from '../../test/arbitraries.ts'
import { concatBytes } from '../bytes.ts'
import { isValue, type Value } from '../types.ts'
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  type DecodeFrameOptions,
  decodeFrame,
  encodeFrame,
  FLAG_DEFLATE,
  FRAME_HEADER_BYTES,
  type FrameDecodeError,
  isKind,
  Kind,
  looksIncompressible,
  WIRE_VERSION,
} from './frame.ts'
import { encodeValue } from './value.ts'

const arbKind = fc.constantFrom(...Object.values(Kind))

async function deflateRaw(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>])
    .stream()
    .pipeThrough(new CompressionStream('deflate-raw'))
  return new Uint8Array(await new Response(stream).arrayBuffer())
}

function rawFrame(kind: number, flags: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.length)
  out.set([WIRE_VERSION, kind, flags])
  out.set(body, FRAME_HEADER_BYTES)
  return out
}

/** decodeFrame, collecting drop reasons. */
async function decode(bytes: Uint8Array, opts: DecodeFrameOptions = {}) {
  const drops: FrameDecodeError[] = []
  const frame = await decodeFrame(bytes, { ...opts, onDrop: (r) => drops.push(r) })
  return { frame, drops }
}

describe('encodeFrame / decodeFrame', () => {
  it('round-trips any Value under any kind, with and without compression', async () => {
    await fc.assert(
      fc.asyncProperty(arbKind, arbValue, fc.boolean(), async (kind, body, compress) => {
        const bytes = await encodeFrame({ kind, body }, { compress })
        expect(Array.from(bytes.subarray(0, 2))).toEqual([WIRE_VERSION, kind])
        const { frame, drops } = await decode(bytes)
        expect(drops).toEqual([])
        expect(frame?.kind).toBe(kind)
        expect(exactlyEqual(frame?.body as Value, body)).toBe(true)
        expect(isPlainDeep(frame?.body as Value)).toBe(true)
      }),
      { numRuns: 300 },
    )
  })

  it('compresses large compressible bodies and round-trips them', async () => {
    await fc.assert(
      fc.asyncProperty(arbKind, arbLargeValue(4096), async (kind, body) => {
        const plain = encodeValue(body)
        const bytes = await encodeFrame({ kind, body })
        expect(bytes[2]).toBe(FLAG_DEFLATE)
        expect(bytes.length - FRAME_HEADER_BYTES).toBeLessThanOrEqual(plain.length * 0.9)
        const { frame } = await decode(bytes)
        expect(exactlyEqual(frame?.body as Value, body)).toBe(true)
        // compress: false sends the same body as it is
        const uncompressed = await encodeFrame({ kind, body }, { compress: false })
        expect(uncompressed[2]).toBe(0)
        expect(uncompressed.subarray(FRAME_HEADER_BYTES)).toEqual(plain)
      }),
      { numRuns: 40 },
    )
  })

  it('compresses only from 1 KiB and only when it saves 10%', async () => {
    const small = 'a'.repeat(1000) // encodes to 1003 bytes: compressible but under 1 KiB
    expect((await encodeFrame({ kind: Kind.Mesh, body: small }))[2]).toBe(0)
    const justOver = 'a'.repeat(1021) // 1024 bytes encoded
    expect(encodeValue(justOver).length).toBe(1024)
    expect((await encodeFrame({ kind: Kind.Mesh, body: justOver }))[2]).toBe(FLAG_DEFLATE)
    const noise = crypto.getRandomValues(new Uint8Array(8192))
    const framed = await encodeFrame({ kind: Kind.Sync, body: noise })
    expect(framed[2]).toBe(0)
    expect(framed.length).toBe(FRAME_HEADER_BYTES + encodeValue(noise).length)
  })

  it('does not try deflate on a body whose sample looks incompressible (issue 14: random bytes)', async () => {
    const Real = globalThis.CompressionStream
    let attempts = 0
    globalThis.CompressionStream = class extends Real {
      constructor(format: CompressionFormat) {
        super(format)
        attempts++
      }
    }
    try {
      const noise = crypto.getRandomValues(new Uint8Array(64 * 1024))
      const framed = await encodeFrame({ kind: Kind.Route, body: { t: 'msg', topic: 'bench', data: noise } })
      expect(framed[2]).toBe(0)
      expect(attempts).toBe(0)
      // A compressible body is still deflated (the attempt is made, and kept).
      const text = await encodeFrame({
        kind: Kind.Route,
        body: { t: 'msg', data: 'the mill, '.repeat(6000) },
      })
      expect(text[2]).toBe(FLAG_DEFLATE)
      expect(attempts).toBe(1)
    } finally {
      globalThis.CompressionStream = Real
    }
  })

  it('looksIncompressible: random bytes yes; text, zeros, structured msgpack and a short random run in text no', () => {
    for (const n of [1024, 4096, 5000, 65_536])
      expect(looksIncompressible(crypto.getRandomValues(new Uint8Array(n)))).toBe(true)
    expect(looksIncompressible(new Uint8Array(64 * 1024))).toBe(false)
    expect(looksIncompressible(new TextEncoder().encode('meet at the mill at noon; '.repeat(3000)))).toBe(
      false,
    )
    const rows = Array.from({ length: 500 }, (_, i) => ({
      key: `k${i}`,
      v: i * 7,
      at: 1_700_000_000_000 + i,
    }))
    expect(looksIncompressible(encodeValue(rows))).toBe(false)
    const mixed = new TextEncoder().encode('x'.repeat(60_000))
    mixed.set(crypto.getRandomValues(new Uint8Array(4000)), 1000)
    expect(looksIncompressible(mixed)).toBe(false)
    expect(looksIncompressible(new Uint8Array(0))).toBe(false)
  })

  it('refuses to encode a body over maxMessageBytes with MessageTooLargeError', async () => {
    const body = new Uint8Array(DEFAULT_MAX_MESSAGE_BYTES) // bin 32 header makes it 5 bytes over
    await expect(encodeFrame({ kind: Kind.Route, body })).rejects.toMatchObject({
      name: 'MessageTooLargeError',
      size: DEFAULT_MAX_MESSAGE_BYTES + 5,
      limit: DEFAULT_MAX_MESSAGE_BYTES,
    })
    await expect(
      encodeFrame({ kind: Kind.Route, body: 'x'.repeat(200) }, { maxMessageBytes: 100 }),
    ).rejects.toMatchObject({
      name: 'MessageTooLargeError',
    })
    // the limit is on the body before compression, even when it would compress well
    await expect(
      encodeFrame({ kind: Kind.Route, body: 'x'.repeat(5000) }, { maxMessageBytes: 4096 }),
    ).rejects.toMatchObject({ name: 'MessageTooLargeError' })
    // exactly at the limit is fine
    const atLimit = await encodeFrame({
      kind: Kind.Route,
      body: new Uint8Array(DEFAULT_MAX_MESSAGE_BYTES - 5),
    })
    expect((await decode(atLimit)).frame).not.toBeNull()
  })

  it('refuses to encode an unknown kind or a non-Value body', async () => {
    await expect(encodeFrame({ kind: 9 as Kind, body: 1 })).rejects.toThrow(TypeError)
    await expect(encodeFrame({ kind: Kind.Link, body: Number.NaN })).rejects.toThrow(TypeError)
  })

  it('decodes a null body (a null Value is not a refusal)', async () => {
    const { frame } = await decode(await encodeFrame({ kind: Kind.Link, body: null }))
    expect(frame).toEqual({ kind: Kind.Link, body: null })
  })

  it('drops bad frames with a reason', async () => {
    const body = encodeValue({ a: 1 })
    const cases: [Uint8Array, FrameDecodeError][] = [
      [new Uint8Array([]), 'short'],
      [new Uint8Array([1, 2]), 'short'],
      [new Uint8Array([2, 2, 0, ...body]), 'version'],
      [new Uint8Array([0xc1, 2, 0, ...body]), 'version'],
      [rawFrame(0, 0, body), 'kind'],
      [rawFrame(9, 0, body), 'kind'],
      [rawFrame(2, 2, body), 'flags'],
      [rawFrame(2, 0x81, body), 'flags'],
      [rawFrame(2, FLAG_DEFLATE, new Uint8Array([0xff, 0xff, 0xff])), 'inflate'],
      [rawFrame(2, FLAG_DEFLATE, (await deflateRaw(body)).subarray(0, 2)), 'inflate'],
      [rawFrame(2, 0, new Uint8Array([])), 'body'],
      [rawFrame(2, 0, new Uint8Array([0xc1])), 'body'],
      [rawFrame(2, 0, new Uint8Array([0xd6, 0xff, 0, 0, 0, 0])), 'body'],
      [rawFrame(2, FLAG_DEFLATE, await deflateRaw(new Uint8Array([0x81, 0x01, 0x01]))), 'body'],
      [rawFrame(2, 0, new Uint8Array(101)), 'too-large'],
    ]
    for (const [bytes, reason] of cases) {
      const { frame, drops } = await decode(bytes, { maxMessageBytes: 100 })
      expect(frame, reason).toBeNull()
      expect(drops, reason).toEqual([reason])
    }
  })

  it('applies the validator of the frame kind only, and treats a throwing validator as a no', async () => {
    const validators = {
      [Kind.Mesh]: (b: Value) => typeof b === 'string',
      [Kind.Sync]: (): boolean => {
        throw new Error('boom')
      },
    }
    const mesh = async (body: Value) => decode(await encodeFrame({ kind: Kind.Mesh, body }), { validators })
    expect((await mesh('ok')).frame).toEqual({ kind: Kind.Mesh, body: 'ok' })
    expect(await mesh(1)).toEqual({ frame: null, drops: ['invalid'] })
    expect(await decode(await encodeFrame({ kind: Kind.Sync, body: 'ok' }), { validators })).toEqual({
      frame: null,
      drops: ['invalid'],
    })
    expect((await decode(await encodeFrame({ kind: Kind.Chord, body: 1 }), { validators })).frame).toEqual({
      kind: Kind.Chord,
      body: 1,
    })
  })

  it('never throws when onDrop throws', async () => {
    const frame = await decodeFrame(new Uint8Array([9]), {
      onDrop: () => {
        throw new Error('counter broke')
      },
    })
    expect(frame).toBeNull()
  })

  it('stops inflating a decompression bomb at the limit', async () => {
    // 64 MiB of zeros as one msgpack bin: about 64 KiB once deflated.
    const inflated = new Uint8Array(64 * 1024 * 1024 + 5)
    inflated.set([0xc6, 0x04, 0x00, 0x00, 0x00])
    const bomb = rawFrame(Kind.Mesh, FLAG_DEFLATE, await deflateRaw(inflated))
    expect(bomb.length).toBeLessThan(DEFAULT_MAX_MESSAGE_BYTES / 16)
    // Count what the decompressor hands out: a decoder that inflated everything and checked the
    // size afterwards would produce all 64 MiB (fast enough that a time bound would not tell).
    let produced = 0
    const Real = globalThis.DecompressionStream
    globalThis.DecompressionStream = class {
      readonly writable: WritableStream<BufferSource>
      readonly readable: ReadableStream<Uint8Array>
      constructor(format: CompressionFormat) {
        const d = new Real(format)
        this.writable = d.writable
        this.readable = d.readable.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, out) {
              produced += chunk.length
              out.enqueue(chunk)
            },
          }),
        )
      }
    } as unknown as typeof DecompressionStream
    let result: Awaited<ReturnType<typeof decode>>
    try {
      result = await decode(bomb)
    } finally {
      globalThis.DecompressionStream = Real
    }
    expect(result.frame).toBeNull()
    expect(result.drops).toEqual(['too-large'])
    expect(produced).toBeGreaterThan(DEFAULT_MAX_MESSAGE_BYTES)
    expect(produced).toBeLessThan(DEFAULT_MAX_MESSAGE_BYTES + 1024 * 1024)
    // and a small limit holds too: 2 KiB of zeros against a 1 KiB limit
    const small = rawFrame(Kind.Mesh, FLAG_DEFLATE, await deflateRaw(new Uint8Array(2048)))
    expect(await decode(small, { maxMessageBytes: 1024 })).toEqual({ frame: null, drops: ['too-large'] })
  })

  it('drops a small frame that inflates to millions of msgpack objects, by count, quickly', async () => {
    // 4 KiB deflated, 4 MiB of nils: the attack of issue 9 (item 5).
    const n = 4 * 1024 * 1024 - 5
    const body = new Uint8Array(5 + n).fill(0xc0)
    body[0] = 0xdd
    new DataView(body.buffer).setUint32(1, n)
    const frame = concatBytes(new Uint8Array([WIRE_VERSION, Kind.Mesh, FLAG_DEFLATE]), deflateRawSync(body))
    expect(frame.length).toBeLessThan(8 * 1024)
    const reasons: string[] = []
    const t0 = performance.now()
    expect(await decodeFrame(frame, { onDrop: (r) => reasons.push(r) })).toBeNull()
    expect(reasons).toEqual(['items'])
    expect(performance.now() - t0).toBeLessThan(1000) // was seconds; now an inflate and a bounded scan
  })

  it('decodes frames held in a Buffer into plain Uint8Arrays', async () => {
    const body = { b: new Uint8Array(3000).fill(7) }
    const bytes = Buffer.from(await encodeFrame({ kind: Kind.Sync, body }))
    const { frame } = await decode(bytes)
    expect(exactlyEqual(frame?.body as Value, body)).toBe(true)
    expect(isPlainDeep(frame?.body as Value)).toBe(true)
  })

  it('never throws on random or mutated frames; whatever comes out is valid', async () => {
    const validators = { [Kind.Mesh]: (b: Value) => typeof b !== 'string' }
    const check = async (bytes: Uint8Array) => {
      const drops: string[] = []
      const frame = await decodeFrame(bytes, {
        validators,
        maxMessageBytes: 64 * 1024,
        onDrop: (r) => drops.push(r),
      })
      if (frame === null) {
        expect(drops).toHaveLength(1)
        return
      }
      expect(drops).toEqual([])
      expect(isKind(frame.kind)).toBe(true)
      expect(isValue(frame.body)).toBe(true)
      if (frame.kind === Kind.Mesh) expect(typeof frame.body).not.toBe('string')
    }
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 48 }), async (bytes) => {
        await check(bytes)
        if (bytes.length >= 1) await check(new Uint8Array([1, ...bytes])) // get past the version byte
        if (bytes.length >= 2) await check(new Uint8Array([1, 2, bytes[0] as number & 1, ...bytes])) // and the header
      }),
      { numRuns: 400 },
    )
    await fc.assert(
      fc.asyncProperty(
        arbKind,
        fc.oneof(arbValue, arbLargeValue(2048)),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.nat(),
        async (kind, body, edits, cut) => {
          const bytes = await encodeFrame({ kind, body })
          for (const [at, b] of edits) bytes[at % bytes.length] = b
          await check(bytes)
          await check(bytes.subarray(0, cut % (bytes.length + 1)))
        },
      ),
      { numRuns: 300 },
    )
  })
})
