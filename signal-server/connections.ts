/**
 * Connection state: one `Conn` per socket.io socket, and the nodes registered
 * on this instance (by network, then id).
 *
 * A connection goes New → Registering (its signature is being checked) →
 * Registered, or to Closed from any of them. Only Registered connections
 * are in the node table; a second registration of the same id replaces the
 * first (`replace`). A connection pays for what it does with tokens: events
 * (per socket), relayed bytes (per node and per source, see sources.ts),
 * signalled bytes (per socket) and strikes: every refused or invalid event
 * costs one, and a socket out of strikes is dropped (`abuse`).
 */
import type { Socket } from 'socket.io'
import {
  type ClientToServerEvents,
  type EventErrorReason,
  jsonByteLength,
  type RejectReason,
  type ServerToClientEvents,
} from '../shared/signal-events.ts'
import { TokenBucket } from '../shared/token-bucket.ts'
import { leanVersionMismatch } from './engine-lean.ts'
import { inc, type ServerCounters } from './metrics.ts'
import { SIGNAL_PACKET_BYTES } from './options.ts'

export type IoSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>
/** An ack callback, as socket.io hands it over (its answer is checked by the typed callers). */
export type Ack = (answer: unknown) => void

export interface SocketData {
  conn?: Conn
}

export enum State {
  New = 0,
  Registering = 1,
  Registered = 2,
  Closed = 3,
}

/** Per-socket state. Kept small: the server holds one per connected node. */
export interface Conn {
  socket: IoSocket
  state: State
  /** The challenge, until registered. */
  nonce: Uint8Array | null
  /** The Host the client connected with (lower case; shared string per host). */
  host: string
  /** The source address key (sources.ts), shared by the source's connections. */
  source: string
  network: string
  /** The node id, set once the signature checked out (it then holds one of the source's identity slots). */
  id: string
  events: TokenBucket
  /** Made on the first strike: most sockets never get one. */
  strikes: TokenBucket | null
  /** Made on the first relayed frame: most nodes link directly. */
  bytes: TokenBucket | null
  /** Bytes of signals (signalBytesPerSec); made on the first signal. */
  signalBytes: TokenBucket | null
  /** The registration deadline, until registered. */
  timer: NodeJS.Timeout | null
  /** Bytes this server put in `queuedIn`, engine.io's write buffer for this socket, and still there (enqueued). */
  queued: number
  /** That write buffer; engine.io starts a new one each time it hands the old one to the transport. */
  queuedIn: unknown[] | null
  /** When activity last reached the host cache. */
  lastTouch: number
}

export interface ConnectionLimits {
  eventsPerSec: number
  eventBurst: number
  abusePerSec: number
  abuseBurst: number
  congestionMaxPackets: number
  /**
   * Per socket, not per source address. What one source can make the server hold for sockets that
   * stopped reading: only registered sockets are sent relay frames, signals and answers, and a source
   * has at most maxIdentitiesPerSource (128) identities, each registered once per instance (a second
   * registration replaces the first): 128 sockets. Each holds at most congestionMaxBytes (1 MiB), plus
   * the one delivery let through under it (up to a 64 KiB frame + 128 + 1 KiB of view), plus one frame
   * sent at once that may be a view into a 64 KiB chunk, plus small packets nobody counts in bytes
   * (pings; acks and refusals of its own events, bounded by its event and strike buckets and the
   * sweep's slowConsumerMaxPackets): ~1.15 MiB, so ~150 MiB per source at worst (128 MiB counted).
   * Before, the packet bound alone: ~128 relay frames of 64 KiB (~8 MiB) waiting, plus as much in the
   * TCP stream once a trickle of reading let a batch go: up to ~16 MiB a socket, ~2 GiB per source.
   * Kernel socket buffers (net.ipv4.tcp_wmem) come on top, as they always did.
   *
   * A total per source is not kept: it would have to go down when bytes leave, which this counting
   * notices only at the socket's next delivery (or the sweep, every sweepMs), not when they leave
   * (that takes a drain listener or write-callback hook per socket, on the hot path). A total kept
   * that lazily would stay high after one socket drained and refuse traffic to the source's other
   * sockets, which are often other people behind the same NAT.
   *
   * Nor a total for the whole server (maxPeers sockets × ~1.15 MiB in theory), for the same reason:
   * kept at deliveries (O(1): the socket's unsentBytes after each, its change added to the total, the
   * sweep correcting the rest), it only ever errs high, by whatever drained since each socket's last
   * delivery. Refusing on it would let a sender burst at sockets that read, then stop, and have every
   * socket refused until the sweep; refusing then only sockets that hold more than some threshold
   * still lets each hold that threshold plus a delivery: no cap unless the threshold is near nothing,
   * and then honest sockets with a frame on its way are refused too. What bounds how fast sockets
   * fill is what senders may send: relay bytes per node and per source, and signal bytes per socket
   * (signalBytesPerSec).
   */
  congestionMaxBytes: number
}

