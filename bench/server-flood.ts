/**
 * server-flood: issue 9's memory attack on the signal server at full size,
 * against the server's default limits. The server runs in its own process
 * (default V8 heap limit, as `npm start` runs it); 2,000 attacking sockets
 * in another, spread over 40 loopback addresses (127.0.0.2 … 127.0.0.41,
 * 50 each: 40 sources, each under its default limits); honest peers and a
 * health probe in the orchestrator.
 *
 *   setup    the 2,000 sockets connect and register (identities without the
 *            puzzle: the server here runs with puzzleBits 0, so that 2,000
 *            keys take seconds to make, not ten minutes)
 *   bomb     each sends the issue's header, `51-["peers",[{},{},…],
 *            {"_placeholder":true,"num":0}]` of 127 KiB, whose attachment never
 *            comes; when the server hangs up it reconnects and sends it again
 *            (registering when its source still may), for PHASE_MS
 *            (over maxHttpBufferSize: ws refuses it from the frame header)
 *   bomb60   the same header at 60 KiB, under maxHttpBufferSize: the packet
 *            guard refuses it before parsing
 *   hold     each sends the worst header the guard lets through: a register
 *            header of 8 KiB announcing two attachments that never come, held
 *            until binaryDeadlineMs; again reconnecting, for PHASE_MS
 *
 * Throughout: the server's RSS and heap (every 250 ms), GET /healthz (every
 * 250 ms: status and latency), and one honest peer joining every 500 ms from
 * 127.0.0.1 (connect → register ack: success and latency).
 *
 *   npm run bench -- server-flood            (or: npx tsx bench/server-flood.ts)
 *   FLOOD_SOCKETS=500 FLOOD_PHASE_MS=5000 …  for a quicker run
 */
import { fileURLToPath } from 'node:url'
import { io, type Socket } from 'socket.io-client'
import { generateIdentity, type Identity } from '../shared/identity/keys.ts'
import { parseChallenge, registrationMessage } from '../shared/signal-events.ts'
import { createSignalServer } from '../signal-server/index.ts'
import { serve, spawnRole } from './_server-kit.ts'
import { isMain, quantile, report } from './report.ts'

const HERE = fileURLToPath(import.meta.url)
const SOCKETS = Number(process.env.FLOOD_SOCKETS ?? 2000)
const ADDRESSES = 40
const PHASE_MS = Number(process.env.FLOOD_PHASE_MS ?? 20_000)
const NETWORK = 'flood'

type Phase = 'bomb' | 'bomb60' | 'hold'
// ----------------------------------------------------------- server process

async function serverRole(): Promise<void> {
  // Every default, except the puzzle (see the header).
  const server = await createSignalServer({ port: 0, host: '127.0.0.1', puzzleBits: 0 })
  serve({
    address: async () => server.address,
    sample: async () => {
      const m = server.metrics()
      return { rss: m.rssBytes, heap: m.heapUsedBytes, pending: m.pendingBinaryBytes, sockets: m.sockets }
    },
    metrics: async () => server.metrics(),
    close: async () => {
      await server.close()
      setTimeout(() => process.exit(0), 50)
      return true
    },
  })
}

// --------------------------------------------------------- attacker process

/** The header: `51-["peers",[{},{},…],{"_placeholder":true,"num":0}]`, `chars` long. */
function peersBomb(chars: number): string {
  const head = '51-["peers",['
  const tail = '],{"_placeholder":true,"num":0}]'
  const n = Math.floor((chars - head.length - tail.length + 1) / 3)
  return `${head}${Array.from({ length: n }, () => '{}').join(',')}${tail}`
}
/** The largest header the guard holds: a register header just under 8 KiB, two attachments announced. */
const HOLD = `52-0["register",{"publicKey":{"_placeholder":true,"num":0},"network":"n","signature":{"_placeholder":true,"num":1},"x":"${'x'.repeat(8000)}"}]`

/** Connect from `localAddress`; resolves with the socket and the challenge nonce. */
function open(address: string, localAddress: string): Promise<{ socket: Socket; nonce: Uint8Array }> {
  return new Promise((resolve, reject) => {
    // engine.io-client hands localAddress to ws (it is not in socket.io-client's types).
    const options = { transports: ['websocket'], reconnection: false, forceNew: true, localAddress }
    const socket = io(address, options)
    const timer = setTimeout(() => {
      socket.disconnect()
      reject(new Error('connect timed out'))
    }, 30_000)
    socket.once('connect_error', (e) => {
      clearTimeout(timer)
      socket.disconnect()
      reject(e)
    })
    socket.once('challenge', (p: unknown) => {
      clearTimeout(timer)
      const c = parseChallenge(p)
      if (!c) return reject(new Error('bad challenge'))
      resolve({ socket, nonce: c.nonce })
    })
  })
}

