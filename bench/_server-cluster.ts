/**
 * The cluster phase of `bench server`: two weft signal servers (separate
 * processes) on one real redis-server. 50 senders registered on instance A
 * relay 1 KiB frames to 50 targets registered on instance B (each sender at
 * 40 frames/s: 2,000 a second in all, what two starved instances on a busy
 * 2-core machine still carry without a backlog), then to 50 targets on A
 * itself, as the reference. Figures: frames delivered per second, and per
 * second of CPU of the servers involved (both instances for the
 * cross-instance case, since each frame costs both), and how many frames
 * each instance's inbox received: a frame goes to its target's instance only,
 * so B hears exactly the frames for its nodes and A none of its own.
 */
import { startRedis } from '../test/redis-kit.ts'
import { type Role, spawnRole } from './_server-kit.ts'

const PAIRS = 50
const RATE = 40
const BYTES = 1024
const MS = 5000

type Cpu = { user: number; system: number }
const cpuSeconds = (a: Cpu, b: Cpu) => (b.user + b.system - a.user - a.system) / 1e6

export async function clusterPhase(script: string, clients: Role): Promise<Record<string, number>> {
  const redis = await startRedis()
  const redisArgs = [`--redis=${redis.url}`, '--secret=bench instances share this secret', '--prefix=bench']
  const a = spawnRole(script, 'server', redisArgs, !!process.env.BENCH_PROF_CLUSTER)
  const b = spawnRole(script, 'server', redisArgs)
  try {
    const [addrA, addrB] = await Promise.all([a.call<string>('address'), b.call<string>('address')])
    console.log(`cluster: instances at ${addrA} and ${addrB}`)
    await clients.call('prepare', { count: 3 * PAIRS })
    await clients.call('fill', { addr: addrA, count: PAIRS, concurrency: 20, group: 'a' })
    await clients.call('fill', { addr: addrB, count: PAIRS, concurrency: 20, group: 'b' })
    await clients.call('fill', { addr: addrA, count: PAIRS, concurrency: 20, group: 'c' })

    const phase = async (to: string, servers: Role[]) => {
      const m0 = await Promise.all([a, b].map((s) => s.call<Record<string, number>>('metrics')))
      const c0 = await Promise.all(servers.map((s) => s.call<Cpu>('cpu')))
      const r = await clients.call<{
        sent: number
        received: number
        errors: Record<string, number>
        seconds: number
      }>('relay', {
        from: 'a',
        to,
        bytes: BYTES,
        rate: RATE,
        ms: MS,
      })
      const c1 = await Promise.all(servers.map((s) => s.call<Cpu>('cpu')))
      if (Object.keys(r.errors).length > 0) console.log('cluster: relay errors', r.errors)
      const m1 = await Promise.all([a, b].map((s) => s.call<Record<string, number>>('metrics')))
      if (process.env.BENCH_DEBUG) console.log(r, m1)
      const cpu = servers.reduce((sum, _, i) => sum + cpuSeconds(c0[i] as Cpu, c1[i] as Cpu), 0)
      const remote = (i: 0 | 1) => (m1[i]?.relayFramesRemote ?? 0) - (m0[i]?.relayFramesRemote ?? 0)
      return { ...r, cpu, remoteAtA: remote(0), remoteAtB: remote(1) }
    }
    console.log(`cluster: ${PAIRS} senders on A → ${PAIRS} targets on B, ${RATE} frames/s each`)
    const across = await phase('b', [a, b])
    console.log(`cluster: the same to ${PAIRS} targets on A`)
    const local = await phase('c', [a])
    await clients.call('leave')
    return {
      'cluster.framesSent': across.sent,
      'cluster.framesDelivered': across.received,
      'cluster.framesPerSec': Math.round(across.received / across.seconds),
      'cluster.framesPerServerCoreSec': Math.round(across.received / Math.max(0.01, across.cpu)),
      // A frame for B's node reaches B's inbox only: A's inbox hears none of them.
      'cluster.remoteFramesAtA': across.remoteAtA,
      'cluster.remoteFramesAtB': across.remoteAtB,
      'cluster.localFramesPerSec': Math.round(local.received / local.seconds),
      'cluster.localFramesPerServerCoreSec': Math.round(local.received / Math.max(0.01, local.cpu)),
    }
  } finally {
    await Promise.all([a.stop(), b.stop()])
    redis.stop()
  }
}
