/**
 * What engine.ts takes out of every socket, on a plain socket.io server set up
 * as the signal server sets it up. These tests pin the shapes of socket.io,
 * engine.io and ws that the savings rely on: an upgrade that moves them fails
 * here, not silently in production.
 */
import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server, type Socket } from 'socket.io'
import { type Socket as ClientSocket, io as connectClient } from 'socket.io-client'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import {
  compactSession,
  createHeartbeats,
  emitterChain,
  type Heartbeats,
  slimSession,
  transportOptions,
} from './engine.ts'
import { leanSession } from './engine-lean.ts'

let http: HttpServer | null = null
let server: Server | null = null
const clients: ClientSocket[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect()
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()))
  http?.closeAllConnections()
  http = null
  server = null
})

/** A plain socket.io server with the signal server's transport; resolves with a client and its server socket. */
async function pair(
  onConnection: (s: Socket) => void = () => {},
): Promise<{ client: ClientSocket; socket: Socket }> {
  http = createServer()
  server = new Server(http, { serveClient: false, ...transportOptions() })
  const connected = new Promise<Socket>((resolve) =>
    server?.on('connection', (s) => {
      onConnection(s)
      resolve(s)
    }),
  )
  await new Promise<void>((r) => http?.listen(0, '127.0.0.1', r))
  const client = connectClient(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  })
  clients.push(client)
  return { client, socket: await connected }
}

