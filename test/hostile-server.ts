/**
 * A signal server run by someone else: plain socket.io (no weft server code)
 * that speaks the protocol as far as it likes. It challenges each socket and
 * registers anyone (the ack names the id of the key sent); everything else is
 * the test's to play through `sockets` (emit anything, at any time) and the
 * `onRegister` hook (answer as it likes, or not at all). With `forward`, it
 * also does a server's work honestly: lists who registered, passes signals
 * and relay frames on (quietSignals), so that nodes link through it.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server, type Socket } from 'socket.io'
import { nodeIdOf } from '../shared/identity/keys.ts'

export interface HostileServer {
  /** http://127.0.0.1:<port> */
  readonly address: string
  /** Every socket that connected, in order. */
  readonly sockets: Socket[]
  /** Registrations received, per socket. */
  registers: number
  /** Registered sockets by node id (`forward`). */
  readonly byId: Map<string, Socket>
  close(): Promise<void>
}

export interface HostileServerOptions {
  /** Register anyone, list the others, and pass signals and relay frames on. @default false */
  forward?: boolean
  /** Challenges sent at connection. @default 1 */
  challenges?: number
  /** Called as each socket connects, before anything is sent to it (listen to what the client says first). */
  onSocket?: (socket: Socket) => void
  /** Answer a registration (the default: ok, the key's id, no peers, no servers). */
  onRegister?: (socket: Socket, payload: { publicKey: Uint8Array }, ack: (a: unknown) => void) => void
}

export async function hostileServer(opts: HostileServerOptions = {}): Promise<HostileServer> {
  const http = createServer()
  const io = new Server(http, { transports: ['websocket'], maxHttpBufferSize: 64 * 1024 * 1024 })
  const sockets: Socket[] = []
  const byId = new Map<string, Socket>()
  const srv: HostileServer = {
    address: '',
    sockets,
    registers: 0,
    byId,
    async close() {
      io.close()
      await new Promise<void>((r) => http.close(() => r()))
    },
  }
  io.on('connection', (socket) => {
    sockets.push(socket)
    opts.onSocket?.(socket)
    socket.on('register', (payload: { publicKey: Uint8Array }, ack: (a: unknown) => void) => {
      srv.registers++
      if (typeof ack !== 'function') return
      if (opts.onRegister) return opts.onRegister(socket, payload, ack)
      void nodeIdOf(new Uint8Array(payload.publicKey)).then((id) => {
        if (!opts.forward) return ack({ ok: true, id, peers: [], servers: [] })
        const peers = [...byId.keys()].filter((p) => p !== id).map((p) => ({ id: p, lastSeen: Date.now() }))
        byId.set(id, socket)
        socket.data.id = id
        ack({ ok: true, id, peers, servers: [], quietSignals: true })
      })
    })
    if (opts.forward) {
      socket.on('signal', (p: { to: string; data: unknown }) =>
        byId.get(p.to)?.emit('signal', { from: socket.data.id, data: p.data }),
      )
      socket.on('relay', (p: { to: string; frame: Uint8Array }) =>
        byId.get(p.to)?.emit('relay', { from: socket.data.id, frame: p.frame }),
      )
    }
    for (let i = 0; i < (opts.challenges ?? 1); i++)
      socket.emit('challenge', { nonce: crypto.getRandomValues(new Uint8Array(32)) })
  })
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()))
  const { port } = http.address() as AddressInfo
  Object.assign(srv, { address: `http://127.0.0.1:${port}` })
  return srv
}
