/**
 * The link's own messages (Kind.Link frames): the handshake (hello, proof),
 * heartbeats, peer exchange, mesh role and goodbye; their validator and
 * wire form; and which pipe messages may be read before a link is open.
 * The protocol is described in link.ts.
 */
import { concatBytes, fromHex, toHex } from '../../shared/bytes.ts'
import { type BoxRecord, boxRecordValue, parseBoxRecord } from '../../shared/crypto/box-record.ts'
import { ADMISSION_TAG_BYTES } from '../../shared/crypto/network.ts'
import { LINK_NONCE_BYTES } from '../../shared/crypto/transcript.ts'
import type { Value } from '../../shared/types.ts'
import { decodeFrameBody, Kind, WIRE_VERSION } from '../../shared/wire/frame.ts'
import { encodeValue } from '../../shared/wire/value.ts'

export type LinkControl =
  | { t: 'hello'; pk: Uint8Array; nonce: Uint8Array; mesh: boolean; ek: Uint8Array; box?: BoxRecord }
  | { t: 'proof'; sig: Uint8Array; adm?: Uint8Array }
  | { t: 'ping'; ts: number }
  | { t: 'pong'; ts: number }
  | { t: 'pex'; peers: string[] }
  | { t: 'role'; mesh: boolean }
  | { t: 'bye'; reason: string; sig?: Uint8Array }

const MAX_PEX = 32

/** Largest link message read before the link is open: a hello with a box record is about 300 bytes, a proof 120. */
export const HANDSHAKE_MAX_BYTES = 512

/** First byte of a pipe message sealed by the secure channel (from the link-marker range 0xc0–0xcf). */
export const SEALED_PIECE = 0xc2

/** Why a link was refused for a private network's secret (close reasons; the peer is told `bye access-denied`). */
export const ACCESS_DENIED = 'access-denied'
export const OUTSIDER = 'outsider'

/**
 * Could this link message be read before the link is open? A whole frame of
 * at most HANDSHAKE_MAX_BYTES, uncompressed, of Kind.Link: judged by its
 * first bytes, without decoding anything.
 */
export function isHandshakePiece(piece: Uint8Array): boolean {
  return (
    piece.length <= HANDSHAKE_MAX_BYTES &&
    piece[0] === WIRE_VERSION &&
    piece[1] === Kind.Link &&
    piece[2] === 0
  )
}

/** Validate a Kind.Link body; null for anything malformed. */
export function parseLinkControl(v: Value): LinkControl | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return null
  const o = v as Record<string, Value>
  switch (o.t) {
    case 'hello': {
      if (
        !(o.pk instanceof Uint8Array) ||
        o.pk.length !== 32 ||
        !(o.nonce instanceof Uint8Array) ||
        o.nonce.length !== LINK_NONCE_BYTES ||
        typeof o.mesh !== 'boolean' ||
        !(o.ek instanceof Uint8Array) ||
        o.ek.length !== 32
      )
        return null
      const hello: LinkControl = { t: 'hello', pk: o.pk, nonce: o.nonce, mesh: o.mesh, ek: o.ek }
      if (o.box === undefined) return hello
      const box = parseBoxRecord(o.box)
      return box ? { ...hello, box } : null
    }
    case 'proof': {
      if (!(o.sig instanceof Uint8Array) || o.sig.length !== 64) return null
      if (o.adm === undefined) return { t: 'proof', sig: o.sig }
      return o.adm instanceof Uint8Array && o.adm.length === ADMISSION_TAG_BYTES
        ? { t: 'proof', sig: o.sig, adm: o.adm }
        : null
    }
    case 'ping':
    case 'pong':
      return typeof o.ts === 'number' && Number.isFinite(o.ts) ? { t: o.t, ts: o.ts } : null
    case 'pex':
      return Array.isArray(o.peers) &&
        o.peers.length <= MAX_PEX &&
        o.peers.every((p) => typeof p === 'string' && /^[0-9a-f]{40}$/.test(p))
        ? { t: 'pex', peers: o.peers as string[] }
        : null
    case 'role':
      return typeof o.mesh === 'boolean' ? { t: 'role', mesh: o.mesh } : null
    case 'bye': {
      if (typeof o.reason !== 'string' || o.reason.length > 64) return null
      if (o.sig === undefined) return { t: 'bye', reason: o.reason }
      return o.sig instanceof Uint8Array && o.sig.length === 64
        ? { t: 'bye', reason: o.reason, sig: o.sig }
        : null
    }
    default:
      return null
  }
}

