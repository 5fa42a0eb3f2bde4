/**
 * The swarm's messages (grammar in PROTOCOL-swarm.md) and their validator.
 *
 * Every message names its file (`file`, the 64-hex id), so one link carries
 * the swarms of several files. `parseSwarmMsg` checks shape and the absolute
 * ceilings of limits.ts; what depends on the file (an index below its piece
 * count, a bitfield of its length, a piece of its length and hash) is checked
 * by the swarm once it knows the manifest. It returns a fresh object holding
 * only the known fields, or the reason it refused (counted as
 * `drop.swarm.<reason>`); it never throws.
 */
import { isNodeId } from '../bytes.ts'
import {
  MAX_BITFIELD_BYTES,
  MAX_MANIFEST_BYTES,
  MAX_PEX_PEERS,
  MAX_PIECE_SIZE,
  MAX_PIECES,
  MAX_REASON_CHARS,
} from './limits.ts'
import { isFileId } from './uri.ts'

/** Join a file's swarm (or answer a join): the sender's have-map, absent while it lacks the manifest. */
export type HelloMsg = { t: 'hello'; file: string; bits?: Uint8Array }
/** Leave a file's swarm (or refuse to join it: "full", "unknown"); the receiver drops the sender as a peer of the file. */
export type ByeMsg = { t: 'bye'; file: string; reason: string }
/** Ask for the manifest. */
export type MetaReqMsg = { t: 'meta-req'; file: string }
/** The manifest's bytes; the receiver checks they hash to `file`. */
export type MetaMsg = { t: 'meta'; file: string; manifest: Uint8Array }
/** The sender now has piece `index` (verified). */
export type HaveMsg = { t: 'have'; file: string; index: number }
/** Send me piece `index`. */
export type RequestMsg = { t: 'req'; file: string; index: number }
/** Piece `index`, the answer to a `req`. */
export type PieceMsg = { t: 'piece'; file: string; index: number; data: Uint8Array }
/** Forget my `req` for `index` (another peer sent it first). */
export type CancelMsg = { t: 'cancel'; file: string; index: number }
/**
 * Not now for your `req` of `index`: no upload slot is free (ask elsewhere,
 * or later), or, with `suggest`, ask me for that piece instead (one I have
 * never sent, which nobody may have but me).
 */
export type BusyMsg = { t: 'busy'; file: string; index: number; suggest?: number }
/** I do not have piece `index` (or, without `index`, the file or its manifest). */
export type NoneMsg = { t: 'none'; file: string; index?: number }
/** Peer exchange: other peers of the file's swarm the sender is connected to. */
export type PexMsg = { t: 'pex'; file: string; peers: string[] }

export type SwarmMsg =
  | HelloMsg
  | ByeMsg
  | MetaReqMsg
  | MetaMsg
  | HaveMsg
  | RequestMsg
  | PieceMsg
  | CancelMsg
  | BusyMsg
  | NoneMsg
  | PexMsg

export type SwarmDropReason = 'shape' | 'file' | 'index' | 'bits' | 'data' | 'manifest' | 'peers' | 'reason'

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < MAX_PIECES
}

/** Validate a swarm message from a peer. */
export function parseSwarmMsg(v: unknown): SwarmMsg | SwarmDropReason {
  try {
    if (!isPlainObject(v) || typeof v.t !== 'string') return 'shape'
    const file = v.file
    if (!isFileId(file)) return 'file'
    switch (v.t) {
      case 'hello': {
        if (v.bits === undefined) return { t: 'hello', file }
        if (!(v.bits instanceof Uint8Array) || v.bits.length > MAX_BITFIELD_BYTES) return 'bits'
        return { t: 'hello', file, bits: v.bits }
      }
      case 'bye':
        if (typeof v.reason !== 'string' || v.reason.length > MAX_REASON_CHARS) return 'reason'
        return { t: 'bye', file, reason: v.reason }
      case 'meta-req':
        return { t: 'meta-req', file }
      case 'meta': {
        const m = v.manifest
        if (!(m instanceof Uint8Array) || m.length === 0 || m.length > MAX_MANIFEST_BYTES) return 'manifest'
        return { t: 'meta', file, manifest: m }
      }
      case 'have':
      case 'req':
      case 'cancel':
        if (!isIndex(v.index)) return 'index'
        return { t: v.t, file, index: v.index }
      case 'busy':
        if (!isIndex(v.index)) return 'index'
        if (v.suggest === undefined) return { t: 'busy', file, index: v.index }
        if (!isIndex(v.suggest)) return 'index'
        return { t: 'busy', file, index: v.index, suggest: v.suggest }
      case 'piece': {
        if (!isIndex(v.index)) return 'index'
        const d = v.data
        if (!(d instanceof Uint8Array) || d.length === 0 || d.length > MAX_PIECE_SIZE) return 'data'
        return { t: 'piece', file, index: v.index, data: d }
      }
      case 'none':
        if (v.index === undefined) return { t: 'none', file }
        if (!isIndex(v.index)) return 'index'
        return { t: 'none', file, index: v.index }
      case 'pex': {
        const p = v.peers
        if (!Array.isArray(p) || p.length > MAX_PEX_PEERS || !p.every(isNodeId)) return 'peers'
        return { t: 'pex', file, peers: [...new Set(p as string[])] }
      }
      default:
        return 'shape'
    }
  } catch {
    return 'shape'
  }
}

export function isSwarmMsg(r: SwarmMsg | SwarmDropReason): r is SwarmMsg {
  return typeof r !== 'string'
}