function register(socket: Socket, identity: Identity, host: string, nonce: Uint8Array): Promise<boolean> {
  return identity.sign(registrationMessage(host, nonce)).then(
    (signature) =>
      new Promise<boolean>((resolve) => {
        socket
          .timeout(30_000)
          .emit(
            'register',
            { publicKey: identity.publicKey, network: NETWORK, signature },
            (err: unknown, ack: { ok?: boolean }) => resolve(!err && ack?.ok === true),
          )
      }),
  )
}

async function attackerRole(): Promise<void> {
  let address = ''
  let host = ''
  const identities: Identity[] = []
  const sockets: Socket[] = []
  const stats = { connects: 0, registered: 0, sent: 0, refusedConnects: 0 }
  const source = (i: number) => `127.0.0.${2 + (i % ADDRESSES)}`

  serve({
    async setup(args) {
      address = args as string
      host = new URL(address).host
      for (let i = 0; i < SOCKETS; i++) identities.push(await generateIdentity({ puzzleBits: 0 }))
      // Connect and register every socket, 100 at a time.
      for (let i = 0; i < SOCKETS; i += 100) {
        await Promise.all(
          Array.from({ length: Math.min(100, SOCKETS - i) }, async (_, k) => {
            const n = i + k
            const { socket, nonce } = await open(address, source(n))
            stats.connects++
            if (await register(socket, identities[n] as Identity, host, nonce)) stats.registered++
            sockets[n] = socket
          }),
        )
      }
      return { ...stats }
    },
    /** Every socket sends `kind`'s header, and again after each reconnect, for `ms`. */
    async attack(args) {
      const { kind, ms } = args as { kind: Phase; ms: number }
      const packet = kind === 'bomb' ? peersBomb(127 * 1024) : kind === 'bomb60' ? peersBomb(60 * 1024) : HOLD
      const end = Date.now() + ms
      const before = { ...stats }
      const one = async (n: number) => {
        while (Date.now() < end) {
          let socket = sockets[n]
          if (!socket?.connected) {
            try {
              const o = await open(address, source(n))
              stats.connects++
              socket = o.socket
              sockets[n] = socket
              // Register again when the source still may (it soon may not: the point is the header anyway).
              if (await register(socket, identities[n] as Identity, host, o.nonce)) stats.registered++
            } catch {
              stats.refusedConnects++
              await new Promise((r) => setTimeout(r, 200))
              continue
            }
          }
          socket.io.engine.send(packet)
          stats.sent++
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, Math.max(0, end - Date.now()))
            socket?.once('disconnect', () => {
              clearTimeout(t)
              resolve()
            })
          })
        }
      }
      await Promise.all(Array.from({ length: SOCKETS }, (_, n) => one(n)))
      // What this phase did.
      return Object.fromEntries(
        Object.entries(stats).map(([k, v]) => [k, v - before[k as keyof typeof stats]]),
      )
    },
    async leave() {
      for (const s of sockets) s?.disconnect()
      return true
    },
  })
}

// ------------------------------------------------------------- orchestrator

/** One honest join from 127.0.0.1: ms from connect to a successful register ack, or null. */
async function honestJoin(address: string): Promise<number | null> {
  const t0 = performance.now()
  try {
    const identity = await generateIdentity({ puzzleBits: 0 })
    const { socket, nonce } = await open(address, '127.0.0.1')
    const ok = await register(socket, identity, new URL(address).host, nonce)
    socket.disconnect()
    return ok ? performance.now() - t0 : null
  } catch {
    return null
  }
}

