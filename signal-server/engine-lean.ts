/**
 * More per-socket savings under socket.io (engine.ts has the first ones and
 * the transport set-up). Measured by heap snapshot of the signal server with
 * 2,000 registered peers (`BENCH_HEAPSNAP=weft BENCH_PEERS=2000 npx tsx
 * bench/server.ts`, retained size by owner), with engine.ts's trimmed lists
 * and shared extension table: engine.io's WebSocket transport 848 -> 264 B,
 * ws's WebSocket 784 -> 448 B, engine.io's socket 896 -> 552 B, socket.io's
 * Client 536 -> 296 B, ws's receiver 792 -> 645 B, and ~500 B of functions
 * shared between them. What goes:
 *
 * - once-listeners (~150 B each, four a socket): EventEmitter's `once` wraps
 *   a listener in a bound function with a state object. Four of them on every
 *   socket are for events that are emitted at most once and whose listeners
 *   are guarded against a second call anyway: ws's 'close' (emitClose runs
 *   once, the transport's onClose sets readyState), the transport's 'error'
 *   and 'close' (engine.io's onClose returns once the socket is closed) and
 *   engine.io socket's 'close' (emitted inside that guard). Each wrapper is
 *   replaced by its listener, which stays removable by the same reference.
 * - engine.io's `onUpgradeError`, an 'error' listener (a closure) it puts on
 *   every WebSocket and removes only when the socket upgrades from polling:
 *   the transport's own 'error' listener handles errors from then on.
 * - the transport's 'headers' listener (a closure per socket): only the
 *   polling transport emits 'headers'.
 * - the WebSocket transport's four send callbacks (closures made for every
 *   socket at its start): LeanTransport sends through methods instead, with a
 *   callback made per write (young garbage, not kept per socket).
 * - engine.io socket's five listeners on its transport (four bound methods
 *   and a closure) and the cleanup closure that would remove them: shared
 *   functions instead, finding the socket through the transport
 *   (shareTransportListeners): ~530 B a socket with what the cleanup held.
 * - socket.io's Client keeps two Maps (sockets by id, by namespace) for the
 *   one namespace a client joins here: ~180 B each. SoloMap holds one entry
 *   inline and turns into a Map at a second.
 */
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { coalesceWrites } from './engine.ts'
import { quickenClient, quietenDispatch } from './engine-events.ts'

const get = (o: unknown, key: string): unknown =>
  typeof o === 'object' && o !== null ? Reflect.get(o, key) : undefined
const obj = (o: unknown, key: string): object | null => {
  const v = get(o, key)
  return typeof v === 'object' && v !== null ? v : null
}

// ----------------------------------------------------------------- listeners

type Fn = (...args: unknown[]) => unknown

/**
 * In `emitter`'s listener table, every once-wrapper of `event` replaced by the listener it wraps (only
 * for events emitted at most once, with listeners that tolerate a second call: see the header).
 * Returns how many were unwrapped.
 */
export function unwrapOnce(emitter: object | null, event: string): number {
  const events = obj(emitter, '_events')
  if (!events) return 0
  const v: unknown = Reflect.get(events, event)
  const inner = (f: unknown): Fn | null => {
    const l = typeof f === 'function' ? (Reflect.get(f, 'listener') as unknown) : undefined
    return typeof l === 'function' ? (l as Fn) : null
  }
  let n = 0
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const l = inner(v[i])
      if (l) {
        v[i] = l
        n++
      }
    }
  } else {
    const l = inner(v)
    if (l) {
      Reflect.set(events, event, l)
      n++
    }
  }
  return n
}

/** Remove `emitter`'s listeners of `event` whose function is named `name`; returns how many. */
export function removeNamedListener(emitter: object | null, event: string, name: string): number {
  const e = emitter as { listeners?(ev: string): Fn[]; removeListener?(ev: string, f: Fn): unknown } | null
  if (typeof e?.listeners !== 'function' || typeof e.removeListener !== 'function') return 0
  let n = 0
  for (const f of e.listeners(event))
    if (f.name === name) {
      e.removeListener(event, f)
      n++
    }
  return n
}

// ----------------------------------------------------------------- the transport

