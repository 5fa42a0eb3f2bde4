/**
 * server: the signal server under load, loopback only, beside a bare
 * socket.io server (_server-kit.ts) measured the same way in the same run.
 * Each server runs in its own process (with --expose-gc, so its heap can be
 * measured after GC); the clients run in another (real socket.io-client
 * sockets over WebSocket, each registering with its own Ed25519 key).
 *
 *   fill        register peers as fast as the server takes them (50 in flight)
 *   join        the last 1,000 joins paced at 200/s on the nearly full server:
 *               connect → register ack latency, p50 and p99
 *   heap        server heap after GC, before any peer and with all of them (and, for the
 *               marginal cost of a peer, at half of them); RSS likewise
 *   signals     300 senders, each paced below the per-socket event limit,
 *               signalling random registered peers for 5 s: signals the
 *               server relayed per second (every one delivered; acked, or sent without
 *               an ack to a server that says quietSignals, as weft's client does),
 *               and per second of server CPU
 *   cluster     two weft instances on one redis-server (_server-cluster.ts):
 *               relay frames between nodes on different instances, per second
 *               and per second of the two servers' CPU
 *
 * Every client connects from its own loopback address (127.1.0.1,
 * 127.1.0.2, …), so each peer is its own source, as on the Internet, and
 * weft's server runs with its default limits; the heap figure includes each
 * source's entry. Identities skip the puzzle (10,000 keys at 10 bits would
 * take an hour to make): what that leaves out of the join figures is one
 * SHA-256 of 48 bytes per registration.
 *
 *   npm run bench -- server          (or: npx tsx bench/server.ts)
 *   BENCH_PEERS=2000 npx tsx bench/server.ts   for a quicker run
 *   BENCH_BARE=0 / BENCH_CLUSTER=0             leave out the bare reference / the cluster phase
 *   BENCH_PROF=1 ...                           also writes a CPU profile of weft's server to /tmp/prof
 *   BENCH_SENDERS / BENCH_SENDER_RATE / BENCH_SIGNAL_MS   the signal phase's senders (300), each one's
 *                                              signals per second (150) and length (5000 ms): a rate both
 *                                              servers keep up with on a busy machine compares CPU per
 *                                              signal at the same batching
 */
import { fileURLToPath } from 'node:url'
import { writeHeapSnapshot } from 'node:v8'
import { generateIdentity, type Identity } from '../shared/identity/keys.ts'
import { createSignalServer } from '../signal-server/index.ts'
import { heapByKind, perPeer } from './_heap-snapshot.ts'
import { clusterPhase } from './_server-cluster.ts'
import {
  createBareServer,
  gcHeap,
  type JoinedPeer,
  joinAs,
  type Role,
  serve,
  sourceAddresses,
  spawnRole,
} from './_server-kit.ts'
import { isMain, quantile, report } from './report.ts'

const HERE = fileURLToPath(import.meta.url)

const PEERS = Number(process.env.BENCH_PEERS ?? 10_000)
const PACED_JOINS = Math.min(1000, Math.floor(PEERS / 2))
const JOIN_RATE = 200
const FILL_CONCURRENCY = 50
const SENDERS = Number(process.env.BENCH_SENDERS ?? Math.min(300, Math.floor(PEERS / 2)))
const SENDER_RATE = Number(process.env.BENCH_SENDER_RATE ?? 150) // per socket, under the default 200 events/s limit
const SENDER_WINDOW = 8
const SIGNAL_MS = Number(process.env.BENCH_SIGNAL_MS ?? 5000)
const NETWORK = 'bench'

type Cpu = { user: number; system: number }
const cpuSeconds = (a: Cpu, b: Cpu) => (b.user + b.system - a.user - a.system) / 1e6

// ----------------------------------------------------------- server process