/**
 * The parts of engine.io's socket (private in its types) read here, on every delivery: plain property
 * reads, as Reflect.get is a generic lookup several times slower on this path.
 */
interface EngineInternals {
  writeBuffer?: unknown
  transport?: { socket?: { bufferedAmount?: unknown } | null; writable?: unknown } | null
}
const engineOf = (s: IoSocket): EngineInternals => s.conn as unknown as EngineInternals

/** Packets engine.io holds for this socket that the transport has not taken yet. */
export const unsent = (s: IoSocket): number => {
  // engine.io's write buffer is private in its types; it is the only measure of a slow consumer it has.
  const buffer = engineOf(s).writeBuffer
  return Array.isArray(buffer) ? buffer.length : 0
}

/**
 * Bytes held for `s` and not yet written to the kernel, measured by walking what is held: the data of
 * every packet in engine.io's write buffer (a string's length; for a binary attachment, the whole
 * buffer it is a view into, which it keeps alive) and what ws has handed its TCP stream without it
 * being written yet (ws's `bufferedAmount`). O(packets): for the gauge (`unsentBytesMax`), not for a
 * check on every packet.
 */
export function heldBytes(s: IoSocket): number {
  const buffer = engineOf(s).writeBuffer
  let n = 0
  if (Array.isArray(buffer))
    for (const p of buffer as { data?: unknown }[]) {
      const d = p?.data
      n += typeof d === 'string' ? d.length : ArrayBuffer.isView(d) ? d.buffer.byteLength : 0
    }
  return n + wsBuffered(s)
}

/** ws's `bufferedAmount` under `s`: bytes handed to its TCP stream and not yet written (0 if not found). */
export function wsBuffered(s: IoSocket): number {
  const ws: unknown = engineOf(s).transport?.socket
  const n: unknown =
    typeof ws === 'object' && ws !== null ? (ws as { bufferedAmount?: unknown }).bufferedAmount : 0
  return typeof n === 'number' ? n : 0
}

/**
 * Bytes held for `c` and not yet written, as far as the server counts them, in O(1): what it put in
 * engine.io's write buffer (`enqueued`), and ws's `bufferedAmount` (what went to the TCP stream and
 * is not written yet). Not counted: pings, acks and refusals (small; the packet bound holds them).
 */
export function unsentBytes(c: Conn): number {
  const buffer = engineOf(c.socket).writeBuffer
  return (buffer === c.queuedIn ? c.queued : 0) + wsBuffered(c.socket)
}

/**
 * `bytes` were just handed to engine.io for `c` (a relay frame, a signal, a `peers` answer): counted
 * while they wait in its write buffer. When it took them to the transport at once (the buffer is
 * empty), they are ws's `bufferedAmount` now, or written. A write buffer handed to the transport is
 * replaced by a new array, so `queuedIn` no longer being the current one means everything counted
 * has left it: no listener per socket, and nothing to do when it drains. Until the socket's next
 * delivery, `queuedIn` still refers to the array that left (its packets in ws's buffer, or written):
 * one buffer's worth at most, never beside a new one, and `enqueued(c, 0)` (the sweep) lets go of it.
 */
export function enqueued(c: Conn, bytes: number): void {
  const buffer = engineOf(c.socket).writeBuffer
  if (!Array.isArray(buffer) || buffer.length === 0) {
    c.queued = 0
    c.queuedIn = null
  } else if (buffer === c.queuedIn) c.queued += bytes
  else {
    c.queued = bytes
    c.queuedIn = buffer
  }
}

/** Counted per relay frame on top of its bytes: socket.io's header packet (~100 characters) and framing. */
export const RELAY_PACKET_BYTES = 128
/** A frame whose memory holds more than this besides it is copied before it waits (holdable). */
const VIEW_SLACK = 1024

