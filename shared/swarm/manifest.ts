/**
 * Content addressing: a file is cut into pieces of `pieceSize` bytes (the
 * last one shorter), each hashed with SHA-256; the manifest lists the size,
 * the piece size, the piece hashes, and optionally a name and a media type.
 * The file's id is the SHA-256 of the manifest's bytes, in 64 hex characters.
 *
 * The manifest travels as those exact bytes (MessagePack of a map, fields in
 * a fixed order, PROTOCOL-swarm.md), and a receiver hashes what it received
 * before it decodes anything: a manifest from any provider is used only when
 * its hash is the id asked for. So the id commits to every piece, and a
 * piece is kept or served only when its hash is the manifest's.
 *
 * Why one flat list of hashes and not a hash tree or pages: at 256 KiB a
 * piece, the largest file (MAX_PIECES, 4 GiB, more than a browser tab holds
 * as one Blob or is usually granted by its storage quota) has a 512 KiB
 * manifest, one message of an eighth of the 4 MiB bound, fetched once per
 * download, costing less than two pieces; BitTorrent's v1 flat list served
 * that size for twenty years. A tree (BitTorrent v2) pays off when pieces are
 * verified before the whole list is known (streaming the first piece of a
 * huge file); that and paging can come as manifest version 2 if files grow.
 */
import { sha256, toHex } from '../bytes.ts'
import { ValueTooLargeError } from '../errors.ts'
import { decodeValue, encodeValue } from '../wire/value.ts'
import {
  HASH_BYTES,
  isFileName,
  isMediaType,
  MAX_MANIFEST_BYTES,
  MAX_PIECE_SIZE,
  MAX_PIECES,
  MIN_PIECE_SIZE,
  PIECE_SIZE,
} from './limits.ts'

// (The name and type rules live in limits.ts, which a link's parser needs without the rest of this file.)
export { isFileName, isMediaType }

export const MANIFEST_VERSION = 1

/** A verified manifest. */
export interface Manifest {
  /** File size in bytes. */
  readonly size: number
  /** Bytes per piece (the last piece holds the rest). */
  readonly pieceSize: number
  /** Number of pieces: ceil(size / pieceSize). */
  readonly pieces: number
  /** The piece hashes, 32 bytes each, in order. */
  readonly hashes: Uint8Array
  readonly name?: string
  readonly type?: string
}

/** SHA-256, injected so the simulator can use a synchronous one (the default is WebCrypto). */
export type Sha256 = (data: Uint8Array) => Uint8Array | Promise<Uint8Array>

/** Where `add` reads a file from: an Uint8Array, or anything with a size and ranged reads (a Blob adapter). */
export interface ByteSource {
  readonly size: number
  /** Bytes [start, end). */
  read(start: number, end: number): Uint8Array | Promise<Uint8Array>
}

export type ManifestDropReason = 'too-large' | 'decode' | 'shape' | 'version' | 'hash'

export function pieceCount(size: number, pieceSize: number): number {
  return Math.ceil(size / pieceSize)
}

/** Length of piece `i` of a file described by `m`. */
export function pieceLength(m: Pick<Manifest, 'size' | 'pieceSize' | 'pieces'>, i: number): number {
  return i === m.pieces - 1 ? m.size - i * m.pieceSize : m.pieceSize
}

/** The expected hash of piece `i` (a view into m.hashes). */
export function pieceHash(m: Manifest, i: number): Uint8Array {
  return m.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES)
}

/** The canonical bytes of a manifest: its id is their SHA-256. */
export function encodeManifest(m: Omit<Manifest, 'pieces'>): Uint8Array {
  // Field order is fixed: the same file, name and type give the same bytes, hence the same id.
  const v: { [k: string]: number | string | Uint8Array } = {
    v: MANIFEST_VERSION,
    size: m.size,
    pieceSize: m.pieceSize,
    hashes: m.hashes,
  }
  if (m.name !== undefined) v.name = m.name
  if (m.type !== undefined) v.type = m.type
  return encodeValue(v)
}

/**
 * Decode and check manifest bytes (not their hash: see verifyManifest).
 * Every field is checked: a power-of-two piece size in range, a safe
 * integer size, exactly 32 bytes of hash per piece, at most MAX_PIECES,
 * name and type well formed, no other field. Never throws.
 */
