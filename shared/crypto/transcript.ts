/**
 * The link transcript: what both ends of a link sign (their identity
 * proofs), what a private network's admission proof covers, and the salt of
 * the secure channel's keys. Grammar in PROTOCOL-crypto.md ("Link handshake").
 *
 * Each end's hello carries its 32-byte nonce and its 32-byte ephemeral
 * X25519 key (channel.ts). Once both hellos are known, both ends compute the
 * same transcript hash: the two ends are written in the order of their ids,
 * so it does not matter who dialled. Each end then signs
 * `linkProofBytes(th, ownId)` with its identity key, and the other verifies
 * with the key its hello carried (which must hash to the id it expected).
 * Because the signatures cover both ephemeral keys, a party in the middle
 * (the relay) cannot substitute its own: the proof of the real peer would
 * not verify over the transcript with the substituted key.
 */
import { concatBytes, isNodeId, utf8 } from '../bytes.ts'
import { KEY_BYTES, lp, sha256 } from './primitives.ts'

/** Bytes of a hello's nonce. */
export const LINK_NONCE_BYTES = 32

/** One end of a link, as its hello and its transport show it. */
export interface LinkEnd {
  /** Node id (40 lowercase hex). */
  readonly id: string
  /** The hello's random nonce (32 bytes): makes every transcript fresh. */
  readonly nonce: Uint8Array
  /** The hello's ephemeral X25519 public key (32 bytes; ChannelKeys.publicKey). */
  readonly ephemeral: Uint8Array
  /** This end's DTLS certificate fingerprint from the SDP; '' for the relay. */
  readonly fingerprint: string
}

export interface LinkTranscriptInput {
  /** 'webrtc' | 'relay' (any string both ends agree on). */
  readonly transport: string
  /** The network both ends joined, as the signal server knows it (the name, or networkTag(name)). */
  readonly network: string
  readonly ends: readonly [LinkEnd, LinkEnd]
}

function endBytes(e: LinkEnd): Uint8Array {
  return concatBytes(utf8(e.id), lp(e.fingerprint), e.nonce, e.ephemeral)
}

/**
 * SHA-256 of the link transcript (32 bytes). Throws RangeError for inputs the
 * link layer must have refused before (ids not 40 hex or equal, a nonce or
 * ephemeral key of the wrong length): hellos are validated at the boundary.
 */
export async function linkTranscript(t: LinkTranscriptInput): Promise<Uint8Array> {
  const [x, y] = t.ends
  for (const e of t.ends) {
    if (!isNodeId(e.id)) throw new RangeError(`linkTranscript: ${JSON.stringify(e.id)} is not a node id`)
    if (e.nonce.length !== LINK_NONCE_BYTES) throw new RangeError('linkTranscript: a nonce is not 32 bytes')
    if (e.ephemeral.length !== KEY_BYTES)
      throw new RangeError('linkTranscript: an ephemeral key is not 32 bytes')
  }
  if (x.id === y.id) throw new RangeError('linkTranscript: both ends have the same id')
  const [lo, hi] = x.id < y.id ? [x, y] : [y, x]
  return sha256(
    concatBytes(utf8('weft-link/2\n'), lp(t.transport), lp(t.network), endBytes(lo), endBytes(hi)),
  )
}

/** What an end signs with its identity key to prove itself on the link whose transcript hash is `th`. */
export function linkProofBytes(th: Uint8Array, signerId: string): Uint8Array {
  return concatBytes(utf8(`weft-link/2 proof\n${signerId}`), th)
}

/**
 * What an end signs when it refuses the link whose transcript hash is `th` for the network's secret
 * (`bye access-denied`, sent before the link is authenticated): so that a relay cannot forge it.
 */
export function linkDenialBytes(th: Uint8Array, signerId: string): Uint8Array {
  return concatBytes(utf8(`weft-link/2 deny\n${signerId}`), th)
}