/**
 * `frame` as it should be sent to `c` and counted (`frame.buffer.byteLength`: the memory it keeps).
 * ws hands a frame over as a view into the TCP chunk it came in (up to 64 KiB, shared with whatever
 * else came with it), or into Node's 8 KiB buffer pool: a 1-byte frame could keep 64 KiB alive, and
 * the packet bound let 128 of them wait for a socket that stopped reading. So a frame that will wait
 * in engine.io's write buffer (the transport is busy) is copied into memory of its own when the memory
 * under it is more than VIEW_SLACK larger: a copy is only paid for what waits. One sent while the
 * transport is free is not copied; its header packet goes at once, and the frame (socket.io's binary
 * attachment, a second packet) waits only for that write, counted as all the memory under it: an
 * over-count of at most one chunk, and only until that write is done.
 */
export function holdable(c: Conn, frame: Uint8Array): Uint8Array {
  if (frame.buffer.byteLength - frame.byteLength <= VIEW_SLACK) return frame
  const transport: unknown = engineOf(c.socket).transport
  const busy =
    typeof transport !== 'object' ||
    transport === null ||
    (transport as { writable?: unknown }).writable !== true
  return busy ? new Uint8Array(frame) : frame
}

/** What sendSignal uses of engine.io's socket under a socket.io socket. */
interface EngineConn {
  readyState: string
  transport?: { writable?: unknown } | null
  write(data: string, options: { compress: boolean; wsPreEncodedFrame?: Buffer[] }): unknown
}
/** engine.io's options for every packet socket.io sends here (it sets `compress` on them: not frozen). */
const WRITE_OPTIONS = { compress: true }

/**
 * `payload` as the one WebSocket frame a server sends it in: a final, unmasked text frame (RFC 6455
 * 5.2), header and UTF-8 payload in one buffer. `payload` is well-formed (JSON.stringify escapes lone
 * surrogates), so Buffer.byteLength is what `write` writes.
 */
