/**
 * A link's handshake: the checks of the peer's hello and proof, and the
 * making of our proof (link.ts runs it, in order, on the receive loop).
 *
 * Handshake (Kind.Link frames, before anything else is accepted; the
 * grammar is shared/crypto/PROTOCOL-crypto.md, section 1):
 *
 *   A → B  hello { pk, nonce, mesh, ek, box? }   B → A  hello { pk, nonce, mesh, ek, box? }
 *   A → B  proof { sig, adm? }                   B → A  proof { sig, adm? }
 *
 * On WebRTC the hellos also ride on the offer and answer (the node's
 * attempt-hello.ts); each end then reads the peer's as the channel opens
 * and sends its hello and proof together (link.ts `early`).
 *
 * `ek` is a fresh X25519 key per link. Once an end has the other's hello,
 * both compute the same transcript hash `th` (shared/crypto/transcript.ts:
 * the transport, the network as the server knows it, and for each end its
 * id, DTLS fingerprint from this connection's SDP ('' on the relay), nonce
 * and `ek`), and each signs "weft-link/2 proof\n" id ‖ th with its
 * identity key. A signal server that put itself in the middle would have to
 * terminate DTLS with its own certificates or swap in its own `ek`s: either
 * changes the transcript one end computes, so the other's proof fails. The
 * verifier first checks that the key meets the network's identity puzzle
 * (before any signature work) and hashes to the id it expected.
 *
 * In a private network (`networkKeys`) the proof also carries `adm`, an
 * HMAC of th under a key derived from the network's secret: a member
 * refuses a proof without one (`outsider`) or with a wrong one
 * (`access-denied`), checked before the signature; a node without the
 * secret refuses a proof that carries one (`access-denied`: it cannot join
 * that network). Either way the refusing end says `bye access-denied`.
 *
 * Secure channel (relay links, `secure`): after the peer's proof verifies,
 * both ends derive one AES-256-GCM key per direction from X25519 of the
 * `ek`s, salted with th (shared/crypto/channel.ts), and from then on every
 * pipe message, whole frames and chunks alike, is
 * 0xc2 ‖ AES-GCM(k, counter nonce, piece, aad = 0xc2). The relay sees sizes
 * and timing only; a piece it rewrites, replays, reorders or drops then
 * reinjects fails its tag, and so does a plain piece: the link closes
 * (`channel-forged`, `channel-plain`; counters `drop.channel.*`). WebRTC
 * links are not sealed a second time: DTLS already encrypts and
 * authenticates them, bound to the proofs by the fingerprints.
 *
 * The hello may carry the node's signed box record (`box`): the X25519 key
 * routed envelopes are sealed to (shared/router). It is kept, unverified,
 * in `remoteBox` for the host.
 */
import { bytesEqual } from '../../shared/bytes.ts'
import { type Channel, type ChannelKeys, deriveChannel } from '../../shared/crypto/channel.ts'
import { isX25519PublicKey } from '../../shared/crypto/primitives.ts'
import { linkDenialBytes, linkProofBytes, linkTranscript } from '../../shared/crypto/transcript.ts'
import { isPublicKey } from '../../shared/identity/keys.ts'
import { meetsPuzzle } from '../../shared/identity/puzzle.ts'
import { bump } from '../../shared/protocol.ts'
import { ACCESS_DENIED, type LinkControl, OUTSIDER, plainControl } from './link-control.ts'
import type { LinkOptions } from './link-types.ts'

export type Hello = Extract<LinkControl, { t: 'hello' }>
/** What the checks and the proof take from a link's options. */
export type HandshakeOptions = Pick<
  LinkOptions,
  'identity' | 'peer' | 'counters' | 'puzzleBits' | 'network' | 'networkKeys'
>
export type Proof = Extract<LinkControl, { t: 'proof' }>

/** Our hello: identity key, the link's nonce and ephemeral key, the mesh role, our box record if any. */
export function makeHello(
  o: Pick<LinkOptions, 'identity' | 'box'>,
  nonce: Uint8Array,
  mesh: boolean,
  ek: Uint8Array,
): Hello {
  const box = o.box?.()
  return { t: 'hello', pk: o.identity.publicKey, nonce, mesh, ek, ...(box ? { box } : {}) }
}

