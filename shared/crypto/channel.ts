/**
 * Secure channel: encrypts and authenticates every frame of a link whose
 * transport a third party carries (the signal server's relay), keyed by an
 * exchange bound to both nodes' identity keys. Grammar in PROTOCOL-crypto.md
 * ("Secure channel").
 *
 * 1. Each end makes fresh ChannelKeys per link (`createChannelKeys`) and
 *    sends the public half in its hello (`ephemeral`).
 * 2. Both compute the link transcript hash `th` (transcript.ts), which covers
 *    both ids, nonces, ephemeral keys and fingerprints, and prove their
 *    identity by signing it. Only after the peer's proof verifies:
 * 3. `deriveChannel({ mine, theirs, transcript: th })`:
 *      ss        = X25519(mine.private, theirs)
 *      key(a→b)  = HKDF-SHA-256(ss, salt = th, info = "weft-channel/1" ‖ ek_a ‖ ek_b, 32)
 *    one AES-256-GCM key per direction, so the two directions never share a
 *    nonce space and a frame cannot be reflected back to its sender.
 * 4. Each direction counts its frames from 0. Frame n is sealed with the
 *    96-bit nonce 0x00000000 ‖ u64be(n), which is never sent: the receiver
 *    expects exactly the next count, so a replayed, reordered, dropped then
 *    reinjected or rewritten frame fails its tag. After one failure the
 *    channel is dead (open answers null, seal rejects): the link closes with
 *    a counted reason.
 *
 * Ordering: `seal` and `open` take their frame's number when they are
 * called, not when they finish. Call `seal` in the order the frames will be
 * written to the transport (a link that encodes frames in parallel must seal
 * inside its ordered write chain), and `open` in the order frames arrive.
 * Calls may overlap; `open` settles in call order and never answers a frame
 * after an earlier one failed.
 */
import { concatBytes } from '../bytes.ts'
import { ClosedError } from '../errors.ts'
import { bump, type Counters } from '../protocol.ts'
import {
  aesKey,
  aesOpen,
  aesSeal,
  generateX25519,
  hkdf,
  IV_BYTES,
  KEY_BYTES,
  label,
  TAG_BYTES,
  u64,
  type X25519KeyPair,
  x25519,
} from './primitives.ts'

/** An end's ephemeral key pair for one link: `publicKey` goes in its hello. */
export type ChannelKeys = X25519KeyPair

/** Fresh ephemeral keys; make new ones for every link (never reuse them). */
export const createChannelKeys: () => Promise<ChannelKeys> = generateX25519

/**
 * Frames a channel seals per direction before it refuses more (the link must
 * be set up again, with fresh keys). 2^40 frames of 16 KiB keep AES-GCM's
 * confidentiality bound near 2^-28; no link lives that long in practice.
 */
export const MAX_CHANNEL_FRAMES = 2 ** 40

/** Bytes a sealed frame adds to its plaintext (the tag; the nonce is implicit). */
export const CHANNEL_OVERHEAD = TAG_BYTES

/** Why a channel died: a frame that failed authentication, one too short to hold a tag, or the frame limit. */
export type ChannelFailure = 'forged' | 'short' | 'exhausted'

export interface Channel {
  /** Encrypt the next frame; `aad` is authenticated, not sent. Rejects with ClosedError once the channel is dead. */
  seal(plain: Uint8Array, aad?: Uint8Array): Promise<Uint8Array>
  /** Decrypt the next frame, or null (never a throw): tampered, replayed, reordered, wrong key or aad, or the channel is dead. */
  open(sealed: Uint8Array, aad?: Uint8Array): Promise<Uint8Array | null>
  /** Why the channel died, or undefined while it lives. */
  readonly failure: ChannelFailure | undefined
  /** Frames sealed and opened so far (the next nonce of each direction). */
  readonly sent: number
  readonly received: number
}

export interface DeriveChannelInput {
  /** Our ephemeral keys for this link. */
  readonly mine: ChannelKeys
  /** The ephemeral public key of the peer's hello. */
  readonly theirs: Uint8Array
  /** linkTranscript(...) of this link, which the peer's verified proof covers. */
  readonly transcript: Uint8Array
  /** Frames per direction before the channel refuses more. @default MAX_CHANNEL_FRAMES */
  readonly maxFrames?: number
  /** Where its death is counted (the node's counters): `drop.channel.forged` | `.short` | `.exhausted`. */
  readonly counters?: Counters
}

function frameNonce(n: number): Uint8Array {
  const iv = new Uint8Array(IV_BYTES)
  iv.set(u64(n), IV_BYTES - 8)
  return iv
}

/** The AES-GCM key for frames from the end whose ephemeral key is `from` to the one whose key is `to`. */
async function directionKey(
  ss: Uint8Array,
  th: Uint8Array,
  from: Uint8Array,
  to: Uint8Array,
): Promise<CryptoKey> {
  return aesKey(await hkdf(ss, th, concatBytes(label('weft-channel/1'), from, to), KEY_BYTES))
}

const EMPTY = new Uint8Array(0)

/**
 * The channel of one link, or null when the peer's ephemeral key is not a
 * usable X25519 key (malformed, of small order, or our own key reflected).
 */
export async function deriveChannel({
  mine,
  theirs,
  transcript,
  maxFrames = MAX_CHANNEL_FRAMES,
  counters,
}: DeriveChannelInput): Promise<Channel | null> {
  if (transcript.length !== KEY_BYTES) throw new RangeError('deriveChannel: the transcript is a 32-byte hash')
  if (theirs.length !== KEY_BYTES || theirs.every((b, i) => b === mine.publicKey[i])) return null
  const ss = await x25519(mine.privateKey, theirs)
  if (!ss) return null
  const [sendKey, recvKey] = await Promise.all([
    directionKey(ss, transcript, mine.publicKey, theirs),
    directionKey(ss, transcript, theirs, mine.publicKey),
  ])
  ss.fill(0)

  let sent = 0
  let received = 0
  let failure: ChannelFailure | undefined
  // The verdict of the last open: the next one settles only after it.
  let lastOpen: Promise<boolean> = Promise.resolve(true)

  const fail = (why: ChannelFailure) => {
    if (failure) return
    failure = why
    if (counters) bump(counters, `drop.channel.${why}`)
  }

  return {
    get failure() {
      return failure
    },
    get sent() {
      return sent
    },
    get received() {
      return received
    },
    seal(plain, aad = EMPTY) {
      if (failure) return Promise.reject(new ClosedError(`secure channel: ${failure}`))
      if (sent >= maxFrames) {
        fail('exhausted')
        return Promise.reject(new ClosedError('secure channel: exhausted'))
      }
      const n = sent++
      return aesSeal(sendKey, frameNonce(n), plain, aad)
    },
    open(sealed, aad = EMPTY) {
      if (failure) return Promise.resolve(null)
      if (received >= maxFrames) {
        fail('exhausted')
        return Promise.resolve(null)
      }
      const n = received++
      const prev = lastOpen
      const plain = aesOpen(recvKey, frameNonce(n), sealed, aad)
      const result = (async () => {
        const earlierOk = await prev
        const p = await plain
        if (!earlierOk || failure) return null
        if (p === null) fail(sealed.length < TAG_BYTES ? 'short' : 'forged')
        return p
      })()
      lastOpen = result.then((p) => p !== null)
      return result
    },
  }
}
