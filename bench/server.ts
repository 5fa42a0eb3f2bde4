/**
 * server: the signal server under load, loopback only. The server runs in
 * its own process (with --expose-gc, so its heap can be measured after GC);
 * the clients run in another (real socket.io-client sockets over WebSocket,
 * each registering with its own Ed25519 key).
 *
 *   fill        register peers as fast as the server takes them (50 in flight)
 *   join        the last 1,000 joins paced at 200/s on the nearly full server:
 *               connect → register ack latency, p50 and p99
 *   heap        server heap after GC, before any peer and with all of them (and, for the
 *               marginal cost of a peer, at half of them)
 *   signals     300 senders, each paced below the per-socket event limit,
 *               signalling random registered peers for 5 s: signals the
 *               server relayed per second (every one acked and delivered)
 *
 * Every client connects from its own loopback address (127.1.0.1,
 * 127.1.0.2, …: the whole of 127/8 is local), so each peer is its own source,
 * as on the Internet, and the server runs with its default limits; the heap
 * figure includes each source's entry. Identities skip the puzzle (10,000
 * keys at 10 bits would take an hour to make): what that leaves out of the
 * join figures is one SHA-256 of 48 bytes per registration.
 *
 *   npm run bench -- server          (or: npx tsx bench/server.ts)
 *   BENCH_PEERS=2000 npx tsx bench/server.ts   for a quicker run
 *   BENCH_PROF=1 ...                           also writes a CPU profile of the server to /tmp/prof
 */
import { type ChildProcess, fork } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { io, type Socket } from 'socket.io-client'
import { generateIdentity, type Identity } from '../shared/identity/keys.ts'
import { parseChallenge, registrationMessage } from '../shared/signal-events.ts'
import { createSignalServer } from '../signal-server/index.ts'
import { isMain, quantile, report } from './report.ts'

const HERE = fileURLToPath(import.meta.url)
const ROOT = join(dirname(HERE), '..')

const PEERS = Number(process.env.BENCH_PEERS ?? 10_000)
const PACED_JOINS = Math.min(1000, Math.floor(PEERS / 2))
const JOIN_RATE = 200
const FILL_CONCURRENCY = 50
const SENDERS = Math.min(300, Math.floor(PEERS / 2))
const SENDER_RATE = 150 // per socket, under the default 200 events/s limit
const SENDER_WINDOW = 8
const SIGNAL_MS = 5000
const NETWORK = 'bench'

type Msg = { id: number; cmd: string; args?: unknown }
type Reply = { id: number; result?: unknown; error?: string }

// ------------------------------------------------------------ IPC plumbing

