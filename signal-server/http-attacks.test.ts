/**
 * Attacks on the signal server's plain HTTP side, against a real server on
 * port 0 with raw TCP clients (connections that hold a slot and send or take
 * nothing), or its HTTP handler alone (what a request to /metrics costs).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Socket as TcpSocket, connect as tcpConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { serverFixture } from '../test/server-fixture.ts'
import { joined } from '../test/signal-kit.ts'
import { createHttpHandler } from './http.ts'
import { createCounters, renderPrometheus } from './metrics.ts'

const { start, track } = serverFixture()
const raw: TcpSocket[] = []
const dirs: string[] = []

afterEach(() => {
  for (const r of raw.splice(0)) r.destroy()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const open = (port: number) =>
  new Promise<TcpSocket>((resolve, reject) => {
    const sock = tcpConnect({ port, host: '127.0.0.1' }, () => resolve(sock))
    sock.once('error', reject)
    raw.push(sock)
  })
/** Resolves with the time from `t0` at which the server hung up (or `null` after `ms`). */
const closedWithin = (sock: TcpSocket, t0: number, ms: number) =>
  new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), ms)
    sock.once('close', () => {
      clearTimeout(timer)
      resolve(Date.now() - t0)
    })
  })

describe('connections that hold a slot', () => {
  it('a TCP connection that never sends a byte is dropped after headersTimeoutMs', async () => {
    const s = await start({ headersTimeoutMs: 400, requestTimeoutMs: 1000 })
    const t0 = Date.now()
    const idle = await open(s.port)
    idle.on('error', () => {})
    // Read what comes: node:http's own check (headersTimeout, the same 400 ms) may drop the connection
    // first, with a 408 response; unread, that would hold back the socket's end and close.
    idle.resume()
    // node:http's headers timeout starts at a request's first byte: without one the slot was held forever.
    const after = await closedWithin(idle, t0, 4000)
    expect(after).not.toBeNull()
    expect(after).toBeLessThan(3000)
  })

  it('a client that asks for a file and stops reading is dropped once nothing moves for headersTimeoutMs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-static-'))
    dirs.push(dir)
    // More than loopback's socket buffers take in, so the server's stream stalls on the client.
    writeFileSync(join(dir, 'big.bin'), Buffer.alloc(32 * 1024 * 1024, 7))
    const s = await start({ staticDir: dir, headersTimeoutMs: 400, requestTimeoutMs: 1000 })
    const t0 = Date.now()
    // The server's end: the client's, paused, would not see the close.
    const serverEnd = new Promise<TcpSocket>((resolve) => s.httpServer.once('connection', resolve))
    const reader = await open(s.port)
    reader.on('error', () => {})
    reader.write('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n')
    reader.pause()
    const after = await closedWithin(await serverEnd, t0, 6000)
    expect(after).not.toBeNull()
    expect(after).toBeLessThan(5000)
  })

  it('a slow honest download and a quiet WebSocket are not cut by it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-static-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'big.bin'), Buffer.alloc(4 * 1024 * 1024, 7))
    // (1 s, not 400 ms: the reader's 50 ms pauses must not grow past it on a loaded machine.)
    const idleMs = 1000
    const s = await start({ staticDir: dir, headersTimeoutMs: idleMs, requestTimeoutMs: 2000, puzzleBits: 0 })
    // A registered node that says nothing for a while keeps its WebSocket (ws clears the socket's timeout).
    const node = track(await joined(s.address, 'demo', { puzzleBits: 0 }))
    const joinedAt = Date.now()
    // A download read slowly, a little at a time: it keeps moving, so it is not cut.
    const slow = await open(s.port)
    slow.write('GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    let got = 0
    slow.on('data', (d: Buffer) => {
      got += d.length
      slow.pause()
      setTimeout(() => slow.resume(), 50)
    })
    await new Promise<void>((resolve) => slow.once('close', () => resolve()))
    expect(got).toBeGreaterThan(4 * 1024 * 1024)
    // The WebSocket quiet for well past the timeout, however fast the download went.
    await new Promise((r) => setTimeout(r, Math.max(0, joinedAt + 2.5 * idleMs - Date.now())))
    expect(node.socket.connected).toBe(true)
    expect(s.metrics().peers).toBe(1)
  })
})