interface Packet {
  options?: { wsPreEncodedFrame?: unknown }
}
interface TransportLike {
  writable: boolean
  supportsBinary: boolean
  socket: {
    readyState: number
    send(data: unknown, cb: (err?: Error) => void): void
    _sender?: { sendFrame(frame: unknown, cb: (err?: Error) => void): void }
  }
  parser: { encodePacket(p: Packet, binary: boolean, cb: (data: unknown) => void): void }
  _canSendPreEncodedFrame(p: Packet): boolean
  onError(msg: string, desc?: unknown): void
  emit(event: string): boolean
}
type TransportClass = new (...args: never[]) => TransportLike
/** ws's WebSocket.OPEN. */
const WS_OPEN = 1

let leanTransport: { base: TransportClass; lean: TransportClass } | null = null
/** The packet engine.io-parser just encoded (see LeanTransport.send). */
let encoded: unknown
const keepEncoded = (data: unknown) => {
  encoded = data
}

/** engine.io's WebSocket transport, sending without the four callbacks it keeps per socket (see the header). */
function leanTransportClass(): { base: TransportClass; lean: TransportClass } {
  if (leanTransport) return leanTransport
  const engine = createRequire(createRequire(import.meta.url).resolve('socket.io'))('engine.io') as {
    transports: { websocket: TransportClass }
  }
  const base = engine.transports.websocket
  class LeanTransport extends base {
    /** As engine.io's send (transports/websocket.js), the write callbacks made per write. */
    send(packets: Packet[]): void {
      this.writable = false
      for (let i = 0; i < packets.length; i++) {
        const packet = packets[i] as Packet
        const done = i + 1 === packets.length ? this.sentLast() : this.sent()
        // Not past ws's close frame (readyState CLOSING: the peer's close came, engine.io not told
        // yet): ws.send refuses that write, sendFrame would not.
        if (this._canSendPreEncodedFrame(packet) && this.socket.readyState === WS_OPEN) {
          // Coalesced with the socket's other writes of this tick, as ws.send's are (engine.ts).
          coalesceWrites(this.socket)
          this.socket._sender?.sendFrame(packet.options?.wsPreEncodedFrame, done)
          continue
        }
        // engine.io-parser encodes synchronously in Node: its result is taken without a closure.
        encoded = undefined
        this.parser.encodePacket(packet, this.supportsBinary, keepEncoded)
        const data = encoded
        encoded = undefined
        if (data !== undefined) this.socket.send(data, done)
        else this.parser.encodePacket(packet, this.supportsBinary, (later) => this.socket.send(later, done))
      }
    }
    sent(): (err?: Error) => void {
      return (err) => {
        if (err) this.onError('write error', err.stack)
      }
    }
    sentLast(): (err?: Error) => void {
      return (err) => {
        if (err) this.onError('write error', err.stack)
        else {
          this.emit('drain')
          this.writable = true
          this.emit('ready')
        }
      }
    }
  }
  leanTransport = { base, lean: LeanTransport }
  return leanTransport
}

/** Give a WebSocket transport LeanTransport's send; false if `transport` is not engine.io's WebSocket transport. */
export function leanenTransport(transport: object | null): boolean {
  const { base, lean } = leanTransportClass()
  if (!(transport instanceof base) || Object.getPrototypeOf(transport) !== base.prototype) return false
  for (const k of ['_doSend', '_doSendLast', '_onSent', '_onSentLast'])
    if (typeof Reflect.get(transport, k) !== 'function') return false
  Object.setPrototypeOf(transport, lean.prototype)
  // Not deleted (that would turn the object into a hash table): the slots stay, empty.
  for (const k of ['_doSend', '_doSendLast', '_onSent', '_onSentLast']) Reflect.set(transport, k, null)
  return true
}

// ----------------------------------------------------------------- engine.io's socket on its transport

/** What the shared transport listeners call on the engine.io socket that owns the transport. */
interface EngineSocketLike {
  onError(err: unknown): void
  flush(): void
  onPacket(packet: unknown): void
  onDrain(): void
  onClose(reason: string): void
}
/**
 * A transport's engine.io socket. It is kept in the slot engine.io kept the transport's `_onSent`
 * callback in (emptied by leanenTransport): a new property would give every transport a hidden class
 * of its own (~550 B, measured).
 */
const OWNER = '_onSent'
const ownerOf = (t: object): EngineSocketLike | undefined =>
  (t as { [OWNER]?: EngineSocketLike | null })[OWNER] ?? undefined