/** The wire form of a link message (the box record in its short-keyed form). */
export function linkControlValue(c: LinkControl): Value {
  switch (c.t) {
    case 'hello': {
      const v: Record<string, Value> = { t: c.t, pk: c.pk, nonce: c.nonce, mesh: c.mesh, ek: c.ek }
      if (c.box) v.box = boxRecordValue(c.box)
      return v
    }
    case 'proof':
      return c.adm ? { t: c.t, sig: c.sig, adm: c.adm } : { t: c.t, sig: c.sig }
    case 'pex':
      return { t: c.t, peers: c.peers }
    case 'ping':
    case 'pong':
      return { t: c.t, ts: c.ts }
    case 'role':
      return { t: c.t, mesh: c.mesh }
    case 'bye':
      return c.sig ? { t: c.t, reason: c.reason, sig: c.sig } : { t: c.t, reason: c.reason }
  }
}

/** A whole, uncompressed Kind.Link frame, encoded at once (no await): a goodbye. */
export function plainControl(c: LinkControl): Uint8Array {
  return concatBytes(new Uint8Array([WIRE_VERSION, Kind.Link, 0]), encodeValue(linkControlValue(c)))
}

/**
 * A hello as it rides in a WebRTC offer or answer (the `h` of an `rtc`
 * signal, signal-data.ts): the hex of its whole Kind.Link frame, so both
 * ends read it through the same checks as one that came over the channel.
 */
export function helloToSignal(hello: Extract<LinkControl, { t: 'hello' }>): string {
  return toHex(plainControl(hello))
}

/** Longest `h` (or proof `p`) a signal may carry (a whole handshake frame, in hex). */
export const SIGNAL_HELLO_MAX_CHARS = 2 * HANDSHAKE_MAX_BYTES

/** The hello an `rtc` signal carried (untrusted: the server or the overlay passed it on), or null. */
export function helloFromSignal(h: unknown): Extract<LinkControl, { t: 'hello' }> | null {
  const c = controlFromSignal(h)
  return c?.t === 'hello' ? c : null
}

/** A proof as a `proof` signal carries it (signal-data.ts): the hex of its whole Kind.Link frame. */
export function proofToSignal(proof: Extract<LinkControl, { t: 'proof' }>): string {
  return toHex(plainControl(proof))
}

/** The proof a `proof` signal carried (untrusted, as a signalled hello), or null. */
export function proofFromSignal(p: unknown): Extract<LinkControl, { t: 'proof' }> | null {
  const c = controlFromSignal(p)
  return c?.t === 'proof' ? c : null
}

function controlFromSignal(h: unknown): LinkControl | null {
  if (typeof h !== 'string' || h.length > SIGNAL_HELLO_MAX_CHARS) return null
  const piece = fromHex(h)
  return piece && readHandshakeControl(piece)
}

const LINK_VALIDATORS = { [Kind.Link]: (b: Value) => parseLinkControl(b) !== null }

/**
 * A pipe message read before the link is open: the link message of a
 * handshake piece (isHandshakePiece), decoded within a small budget, or null.
 */
export function readHandshakeControl(piece: Uint8Array): LinkControl | null {
  if (!isHandshakePiece(piece)) return null
  const f = decodeFrameBody(Kind.Link, piece.subarray(3), { maxItems: 32, validators: LINK_VALIDATORS })
  return typeof f === 'string' ? null : parseLinkControl(f.body)
}