export async function run(): Promise<Record<string, number>> {
  const server = spawnRole(HERE, 'server')
  const attacker = spawnRole(HERE, 'attacker')
  try {
    const address = await server.call<string>('address')
    type Sample = { rss: number; heap: number; pending: number; sockets: number }
    const idle = await server.call<Sample>('sample')
    console.log(`server at ${address}: ${SOCKETS} attacking sockets from ${ADDRESSES} addresses`)
    const setup = await attacker.call<{ registered: number }>('setup', address)
    const afterSetup = await server.call<Sample>('sample')
    console.log(
      `registered ${setup.registered} of ${SOCKETS}; server RSS ${(afterSetup.rss / 2 ** 20).toFixed(0)} MiB`,
    )

    const measure = async (kind: Phase) => {
      const samples: Sample[] = []
      const health: { ok: boolean; ms: number }[] = []
      const joins: (number | null)[] = []
      let running = true
      const loops = [
        (async () => {
          while (running) {
            samples.push(await server.call<Sample>('sample'))
            await new Promise((r) => setTimeout(r, 250))
          }
        })(),
        (async () => {
          while (running) {
            const t0 = performance.now()
            const ok = await fetch(`${address}/healthz`, { signal: AbortSignal.timeout(10_000) }).then(
              (r) => r.status === 200,
              () => false,
            )
            health.push({ ok, ms: performance.now() - t0 })
            await new Promise((r) => setTimeout(r, 250))
          }
        })(),
        (async () => {
          while (running) {
            joins.push(await honestJoin(address))
            await new Promise((r) => setTimeout(r, 500))
          }
        })(),
      ]
      const stats = await attacker.call<Record<string, number>>('attack', { kind, ms: PHASE_MS })
      running = false
      await Promise.all(loops)
      const ok = joins.filter((j): j is number => j !== null)
      const f = {
        rssMaxMB: Math.round(Math.max(...samples.map((s) => s.rss)) / 2 ** 20),
        heapMaxMB: Math.round(Math.max(...samples.map((s) => s.heap)) / 2 ** 20),
        pendingBinaryMaxKB: Math.round(Math.max(...samples.map((s) => s.pending)) / 1024),
        healthzOk: health.filter((h) => h.ok).length,
        healthzTotal: health.length,
        healthzP99Ms: Math.round(
          quantile(
            health.map((h) => h.ms),
            0.99,
          ),
        ),
        honestJoinsOk: ok.length,
        honestJoinsTotal: joins.length,
        honestJoinP50Ms: ok.length ? Math.round(quantile(ok, 0.5)) : -1,
        honestJoinP99Ms: ok.length ? Math.round(quantile(ok, 0.99)) : -1,
        headersSent: stats.sent ?? 0,
        reconnects: stats.connects ?? 0,
        reregistered: stats.registered ?? 0,
        connectsRefused: stats.refusedConnects ?? 0,
      }
      console.log(kind, f)
      return f
    }
    const bomb = await measure('bomb')
    const bomb60 = await measure('bomb60')
    const hold = await measure('hold')
    await attacker.call('leave')
    // The held headers go at their deadline (10 s), with their sockets.
    const t0 = Date.now()
    let last = await server.call<Sample>('sample')
    while ((last.pending > 0 || last.sockets > 0) && Date.now() - t0 < 30_000) {
      await new Promise((r) => setTimeout(r, 250))
      last = await server.call<Sample>('sample')
    }
    const m = await server.call<Record<string, number>>('metrics')
    if (process.env.FLOOD_DEBUG) console.log(m)
    const figures: Record<string, number> = {
      sockets: SOCKETS,
      registeredAtStart: setup.registered,
      idleRssMB: Math.round(idle.rss / 2 ** 20),
      setupRssMB: Math.round(afterSetup.rss / 2 ** 20),
      ...Object.fromEntries(Object.entries(bomb).map(([k, v]) => [`bomb.${k}`, v])),
      ...Object.fromEntries(Object.entries(bomb60).map(([k, v]) => [`bomb60.${k}`, v])),
      ...Object.fromEntries(Object.entries(hold).map(([k, v]) => [`hold.${k}`, v])),
      afterPendingBinaryBytes: last.pending,
      afterSockets: last.sockets,
      afterRssMB: Math.round(last.rss / 2 ** 20),
      ...Object.fromEntries(
        Object.entries(m).filter(
          ([k]) =>
            k.startsWith('packetsRefused.') || k.startsWith('limited.') || k.startsWith('rejected.too-many'),
        ),
      ),
    }
    report('server-flood', figures)
    await server.call('close')
    return figures
  } finally {
    attacker.child.kill()
    server.child.kill()
  }
}

export default run

const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length)
if (role === 'server') await serverRole()
else if (role === 'attacker') await attackerRole()
else if (isMain(import.meta.url)) await run()
