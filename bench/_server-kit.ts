/**
 * What the signal-server benchmarks share: roles in child processes driven
 * over IPC, the bare socket.io server measured beside weft's as the
 * reference, and a client that joins the way a node does.
 *
 * The bare server is what a minimal socket.io signalling server does and no
 * more: a challenge on connection, `register` acked with an id (no
 * signature check, no limits, no host cache), `signal { to, data }`
 * delivered to the target's socket and acked. Same socket.io, same clients,
 * same machine and run: its figures are the floor weft's overhead is
 * measured against.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server, type Socket as ServerSocket } from 'socket.io'
import { io, type Socket } from 'socket.io-client'
import type { Identity } from '../shared/identity/keys.ts'
import { parseChallenge, registrationMessage } from '../shared/signal-events.ts'

type Msg = { id: number; cmd: string; args?: unknown }
type Reply = { id: number; result?: unknown; error?: string }

/** In a child: answer the parent's calls with `handlers`; exit when the parent goes. */
export function serve(handlers: Record<string, (args: unknown) => Promise<unknown>>): void {
  process.on('message', (m: Msg) => {
    const h = handlers[m.cmd]
    if (!h) return process.send?.({ id: m.id, error: `unknown command ${m.cmd}` } satisfies Reply)
    h(m.args).then(
      (result) => process.send?.({ id: m.id, result } satisfies Reply),
      (err: Error) => process.send?.({ id: m.id, error: err.stack ?? String(err) } satisfies Reply),
    )
  })
  process.on('disconnect', () => process.exit(0))
}

export interface Role {
  child: ChildProcess
  call: <T>(cmd: string, args?: unknown) => Promise<T>
  /** Ask it to close (`close` command), then make sure it is gone. */
  stop(): Promise<void>
}

/** Fork `script` as `--role=<role>` (with `args`), with --expose-gc; `prof` also writes a CPU profile. */
export function spawnRole(script: string, role: string, args: string[] = [], prof = false): Role {
  const child = fork(script, [`--role=${role}`, ...args], {
    execArgv: [
      '--expose-gc',
      '--max-old-space-size=4096',
      '--import',
      'tsx',
      ...(prof ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  let next = 0
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  child.on('message', (r: Reply) => {
    const p = pending.get(r.id)
    pending.delete(r.id)
    if (r.error) p?.reject(new Error(`${role}: ${r.error}`))
    else p?.resolve(r.result)
  })
  child.on('exit', (code) => {
    for (const p of pending.values()) p.reject(new Error(`${role} process exited (${code})`))
    pending.clear()
  })
  const call = <T>(cmd: string, a?: unknown) =>
    new Promise<T>((resolve, reject) => {
      const id = next++
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      child.send({ id, cmd, args: a } satisfies Msg)
    })
  return {
    child,
    call,
    async stop() {
      if (child.exitCode !== null) return
      const exited = new Promise((r) => child.once('exit', r))
      await call('close').catch(() => {})
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))])
      child.kill()
    },
  }
}

/** Heap after GC (needs --expose-gc). */
export async function gcHeap(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc')
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((r) => setTimeout(r, 50))
  }
  return process.memoryUsage().heapUsed
}

/** The bare socket.io reference server (see the header), on 127.0.0.1. */
export async function createBareServer(): Promise<{
  address: string
  metrics: () => Record<string, number>
  close: () => Promise<void>
}> {
  const http = createServer()
  const server = new Server(http, { serveClient: false })
  const peers = new Map<string, ServerSocket>()
  let signals = 0
  server.on('connection', (socket) => {
    let id = ''
    socket.emit('challenge', { nonce: randomBytes(32) })
    socket.on('register', (_p: unknown, ack: (a: unknown) => void) => {
      id = randomBytes(20).toString('hex')
      peers.set(id, socket)
      ack({ ok: true, id, peers: [], servers: [] })
    })
    socket.on('signal', (p: { to: string; data: unknown }, ack: (a: unknown) => void) => {
      const target = peers.get(p?.to)
      if (!target) return ack({ ok: false, reason: 'unknown-peer' })
      target.emit('signal', { from: id, data: p.data })
      signals++
      ack({ ok: true })
    })
    socket.on('disconnect', () => peers.delete(id))
  })
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
  return {
    address: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    metrics: () => ({ peers: peers.size, signals }),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r())
        http.closeAllConnections()
      }),
  }
}

export interface JoinedPeer {
  socket: Socket
  id: string
  /** Signals and relay frames received. */
  received: number
  /** relay-error reasons received, by reason. */
  relayErrors: Record<string, number>
  /** The server said quietSignals: signals go without an ack, failures come as signal-error (as weft's client does). */
  quiet: boolean
  /** signal-error reasons received, by reason. */
  signalErrors: Record<string, number>
}

/**
 * Connect from `localAddress` and register as a node does (sign the challenge for the URL's host);
 * resolves with the peer and the connect → ack time.
 */
export function joinAs(
  address: string,
  identity: Identity,
  network: string,
  localAddress: string,
): Promise<{ peer: JoinedPeer; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    // engine.io-client hands localAddress to ws (it is not in socket.io-client's types).
    const options = { transports: ['websocket'], reconnection: false, forceNew: true, localAddress }
    const socket = io(address, options)
    const host = new URL(address).host
    const fail = (why: string) => {
      socket.disconnect()
      reject(new Error(why))
    }
    const timer = setTimeout(() => fail('join timed out'), 30_000)
    socket.on('connect_error', (e) => {
      clearTimeout(timer)
      fail(`connect_error: ${e.message}`)
    })
    socket.once('challenge', async (p: unknown) => {
      const c = parseChallenge(p)
      if (!c) return fail('bad challenge')
      const signature = await identity.sign(registrationMessage(host, c.nonce))
      socket.emit(
        'register',
        { publicKey: identity.publicKey, network, signature },
        (ack: { ok: boolean; id?: string; reason?: string; quietSignals?: boolean }) => {
          clearTimeout(timer)
          if (!ack.ok || !ack.id) return fail(`refused: ${ack.reason}`)
          const peer: JoinedPeer = {
            socket,
            id: ack.id,
            received: 0,
            relayErrors: {},
            quiet: ack.quietSignals === true,
            signalErrors: {},
          }
          socket.on('relay-error', (e: { reason?: string }) => {
            const r = String(e?.reason)
            peer.relayErrors[r] = (peer.relayErrors[r] ?? 0) + 1
          })
          socket.on('signal-error', (e: { reason?: string }) => {
            const r = String(e?.reason)
            peer.signalErrors[r] = (peer.signalErrors[r] ?? 0) + 1
          })
          const count = () => {
            peer.received++
          }
          socket.on('signal', count)
          socket.on('relay', count)
          resolve({ peer, ms: performance.now() - t0 })
        },
      )
    })
  })
}

/** Loopback source addresses, one per call: 127.<base>.x.y (the whole of 127/8 is local). */
export function sourceAddresses(base: number): () => string {
  let n = 0
  return () => {
    const k = n++
    return `127.${base + Math.floor(k / 64_516)}.${1 + (Math.floor(k / 254) % 254)}.${1 + (k % 254)}`
  }
}
