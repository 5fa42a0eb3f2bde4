/**
 * The link hello of a WebRTC attempt, carried by the signalling (issue 14:
 * one flight less per join).
 *
 * The offering side puts its hello (link-control.ts helloToSignal) into
 * the `h` of its offer; the answering side, when the offer carried one,
 * puts its own into its answer. An end whose hello went and that has the
 * peer's checks it and makes its proof as soon as both SDPs are known
 * (answerAhead), and starts its link with them (`early`, link.ts): as the
 * channel opens it sends its hello and its proof together. The hello still
 * goes over the channel, and an `early` end takes the peer's only if it says
 * what the signalled one said, so an end that missed the peer's `h` (an
 * earlier version, a server that strips it) runs the handshake as before.
 * The answering side's proof, once made, also goes by signal (`proof`,
 * after its answer): the offering side's link opens as its channel does,
 * not a flight later when the peer's proof comes over the channel (a join's
 * last round trip); the proof binds the DTLS fingerprints as over the
 * channel, and one that does not verify is not used.
 *
 * What the signalling carries is untrusted: the hello is read through the
 * same checks as one from the channel; its nonce, `ek` and both DTLS
 * fingerprints go into the transcript both proofs sign, and the channel's
 * hello must match it (mesh role included). A proof made ahead is used only
 * with the fingerprints the channel opened with, and a pipe takes a single
 * offer or answer (webrtc.ts), so a server cannot move the DTLS session to
 * itself after the proofs were made: it can only break the link, as one that
 * drops signals could.
 */
import { type ChannelKeys, createChannelKeys } from '../../shared/crypto/channel.ts'
import { LINK_NONCE_BYTES } from '../../shared/crypto/transcript.ts'
import { bump, type Counters } from '../../shared/protocol.ts'
import {
  type AnswerAhead,
  answerHello,
  checkSignalledProof,
  type HandshakeOptions,
  type Hello,
  makeHello,
  type SignalledProof,
} from '../links/handshake.ts'
import { helloFromSignal, helloToSignal, proofFromSignal, proofToSignal } from '../links/link-control.ts'
import type { LinkOptions } from '../links/link-types.ts'
import { isAnswer, isOffer, type SignalData } from './signal-data.ts'
import { markPhase } from './timeline.ts'

export interface AttemptHello {
  nonce: Uint8Array
  /** The link's ephemeral keys, made while the offer is. */
  keys: Promise<ChannelKeys>
  /** The mesh role our hello asks for (the link starts with it). */
  mesh: boolean
  /** Our hello went with our offer or answer. */
  sent: boolean
  /** The peer's, from its offer or answer. */
  theirs?: Hello
  /** Our answer to theirs (its checks, our proof), made once both fingerprints are known. */
  answer?: AnswerAhead
  /** The peer's proof by signal after its answer (we offered), once checked: the link may open on it. */
  theirProof?: Promise<SignalledProof | undefined>
  /** Signalled proofs taken for this attempt. */
  proofTries?: number
}

export function attemptHello(mesh: boolean): AttemptHello {
  const keys = createChannelKeys()
  keys.catch(() => {})
  return { nonce: crypto.getRandomValues(new Uint8Array(LINK_NONCE_BYTES)), keys, mesh, sent: false }
}

/** Does our signal `data` carry our hello? An offer does; an answer, to an offer that carried one. */
export function carriesHello(
  data: SignalData & { t: 'rtc' },
  hello: AttemptHello,
  offerer: boolean,
): boolean {
  return offerer ? isOffer(data) : isAnswer(data) && hello.theirs !== undefined
}

/** Put our hello into `data`; nothing if the keys failed (the hellos then go over the channel). */
export async function addHello(
  data: SignalData & { t: 'rtc' },
  hello: AttemptHello,
  o: Pick<LinkOptions, 'identity' | 'box'>,
): Promise<void> {
  const ek = await hello.keys.then(
    (k) => k.publicKey,
    () => undefined,
  )
  if (!ek) return
  data.h = helloToSignal(makeHello(o, hello.nonce, hello.mesh, ek))
  hello.sent = true
  markPhase('hello-out')
}

