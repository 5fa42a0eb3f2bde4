/**
 * What `joinOverlay` takes (`JoinOptions`, every option with its default),
 * what a host environment gives a node (`Env`: browser or Node), and the
 * options resolved once (`NodeConfig`) for the parts of the node.
 */
import type { Identity } from '../../shared/identity/keys.ts'
import type { PieceStore } from '../../shared/swarm/store.ts'
import type { SimplePeerCtor } from '../links/webrtc.ts'
import type { IoFactory, Preconnection, SignalStatus } from '../signal-client.ts'
import type { NodeStorage } from '../storage.ts'
import type { TransportFactory } from './transport.ts'

export interface JoinOptions {
  /** Signal server URL(s), tried in order. */
  signal: string | string[]
  /** Networks never mix. @default 'default' */
  network?: string
  /**
   * A private network's secret: only nodes that know it link with us
   * (others get AccessDeniedError), and broadcasts, table values and DHT
   * values of the network are encrypted under keys derived from it. Never
   * sent anywhere; the signal server sees a hash of the network's name only.
   */
  secret?: string
  /** 'force': behave as a firewalled node, every link relayed; 'never': direct links only. @default 'auto' */
  relay?: 'auto' | 'force' | 'never'
  /** Most mesh links. @default 8 */
  maxPeers?: number
  /** Mesh links the connection manager aims for. @default min(6, maxPeers) */
  targetPeers?: number
  /**
   * Node only: WebRTC, as the module of node-datachannel/polyfill, werift or
   * @roamhq/wrtc (adapted for simple-peer), or false for relay links only.
   * @default the first of those installed, node-datachannel first
   */
  wrtc?: unknown
  /** How long a direct link may take before falling back to the relay. @default 5000 */
  directTimeoutMs?: number
  /** Largest message a node sends or accepts. @default 4 MiB */
  maxMessageBytes?: number
  /** Default timeout of `request`. @default 10000 */
  requestTimeoutMs?: number
  /** All links (mesh, ring and on-demand) together; a node at the limit still admits up to 2 more for its ring neighbours. @default 48 */
  maxLinks?: number
  /**
   * STUN/TURN servers for this node's RTCPeerConnections. Overrides what the
   * signal server hands out (its ICE_SERVERS, with TURN credentials made for
   * this node); `[]` uses none. Without any, peers behind NATs that cannot
   * link directly go through the signal server's relay, within its quota.
   * @default what the signal server hands out (none if it has none)
   */
  iceServers?: RTCIceServer[]
  /**
   * How long the first join keeps trying the signal servers (in turn, with
   * backoff) before joinOverlay rejects with SignalError. @default 30000
   */
  timeoutMs?: number
  /**
   * Called with every change of where the node stands with the signal
   * servers, from the first attempt on (before joinOverlay resolves, when
   * `node.on` cannot be reached yet): `{ state: 'connecting' | 'registered' |
   * 'down' | 'closed', server, attempt, retryInMs?, error? }`.
   */
  onSignal?: (status: SignalStatus) => void
  /** Node only: keep the identity, the table and the DHT share in this folder. */
  dataDir?: string
  /** Keep this node's DHT share in storage (always-on peers). @default false */
  persistDht?: boolean
  /**
   * Once on the ring, send link-setup signals through the overlay instead of
   * the signal server (which is then needed only to enter and for relay).
   * @default true
   */
  overlaySignals?: boolean
  /**
   * The network's identity puzzle: a node's public key must meet this many
   * bits of work (shared/identity/puzzle.ts). Every member of a network, and
   * its signal server, must use the same value; keys below it are refused
   * at the server, at link setup, and as authors of broadcasts, table
   * entries, DHT records and routed messages. A new identity costs about
   * 2^puzzleBits key generations, once.
   * @default 10 (DEFAULT_PUZZLE_BITS)
   */
  puzzleBits?: number
  /**
   * Presence (`node.presence`). `intervalMs`: the least time between this
   * node's announcements (it grows with the network past 100 nodes); others
   * take the node for gone when it has been silent for 3 intervals + 2 s,
   * so a crash is seen within about that. Shorter means crashes seen sooner
   * for more traffic. 1000 to 120000.
   * @default { intervalMs: 10000 }
   */
  presence?: { intervalMs?: number }
  /**
   * Files (`node.files`). `maxBytes`: most bytes of files this node keeps
   * (StorageFullError past it). @default browsers: 1 GiB or half the
   * origin's quota if less; Node: 4 GiB on disk with dataDir, else 256 MiB
   * in memory
   */
  files?: { maxBytes?: number }
}

interface EnvBase {
  identity: Identity
  /** Called on close: release the identity slot (Web Lock) and the like. */
  release?: () => void
  /** Where the sync table (and an always-on peer's DHT share) is kept. @default memory only */
  storage?: NodeStorage
  /** The node's source of randomness (peer choice, protocol jitter). @default Math.random */
  random?: () => number
  /**
   * Where `node.files` keeps files: 'indexeddb' (browsers), or a store made
   * on first use with the limit (JoinOptions.files.maxBytes, undefined for
   * the store's default): a folder for a Node peer with dataDir.
   * @default memory (256 MiB)
   */
  fileStore?: 'indexeddb' | ((maxBytes: number | undefined) => Promise<PieceStore>)
  /** Tests only (test-hook.ts): the node serves every piece with a byte flipped, unchecked. */
  lieAboutFiles?: boolean
  /**
   * The connection to the first signal server, opened while the identity
   * loaded (signal-client.ts, `preconnect`). @default none: opened at start
   */
  preconnection?: Preconnection
  /**
   * Called as each registration goes out: the browser makes its first
   * WebRTC offer while the server answers (native-peer.ts, `prewarmOffer`),
   * at the first registration only, if joinOverlay did not make it as the
   * certificate was read. Not with relay 'force'. @default none
   */
  prewarm?: () => void
}

/**
 * What a host environment (browser or Node) provides: simple-peer and
 * socket.io for links through the signal server (signal-transport.ts), or a
 * transport of its own (an in-memory test network: then `JoinOptions.signal`
 * is not used).
 */
export type Env = EnvBase &
  ({ SimplePeer: SimplePeerCtor; io: IoFactory; transport?: undefined } | { transport: TransportFactory })

/** JoinOptions with the defaults every part of the node reads filled in. */
export type NodeConfig = Required<
  Omit<
    JoinOptions,
    | 'wrtc'
    | 'dataDir'
    | 'signal'
    | 'persistDht'
    | 'overlaySignals'
    | 'puzzleBits'
    | 'iceServers'
    | 'timeoutMs'
    | 'onSignal'
    | 'presence'
    | 'secret'
    | 'files'
  >
> &
  JoinOptions

/** Fill in the defaults; a relay mode or mesh bound that cannot work is a TypeError. */
export function resolveConfig(opts: JoinOptions): NodeConfig {
  const maxPeers = opts.maxPeers ?? 8
  const config: NodeConfig = {
    network: 'default',
    relay: 'auto',
    maxPeers,
    targetPeers: Math.min(6, maxPeers),
    directTimeoutMs: 5000,
    maxMessageBytes: 4 * 1024 * 1024,
    requestTimeoutMs: 10_000,
    maxLinks: 48,
    ...opts,
  }
  if (!['auto', 'force', 'never'].includes(config.relay))
    throw new TypeError(`relay must be auto, force or never`)
  if (!Number.isInteger(maxPeers) || maxPeers < 1) throw new TypeError('maxPeers must be a positive integer')
  return config
}