export function textFrame(payload: string): Buffer {
  const n = Buffer.byteLength(payload)
  const head = n < 126 ? 2 : n < 65_536 ? 4 : 10
  const frame = Buffer.allocUnsafe(head + n)
  frame[0] = 0x81
  if (head === 2) frame[1] = n
  else if (head === 4) {
    frame[1] = 126
    frame.writeUInt16BE(n, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(0, 2)
    frame.writeUInt32BE(n, 6)
  }
  frame.write(payload, head)
  return frame
}

/**
 * Deliver `{ from, data }` as `signal` to `s`, the packet socket.io's `emit` would write, encoded
 * here once: `2["signal",{"from":…,"data":…}]` (EVENT, default namespace, no ack) handed to
 * engine.io's socket, as socket.io's client does with what its encoder returns. Skipped: emit's
 * argument array and flag copy, the outgoing-listener check, and the encoder, which walks the whole
 * payload for binary first (`data` is a JSON value: it has none). Only with the socket.io, engine.io
 * and ws this was read from (engine-lean.ts); otherwise, or with `viaEmit`, through emit.
 */
export function sendSignal(s: IoSocket, from: string, data: unknown, viaEmit = false): number {
  if (viaEmit || leanVersionMismatch() !== null) {
    s.emit('signal', { from, data })
    return stringBytes(jsonByteLength(data) + SIGNAL_PACKET_BYTES)
  }
  const conn = s.conn as unknown as EngineConn
  // As socket.io's client: nothing is written to an engine.io socket that is not open.
  if (conn.readyState !== 'open') return 0
  const json = JSON.stringify(['signal', { from, data }])
  const packet = `2${json}`
  // A transport that is free sends the packet now: it is handed over as its WebSocket frame, made here
  // (`4`, engine.io's MESSAGE, then the packet), as socket.io does for a broadcast; engine.io's and
  // ws's encoding (a string and a header buffer, two writes) are skipped. A packet that will wait in
  // engine.io's write buffer goes as the string alone (counted as such), encoded when it leaves.
  if (conn.transport?.writable === true)
    conn.write(packet, { compress: true, wsPreEncodedFrame: [textFrame(`42${json}`)] })
  else conn.write(packet, WRITE_OPTIONS)
  return stringBytes(packet.length)
}

/**
 * What a string of `chars` characters (UTF-16 units) is counted as: two bytes each, what V8 takes for
 * a string with any character past Latin-1 (and at least what UTF-8 takes for one without). Signals
 * and answers are small, so the packet bound comes first for them unless they are large ones.
 */
export const stringBytes = (chars: number): number => 2 * chars

export function newConn(
  socket: IoSocket,
  init: { nonce: Uint8Array; host: string; source: string },
  limits: ConnectionLimits,
  now: number,
): Conn {
  return {
    socket,
    state: State.New,
    ...init,
    network: '',
    id: '',
    events: new TokenBucket(limits.eventsPerSec, limits.eventBurst, now),
    strikes: null,
    bytes: null,
    signalBytes: null,
    timer: null,
    queued: 0,
    queuedIn: null,
    lastTouch: 0,
  }
}

export interface Connections {
  /** The node `id` of `network` registered here, if any. */
  get(network: string, id: string): Conn | undefined
  /** Enter a connection that just registered (its network and id set). */
  link(c: Conn): void
  /** Take a connection out of the node table (if it is the one there). */
  unlink(c: Conn): void
  /** Registered nodes here. */
  count(): number
  /** Registered nodes here, by network. */
  byNetwork(): Map<string, number>
  networks(): number
  /** Hang up on `c`, counting why, and telling it `tell` first. */
  kick(c: Conn, reason: string, tell?: RejectReason): void
  /** A bad or excess event: costs a strike; out of strikes, the socket is dropped. */
  strike(c: Conn, now: number): void
  /** Refuse an event: counted, answered when an ack was asked for, and a strike. */
  refuse(c: Conn, ack: Ack | undefined, reason: EventErrorReason, now: number): void
  /** `c`'s id registered again elsewhere: unlink it, tell it, hang up. */
  replace(old: Conn): void
  /**
   * Whether `target` has too much unsent to be sent more: more than congestionMaxPackets packets, or
   * more than congestionMaxBytes bytes (unsentBytes; then call enqueued after sending it something).
   */
  congested(target: Conn): boolean
}

interface Net {
  /** The network name: one string shared by all its nodes' Conns. */
  name: string
  peers: Map<string, Conn>
}

export function createConnections(limits: ConnectionLimits, counters: ServerCounters): Connections {
  const nets = new Map<string, Net>()
  let registered = 0

  const kick = (c: Conn, reason: string, tell?: RejectReason) => {
    if (c.state === State.Closed) return
    inc(counters.kicked, reason)
    if (tell) c.socket.emit('rejected', { reason: tell })
    c.socket.disconnect(true)
  }
  const strike = (c: Conn, now: number) => {
    c.strikes ??= new TokenBucket(limits.abusePerSec, limits.abuseBurst, now)
    if (!c.strikes.take(1, now)) kick(c, 'abuse', 'abuse')
  }
  const unlink = (c: Conn) => {
    const net = nets.get(c.network)
    if (net?.peers.get(c.id) === c) {
      net.peers.delete(c.id)
      if (net.peers.size === 0) nets.delete(c.network)
      registered--
    }
  }

  return {
    get: (network, id) => nets.get(network)?.peers.get(id),
    link(c) {
      let net = nets.get(c.network)
      if (!net) {
        net = { name: c.network, peers: new Map() }
        nets.set(c.network, net)
      }
      c.network = net.name
      net.peers.set(c.id, c)
      registered++
    },
    unlink,
    count: () => registered,
    byNetwork: () => new Map([...nets].map(([k, v]) => [k, v.peers.size])),
    networks: () => nets.size,
    kick,
    strike,
    refuse(c, ack, reason, now) {
      inc(counters.rejected, reason)
      ack?.({ ok: false, reason })
      strike(c, now)
    },
    replace(old) {
      counters.replaced++
      unlink(old)
      old.socket.emit('replaced', { reason: 'replaced' })
      kick(old, 'replaced')
    },
    congested(target) {
      // As unsent and unsentBytes, reading engine.io's write buffer once (this is on every delivery).
      const buffer = engineOf(target.socket).writeBuffer
      if (Array.isArray(buffer) && buffer.length > limits.congestionMaxPackets) return true
      const queued = buffer === target.queuedIn ? target.queued : 0
      return queued + wsBuffered(target.socket) > limits.congestionMaxBytes
    },
  }
}
