/** A link setup under way, as the dialer (dialer.ts) and inbound admission (inbound.ts) keep it. */
import type { Link } from '../links/link.ts'
import type { RelayPipe } from '../links/relay.ts'
import type { WebRtcPipe } from '../links/webrtc.ts'
import type { AttemptHello } from './attempt-hello.ts'
import type { TimerId } from './clock.ts'
import type { NodeLink } from './link-table.ts'
import type { SignalData } from './signal-data.ts'

/** A link setup under way. */
export interface Dial {
  peer: string
  mesh: boolean
  /**
   * Set up at the peer's request (its signal), not ours: counted against the
   * inbound bounds (inbound.ts), not the connection manager's own dials.
   */
  inbound: boolean
  /** A WebRTC attempt to replace an open relayed link: on failure the relayed link stays. */
  upgrade?: boolean
  /**
   * The link open with the peer when it started this setup (it left that link, or a server made
   * the signal up): closed once this one opens, authenticated; kept if this one fails.
   */
  supersedes?: NodeLink
  /** Relay sessions this dial has started or adopted (MAX_RELAY_SESSIONS). */
  relays: number
  pipe?: WebRtcPipe
  relay?: RelayPipe
  link?: Link
  timer?: TimerId
  /** The peer signalled this setup through the signal server: ours go back that way (inbound.ts). */
  viaServer?: boolean
  /** This end made the WebRTC offer of `pipe` (else it answers). */
  offerer?: boolean
  /** Why the direct attempt failed (the WebRTC error), for the NoRouteError when there is no relay. */
  error?: string
  /** What our offering `pipe` has signalled so far (MAX_SENT_SIGNALS), for one replay (replayOffer). */
  sent?: (SignalData & { t: 'rtc' })[]
  /** The offer of `pipe` was replayed already. */
  replayed?: boolean
  /** The hello of `pipe`'s link, made with the attempt (startWebRtc). */
  hello?: AttemptHello
  started: number
  waiters: { resolve: (l: NodeLink) => void; reject: (e: Error) => void }[]
}