function serve(handlers: Record<string, (args: unknown) => Promise<unknown>>): void {
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

function spawnRole(role: string): {
  child: ChildProcess
  call: <T>(cmd: string, args?: unknown) => Promise<T>
} {
  const child = fork(HERE, [`--role=${role}`], {
    cwd: ROOT,
    execArgv: [
      '--expose-gc',
      '--max-old-space-size=4096',
      '--import',
      'tsx',
      ...(role === 'server' && process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []),
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
  return {
    child,
    call: <T>(cmd: string, args?: unknown) =>
      new Promise<T>((resolve, reject) => {
        const id = next++
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
        child.send({ id, cmd, args } satisfies Msg)
      }),
  }
}

// ----------------------------------------------------------- server process

async function serverRole(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc')
  const server = await createSignalServer({
    port: 0,
    host: '127.0.0.1',
    maxPeers: PEERS + 1000,
    registerTimeoutMs: 60_000,
    puzzleBits: 0,
  })
  const heap = async () => {
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise((r) => setTimeout(r, 50))
    }
    return process.memoryUsage().heapUsed
  }
  serve({
    address: async () => server.address,
    heap,
    metrics: async () => server.metrics(),
    cpu: async () => process.cpuUsage(),
    close: async () => {
      await server.close()
      setTimeout(() => process.exit(0), 50)
      return true
    },
  })
}

// ---------------------------------------------------------- clients process

interface Peer {
  socket: Socket
  id: string
  received: number
}

async function clientsRole(): Promise<void> {
  const peers: Peer[] = []
  let identities: Identity[] = []
  let address = ''

  let sources = 0
  /** The next loopback address: one source per peer. */
  const nextSource = () => {
    const n = sources++
    return `127.${1 + Math.floor(n / 64_516)}.${1 + (Math.floor(n / 254) % 254)}.${1 + (n % 254)}`
  }
  const join = (identity: Identity): Promise<{ peer: Peer; ms: number }> =>
    new Promise((resolve, reject) => {
      const t0 = performance.now()
      // engine.io-client hands localAddress to ws (it is not in socket.io-client's types).
      const options = {
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
        localAddress: nextSource(),
      }
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
          { publicKey: identity.publicKey, network: NETWORK, signature },
          (ack: { ok: boolean; id?: string; reason?: string }) => {
            clearTimeout(timer)
            if (!ack.ok || !ack.id) return fail(`refused: ${ack.reason}`)
            const peer: Peer = { socket, id: ack.id, received: 0 }
            socket.on('signal', () => {
              peer.received++
            })
            resolve({ peer, ms: performance.now() - t0 })
          },
        )
      })
    })

  serve({
    async prepare(args) {
      const { count, addr } = args as { count: number; addr: string }
      address = addr
      identities = []
      for (let i = 0; i < count; i++) identities.push(await generateIdentity({ puzzleBits: 0 }))
      return identities.length
    },
    /** Join `count` peers with at most `concurrency` in flight; returns the latencies. */
    async fill(args) {
      const { count, concurrency } = args as { count: number; concurrency: number }
      const ms: number[] = []
      let started = 0
      const worker = async () => {
        while (started < count) {
          started++
          const r = await join(identities.pop() as Identity)
          peers.push(r.peer)
          ms.push(r.ms)
        }
      }
      await Promise.all(Array.from({ length: concurrency }, worker))
      return ms
    },
    /** Join `count` peers, starting one every 1000/rate ms regardless of how the previous ones fare. */
    async paced(args) {
      const { count, rate } = args as { count: number; rate: number }
      const t0 = performance.now()
      const joins: Promise<{ peer: Peer; ms: number }>[] = []
      for (let i = 0; i < count; i++) {
        const due = t0 + (i * 1000) / rate
        const wait = due - performance.now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
        joins.push(join(identities.pop() as Identity))
      }
      const done = await Promise.all(joins)
      for (const d of done) peers.push(d.peer)
      return { ms: done.map((d) => d.ms), seconds: (performance.now() - t0) / 1000 }
    },
    /** Signal storm: `senders` sockets, each paced to `rate`/s with `window` in flight, for `ms`. */
    async signals(args) {
      const { senders, rate, window, ms } = args as {
        senders: number
        rate: number
        window: number
        ms: number
      }
      for (const p of peers) p.received = 0
      let acked = 0
      let refused = 0
      const reasons: Record<string, number> = {}
      const t0 = performance.now()
      const end = t0 + ms
      const data = {
        type: 'candidate',
        candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host',
        n: 0,
      }
      const sender = async (s: Peer, k: number) => {
        let sent = 0
        let inFlight = 0
        await new Promise<void>((resolve) => {
          let scheduled = false
          const later = () => {
            if (scheduled) return
            scheduled = true
            setTimeout(() => {
              scheduled = false
              pump()
            }, 5)
          }
          const pump = () => {
            const now = performance.now()
            if (now >= end) {
              if (inFlight === 0) resolve()
              return
            }
            // Pace: no more than rate/s since t0 (spread start times so senders do not beat in step).
            const allowed = Math.floor(((now - t0) / 1000) * rate) + 1
            while (inFlight < window && sent < allowed) {
              const to = peers[(k * 7919 + sent * 104729) % peers.length] as Peer
              sent++
              inFlight++
              s.socket.emit('signal', { to: to.id, data }, (ack: { ok: boolean; reason?: string }) => {
                inFlight--
                if (ack.ok) acked++
                else {
                  refused++
                  reasons[ack.reason ?? '?'] = (reasons[ack.reason ?? '?'] ?? 0) + 1
                }
                pump()
              })
            }
            if (sent >= allowed) later()
          }
          setTimeout(pump, Math.random() * 5)
        })
      }
      await Promise.all(peers.slice(0, senders).map((s, k) => sender(s, k)))
      const seconds = (performance.now() - t0) / 1000
      // Let the last deliveries land.
      await new Promise((r) => setTimeout(r, 300))
      const delivered = peers.reduce((n, p) => n + p.received, 0)
      return { acked, refused, reasons, delivered, seconds }
    },
    async cpu() {
      return process.cpuUsage()
    },
    async count() {
      return peers.filter((p) => p.socket.connected).length
    },
    async leave() {
      for (const p of peers) p.socket.disconnect()
      peers.length = 0
      await new Promise((r) => setTimeout(r, 500))
      return true
    },
  })
}

// ------------------------------------------------------------- orchestrator

