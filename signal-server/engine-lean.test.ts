/**
 * engine-lean.ts on a plain socket.io server set up as the signal server sets
 * it up: every part of leanSession finds what it cuts (an upgrade of
 * socket.io, engine.io or ws that moves it fails here), and every event still
 * flows, closes included, also when a client misbehaves.
 */
import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import { Server, type Socket } from 'socket.io'
import { type Socket as ClientSocket, io as connectClient } from 'socket.io-client'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { type IoSocket, sendSignal } from './connections.ts'
import { compactSession, transportOptions } from './engine.ts'
import { LEAN_TESTED, leanSession, leanVersionMismatch, SoloMap, unwrapOnce } from './engine-lean.ts'

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

const get = (o: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>((x, k) => (typeof x === 'object' && x !== null ? Reflect.get(x, k) : undefined), o)

/** A socket.io server with the signal server's transport, every socket made lean and compact. */
async function listen(onConnection: (s: Socket) => void = () => {}): Promise<string> {
  http = createServer()
  server = new Server(http, { serveClient: false, ...transportOptions(), maxHttpBufferSize: 64 * 1024 })
  server.on('connection', (s) => {
    s.data.report = leanSession(s)
    compactSession(s)
    onConnection(s)
  })
  await new Promise<void>((r) => http?.listen(0, '127.0.0.1', r))
  lastUrl = `127.0.0.1:${(http.address() as AddressInfo).port}`
  return lastUrl
}
let lastUrl = ''

async function pair(
  onConnection: (s: Socket) => void = () => {},
): Promise<{ client: ClientSocket; socket: Socket }> {
  let resolve: (s: Socket) => void = () => {}
  const connected = new Promise<Socket>((r) => {
    resolve = r
  })
  const url = await listen((s) => {
    onConnection(s)
    resolve(s)
  })
  const client = connectClient(`http://${url}`, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  })
  clients.push(client)
  const socket = await connected
  await until(() => client.connected)
  return { client, socket }
}