/**
 * Keep the hello the peer's signal `s` carried: the answer to our offer, or
 * the offer we answer. A malformed one is counted and not used.
 */
export function takeHello(
  hello: AttemptHello | undefined,
  s: SignalData & { t: 'rtc' },
  offerer: boolean,
  counters: Counters,
): void {
  if (s.h === undefined || !hello || hello.theirs || !(offerer ? isAnswer(s) : isOffer(s))) return
  const theirs = helloFromSignal(s.h)
  if (theirs) hello.theirs = theirs
  else bump(counters, 'drop.signal.hello')
}

/**
 * Answer the peer's hello before the channel opens, once both hellos went
 * and `fp` (both fingerprints, from the offer and answer) is known: the
 * link then sends its proof as the channel opens, with no signing left.
 */
export function answerAhead(
  hello: AttemptHello | undefined,
  o: HandshakeOptions,
  fp: { local: string; remote: string } | null,
): void {
  if (!hello?.sent || !hello.theirs || hello.answer || !fp) return
  const answer = answerHello(o, 'webrtc', hello, hello.theirs, fp)
  answer.catch(() => {})
  hello.answer = { fp, answer }
}

/**
 * Once our answer to the peer's hello is made (answerAhead, the answering side), `send` our proof
 * as a `proof` signal: not awaited by the signals behind it (our ICE candidates go meanwhile).
 */
export function sendProof(hello: AttemptHello, send: (data: SignalData) => void): void {
  hello.answer?.answer
    .then((r) => {
      if (typeof r !== 'string') send({ t: 'proof', p: proofToSignal(r.proof) })
    })
    .catch(() => {}) // (our answer failed: the channel's handshake says so)
}

/** Signalled proofs checked per attempt: a forged one sent ahead of the peer's does not shut it out. */
export const MAX_SIGNALLED_PROOFS = 2

/**
 * Take a proof the peer sent by signal after its answer to our offer (`p`,
 * untrusted), if our attempt has the peer's hello and our answer to it, and
 * check it now against our answer's transcript (checkSignalledProof), so
 * that the link finds it checked as the channel opens. The first of at most
 * MAX_SIGNALLED_PROOFS that verifies is the one; one that comes when none
 * is wanted is counted `drop.signal.proof`, a malformed one
 * `drop.signal.proof-malformed`.
 */
export function takeProof(
  hello: AttemptHello | undefined,
  p: string,
  o: HandshakeOptions,
  counters: Counters,
): void {
  const tries = hello?.proofTries ?? 0
  if (!hello?.answer || !hello.theirs || tries >= MAX_SIGNALLED_PROOFS)
    return bump(counters, 'drop.signal.proof')
  const proof = proofFromSignal(p)
  if (!proof) return bump(counters, 'drop.signal.proof-malformed')
  hello.proofTries = tries + 1
  const check = checkSignalledProof(proof, o, hello.answer.answer, hello.theirs).catch(() => undefined)
  const before = hello.theirProof
  hello.theirProof = before ? before.then((r) => r ?? check) : check
}

/**
 * What the link of an attempt starts with: its keys and nonce, and the peer's hello (and our
 * answer, and the peer's signalled proof) when both hellos went.
 */
export function linkHello(
  hello: AttemptHello,
): Pick<LinkOptions, 'channelKeys' | 'nonce' | 'early' | 'earlyAnswer' | 'earlyProof'> {
  const early = hello.sent ? hello.theirs : undefined
  const answer = early && hello.answer
  const proof = answer && hello.theirProof
  return {
    channelKeys: hello.keys,
    nonce: hello.nonce,
    ...(early ? { early } : {}),
    ...(answer ? { earlyAnswer: answer } : {}),
    ...(proof ? { earlyProof: proof } : {}),
  }
}