describe('static files', () => {
  it('requests at once for a large file no one asked for yet read it once, a piece at a time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-static-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'big.wasm'), Buffer.alloc(16 * 1024 * 1024, 7))
    const s = await start({ staticDir: dir })
    const base = process.memoryUsage().arrayBuffers
    let peak = base
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers)
    }, 2)
    // HEAD: the answer costs the client nothing; its ETag (a hash of the content) costs the server.
    const answers = await Promise.all(
      Array.from({ length: 48 }, () => fetch(`${s.address}/big.wasm`, { method: 'HEAD' })),
    )
    clearInterval(sampler)
    expect(answers.every((r) => r.status === 200)).toBe(true)
    expect(new Set(answers.map((r) => r.headers.get('etag'))).size).toBe(1)
    // Each request read the whole file into memory to hash it: 48 x 16 MiB, ~770 MiB held at once.
    expect((peak - base) / 2 ** 20).toBeLessThan(64)
  })

  it('hidden files and folders (/.env, /.git/config) are not served, even when the folder holds them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-static-'))
    dirs.push(dir)
    // An operator who points STATIC_DIR at a project folder rather than its build output.
    writeFileSync(join(dir, '.env'), 'SECRET=1\n')
    mkdirSync(join(dir, '.git'))
    writeFileSync(join(dir, '.git', 'config'), '[remote]\n')
    mkdirSync(join(dir, 'app'))
    writeFileSync(join(dir, 'app', '.htpasswd'), 'x:y\n')
    writeFileSync(join(dir, 'index.html'), '<p>hi</p>\n')
    mkdirSync(join(dir, '.well-known'))
    writeFileSync(join(dir, '.well-known', 'security.txt'), 'Contact: x\n')
    const s = await start({ staticDir: dir })
    for (const path of ['/.env', '/.git/config', '/app/.htpasswd', '/%2eenv', '/app/../.env', '/.git/'])
      expect([path, (await fetch(`${s.address}${path}`)).status]).toEqual([path, 404])
    // What is meant to be served still is.
    expect((await fetch(`${s.address}/`)).status).toBe(200)
    expect((await fetch(`${s.address}/.well-known/security.txt`)).status).toBe(200)
  })
})

describe('/metrics', () => {
  it('a burst of requests costs one rendering per 100 ms, not one each', async () => {
    // Rendering walks every socket and network (it took ~67 ms at 20,000 networks). Here one takes 20 ms.
    let renders = 0
    const handler = createHttpHandler({
      staticDir: undefined,
      health: () => ({ status: 200, body: {} }),
      prometheus: () => {
        renders++
        const end = performance.now() + 20
        while (performance.now() < end) {}
        return `weft_renders ${renders}\n`
      },
    })
    const server = createServer(handler)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`
      const t0 = performance.now()
      await Promise.all(Array.from({ length: 50 }, () => fetch(url).then((r) => r.text())))
      const elapsed = performance.now() - t0
      // One rendering answers every request of the next 100 ms (before: 50 renderings, a second busy).
      expect(renders).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 1)
      // A scrape a while later is fresh.
      await new Promise((r) => setTimeout(r, 150))
      const before = renders
      expect(await (await fetch(url)).text()).toBe(`weft_renders ${before + 1}\n`)
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('names at most 100 networks, the largest; the rest are summed in one series', () => {
    const peersByNetwork = new Map<string, number>([['big', 50]])
    for (let i = 0; i < 20_000; i++) peersByNetwork.set(`n${'x'.repeat(56)}${i}`, 1)
    const text = renderPrometheus(createCounters(), {
      peersByNetwork,
      sockets: 0,
      unsentPacketsMax: 0,
      unsentBytesMax: 0,
      uptimeS: 0,
      memory: process.memoryUsage(),
      sources: 0,
      pendingBinaryBytes: 0,
    })
    const series = text.split('\n').filter((l) => l.startsWith('weft_peers{'))
    expect(series.length).toBe(101)
    expect(series).toContain('weft_peers{network="big"} 50')
    expect(series).toContain('weft_peers{network="(others)"} 19901')
    expect(text).toContain('weft_networks 20001')
    expect(text.length).toBeLessThan(32 * 1024)
  })
})