const until = async (f: () => boolean, ms = 5000) => {
  const t0 = Date.now()
  while (!f()) {
    if (Date.now() - t0 > ms) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('leanSession', () => {
  it('finds every part it cuts', async () => {
    const { socket } = await pair()
    expect(socket.data.report).toEqual({
      unwrapped: 4,
      upgradeListeners: 1,
      headersListeners: 1,
      transport: true,
      engineListeners: true,
      clientTables: true,
      dispatch: true,
      quickClient: true,
    })
    const ws = get(socket, 'conn', 'transport', 'socket')
    // No extension negotiated: one frozen table shared by the WebSocket, its receiver and its sender.
    const ext = get(ws, '_extensions')
    expect(Object.isFrozen(ext)).toBe(true)
    expect(get(ws, '_receiver', '_extensions')).toBe(ext)
    expect(get(ws, '_sender', '_extensions')).toBe(ext)
    for (const k of ['_doSend', '_doSendLast', '_onSentLast'])
      expect(get(socket, 'conn', 'transport', k)).toBeNull()
    // The emptied `_onSent` slot holds the engine.io socket the shared transport listeners serve.
    expect(get(socket, 'conn', 'transport', '_onSent')).toBe(socket.conn)
  })

  it('events flow both ways, in order, through the lean transport; its write buffer drains', async () => {
    const { client, socket } = await pair()
    const got: unknown[] = []
    socket.on('hello', (x) => got.push(x))
    client.emit('hello', 'x'.repeat(20_000))
    for (let i = 0; i < 100; i++) client.emit('hello', i)
    await until(() => got.length === 101)
    expect(got.slice(1)).toEqual(Array.from({ length: 100 }, (_, i) => i))
    const back: unknown[] = []
    client.on('back', (x) => back.push(x))
    for (let i = 0; i < 300; i++) socket.emit('back', { i, bytes: new Uint8Array(i % 7) })
    await until(() => back.length === 300)
    expect(back.map((b) => (b as { i: number }).i)).toEqual(Array.from({ length: 300 }, (_, i) => i))
    expect(get(socket, 'conn', 'writeBuffer')).toHaveLength(0)
    expect(get(socket, 'conn', 'sentCallbackFn')).toHaveLength(0)
    expect(get(socket, 'conn', 'transport', 'writable')).toBe(true)
    expect(get(socket, 'conn', 'transport', 'socket', '_receiver', '_buffers')).toHaveLength(0)
  })

  it('dispatches an event by name when something gets it: a listener of the name, a middleware', async () => {
    const { client, socket } = await pair()
    const any: unknown[] = []
    const named: unknown[] = []
    const used: unknown[] = []
    socket.onAny((e) => any.push(e))
    client.emit('nobody', 1)
    socket.on('named', (x) => named.push(x))
    client.emit('named', 2)
    await until(() => named.length === 1)
    socket.use(([e], next) => {
      used.push(e)
      next()
    })
    client.emit('nobody', 3)
    await until(() => used.length === 1)
    expect(any).toEqual(['nobody', 'named', 'nobody'])
    expect(named).toEqual([2])
    expect(used).toEqual(['nobody'])
  })

  it('hands events over at once, in order: one behind a packet that waits for its tick waits too', async () => {
    const seen: unknown[] = []
    const { client, socket } = await pair((s) => {
      s.onAny((e, x) => seen.push(`${e} ${x}`))
      s.on('disconnect', () => seen.push('disconnect'))
    })
    // In one TCP write, so in one read on the server: events, a DISCONNECT (handled in a tick), an event.
    const ws = get(client, 'io', 'engine', 'transport', 'ws') as { send(frame: string): void }
    const tcp = get(ws, '_socket') as { cork(): void; uncork(): void }
    tcp.cork()
    for (const frame of ['42["a",1]', '42["a",2]', '41', '42["a",3]']) ws.send(frame)
    tcp.uncork()
    await until(() => seen.length === 4)
    await new Promise((r) => setTimeout(r, 50))
    expect(seen).toEqual(['a 1', 'a 2', 'disconnect', 'a 3'])
    expect(socket.connected).toBe(false)
  })

  it('hands an event to the socket inside the read it came in, and again after a packet that waits for its tick', async () => {
    let inRead = false
    let reads = 0
    const seen: string[] = []
    const { client } = await pair((s) => {
      const ws = get(s, 'conn', 'transport', 'socket') as {
        prependListener(e: string, f: () => void): void
        on(e: string, f: () => void): void
      }
      ws.prependListener('message', () => {
        inRead = true
      })
      ws.on('message', () => {
        inRead = false
        reads++
      })
      s.onAny((e, x) => seen.push(`${e} ${x} ${inRead ? 'at once' : 'later'}`))
    })
    const send = (frame: string) => (get(client, 'io', 'engine') as { send(f: string): void }).send(frame)
    send('2["a",1]')
    await until(() => seen.length === 1)
    send('30[]') // an ACK no one asked for: socket.io handles it a tick later
    // Read on its own, and its tick run (after the read's ticks: setImmediate).
    await until(() => reads === 2)
    await new Promise((r) => setImmediate(r))
    send('2["a",2]') // at once again
    await until(() => seen.length === 2)
    expect(seen).toEqual(['a 1 at once', 'a 2 at once'])
  })

  it('writes no signal after the WebSocket close frame (the peer closed; engine.io not told yet)', async () => {
    const { socket } = await pair()
    const ws = get(socket, 'conn', 'transport', 'socket') as {
      close(code: number): void
      _socket: { write(chunk: Uint8Array, ...rest: unknown[]): boolean }
    }
    const firstBytes: number[] = []
    const write = ws._socket.write.bind(ws._socket)
    ws._socket.write = (chunk, ...rest) => {
      firstBytes.push(chunk[0] as number)
      return write(chunk, ...rest)
    }
    ws.close(1000) // as ws does on the peer's close frame
    // engine.io has not heard of it: the signal is handed on, and would take the pre-encoded path.
    expect(socket.conn.readyState).toBe('open')
    expect((get(socket, 'conn', 'transport') as { writable: boolean }).writable).toBe(true)
    expect(sendSignal(socket as unknown as IoSocket, 'ab'.repeat(20), { x: 1 })).toBeGreaterThan(0)
    await new Promise((r) => setTimeout(r, 100))
    expect(firstBytes[0]).toBe(0x88) // the close frame
    expect(firstBytes.filter((b) => b === 0x81)).toEqual([]) // no text frame after it
  })

  it('a client that leaves: socket.io hears it once, engine.io forgets the session', async () => {
    const reasons: string[] = []
    const { client, socket } = await pair((s) => s.on('disconnect', (r) => reasons.push(r)))
    expect(server?.engine.clientsCount).toBe(1)
    client.disconnect()
    await until(() => reasons.length > 0 && server?.engine.clientsCount === 0)
    await new Promise((r) => setTimeout(r, 50))
    expect(reasons).toEqual(['client namespace disconnect'])
    expect(server?.engine.clientsCount).toBe(0)
    expect(socket.connected).toBe(false)
  })

  it('a dropped TCP connection and a server-side close each end the session once', async () => {
    const reasons: string[] = []
    const { client } = await pair((s) => s.on('disconnect', (r) => reasons.push(r)))
    const tcp = get(client.io.engine, 'transport', 'ws', '_socket') as { destroy(): void }
    tcp.destroy()
    await until(() => reasons.length > 0 && server?.engine.clientsCount === 0)
    expect(reasons).toEqual(['transport close'])

    const second = connectClient(`http://${lastUrl}`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    })
    clients.push(second)
    await until(() => server?.engine.clientsCount === 1 && second.connected)
    for (const s of server?.of('/').sockets.values() ?? []) s.disconnect(true)
    await until(() => !second.connected && server?.engine.clientsCount === 0)
    expect(reasons).toEqual(['transport close', 'server namespace disconnect'])
  })

  it("engine.io's socket hears its transport through the shared listeners; once closed, it ignores it", async () => {
    const reasons: string[] = []
    const { client, socket } = await pair((s) => s.on('disconnect', (r) => reasons.push(r)))
    const transport = get(socket, 'conn', 'transport') as {
      emit(e: string, ...a: unknown[]): boolean
      listeners(e: string): unknown[]
    }
    expect(get(transport, '_onSent')).toBe(socket.conn)
    expect(get(socket, 'conn', 'cleanupFn')).toHaveLength(0)
    for (const e of ['error', 'ready', 'packet', 'drain', 'close'])
      expect((transport.listeners(e) as { name: string }[]).map((f) => f.name)).toEqual(['shared'])
    client.disconnect()
    await until(() => reasons.length > 0)
    await until(() => get(socket, 'conn', 'readyState') === 'closed')
    for (const e of ['packet', 'ready', 'drain', 'close'])
      expect(() => transport.emit(e, { type: 'message', data: '42["x"]' })).not.toThrow()
    expect(() => transport.emit('error', new Error('late'))).not.toThrow()
    await new Promise((r) => setTimeout(r, 20))
    expect(reasons).toEqual(['client namespace disconnect'])
  })

  it('a connection dropped while the server writes to it: the write errors end the session once, no crash', async () => {
    const reasons: string[] = []
    const { client, socket } = await pair((s) => s.on('disconnect', (r) => reasons.push(r)))
    const tcp = get(client.io.engine, 'transport', 'ws', '_socket') as { destroy(): void }
    const big = 'y'.repeat(16_000)
    for (let i = 0; i < 200; i++) socket.emit('big', big)
    tcp.destroy()
    for (let i = 0; i < 200; i++) socket.emit('big', big)
    await until(() => reasons.length > 0 && server?.engine.clientsCount === 0)
    await new Promise((r) => setTimeout(r, 50))
    expect(reasons).toHaveLength(1)
    expect(['transport close', 'transport error']).toContain(reasons[0])
  })

  it('raw WebSocket clients sending malformed frames are closed, the server stays up and forgets them', async () => {
    let lean = 0
    const reasons: string[] = []
    const url = await listen((s) => {
      if ((s.data.report as { transport?: boolean }).transport) lean++
      s.on('disconnect', (why) => reasons.push(why))
    })
    const bad: Buffer[] = [
      Buffer.from([0x83, 0x80, 1, 2, 3, 4]), // reserved opcode
      Buffer.from([0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // 2^64-1 bytes announced
      Buffer.from([0x81, 0x05, 0x34, 0x32]), // unmasked frame from a client
      Buffer.from([0xc1, 0x81, 0, 0, 0, 0, 0x34]), // RSV1 without deflate
    ]
    for (const [i, frame] of bad.entries()) {
      const ws = new WebSocket(`ws://${url}/socket.io/?EIO=4&transport=websocket`)
      await new Promise((r) => ws.once('open', r))
      await until(() => server?.engine.clientsCount === 1)
      // Into socket.io's namespace first: the bad frame then meets a session made lean.
      ws.send('40')
      await until(() => lean === i + 1)
      const closed = new Promise((r) => ws.once('close', r))
      ;(get(ws, '_socket') as { write(b: Buffer): void }).write(frame)
      await closed
      await until(() => server?.engine.clientsCount === 0)
      await until(() => reasons.length === i + 1)
    }
    // Each session ended once, for its transport.
    expect(reasons).toHaveLength(bad.length)
    for (const why of reasons) expect(['transport error', 'transport close']).toContain(why)
    // Junk packets over valid frames: engine.io and socket.io refuse them, the session goes.
    for (const text of ['9zz', '40', '4{', `42${'['.repeat(5000)}`]) {
      const ws = new WebSocket(`ws://${url}/socket.io/?EIO=4&transport=websocket`)
      await new Promise((r) => ws.once('open', r))
      ws.send(text)
      ws.send('42["x"]')
      await new Promise((r) => setTimeout(r, 20))
      ws.terminate()
      await until(() => server?.engine.clientsCount === 0)
    }
    // And an honest client still gets through.
    const ok = connectClient(`http://${url}`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    })
    clients.push(ok)
    await until(() => ok.connected)
  })
})

describe('unwrapOnce', () => {
  it('replaces once-wrappers of one event by their listeners, leaving others and other events alone', async () => {
    const { EventEmitter } = await import('node:events')
    const e = new EventEmitter()
    const calls: string[] = []
    const a = () => calls.push('a')
    const b = () => calls.push('b')
    e.once('x', a)
    e.on('x', b)
    e.once('y', a)
    expect(unwrapOnce(e, 'x')).toBe(1)
    expect(e.rawListeners('x')).toEqual([a, b])
    expect(e.rawListeners('y')[0]).not.toBe(a)
    e.emit('x')
    expect(calls).toEqual(['a', 'b'])
    e.removeListener('x', a)
    expect(e.rawListeners('x')).toEqual([b])
    expect(unwrapOnce(null, 'x')).toBe(0)
    expect(unwrapOnce(new EventEmitter(), 'x')).toBe(0)
  })
})

describe('SoloMap', () => {
  it('does what a Map does, for any sequence of operations (property)', () => {
    const key = fc.constantFrom('a', 'b', 'c', 0, -0, Number.NaN)
    const op = fc.oneof(
      fc.record({ k: fc.constant('set' as const), key, v: fc.integer() }),
      fc.record({ k: fc.constant('delete' as const), key }),
      fc.record({ k: fc.constant('get' as const), key }),
      fc.record({ k: fc.constant('has' as const), key }),
      fc.record({ k: fc.constant('clear' as const) }),
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const m = new Map<unknown, number>()
        const s = new SoloMap<unknown, number>()
        for (const o of ops) {
          if (o.k === 'set') {
            m.set(o.key, o.v)
            expect(s.set(o.key, o.v)).toBe(s)
          } else if (o.k === 'delete') expect(s.delete(o.key)).toBe(m.delete(o.key))
          else if (o.k === 'get') expect(s.get(o.key)).toBe(m.get(o.key))
          else if (o.k === 'has') expect(s.has(o.key)).toBe(m.has(o.key))
          else {
            m.clear()
            s.clear()
          }
          expect(s.size).toBe(m.size)
          expect([...s]).toEqual([...m])
          expect([...s.keys()]).toEqual([...m.keys()])
          expect([...s.values()]).toEqual([...m.values()])
          const seen: unknown[] = []
          s.forEach((v, k) => {
            seen.push([k, v])
          })
          expect(seen).toEqual([...m.entries()])
        }
      }),
    )
  })
})

describe('the versions the savings were tested with', () => {
  it('are the ones installed here (else leanSession leaves sockets alone, and the server says so)', () => {
    expect(leanVersionMismatch()).toBeNull()
    expect(LEAN_TESTED['engine.io']).toMatch(/^\d+\.\d+\.\d+$/)
  })
})