/**
 * The peer's hello: its key meets the network's puzzle (checked first: a
 * key that fails it gets no signature work from us), hashes to the id we
 * expect, and its `ek` is an X25519 key. The reason to close, or null.
 */
export async function checkHello(c: Hello, o: HandshakeOptions): Promise<string | null> {
  if (!meetsPuzzle(c.pk, o.puzzleBits ?? 0)) {
    bump(o.counters, 'link.refused.puzzle')
    return 'puzzle'
  }
  if (!isPublicKey(c.pk) || (await o.identity.idOf(c.pk)) !== o.peer) {
    bump(o.counters, 'link.auth-failed')
    return 'wrong-key'
  }
  if (!isX25519PublicKey(c.ek)) {
    bump(o.counters, 'link.auth-failed')
    return 'bad-ephemeral'
  }
  return null
}

/** What answering a hello gives: the reason to close, or the transcript hash and our proof. */
export type HelloAnswer = string | { th: Uint8Array; proof: Proof }

/**
 * Check the peer's hello and make our proof. A link does it when the hello
 * comes; with hellos in the offer and answer, the dialer does it before the
 * channel opens (both fingerprints are known once the answer is).
 */
export async function answerHello(
  o: HandshakeOptions,
  transport: 'webrtc' | 'relay',
  mine: { nonce: Uint8Array; keys: Promise<ChannelKeys> },
  theirs: Hello,
  fp: { local: string; remote: string } | null,
): Promise<HelloAnswer> {
  const refused = await checkHello(theirs, o)
  if (refused) return refused
  if (!fp) return 'no-fingerprint'
  return makeProof(o, transport, { nonce: mine.nonce, keys: await mine.keys }, theirs, fp)
}

type Fingerprints = { local: string; remote: string }

/** Our answer made before the channel opened (the dialer's), with the fingerprints it bound. */
export interface AnswerAhead {
  fp: Fingerprints
  answer: Promise<HelloAnswer>
}

/**
 * The answer made ahead, if it answers this hello and bound the fingerprints
 * the channel opened with; else undefined, and the link answers anew.
 */
export function aheadFor(
  o: Pick<LinkOptions, 'early' | 'earlyAnswer'>,
  c: Hello,
  fp: Fingerprints | null,
): Promise<HelloAnswer> | undefined {
  const a = o.earlyAnswer
  if (c !== o.early || !a || !fp || a.fp.local !== fp.local || a.fp.remote !== fp.remote) return undefined
  return a.answer
}

/**
 * A hello after the first. With the peer's hello from the signalling
 * (`early`), the one it sends over the channel comes once and must say the
 * same (key, nonce, ephemeral key, mesh role): 'echo'; or 'mismatch', a
 * signalled hello someone rewrote (counted `link.auth-failed`). Any other:
 * 'extra', dropped.
 */
export function laterHello(
  c: Hello,
  early: Hello | undefined,
  echoed: boolean,
): 'echo' | 'mismatch' | 'extra' {
  if (!early || echoed) return 'extra'
  const same =
    bytesEqual(c.pk, early.pk) &&
    bytesEqual(c.nonce, early.nonce) &&
    bytesEqual(c.ek, early.ek) &&
    c.mesh === early.mesh
  return same ? 'echo' : 'mismatch'
}

/** The transcript hash both ends sign, and our proof over it (with the admission tag in a private network). */
export async function makeProof(
  o: HandshakeOptions,
  transport: 'webrtc' | 'relay',
  mine: { nonce: Uint8Array; keys: ChannelKeys },
  theirs: Hello,
  fp: { local: string; remote: string },
): Promise<{ th: Uint8Array; proof: Proof }> {
  const me = o.identity.id
  const th = await linkTranscript({
    transport,
    network: o.network ?? '',
    ends: [
      { id: me, nonce: mine.nonce, ephemeral: mine.keys.publicKey, fingerprint: fp.local },
      { id: o.peer, nonce: theirs.nonce, ephemeral: theirs.ek, fingerprint: fp.remote },
    ],
  })
  const [sig, adm] = await Promise.all([
    o.identity.sign(linkProofBytes(th, me)),
    o.networkKeys?.admissionProof(th, me),
  ])
  return { th, proof: adm ? { t: 'proof', sig, adm } : { t: 'proof', sig } }
}

