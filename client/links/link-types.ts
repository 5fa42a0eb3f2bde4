/** What a Link is made with, the events it emits and its states (link.ts). */
import type { BoxRecord } from '../../shared/crypto/box-record.ts'
import type { ChannelKeys } from '../../shared/crypto/channel.ts'
import type { NetworkKeys } from '../../shared/crypto/network.ts'
import type { Identity } from '../../shared/identity/keys.ts'
import type { Counters } from '../../shared/protocol.ts'
import type { Value } from '../../shared/types.ts'
import type { Frame, Kind } from '../../shared/wire/frame.ts'
import type { AnswerAhead, SignalledProof } from './handshake.ts'
import type { LinkControl } from './link-control.ts'
import type { Pipe } from './pipe.ts'
import type { RecvLimits } from './recv-queue.ts'

export interface LinkOptions {
  pipe: Pipe
  identity: Identity
  /**
   * The network as the signal server knows it (networkTag(name)): part of
   * the transcript both proofs sign, so a link cannot be carried over into
   * another network. @default ''
   */
  network?: string
  /**
   * A private network's keys: our proof carries an admission tag, and the
   * peer's must prove the same secret. Without them, a peer that proves one
   * is refused (its network is not ours).
   */
  networkKeys?: NetworkKeys
  /** Our signed box record, sent in the hello (the key routed envelopes to us are sealed to). */
  box?: () => BoxRecord | undefined
  /**
   * Seal every piece after the handshake (the secure channel). @default true
   * on the relay, false on WebRTC (DTLS encrypts it, bound by the fingerprints)
   */
  secure?: boolean
  /** The id we expect at the other end (we dialled it, or the server told us who signals). */
  peer: string
  /** Do we want this link in the broadcast mesh? */
  mesh: boolean
  /** Validators for the bodies of non-Link kinds (the node's protocols). */
  validators: Partial<Record<Kind, (body: Value) => boolean>>
  /** @default 5000 */
  heartbeatMs?: number
  /** Close after this long without hearing anything. @default 20000 */
  deadAfterMs?: number
  /** After the transport stalls (ICE `disconnected`), close unless the peer is heard within this. @default 3000 */
  stallGraceMs?: number
  /** Close when the handshake does not finish in time. @default 10000 */
  authTimeoutMs?: number
  /** @default 4 MiB */
  maxMessageBytes?: number
  /** Counters shared by all links of a node (drops by reason). */
  counters: Counters
  /**
   * The network's identity puzzle (shared/identity/puzzle.ts): a hello whose
   * key does not meet it closes the link (`link.refused.puzzle`) before any
   * signature work. @default 0 (no puzzle)
   */
  puzzleBits?: number
  /**
   * This link's ephemeral keys, when made beforehand (the dialer starts them
   * with the WebRTC attempt, so the hello goes as soon as the channel opens).
   * Fresh for this link only. @default made at start()
   */
  channelKeys?: Promise<ChannelKeys>
  /** Our nonce for this link, when our hello was made beforehand (it went with the offer or answer). */
  nonce?: Uint8Array
  /**
   * The peer's hello, when both hellos went with the WebRTC offer and answer
   * (attempt-hello.ts): it is checked as if it came first over the channel,
   * so our proof goes as the channel opens, right behind our hello. The
   * hello the peer sends over the channel must then be the same one.
   */
  early?: Extract<LinkControl, { t: 'hello' }>
  /** Our answer to `early` (its checks and our proof), made before the channel opened, and the fingerprints it bound. */
  earlyAnswer?: AnswerAhead
  /**
   * The peer's proof, when it came by signal after its answer (attempt-hello.ts): the first of at
   * most two that verified against our `earlyAnswer`'s transcript (handshake.ts
   * checkSignalledProof), or undefined. If it verified for the transcript the link opened with,
   * the link opens as the channel does, not waiting for the proof over the channel (which, when it
   * comes, is the same one); if not, it is not used (`drop.signal.proof-bad`).
   */
  earlyProof?: Promise<SignalledProof | undefined>
  /** Receive queue and budgets. @default DEFAULT_RECV_LIMITS */
  recv?: Partial<RecvLimits>
}

export interface LinkEvents extends Record<string, unknown> {
  open: undefined
  frame: Frame
  control: LinkControl
  close: string
  /** The transport stopped hearing the peer (ICE `disconnected`): a stall check began (liveness.ts). */
  stall: undefined
  /** The peer's channel hello brought its box record after the link opened (with a signalled proof). */
  box: undefined
}

export type LinkState = 'handshake' | 'open' | 'closed'