export function parseManifest(bytes: Uint8Array): Manifest | ManifestDropReason {
  if (bytes.length > MAX_MANIFEST_BYTES) return 'too-large'
  const v = decodeValue(bytes)
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return 'decode'
  if (v.v !== MANIFEST_VERSION) return 'version'
  const { size, pieceSize, hashes, name, type } = v
  for (const k of Object.keys(v))
    if (!['v', 'size', 'pieceSize', 'hashes', 'name', 'type'].includes(k)) return 'shape'
  if (typeof pieceSize !== 'number' || !Number.isSafeInteger(pieceSize)) return 'shape'
  if (pieceSize < MIN_PIECE_SIZE || pieceSize > MAX_PIECE_SIZE || (pieceSize & (pieceSize - 1)) !== 0)
    return 'shape'
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return 'shape'
  const pieces = pieceCount(size, pieceSize)
  if (pieces > MAX_PIECES) return 'shape'
  if (!(hashes instanceof Uint8Array) || hashes.length !== pieces * HASH_BYTES) return 'shape'
  if (name !== undefined && !isFileName(name)) return 'shape'
  if (type !== undefined && !isMediaType(type)) return 'shape'
  return {
    size,
    pieceSize,
    pieces,
    hashes,
    ...(name !== undefined ? { name } : {}),
    ...(type !== undefined ? { type } : {}),
  }
}

/** The file id of manifest bytes: hex SHA-256, 64 characters. */
export async function fileIdOf(bytes: Uint8Array, hash: Sha256 = sha256): Promise<string> {
  return toHex(await hash(bytes))
}

/** Manifest bytes from an untrusted source, used only if they hash to `id`. */
export async function verifyManifest(
  id: string,
  bytes: Uint8Array,
  hash: Sha256 = sha256,
): Promise<Manifest | ManifestDropReason> {
  if (bytes.length > MAX_MANIFEST_BYTES) return 'too-large'
  if ((await fileIdOf(bytes, hash)) !== id) return 'hash'
  return parseManifest(bytes)
}

export interface BuildOptions {
  name?: string
  type?: string
  /** @default PIECE_SIZE (256 KiB) */
  pieceSize?: number
  hash?: Sha256
}

export interface BuiltManifest {
  id: string
  manifest: Manifest
  bytes: Uint8Array
}

/** Read `source` piece by piece and build its manifest. Throws ValueTooLargeError past MAX_PIECES, TypeError on a bad name or type. */
export async function buildManifest(source: ByteSource, opts: BuildOptions = {}): Promise<BuiltManifest> {
  const pieceSize = opts.pieceSize ?? PIECE_SIZE
  const hash = opts.hash ?? sha256
  if (pieceSize < MIN_PIECE_SIZE || pieceSize > MAX_PIECE_SIZE || (pieceSize & (pieceSize - 1)) !== 0)
    throw new RangeError(`pieceSize must be a power of two in [${MIN_PIECE_SIZE}, ${MAX_PIECE_SIZE}]`)
  if (!Number.isSafeInteger(source.size) || source.size < 0)
    throw new RangeError('size must be a safe integer')
  if (pieceCount(source.size, pieceSize) > MAX_PIECES)
    throw new ValueTooLargeError(source.size, MAX_PIECES * pieceSize, 'file')
  const name = opts.name === '' ? undefined : opts.name
  const type = opts.type === '' ? undefined : opts.type
  if (name !== undefined && !isFileName(name))
    throw new TypeError('name must be 1-255 characters without control characters, "/" or "\\"')
  if (type !== undefined && !isMediaType(type))
    throw new TypeError('type must be a media type such as "video/webm"')
  const pieces = pieceCount(source.size, pieceSize)
  const hashes = new Uint8Array(pieces * HASH_BYTES)
  for (let i = 0; i < pieces; i++) {
    const start = i * pieceSize
    const data = await source.read(start, Math.min(source.size, start + pieceSize))
    hashes.set(await hash(data), i * HASH_BYTES)
  }
  const fields = {
    size: source.size,
    pieceSize,
    hashes,
    ...(name !== undefined ? { name } : {}),
    ...(type !== undefined ? { type } : {}),
  }
  const bytes = encodeManifest(fields)
  return { id: await fileIdOf(bytes, hash), manifest: { ...fields, pieces }, bytes }
}

/** A ByteSource over bytes in memory. */
export function bytesSource(data: Uint8Array): ByteSource {
  return { size: data.length, read: (start, end) => data.subarray(start, end) }
}