/** The five listeners engine.io's setTransport makes per socket, as one set of functions for all. */
const TRANSPORT_LISTENERS: Record<string, { engine: string; shared: (this: object, arg?: unknown) => void }> =
  {
    error: {
      engine: 'bound onError',
      shared(err) {
        ownerOf(this)?.onError(err)
      },
    },
    ready: {
      engine: 'onReady',
      shared() {
        ownerOf(this)?.flush()
      },
    },
    packet: {
      engine: 'bound onPacket',
      shared(packet) {
        ownerOf(this)?.onPacket(packet)
      },
    },
    drain: {
      engine: 'bound onDrain',
      shared() {
        ownerOf(this)?.onDrain()
      },
    },
    close: {
      engine: 'bound onClose',
      shared() {
        ownerOf(this)?.onClose('transport close')
      },
    },
  }
/**
 * engine.io's socket listens to its transport with five functions made for it (four bound methods and
 * a closure) and keeps a cleanup closure that removes them: replaced by shared functions that find the
 * socket through the transport. There is no cleanup left to run: engine.io clears a transport only when
 * its socket closes (no upgrades here), and a closed socket ignores whatever its transport still says
 * (onPacket and flush check readyState, onError and onClose are guarded, onDrain finds nothing left).
 * False, with nothing changed, unless the transport is lean (leanenTransport) and the listeners are
 * exactly the ones engine.io sets.
 */
export function shareTransportListeners(engineSocket: object | null): boolean {
  const transport = obj(engineSocket, 'transport') as
    | (object & {
        listeners(e: string): Fn[]
        removeListener(e: string, f: Fn): unknown
        on(e: string, f: Fn): unknown
      })
    | null
  const cleanup = get(engineSocket, 'cleanupFn')
  if (
    !transport ||
    !(transport instanceof leanTransportClass().lean) ||
    Reflect.get(transport, OWNER) !== null ||
    !Array.isArray(cleanup) ||
    cleanup.length !== 1
  )
    return false
  const found: [string, Fn][] = []
  for (const [event, { engine }] of Object.entries(TRANSPORT_LISTENERS)) {
    const ls = transport.listeners(event)
    if (ls.length !== 1 || ls[0]?.name !== engine) return false
    found.push([event, ls[0]])
  }
  for (const [event, f] of found) {
    transport.removeListener(event, f)
    transport.on(event, (TRANSPORT_LISTENERS[event] as { shared: Fn }).shared)
  }
  Reflect.set(transport, OWNER, engineSocket)
  cleanup.length = 0
  return true
}

// ----------------------------------------------------------------- socket.io's Client

/** SameValueZero, a Map's key equality. */
const same = (a: unknown, b: unknown): boolean =>
  a === b || (typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b))

/**
 * The part of Map socket.io's Client uses, holding one entry inline; a second entry moves everything
 * into a real Map. Iteration order is insertion order, as a Map's.
 */
export class SoloMap<K, V> {
  #key: K | undefined = undefined
  #value: V | undefined = undefined
  #one = false
  #map: Map<K, V> | null = null