export async function run(): Promise<Record<string, number>> {
  const server = spawnRole('server')
  const clients = spawnRole('clients')
  try {
    const address = await server.call<string>('address')
    const warmup = Math.min(200, PEERS)
    console.log(`server at ${address}; generating ${PEERS + warmup} keys`)
    await clients.call('prepare', { count: PEERS + warmup, addr: address })

    // Warm up the code paths, then take the heap baseline with nobody connected.
    await clients.call('fill', { count: warmup, concurrency: 20 })
    await clients.call('leave')
    const heapBefore = await server.call<number>('heap')

    const fillCount = PEERS - PACED_JOINS
    const half = Math.floor(PEERS / 2)
    console.log(`filling ${fillCount} peers`)
    const tFill = performance.now()
    type Cpu = { user: number; system: number }
    const cpuFill0 = await server.call<Cpu>('cpu')
    await clients.call<number[]>('fill', { count: half, concurrency: FILL_CONCURRENCY })
    const cpuFill1 = await server.call<Cpu>('cpu')
    // Server CPU per join (connect, challenge, register, sample): what load does not inflate much.
    const joinServerCpuUs = Math.round(
      (cpuFill1.user + cpuFill1.system - cpuFill0.user - cpuFill0.system) / Math.max(1, half),
    )
    let fillSeconds = (performance.now() - tFill) / 1000
    // Heap at half the peers: the slope from here to the end is the marginal cost of one more peer,
    // free of fixed costs (code warmed up late, bounded caches such as the verify-key cache).
    const heapHalf = await server.call<number>('heap')
    const tFill2 = performance.now()
    await clients.call<number[]>('fill', { count: fillCount - half, concurrency: FILL_CONCURRENCY })
    fillSeconds += (performance.now() - tFill2) / 1000

    console.log(`${PACED_JOINS} joins at ${JOIN_RATE}/s`)
    const paced = await clients.call<{ ms: number[]; seconds: number }>('paced', {
      count: PACED_JOINS,
      rate: JOIN_RATE,
    })

    const metrics = await server.call<Record<string, number>>('metrics')
    const peers = metrics.peers ?? 0
    const heapAfter = await server.call<number>('heap')

    console.log(`signals: ${SENDERS} senders for ${SIGNAL_MS} ms`)
    const before = (await server.call<Record<string, number>>('metrics')).signals ?? 0
    const cpu = async () => Promise.all([server.call<Cpu>('cpu'), clients.call<Cpu>('cpu')])
    const cpu0 = await cpu()
    const sig = await clients.call<{
      acked: number
      refused: number
      reasons: Record<string, number>
      delivered: number
      seconds: number
    }>('signals', { senders: SENDERS, rate: SENDER_RATE, window: SENDER_WINDOW, ms: SIGNAL_MS })
    const relayed = ((await server.call<Record<string, number>>('metrics')).signals ?? 0) - before
    const cpu1 = await cpu()
    // Share of one core each process used during the signal phase (both ends share the machine's cores).
    const busy = (i: 0 | 1) =>
      Number(
        ((cpu1[i].user + cpu1[i].system - cpu0[i].user - cpu0[i].system) / 1e6 / (sig.seconds + 0.3)).toFixed(
          2,
        ),
      )
    if (sig.refused > 0) console.log('refused signals:', sig.reasons)

    const figures = {
      peers,
      heapBytesPerPeer: Math.round((heapAfter - heapBefore) / Math.max(1, peers)),
      heapBytesPerPeerMarginal: Math.round((heapAfter - heapHalf) / Math.max(1, peers - half)),
      heapBeforeMB: Math.round(heapBefore / 2 ** 20),
      heapAfterMB: Math.round(heapAfter / 2 ** 20),
      joinP50Ms: Number(quantile(paced.ms, 0.5).toFixed(2)),
      joinP99Ms: Number(quantile(paced.ms, 0.99).toFixed(2)),
      joinsPerSecPaced: Math.round(PACED_JOINS / paced.seconds),
      joinServerCpuUs,
      fillJoinsPerSec: Math.round(fillCount / fillSeconds),
      signalsPerSec: Math.round(relayed / sig.seconds),
      signalsDelivered: sig.delivered,
      signalsRefused: sig.refused,
      signalSenders: SENDERS,
      signalServerCpu: busy(0),
      // Signals per second of server CPU time: what one core would relay, whatever else the machine runs.
      signalsPerServerCoreSec: Math.round(relayed / Math.max(0.01, busy(0) * (sig.seconds + 0.3))),
      signalClientsCpu: busy(1),
    }
    report('server', figures)
    await clients.call('leave')
    const exited = new Promise((r) => server.child.once('exit', r))
    await server.call('close')
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))])
    return figures
  } finally {
    clients.child.kill()
    server.child.kill()
  }
}

export default run

const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length)
if (role === 'server') await serverRole()
else if (role === 'clients') await clientsRole()
else if (isMain(import.meta.url)) await run()