const get = (o: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>((x, k) => (typeof x === 'object' && x !== null ? Reflect.get(x, k) : undefined), o)

describe('slimSession', () => {
  it('drops the request, the handshake, the own room and the adapter entry; events still flow both ways', async () => {
    const { client, socket } = await pair((s) => slimSession(s, []))
    expect(get(socket, 'conn', 'request')).toBeNull()
    expect(socket.handshake.headers).toEqual({})
    expect(socket.nsp.adapter.rooms.has(socket.id)).toBe(false)
    expect(socket.nsp.adapter.sids.has(socket.id)).toBe(false)
    const got = new Promise((r) => socket.on('hello', r))
    client.emit('hello', { n: 1 })
    expect(await got).toEqual({ n: 1 })
    const back = new Promise((r) => client.on('back', r))
    socket.emit('back', 2)
    expect(await back).toBe(2)
    // The middleware list is shared by every socket: adding to it fails loudly.
    expect(() => socket.use(() => {})).toThrow(TypeError)
    // A room joined later still works: the adapter makes the socket's set again.
    socket.join('r')
    expect(socket.rooms.has('r')).toBe(true)
  })
})

describe('compactSession', () => {
  it('finds the six emitters under a socket; the four with hash-table listeners get compact tables with the same entries', async () => {
    const { socket } = await pair((s) => s.on('disconnect', () => {}))
    const before: object[] = []
    const keys = (events: object) => Reflect.ownKeys(events).map(String)
    expect(emitterChain(socket, (e) => before.push(get(e, '_events') as object))).toBe(6)
    // The two streams (ws's receiver, the TCP socket) start from Node's preshaped fast table: left alone.
    expect(before.map((events) => Object.getPrototypeOf(events) === null)).toEqual([
      true,
      true,
      true,
      true,
      false,
      false,
    ])
    const beforeKeys = before.map(keys)
    expect(compactSession(socket)).toBe(4)
    const after: object[] = []
    emitterChain(socket, (e) => after.push(get(e, '_events') as object))
    expect(after.map(keys)).toEqual(beforeKeys)
    for (let i = 0; i < 4; i++) {
      expect(after[i]).not.toBe(before[i])
      expect(Object.getPrototypeOf(after[i])).toBeNull()
    }
    expect(after.slice(4)).toEqual(before.slice(4))
  })

  it("tightens engine.io's cleanup list and the decoder's listener list (same entries, new arrays)", async () => {
    const { socket } = await pair()
    const cleanup = get(socket, 'conn', 'cleanupFn')
    const decoded = get(socket, 'client', 'decoder', '_callbacks', '$decoded')
    expect(cleanup).toHaveLength(1)
    expect(decoded).toHaveLength(1)
    compactSession(socket)
    expect(get(socket, 'conn', 'cleanupFn')).not.toBe(cleanup)
    expect(get(socket, 'conn', 'cleanupFn')).toEqual(cleanup)
    expect(get(socket, 'client', 'decoder', '_callbacks', '$decoded')).not.toBe(decoded)
    expect(get(socket, 'client', 'decoder', '_callbacks', '$decoded')).toEqual(decoded)
  })

  it('every event still fires after compaction: messages both ways, and the close reaches socket.io', async () => {
    let disconnected: (reason: string) => void = () => {}
    const closed = new Promise<string>((r) => {
      disconnected = r
    })
    const { client, socket } = await pair((s) => s.on('disconnect', (reason) => disconnected(reason)))
    compactSession(socket)
    const got = new Promise((r) => socket.on('hello', r))
    client.emit('hello', 'x'.repeat(20_000))
    expect(await got).toHaveLength(20_000)
    const back = new Promise((r) => client.on('back', r))
    socket.emit('back', 2)
    expect(await back).toBe(2)
    client.disconnect()
    expect(await closed).toBe('client namespace disconnect')
  })
})

describe("ws's receiver", () => {
  it('lets go of the last frame mask (a view into the TCP chunk the frame came in) once the frame is read', async () => {
    const { client, socket } = await pair()
    const receiver = get(socket, 'conn', 'transport', 'socket', '_receiver')
    expect(receiver).toBeTypeOf('object')
    expect(Reflect.has(receiver as object, '_mask')).toBe(true)
    const got = new Promise((r) => socket.on('frame', r))
    client.emit('frame', new Uint8Array(16_384))
    await got
    expect(get(receiver, '_mask')).toBeUndefined()
    expect(get(receiver, '_state')).toBe(0) // waiting for the next frame's header (GET_INFO)
  })
})

describe.each([
  { lean: false, name: 'heartbeats on one timer', pingTimeout: 100 },
  // (The server's own sessions. A second to answer: a loaded machine can hold a pong past 100 ms. Without
  // engine-lean's shared listeners engine.io's bound onPacket bypasses the heartbeat's, and a ping goes
  // every pingTimeout: a longer one there would leave the client's own deadline behind.)
  { lean: true, name: 'heartbeats on one timer, sessions made lean (engine-lean.ts)', pingTimeout: 1000 },
])('$name', ({ lean, pingTimeout }) => {
  const PING = { pingInterval: 100, pingTimeout }
  let beats: Heartbeats | null = null
  afterEach(() => beats?.close())

  async function beating(): Promise<{
    url: string
    engine: { on(e: 'connection', f: (raw: object) => void): void }
  }> {
    http = createServer()
    server = new Server(http, { serveClient: false, ...transportOptions(), ...PING })
    const b = createHeartbeats(PING)
    beats = b
    server.engine.on('connection', (raw: object) => b.adopt(raw))
    if (lean)
      server.on('connection', (s) => {
        leanSession(s)
        compactSession(s)
      })
    await new Promise<void>((r) => http?.listen(0, '127.0.0.1', r))
    return { url: `127.0.0.1:${(http.address() as AddressInfo).port}`, engine: server.engine }
  }

  it('pings a socket that answers, which stays connected; no Timeout is left on it', async () => {
    const { url, engine } = await beating()
    const raw = new Promise<object>((r) => engine.on('connection', r))
    const client = connectClient(`http://${url}`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    })
    clients.push(client)
    let pings = 0
    client.io.on('ping', () => pings++)
    const s = await raw
    // (Connected to the namespace too: only then does a disconnect below mean one.)
    await new Promise<void>((r) => (client.connected ? r() : client.once('connect', () => r())))
    expect(beats?.size()).toBe(1)
    expect(get(s, 'pingIntervalTimer', '_onTimeout')).toBeUndefined()
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now()
      const check = setInterval(() => {
        if (!client.connected) reject(new Error('disconnected'))
        else if (pings >= 5) resolve()
        else if (Date.now() - t0 > 10_000) reject(new Error(`only ${pings} pings`))
        else return
        clearInterval(check)
      }, 20)
    })
    expect(client.connected).toBe(true)
    expect(get(s, 'pingTimeoutTimer', '_onTimeout')).toBeUndefined()
    client.disconnect()
    await new Promise<void>((r) => {
      const check = setInterval(() => {
        if (beats?.size() !== 0) return
        clearInterval(check)
        r()
      }, 10)
    })
  })

  it('closes a socket that never answers a ping (ping timeout), and forgets it', async () => {
    const { url, engine } = await beating()
    const closed = new Promise<{ reason: string; ms: number }>((resolve) =>
      engine.on('connection', (raw) => {
        const t0 = Date.now()
        ;(raw as { on(e: 'close', f: (reason: string) => void): void }).on('close', (reason) =>
          resolve({ reason, ms: Date.now() - t0 }),
        )
      }),
    )
    // A bare engine.io client over ws that reads the open packet (and joins socket.io's namespace,
    // so a lean session is made of it) and then stays silent.
    const silent = new WebSocket(`ws://${url}/socket.io/?EIO=4&transport=websocket`)
    silent.once('open', () => silent.send('40'))
    try {
      const { reason, ms } = await closed
      expect(reason).toBe('ping timeout')
      expect(ms).toBeGreaterThanOrEqual(PING.pingInterval + PING.pingTimeout - 20)
      expect(beats?.size()).toBe(0)
    } finally {
      silent.close()
    }
  })

  // (Only with the lean sessions, so only defined there: without them the heartbeat does not see the
  // client's pongs, and a non-reading client is ended by its ping timeout long before its write buffer fills.)
  if (lean)
    it('ends a session closed by the server while its client does not read (engine.io waits for a drain that never comes)', async () => {
      const { url, engine } = await beating()
      const closed = new Promise<{ reason: string; at: number }>((resolve) =>
        engine.on('connection', (raw) =>
          (raw as { on(e: 'close', f: (reason: string) => void): void }).on('close', (reason) =>
            resolve({ reason, at: Date.now() }),
          ),
        ),
      )
      const sock = new Promise<Socket>((r) => server?.on('connection', r))
      const reader = new WebSocket(`ws://${url}/socket.io/?EIO=4&transport=websocket`)
      reader.once('open', () => reader.send('40'))
      let pong: ReturnType<typeof setInterval> | undefined
      try {
        const s = await sock
        // The client stops reading: once the TCP window is full, engine.io's write buffer stays full. It
        // answers pings all the same, blindly (a pong that is not awaited is ignored).
        ;(get(reader, '_socket') as { pause(): void }).pause()
        pong = setInterval(() => reader.send('3'), 20)
        const writeBuffer = () => (get(s.conn, 'writeBuffer') as unknown[]).length
        const chunk = 'x'.repeat(64 * 1024)
        for (let i = 0; i < 2000 && writeBuffer() === 0; i++) {
          s.emit('fill', chunk)
          await new Promise((r) => setTimeout(r, 5))
        }
        expect(writeBuffer()).toBeGreaterThan(0)
        // What the signal server's kick does: engine.io's close waits for the write buffer to drain.
        const t0 = Date.now()
        s.disconnect(true)
        const { at } = await closed
        expect(at - t0).toBeLessThan(PING.pingInterval + PING.pingTimeout + 2000)
        expect(beats?.size()).toBe(0)
      } finally {
        clearInterval(pong)
        reader.terminate()
      }
    }, 30_000)
})