  get size(): number {
    return this.#map ? this.#map.size : this.#one ? 1 : 0
  }
  has(key: K): boolean {
    return this.#map ? this.#map.has(key) : this.#one && same(this.#key, key)
  }
  get(key: K): V | undefined {
    if (this.#map) return this.#map.get(key)
    return this.#one && same(this.#key, key) ? this.#value : undefined
  }
  set(key: K, value: V): this {
    if (this.#map) this.#map.set(key, value)
    else if (!this.#one || same(this.#key, key)) {
      // As a Map: -0 is kept as 0.
      this.#key = (key === 0 ? 0 : key) as K
      this.#value = value
      this.#one = true
    } else {
      this.#map = new Map([[this.#key as K, this.#value as V]])
      this.#map.set(key, value)
      this.#drop()
    }
    return this
  }
  delete(key: K): boolean {
    if (this.#map) return this.#map.delete(key)
    if (!this.#one || !same(this.#key, key)) return false
    this.#drop()
    return true
  }
  clear(): void {
    this.#map = null
    this.#drop()
  }
  #drop(): void {
    this.#key = undefined
    this.#value = undefined
    this.#one = false
  }
  *entries(): IterableIterator<[K, V]> {
    if (this.#map) yield* this.#map.entries()
    else if (this.#one) yield [this.#key as K, this.#value as V]
  }
  *keys(): IterableIterator<K> {
    for (const [k] of this.entries()) yield k
  }
  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v
  }
  forEach(f: (value: V, key: K, map: this) => void): void {
    for (const [k, v] of this.entries()) f(v, k, this)
  }
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries()
  }
}

/** socket.io's Client's two tables as SoloMaps (entries carried over); false if they are not Maps. */
export function soloClientTables(client: object | null): boolean {
  if (!client) return false
  for (const k of ['sockets', 'nsps']) if (!(Reflect.get(client, k) instanceof Map)) return false
  for (const k of ['sockets', 'nsps']) {
    const solo = new SoloMap<unknown, unknown>()
    for (const [key, v] of Reflect.get(client, k) as Map<unknown, unknown>) solo.set(key, v)
    Reflect.set(client, k, solo)
  }
  return true
}

// ----------------------------------------------------------------- all of it

/** What leanSession did to one socket (the tests check every part is found). */
export interface LeanReport {
  unwrapped: number
  upgradeListeners: number
  headersListeners: number
  transport: boolean
  engineListeners: boolean
  clientTables: boolean
  /** socket.io's per-event dispatch skipped when it would run nothing (engine-events.ts). */
  dispatch: boolean
  /** socket.io's Client hands events to the socket at once (engine-events.ts). */
  quickClient: boolean
}

/**
 * The versions these cuts were read from and tested against (engine-lean.test.ts). LeanTransport
 * copies engine.io's send, and unwrapOnce relies on which events each emits once: with any other
 * version (socket.io is a peer dependency, `^4.8.4`) leanSession leaves sockets as they are.
 */
export const LEAN_TESTED = { 'socket.io': '4.8.4', 'engine.io': '6.6.11', ws: '8.21.3' } as const
let versionsChecked: string | null | undefined

/** null when the installed socket.io, engine.io and ws are the tested ones, else what differs. */
export function leanVersionMismatch(): string | null {
  if (versionsChecked !== undefined) return versionsChecked
  const diffs: string[] = []
  const fromSocketIo = createRequire(createRequire(import.meta.url).resolve('socket.io'))
  const fromEngine = createRequire(fromSocketIo.resolve('engine.io'))
  for (const [name, tested] of Object.entries(LEAN_TESTED)) {
    const req = name === 'ws' ? fromEngine : fromSocketIo
    let version = 'not found'
    try {
      // (Not `${name}/package.json`: engine.io's exports do not list it.) The package's folder, up from its main file.
      let dir = dirname(req.resolve(name))
      while (!existsSync(join(dir, 'package.json')) || readPackageName(dir) !== name) {
        if (dirname(dir) === dir) break
        dir = dirname(dir)
      }
      version = String(
        (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown }).version,
      )
    } catch {}
    if (version !== tested) diffs.push(`${name} ${version} (tested ${tested})`)
  }
  versionsChecked = diffs.length ? diffs.join(', ') : null
  return versionsChecked
}

function readPackageName(dir: string): unknown {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name
  } catch {
    return undefined
  }
}

/**
 * Every saving in the header, on one socket.io socket: call once its emitters have all their listeners
 * (at socket.io's 'connection'), before compactSession (engine.ts) rebuilds their tables. Nothing with
 * untested library versions (leanVersionMismatch: the server logs it once).
 */
export function leanSession(socket: object): LeanReport {
  if (leanVersionMismatch() !== null)
    return {
      unwrapped: 0,
      upgradeListeners: 0,
      headersListeners: 0,
      transport: false,
      engineListeners: false,
      clientTables: false,
      dispatch: false,
      quickClient: false,
    }
  const engine = obj(socket, 'conn')
  const transport = obj(engine, 'transport')
  const ws = obj(transport, 'socket')
  const isWs = get(transport, 'name') === 'websocket'
  const headers = isWs
    ? ((transport as { listenerCount?(e: string): number }).listenerCount?.('headers') ?? 0)
    : 0
  if (headers > 0) (transport as { removeAllListeners(e: string): unknown }).removeAllListeners('headers')
  return {
    unwrapped:
      unwrapOnce(ws, 'close') +
      unwrapOnce(transport, 'error') +
      unwrapOnce(transport, 'close') +
      unwrapOnce(engine, 'close'),
    upgradeListeners: removeNamedListener(ws, 'error', 'onUpgradeError'),
    headersListeners: headers,
    transport: isWs && leanenTransport(transport),
    engineListeners: shareTransportListeners(engine),
    clientTables: soloClientTables(obj(socket, 'client')),
    dispatch: quietenDispatch(socket),
    quickClient: quickenClient(socket),
  }
}
