/**
 * Link-setup signals: what two nodes send each other (through the signal
 * server, or routed over the overlay) to open a link.
 *
 *   {t: 'dial', mesh}         asks the receiver to make the WebRTC offer (sent by earlier
 *                             versions, whose higher id never offered; still answered)
 *   {t: 'rtc', s, mesh, o, r} a WebRTC signal (offer, answer, ICE candidate) for simple-peer;
 *                             `o: true` when the sender is the offering side (glare: dialer.ts);
 *                             `r: true` when the offering side sends its offer again (a replay:
 *                             dialer.ts replayOffer), which never starts a setup by itself;
 *                             `h`: the sender's link hello (link-control.ts helloToSignal), on
 *                             an offer, and on the answer to an offer that carried one
 *   {t: 'proof', p}           the answering side's link proof (link-control.ts proofToSignal),
 *                             sent after its answer once made: the offering side's link then
 *                             opens as the channel does (attempt-hello.ts)
 *   {t: 'relay', mesh, sid}   the sender opens a relay session `sid` through the server
 *   {t: 'refuse', reason}     the receiver will not link now ('full', 'no-relay')
 *   {t: 'probe'}              nothing to do: sent through the server to a peer whose WebRTC link
 *                             stalled, to learn from the server whether it is still registered
 *                             (signal-error `unknown-peer`: it is gone; signal-transport.ts)
 *   {t: 'relay-gone', sid}    the sender has no relay session `sid` with the receiver (it closed
 *                             its end, and the goodbye was lost): the receiver's link on it is
 *                             dead (inbound.ts)
 *
 * `mesh`: the sender wants the link in the broadcast mesh. What a peer sends
 * is untrusted: `parseSignalData` gives a typed signal or null.
 */
import { SIGNAL_HELLO_MAX_CHARS } from '../links/link-control.ts'
import type { RelayPipe } from '../links/relay.ts'
import type { NodeLink } from './link-table.ts'

export type SignalData =
  | { t: 'rtc'; s: object; mesh: boolean; o?: true; r?: true; h?: string }
  | { t: 'dial'; mesh: boolean }
  | { t: 'proof'; p: string }
  | { t: 'relay'; mesh: boolean; sid: number }
  | { t: 'refuse'; reason: string }
  | { t: 'probe' }
  | { t: 'relay-gone'; sid: number }

export function parseSignalData(d: unknown): SignalData | null {
  if (typeof d !== 'object' || d === null) return null
  const o = d as Record<string, unknown>
  const mesh = o.mesh === true
  switch (o.t) {
    case 'rtc': {
      if (typeof o.s !== 'object' || o.s === null) return null
      if (o.h !== undefined && (typeof o.h !== 'string' || o.h.length > SIGNAL_HELLO_MAX_CHARS)) return null
      const rtc: SignalData & { t: 'rtc' } = { t: 'rtc', s: o.s, mesh }
      if (o.o === true) rtc.o = true
      if (o.o === true && o.r === true) rtc.r = true
      if (typeof o.h === 'string') rtc.h = o.h
      return rtc
    }
    case 'dial':
      return { t: 'dial', mesh }
    case 'proof':
      return typeof o.p === 'string' && o.p.length <= SIGNAL_HELLO_MAX_CHARS ? { t: 'proof', p: o.p } : null
    case 'relay':
      return isSid(o.sid) ? { t: 'relay', mesh, sid: o.sid } : null
    case 'relay-gone':
      return isSid(o.sid) ? { t: 'relay-gone', sid: o.sid } : null
    case 'refuse':
      return typeof o.reason === 'string' ? { t: 'refuse', reason: o.reason.slice(0, 64) } : null
    case 'probe':
      return { t: 'probe' }
    default:
      return null
  }
}

function isSid(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff
}

/**
 * Does this WebRTC signal come from the offering side of its session? Marked by `o`; an offer
 * says so itself (earlier versions sent no mark: their offers still count).
 */
export function fromOfferer(s: { s: object; o?: true }): boolean {
  return s.o === true || isOffer(s)
}

/** Is this WebRTC signal an offer (SDP of type 'offer')? */
export function isOffer(s: { s: object }): boolean {
  return (s.s as { type?: unknown }).type === 'offer'
}

/** Is this WebRTC signal an answer (SDP of type 'answer')? */
export function isAnswer(s: { s: object }): boolean {
  return (s.s as { type?: unknown }).type === 'answer'
}

/** The counter of a WebRTC signal the attempt refused: an ICE candidate past its bound, or a description. */
export function rtcDropKey(s: { s: object }): string {
  const candidate = (s.s as { candidate?: unknown }).candidate !== undefined && !('sdp' in s.s)
  return candidate ? 'drop.signal.candidate' : 'drop.signal.description'
}

/** The relay pipe (and so the session) a link runs on; undefined for a direct link. */
export function relayPipeOf(link: NodeLink): RelayPipe | undefined {
  if (link.transport !== 'relay') return undefined
  // A relay Link runs on a RelayPipe (links/relay.ts), which carries its session id.
  const pipe = (link as NodeLink & { pipe?: RelayPipe }).pipe
  return typeof pipe?.sid === 'number' ? pipe : undefined
}

/**
 * Does this signal start a new link rather than continue the one open with
 * its sender? An ask to offer, a relay session other than the open one, or a
 * WebRTC offer while a direct link is open (late ICE candidates of the open
 * link are not).
 */
export function startsSession(s: SignalData, linked: NodeLink): boolean {
  if (s.t === 'dial') return true
  if (s.t === 'relay') return linked.transport !== 'relay' || relayPipeOf(linked)?.sid !== s.sid
  if (s.t === 'rtc') return linked.transport === 'webrtc' && isOffer(s)
  return false
}
