import { describe, expect, it } from 'vitest'
import { sha256, toHex } from '../bytes.ts'
import { encodeValue } from '../wire/value.ts'
import { MAX_MANIFEST_BYTES, MAX_PIECES, PIECE_SIZE } from './limits.ts'
import {
  buildManifest,
  bytesSource,
  encodeManifest,
  fileIdOf,
  isFileName,
  isMediaType,
  parseManifest,
  pieceHash,
  pieceLength,
  verifyManifest,
} from './manifest.ts'

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff)

describe('manifest: content addressing', () => {
  it('cuts a file into pieces of pieceSize (the last shorter), each hashed with SHA-256; the id is the hash of the manifest bytes', async () => {
    const data = bytes(2 * 1024 + 100)
    const {
      id,
      manifest: m,
      bytes: mb,
    } = await buildManifest(bytesSource(data), { pieceSize: 1024, name: 'a.bin' })
    expect(m.pieces).toBe(3)
    expect(m.size).toBe(2 * 1024 + 100)
    expect(pieceLength(m, 0)).toBe(1024)
    expect(pieceLength(m, 2)).toBe(100)
    for (let i = 0; i < 3; i++)
      expect(toHex(pieceHash(m, i))).toBe(toHex(await sha256(data.subarray(i * 1024, (i + 1) * 1024))))
    expect(id).toBe(toHex(await sha256(mb)))
    expect(id).toMatch(/^[0-9a-f]{64}$/)
    expect(parseManifest(mb)).toEqual(m)
  })

  it('defaults to 256 KiB pieces', async () => {
    const { manifest: m } = await buildManifest(bytesSource(bytes(PIECE_SIZE + 1)))
    expect(m.pieceSize).toBe(262_144)
    expect(m.pieces).toBe(2)
  })

  it('the same bytes, name and type give the same id; another name or type another id', async () => {
    const data = bytes(5000)
    const a = await buildManifest(bytesSource(data), { pieceSize: 1024, name: 'x', type: 'text/plain' })
    const b = await buildManifest(bytesSource(data.slice()), {
      pieceSize: 1024,
      name: 'x',
      type: 'text/plain',
    })
    const c = await buildManifest(bytesSource(data), { pieceSize: 1024, name: 'y', type: 'text/plain' })
    const d = await buildManifest(bytesSource(data), { pieceSize: 1024, name: 'x' })
    expect(a.id).toBe(b.id)
    expect(new Set([a.id, c.id, d.id]).size).toBe(3)
  })

  it('an empty file has no pieces and a valid manifest', async () => {
    const { manifest: m, bytes: mb } = await buildManifest(bytesSource(new Uint8Array(0)))
    expect(m.pieces).toBe(0)
    expect(parseManifest(mb)).toEqual(m)
  })

  it('a manifest is used only when it hashes to the id asked for', async () => {
    const { id, bytes: mb } = await buildManifest(bytesSource(bytes(3000)), { pieceSize: 1024 })
    expect(typeof (await verifyManifest(id, mb))).toBe('object')
    const forged = mb.slice()
    forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 1 // a byte of the last piece hash
    expect(await verifyManifest(id, forged)).toBe('hash')
    expect(await verifyManifest(await fileIdOf(forged), forged)).toMatchObject({ size: 3000 }) // its own id is another file
  })

  it('refuses malformed manifests, whatever their hash', () => {
    const h = new Uint8Array(64)
    const ok = { v: 1, size: 2000, pieceSize: 1024, hashes: h }
    expect(typeof parseManifest(encodeValue(ok))).toBe('object')
    const cases: [string, unknown][] = [
      ['version', { ...ok, v: 2 }],
      ['shape', { ...ok, pieceSize: 1000 }], // not a power of two
      ['shape', { ...ok, pieceSize: 512 }], // too small
      ['shape', { ...ok, pieceSize: 2 * 1024 * 1024 }], // too large
      ['shape', { ...ok, size: -1 }],
      ['shape', { ...ok, size: 1.5 }],
      ['shape', { ...ok, hashes: new Uint8Array(32) }], // one hash for two pieces
      ['shape', { ...ok, hashes: new Uint8Array(96) }],
      ['shape', { ...ok, size: (MAX_PIECES + 1) * 1024, hashes: new Uint8Array(0) }],
      ['shape', { ...ok, name: 'a/b' }],
      ['shape', { ...ok, name: 'bell\u0007' }],
      ['shape', { ...ok, name: '' }],
      ['shape', { ...ok, type: 'not a type' }],
      ['shape', { ...ok, extra: 1 }],
    ]
    for (const [why, v] of cases) expect(parseManifest(encodeValue(v as never)), JSON.stringify(v)).toBe(why)
    expect(parseManifest(new Uint8Array([0xc1]))).toBe('decode')
    expect(parseManifest(encodeValue([1, 2]))).toBe('decode')
    expect(parseManifest(new Uint8Array(MAX_MANIFEST_BYTES + 1))).toBe('too-large')
  })

  it('a 4 GiB file at 256 KiB a piece has a manifest of about 512 KiB, within one message', () => {
    const mb = encodeManifest({
      size: MAX_PIECES * PIECE_SIZE,
      pieceSize: PIECE_SIZE,
      hashes: new Uint8Array(MAX_PIECES * 32),
    })
    expect(mb.length).toBeLessThanOrEqual(MAX_MANIFEST_BYTES)
    expect(mb.length).toBeGreaterThan(512 * 1024)
    expect(typeof parseManifest(mb)).toBe('object')
  })

  it('add refuses a file over MAX_PIECES pieces (ValueTooLargeError) before reading it, and bad names or types', async () => {
    let reads = 0
    const huge = {
      size: MAX_PIECES * PIECE_SIZE + 1,
      read: () => {
        reads++
        return new Uint8Array(0)
      },
    }
    await expect(buildManifest(huge)).rejects.toMatchObject({ name: 'ValueTooLargeError' })
    expect(reads).toBe(0)
    await expect(buildManifest(bytesSource(bytes(10)), { name: '../etc' })).rejects.toThrow(TypeError)
    await expect(buildManifest(bytesSource(bytes(10)), { type: 'video' })).rejects.toThrow(TypeError)
    await expect(buildManifest(bytesSource(bytes(10)), { pieceSize: 3000 })).rejects.toThrow(RangeError)
  })

  it('names and media types', () => {
    for (const n of ['clip.webm', 'Photo 2024 (1).jpg', 'ü.txt', 'a'.repeat(255)])
      expect(isFileName(n)).toBe(true)
    for (const n of ['', '.', '..', 'a/b', 'a\\b', 'a\nb', '\u0085', 'a'.repeat(256), 3])
      expect(isFileName(n)).toBe(false)
    for (const t of ['video/webm', 'text/plain; charset=utf-8', 'application/vnd.ms-excel'])
      expect(isMediaType(t)).toBe(true)
    for (const t of ['video', '/webm', 'video/', 'text/plain\n', 'a/b; é', 7])
      expect(isMediaType(t)).toBe(false)
  })
})