/**
 * The peer's proof as the signalling carried it (the answering side sends
 * its proof by signal once made, after its answer: attempt-hello.ts),
 * checked as soon as it comes against the transcript of our answer made
 * ahead (`ahead`): that transcript and the proof if it verifies (and proves
 * the network's secret as checkProof asks), else undefined. The link uses it
 * only if it opened with that same transcript (link.ts); one that fails is
 * not used (a server may rewrite it) and the proof over the channel decides.
 * Only for a WebRTC link (no secure channel to derive).
 */
export async function checkSignalledProof(
  c: Proof,
  o: HandshakeOptions,
  ahead: Promise<HelloAnswer>,
  theirs: { pk: Uint8Array; ek: Uint8Array },
): Promise<SignalledProof | undefined> {
  const a = await ahead
  if (typeof a === 'string') return undefined
  // Its own counters: a forged signal is not the peer failing to authenticate (the link counts).
  const v = await checkProof(c, { ...o, counters: {} }, a.th, theirs, undefined)
  return 'channel' in v ? { th: a.th, proof: c } : undefined
}

/** A signalled proof that verified, and the transcript it verified for. */
export interface SignalledProof {
  th: Uint8Array
  proof: Proof
}

/**
 * Send our refusal of the link for the network's secret, signed over the transcript (`th`, known
 * once the peer's proof came: the refusal follows it), so that the peer can tell it from a relay's
 * forgery. Best effort: the pipe may be gone by then.
 */
export function sendDenial(
  o: HandshakeOptions,
  th: Uint8Array | undefined,
  pipe: { send(b: Uint8Array): void },
): void {
  ;(async () => {
    const sig = th && (await o.identity.sign(linkDenialBytes(th, o.identity.id)))
    pipe.send(
      plainControl(sig ? { t: 'bye', reason: ACCESS_DENIED, sig } : { t: 'bye', reason: ACCESS_DENIED }),
    )
  })().catch(() => {})
}

/**
 * A `bye access-denied` before the link is authenticated: the peer's own refusal only when signed by
 * its key over this link's transcript. Unsigned or forged (a relay, or a server in the middle, can
 * write one), the link just ends: no AccessDeniedError and no denial remembered for the peer.
 */
export async function checkDenial(
  c: { sig?: Uint8Array },
  o: HandshakeOptions,
  th: Uint8Array | undefined,
  pk: Uint8Array | undefined,
): Promise<string> {
  if (c.sig && th && pk && (await o.identity.verify(pk, linkDenialBytes(th, o.peer), c.sig)))
    return `bye:${ACCESS_DENIED}`
  bump(o.counters, 'drop.link.unproven-denial')
  return 'bye:unproven-denial'
}

/**
 * The peer's proof over `th`: the network's secret first (an HMAC, checked
 * in constant time, before any signature work), then its signature; on a
 * secure link, the channel derived from both `ek`s. What to do: refuse for
 * the secret, close for a reason, or go on (with the channel when secure).
 */
export async function checkProof(
  c: Proof,
  o: HandshakeOptions,
  th: Uint8Array,
  theirs: { pk: Uint8Array; ek: Uint8Array },
  secure: { keys: Promise<ChannelKeys> } | undefined,
): Promise<
  { refuse: typeof ACCESS_DENIED | typeof OUTSIDER } | { close: string } | { channel: Channel | undefined }
> {
  const nk = o.networkKeys
  if (nk && !c.adm) return { refuse: OUTSIDER }
  if (!nk && c.adm) return { refuse: ACCESS_DENIED }
  if (nk && c.adm && !(await nk.checkAdmission(th, o.peer, c.adm))) return { refuse: ACCESS_DENIED }
  if (!(await o.identity.verify(theirs.pk, linkProofBytes(th, o.peer), c.sig))) {
    bump(o.counters, 'link.auth-failed')
    return { close: 'bad-proof' }
  }
  if (!secure) return { channel: undefined }
  const channel = await deriveChannel({
    mine: await secure.keys,
    theirs: theirs.ek,
    transcript: th,
    counters: o.counters,
  })
  if (!channel) {
    bump(o.counters, 'link.auth-failed')
    return { close: 'bad-ephemeral' }
  }
  return { channel }
}
