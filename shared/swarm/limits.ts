/**
 * The swarm's fixed sizes and absolute ceilings (PROTOCOL-swarm.md, "Limits").
 * What a receiver accepts never depends on options: these bound every message
 * and every manifest whatever a peer claims.
 */

/**
 * The piece size `add` cuts files into: 256 KiB. Why this size:
 * - a piece travels as one message: 17 link chunks of 16 KiB (the link's
 *   unit), 5 relay frames of 64 KiB, far under the 4 MiB message bound; a
 *   per-peer pipeline of 4 keeps 1 MiB in flight, inside the reassembler's
 *   16 unfinished messages and 8 MiB per link;
 * - IndexedDB pays per transaction (about a millisecond): 64 writes for
 *   16 MiB, where 16 KiB pieces would take 1,024;
 * - a lying peer costs at most one piece of work before it is dropped, and
 *   a piece re-fetched after a timeout is a quarter of a MiB, not several;
 * - 32 bytes of hash per 256 KiB: a 4 GiB file's manifest is 512 KiB.
 */
export const PIECE_SIZE = 262_144

/** Smallest and largest piece size a manifest may declare (a power of two; tests use small ones). */
export const MIN_PIECE_SIZE = 1_024
export const MAX_PIECE_SIZE = 1_048_576

/** Most pieces in one file: 4 GiB at 256 KiB. Larger files are refused (ValueTooLargeError) at add. */
export const MAX_PIECES = 16_384

/** A piece hash: SHA-256. */
export const HASH_BYTES = 32

/** Longest bitfield: one bit per piece. */
export const MAX_BITFIELD_BYTES = MAX_PIECES / 8

/** Longest file name and media type, in UTF-16 code units. */
export const MAX_NAME_CHARS = 255
export const MAX_TYPE_CHARS = 255

/** Largest encoded manifest: the hashes plus room for name, type and the fixed fields. */
export const MAX_MANIFEST_BYTES = MAX_PIECES * HASH_BYTES + 2_048

/** Most peer ids in one `pex`. */
export const MAX_PEX_PEERS = 32

/** Longest `bye` reason. */
export const MAX_REASON_CHARS = 32

/** Longest URI `parseFileRef` reads. */
export const MAX_URI_CHARS = 2_048

/** A file name: 1..255 characters, no control characters, no path separators, not "." or "..". */
export function isFileName(s: unknown): s is string {
  return (
    typeof s === 'string' &&
    s.length > 0 &&
    s.length <= MAX_NAME_CHARS &&
    s !== '.' &&
    s !== '..' &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
    !/[\u0000-\u001f\u007f-\u009f/\\]/.test(s)
  )
}

/** A media type such as "video/webm" or "text/plain; charset=utf-8" (printable ASCII only). */
export function isMediaType(s: unknown): s is string {
  return (
    typeof s === 'string' &&
    s.length <= MAX_TYPE_CHARS &&
    /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;[\x20-\x7e]*)?$/.test(s)
  )
}
