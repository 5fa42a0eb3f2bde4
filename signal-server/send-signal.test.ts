/**
 * sendSignal (connections.ts) writes exactly the packet socket.io's emit
 * would, without socket.io's encoder, and nothing to a closed socket.
 */
import { createServer } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { Server, type Socket as ServerSocket } from 'socket.io'
import { io, type Socket } from 'socket.io-client'
import { afterEach, describe, expect, it } from 'vitest'
import { until } from '../test/until.ts'
import { type IoSocket, sendSignal, textFrame } from './connections.ts'
import { leanVersionMismatch } from './engine-lean.ts'

const cleanup: (() => void)[] = []
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f()
})

async function pair(): Promise<{ server: ServerSocket; client: Socket }> {
  const http = createServer()
  const ioServer = new Server(http, { transports: ['websocket'] })
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
  const connected = new Promise<ServerSocket>((r) => ioServer.once('connection', r))
  const client = io(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, {
    transports: ['websocket'],
    forceNew: true,
  })
  cleanup.push(() => {
    client.disconnect()
    ioServer.close()
    http.closeAllConnections()
  })
  return { server: await connected, client }
}

describe('sendSignal', () => {
  it('writes the packet emit would write, and the client gets the same signal', async () => {
    expect(leanVersionMismatch()).toBeNull() // else sendSignal would go through emit, untested here
    const { server, client } = await pair()
    const written: unknown[] = []
    server.conn.on('packetCreate', (p: { data?: unknown }) => written.push(p.data))
    const got: unknown[] = []
    client.on('signal', (p) => got.push(p))
    const from = 'ab'.repeat(20)
    const values = [
      { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' },
      'quote " backslash \\ line\u2028sep \u0000 é 😀',
      [1, -2.5e-7, null, true, { a: [] }],
      null,
      0,
      // Frames with 16-bit and 64-bit lengths (textFrame).
      'x'.repeat(200),
      { sdp: 'é'.repeat(40_000) },
    ]
    for (const data of values) {
      server.emit('signal', { from, data })
      sendSignal(server as unknown as IoSocket, from, data)
    }
    await new Promise<void>((r) => {
      const wait = () => (got.length === 2 * values.length ? r() : setTimeout(wait, 5))
      wait()
    })
    for (let i = 0; i < values.length; i++) {
      expect(written[2 * i + 1]).toBe(written[2 * i])
      expect(got[2 * i + 1]).toEqual({ from, data: values[i] })
      expect(got[2 * i]).toEqual(got[2 * i + 1])
    }
  })

  it('on a free transport, hands engine.io the finished frame, which the client reads whole at every length', async () => {
    const { server, client } = await pair()
    const framed: boolean[] = []
    server.conn.on('packetCreate', (p: { options?: { wsPreEncodedFrame?: unknown } }) =>
      framed.push(p.options?.wsPreEncodedFrame !== undefined),
    )
    const got: unknown[] = []
    client.on('signal', (p) => got.push(p))
    const from = 'ab'.repeat(20)
    // Payloads of 7-bit, 16-bit and 64-bit frame lengths, and multi-byte UTF-8.
    const values = ['x', 'x'.repeat(200), { sdp: 'é'.repeat(40_000) }, 'é 😀 \u2028']
    const transport = () =>
      (server.conn as unknown as { transport: { writable: boolean; socket: { _sender: Sender } } }).transport
    // What reaches ws: the frame made here, written as it is.
    type Sender = { sendFrame(frame: Buffer[], cb?: unknown): void }
    const sender = transport().socket._sender
    const sendFrame = sender.sendFrame.bind(sender)
    let frames = 0
    sender.sendFrame = (frame, cb) => {
      frames++
      sendFrame(frame, cb)
    }
    for (const [i, data] of values.entries()) {
      await until('a free transport', () => transport().writable)
      sendSignal(server as unknown as IoSocket, from, data)
      await until('the signal', () => got.length === i + 1)
    }
    expect(framed).toEqual(values.map(() => true))
    expect(frames).toBe(values.length)
    expect(got).toEqual(values.map((data) => ({ from, data })))
  })

  it('writes nothing to a socket whose connection closed', async () => {
    const { server, client } = await pair()
    const written: unknown[] = []
    server.conn.on('packetCreate', (p: { data?: unknown }) => written.push(p.data))
    const closed = new Promise((r) => server.once('disconnect', r))
    client.disconnect()
    await closed
    sendSignal(server as unknown as IoSocket, 'ab'.repeat(20), 1)
    expect(written).toEqual([])
  })

  it('frames a payload as ws does: one final, unmasked text frame', () => {
    const fromEngine = createRequire(createRequire(import.meta.url).resolve('engine.io'))
    const { Sender } = fromEngine('ws') as {
      Sender: { frame(data: Buffer, options: object): Buffer[] }
    }
    const sizes = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]
    const payloads = [
      ...sizes.map((n) => 'a'.repeat(n)),
      `42["signal",{"data":"é 😀 \u2028"}]`,
      'é'.repeat(63),
    ]
    for (const payload of payloads) {
      const options = { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false }
      const ws = Buffer.concat(Sender.frame(Buffer.from(payload), options))
      expect(textFrame(payload).equals(ws)).toBe(true)
    }
  })
})
