/**
 * PeerJS measured beside weft in `npm run bench -- browser` (issue 14): a
 * PeerServer (the `peer` package) in the benchmark process on loopback, and
 * the PeerJS client (`peerjs`) loaded into the same pages weft runs in.
 * Both are devDependencies for this comparison only: nothing of them is in
 * weft's bundle or its runtime dependencies.
 *
 *  - join: `new Peer()` (an id from the server, then its WebSocket) to the
 *    first open DataConnection to a peer already registered, the same span
 *    weft's join covers (joinOverlay to its first open link).
 *  - throughput: DataConnection.send of 64 KiB random Uint8Arrays with
 *    PeerJS's default serialization ('binary': BinaryPack, chunked at 16 KB
 *    where needed, PeerJS's own buffering above 8 MiB), like weft's node.send.
 *
 * Not a benchmark itself (the `_` prefix).
 */
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import type { Page } from '@playwright/test'
import { PeerServer } from 'peer'

export interface PeerJsServer {
  port: number
  stop(): Promise<void>
}

/** A PeerServer on 127.0.0.1, on a free port. */
export function startPeerServer(): Promise<PeerJsServer> {
  return new Promise((resolve) => {
    PeerServer({ host: '127.0.0.1', port: 0, path: '/' }, (server) => {
      const { port } = server.address() as AddressInfo
      resolve({
        port,
        stop: () =>
          new Promise<void>((r) => {
            server.closeAllConnections?.()
            server.close(() => r())
          }),
      })
    })
  })
}

const peerJsScript = createRequire(import.meta.url).resolve('peerjs/dist/peerjs.min.js')

/** What the pages hold: PeerJS's global, the waiting peer's received byte count, the connections. */
interface PjConn {
  open: boolean
  on(ev: string, fn: (x?: unknown) => void): void
  send(d: unknown): void
  close(): void
}
interface PjPeer {
  id: string
  on(ev: string, fn: (x: never) => void): void
  connect(id: string, o?: object): PjConn
  destroy(): void
}
type PjWin = {
  peerjs: { Peer: new (o: object) => PjPeer }
  pjPeer?: PjPeer | undefined
  pjConn?: PjConn | undefined
  pjRx: number
}

/** PeerJS's script in page `p` (once). */
export async function load(p: Page): Promise<void> {
  if (await p.evaluate(() => typeof (window as unknown as { peerjs?: unknown }).peerjs === 'object')) return
  await p.addScriptTag({ path: peerJsScript })
}

/** Register page `a` as a PeerJS peer that accepts connections and counts the bytes it receives; its id. */
export async function peerJsListen(a: Page, port: number): Promise<string> {
  await load(a)
  return a.evaluate(
    (port) =>
      new Promise<string>((resolve, reject) => {
        const w = window as unknown as PjWin
        w.pjRx = 0
        const peer = new w.peerjs.Peer({ host: '127.0.0.1', port, path: '/', config: { iceServers: [] } })
        w.pjPeer = peer
        peer.on('error', reject)
        peer.on('open', (id: string) => resolve(id))
        peer.on('connection', (c: PjConn) =>
          c.on('data', (d) => {
            w.pjRx += (d as ArrayBuffer).byteLength
          }),
        )
      }),
    port,
  )
}

/**
 * One PeerJS join in page `p`: ms from `new Peer()` to the first DataConnection to `to` open.
 * The page keeps the connection (window.pjConn) for throughput.
 */
export async function peerJsJoin(p: Page, port: number, to: string): Promise<number> {
  return (await peerJsJoinPhases(p, port, to)).ms
}

/**
 * peerJsJoin, with its phase: `openMs`, from `new Peer` to its server's OPEN (PeerJS's
 * registration: an id, the WebSocket, the server's word), then `ms` to the open DataConnection.
 */
export async function peerJsJoinPhases(
  p: Page,
  port: number,
  to: string,
): Promise<{ ms: number; openMs: number }> {
  await load(p)
  return p.evaluate(
    ({ port, to }) =>
      new Promise<{ ms: number; openMs: number }>((resolve, reject) => {
        const w = window as unknown as PjWin
        w.pjPeer?.destroy()
        const t0 = performance.now()
        // No ICE servers, as weft's pages on loopback (PeerJS's default names public STUN/TURN hosts).
        const peer = new w.peerjs.Peer({ host: '127.0.0.1', port, path: '/', config: { iceServers: [] } })
        w.pjPeer = peer
        peer.on('error', reject)
        peer.on('open', () => {
          const openMs = performance.now() - t0
          const c = peer.connect(to, { reliable: true })
          w.pjConn = c
          c.on('open', () => resolve({ ms: performance.now() - t0, openMs }))
          c.on('error', reject)
        })
      }),
    { port, to },
  )
}

/** MB/s of DataConnection.send from `a` (joined with peerJsJoin) to the listening page `b`. */
export async function peerJsThroughput(a: Page, b: Page, msg: number, total: number): Promise<number> {
  await b.evaluate(() => {
    ;(window as unknown as PjWin).pjRx = 0
  })
  const t0 = Date.now()
  await a.evaluate(
    ({ msg, total }) => {
      const c = (window as unknown as PjWin).pjConn as PjConn
      const buf = new Uint8Array(msg)
      for (let i = 0; i < msg; i += 65536) crypto.getRandomValues(buf.subarray(i, Math.min(msg, i + 65536)))
      // PeerJS buffers what the channel cannot take yet and writes it as it drains.
      for (let sent = 0; sent < total; sent += msg) c.send(buf)
    },
    { msg, total },
  )
  await b.waitForFunction((total) => (window as unknown as PjWin).pjRx >= total, total, {
    timeout: 120_000,
    polling: 20,
  })
  return total / 1e6 / ((Date.now() - t0) / 1000)
}

/** Close page `p`'s PeerJS peer (and its connections). */
export async function peerJsClose(p: Page): Promise<void> {
  await p.evaluate(() => {
    const w = window as unknown as PjWin
    w.pjPeer?.destroy()
    w.pjPeer = undefined
    w.pjConn = undefined
  })
}