async function serverRole(): Promise<void> {
  const arg = (k: string) => process.argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3)
  const redisUrl = arg('redis')
  const server =
    arg('kind') === 'bare'
      ? await createBareServer()
      : await createSignalServer({
          port: 0,
          host: '127.0.0.1',
          maxPeers: PEERS + 1000,
          registerTimeoutMs: 60_000,
          puzzleBits: 0,
          log: () => {},
          ...(redisUrl
            ? { redisUrl, redisSecret: arg('secret') ?? '', redisPrefix: arg('prefix') ?? 'bench' }
            : {}),
        })
  serve({
    address: async () => server.address,
    heap: gcHeap,
    /** A heap snapshot after GC, to `path` (BENCH_HEAPSNAP). */
    snapshot: async (path) => {
      await gcHeap()
      return writeHeapSnapshot(path as string)
    },
    rss: async () => process.memoryUsage().rss,
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

async function clientsRole(): Promise<void> {
  const peers: JoinedPeer[] = []
  /** Peers by the group they joined as (the cluster phase's two instances). */
  const groups = new Map<string, JoinedPeer[]>()
  let identities: Identity[] = []
  const nextSource = sourceAddresses(1)
  const join = async (addr: string, group: string) => {
    const r = await joinAs(addr, identities.pop() as Identity, NETWORK, nextSource())
    peers.push(r.peer)
    const g = groups.get(group) ?? []
    g.push(r.peer)
    groups.set(group, g)
    return r.ms
  }

  serve({
    async prepare(args) {
      const { count } = args as { count: number }
      identities = []
      for (let i = 0; i < count; i++) identities.push(await generateIdentity({ puzzleBits: 0 }))
      return identities.length
    },
    /** Join `count` peers to `addr` with at most `concurrency` in flight; returns the latencies. */
    async fill(args) {
      const { addr, count, concurrency, group } = args as {
        addr: string
        count: number
        concurrency: number
        group?: string
      }
      const ms: number[] = []
      let started = 0
      const worker = async () => {
        while (started < count) {
          started++
          ms.push(await join(addr, group ?? ''))
        }
      }
      await Promise.all(Array.from({ length: concurrency }, worker))
      return ms
    },
    /** Join `count` peers, starting one every 1000/rate ms regardless of how the previous ones fare. */
    async paced(args) {
      const { addr, count, rate } = args as { addr: string; count: number; rate: number }
      const t0 = performance.now()
      const joins: Promise<number>[] = []
      for (let i = 0; i < count; i++) {
        const due = t0 + (i * 1000) / rate
        const wait = due - performance.now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
        joins.push(join(addr, ''))
      }
      const ms = await Promise.all(joins)
      return { ms, seconds: (performance.now() - t0) / 1000 }
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
      const sender = async (s: JoinedPeer, k: number) => {
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
              const to = peers[(k * 7919 + sent * 104729) % peers.length] as JoinedPeer
              sent++
              if (s.quiet) {
                // As weft's client does with a quietSignals server: no ack (failures come as signal-error).
                s.socket.emit('signal', { to: to.id, data })
                continue
              }
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
      for (const p of peers) p.signalErrors = {}
      await Promise.all(peers.slice(0, senders).map((s, k) => sender(s, k)))
      const seconds = (performance.now() - t0) / 1000
      // Let the last deliveries land.
      await new Promise((r) => setTimeout(r, 300))
      for (const p of peers)
        for (const [r, n] of Object.entries(p.signalErrors)) {
          refused += n
          reasons[r] = (reasons[r] ?? 0) + n
        }
      const delivered = peers.reduce((n, p) => n + p.received, 0)
      return { acked, refused, reasons, delivered, seconds }
    },
    /**
     * Relay frames of `bytes` from the i-th peer of group `from` to the i-th of group `to`, each
     * sender at `rate` frames/s, for `ms`; returns frames received by `to` and how long it took until
     * the last one (a backlog drained, up to 30 s more).
     */
    async relay(args) {
      const { from, to, bytes, rate, ms } = args as {
        from: string
        to: string
        bytes: number
        rate: number
        ms: number
      }
      const senders = groups.get(from) ?? []
      const targets = groups.get(to) ?? []
      for (const p of targets) p.received = 0
      const frame = new Uint8Array(bytes).fill(7)
      const t0 = performance.now()
      let sent = 0
      await new Promise<void>((resolve) => {
        const tick = setInterval(() => {
          const now = performance.now()
          if (now - t0 >= ms) {
            clearInterval(tick)
            return resolve()
          }
          const due = Math.floor(((now - t0) / 1000) * rate * senders.length)
          for (; sent < due; sent++) {
            const k = sent % senders.length
            const target = targets[k % targets.length] as JoinedPeer
            ;(senders[k] as JoinedPeer).socket.emit('relay', { to: target.id, frame })
          }
        }, 5)
      })
      // Until the backlog (if any) drained: the rate is what was delivered over the time it took.
      const count = () => targets.reduce((n, p) => n + p.received, 0)
      let last = count()
      let lastAt = performance.now()
      while (last < sent && performance.now() - lastAt < 1000 && performance.now() - t0 < ms + 30_000) {
        await new Promise((r) => setTimeout(r, 50))
        if (count() !== last) {
          last = count()
          lastAt = performance.now()
        }
      }
      const received = count()
      const errors: Record<string, number> = {}
      for (const s of senders)
        for (const [k, v] of Object.entries(s.relayErrors)) errors[k] = (errors[k] ?? 0) + v
      return { sent, received, errors, seconds: (lastAt - t0) / 1000 }
    },
    async cpu() {
      return process.cpuUsage()
    },
    async leave() {
      for (const p of peers) p.socket.disconnect()
      peers.length = 0
      groups.clear()
      await new Promise((r) => setTimeout(r, 500))
      return true
    },
  })
}

// ------------------------------------------------------------- orchestrator

type Figures = Record<string, number>

/** Every figure but the cluster's, for one server (weft's or the bare reference). */
async function measure(kind: 'weft' | 'bare', clients: Role): Promise<Figures> {
  const server = spawnRole(HERE, 'server', [`--kind=${kind}`], kind === 'weft' && !!process.env.BENCH_PROF)
  try {
    const addr = await server.call<string>('address')
    const warmup = Math.min(200, PEERS)
    console.log(`${kind}: server at ${addr}; generating ${PEERS + warmup} keys`)
    await clients.call('prepare', { count: PEERS + warmup })

    // Warm up the code paths, then take the heap baseline with nobody connected.
    await clients.call('fill', { addr, count: warmup, concurrency: 20 })
    await clients.call('leave')
    const heapBefore = await server.call<number>('heap')
    const rssBefore = await server.call<number>('rss')

    const fillCount = PEERS - PACED_JOINS
    const half = Math.floor(PEERS / 2)
    console.log(`${kind}: filling ${fillCount} peers`)
    const tFill = performance.now()
    const cpuFill0 = await server.call<Cpu>('cpu')
    await clients.call<number[]>('fill', { addr, count: half, concurrency: FILL_CONCURRENCY })
    const cpuFill1 = await server.call<Cpu>('cpu')
    // Server CPU per join (connect, challenge, register, sample): what load does not inflate much.
    const joinServerCpuUs = Math.round((cpuSeconds(cpuFill0, cpuFill1) * 1e6) / Math.max(1, half))
    let fillSeconds = (performance.now() - tFill) / 1000
    // Heap at half the peers: the slope from here to the end is the marginal cost of one more peer,
    // free of fixed costs (code warmed up late, bounded caches such as the verify-key cache).
    const heapHalf = await server.call<number>('heap')
    const tFill2 = performance.now()
    await clients.call<number[]>('fill', { addr, count: fillCount - half, concurrency: FILL_CONCURRENCY })
    fillSeconds += (performance.now() - tFill2) / 1000

    console.log(`${kind}: ${PACED_JOINS} joins at ${JOIN_RATE}/s`)
    const paced = await clients.call<{ ms: number[]; seconds: number }>('paced', {
      addr,
      count: PACED_JOINS,
      rate: JOIN_RATE,
    })

    const peers = (await server.call<Figures>('metrics')).peers ?? 0
    const heapAfter = await server.call<number>('heap')
    const rssAfter = await server.call<number>('rss')

    console.log(`${kind}: signals, ${SENDERS} senders for ${SIGNAL_MS} ms`)
    const before = (await server.call<Figures>('metrics')).signals ?? 0
    const cpu = async () => Promise.all([server.call<Cpu>('cpu'), clients.call<Cpu>('cpu')])
    const cpu0 = await cpu()
    const sig = await clients.call<{
      acked: number
      refused: number
      reasons: Record<string, number>
      delivered: number
      seconds: number
    }>('signals', { senders: SENDERS, rate: SENDER_RATE, window: SENDER_WINDOW, ms: SIGNAL_MS })
    const relayed = ((await server.call<Figures>('metrics')).signals ?? 0) - before
    const cpu1 = await cpu()
    // Share of one core each process used during the signal phase (both ends share the machine's cores).
    const busy = (i: 0 | 1) => Number((cpuSeconds(cpu0[i], cpu1[i]) / (sig.seconds + 0.3)).toFixed(2))
    if (sig.refused > 0) console.log(`${kind}: refused signals:`, sig.reasons)
    await clients.call('leave')
    return {
      peers,
      heapBytesPerPeer: Math.round((heapAfter - heapBefore) / Math.max(1, peers)),
      heapBytesPerPeerMarginal: Math.round((heapAfter - heapHalf) / Math.max(1, peers - half)),
      rssBytesPerPeer: Math.round((rssAfter - rssBefore) / Math.max(1, peers)),
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
      signalsPerServerCoreSec: Math.round(relayed / Math.max(0.01, cpuSeconds(cpu0[0], cpu1[0]))),
      signalClientsCpu: busy(1),
      // The kernel's share of the server's CPU in the signal phase (system calls: reads, writes, polls).
      signalServerSysShare: Number(
        ((cpu1[0].system - cpu0[0].system) / Math.max(1, cpuSeconds(cpu0[0], cpu1[0]) * 1e6)).toFixed(2),
      ),
    }
  } finally {
    await server.stop()
  }
}

/**
 * Where a peer's heap goes (BENCH_HEAPSNAP=weft or bare): snapshots of the server with nobody and with
 * PEERS peers registered, subtracted kind by kind (_heap-snapshot.ts); prints bytes per peer by kind.
 */
async function heapBreakdown(kind: 'weft' | 'bare', clients: Role): Promise<Figures> {
  const server = spawnRole(HERE, 'server', [`--kind=${kind}`])
  try {
    const addr = await server.call<string>('address')
    const warmup = Math.min(200, PEERS)
    await clients.call('prepare', { count: PEERS + warmup })
    await clients.call('fill', { addr, count: warmup, concurrency: 20 })
    await clients.call('leave')
    const dir = process.env.BENCH_HEAPSNAP_DIR ?? '/tmp'
    const before = heapByKind(await server.call<string>('snapshot', `${dir}/weft-${kind}-0.heapsnapshot`))
    await clients.call('fill', { addr, count: PEERS, concurrency: FILL_CONCURRENCY })
    const peers = (await server.call<Figures>('metrics')).peers ?? 0
    const after = heapByKind(await server.call<string>('snapshot', `${dir}/weft-${kind}-n.heapsnapshot`))
    const rows = perPeer(before, after, peers)
    const total = rows.reduce((n, r) => n + r.bytesPerPeer, 0)
    console.log(`${kind}: ${peers} peers, ${total} B per peer in kinds of 8 B or more:`)
    for (const r of rows.slice(0, 60))
      console.log(
        `${String(r.bytesPerPeer).padStart(7)} B  ${r.objectsPerPeer.toFixed(2).padStart(6)}  ${r.kind}`,
      )
    await clients.call('leave')
    return { peers, heapBytesPerPeerSnapshot: total }
  } finally {
    await server.stop()
  }
}

export async function run(): Promise<Figures> {
  const clients = spawnRole(HERE, 'clients')
  try {
    const snap = process.env.BENCH_HEAPSNAP
    if (snap === 'weft' || snap === 'bare') return await heapBreakdown(snap, clients)
    const figures: Figures = await measure('weft', clients)
    if (process.env.BENCH_BARE !== '0') {
      const bare = await measure('bare', clients)
      for (const k of [
        'heapBytesPerPeer',
        'rssBytesPerPeer',
        'joinP50Ms',
        'joinP99Ms',
        'joinServerCpuUs',
        'signalsPerSec',
        'signalsPerServerCoreSec',
      ])
        figures[`bare.${k}`] = bare[k] as number
    }
    if (process.env.BENCH_CLUSTER !== '0') Object.assign(figures, await clusterPhase(HERE, clients))
    report('server', figures)
    return figures
  } finally {
    clients.child.kill()
  }
}

export default run

const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length)
if (role === 'server') await serverRole()
else if (role === 'clients') await clientsRole()
else if (isMain(import.meta.url)) await run()
