/**
 * Signal servers that scale out (issue 15), end to end: four instances, each
 * in its own process, on one real redis-server, and eight Node peers spread
 * over them (two registered on each). Every link is relayed through the
 * servers (`relay: 'force'`), so link setup, broadcast and the DHT all
 * travel between instances. Then one instance is killed (SIGKILL: no
 * goodbye, its host cache entries left behind): its peers move to the next
 * URL of their list, and the network works again, the moved peers included.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { joinOverlay, type SignalStatus, type WeftNode } from '../client/index.ts'
import { type RedisProcess, redisSecret, startRedis } from '../test/redis-kit.ts'
import { until } from '../test/until.ts'

const INSTANCE = fileURLToPath(new URL('../test/signal-instance.ts', import.meta.url))
const N = 8
const SWEEP_MS = 300

let redis: RedisProcess
const children: ChildProcess[] = []
const nodes: WeftNode[] = []

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close().catch(() => {})))
  for (const c of children) c.kill('SIGKILL')
  redis?.stop()
})

/** One instance in a child process; resolves with its address and a way to read its metrics. */
async function instance(
  options: object,
): Promise<{ child: ChildProcess; url: string; metrics: () => Promise<Record<string, number>> }> {
  const child = fork(INSTANCE, [JSON.stringify(options)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
  children.push(child)
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`instance exited (${code})`)))
    child.once('message', (m: { address: string }) => resolve(m.address))
  })
  const metrics = () =>
    new Promise<Record<string, number>>((resolve) => {
      child.once('message', (m: { metrics: Record<string, number> }) => resolve(m.metrics))
      child.send('metrics')
    })
  return { child, url, metrics }
}

/** `from` broadcasts on `topic`; resolves once every other node got it. */
async function broadcastReachesAll(from: WeftNode, topic: string, text: string): Promise<void> {
  const got = new Set<string>()
  const offs = nodes
    .filter((n) => n !== from)
    .map((n) =>
      n.subscribe<{ text: string }>(topic, (msg) => {
        if (msg.text === text) got.add(n.id)
      }),
    )
  try {
    await from.broadcast(topic, { text })
    await until(`${text} to reach all ${N - 1} others (got ${got.size})`, () => got.size === N - 1)
  } finally {
    for (const off of offs) off()
  }
}

/** `reader` gets `author`'s record 'where' as `value` (retried while the ring settles after joins and moves). */
async function readsBack(reader: WeftNode, author: WeftNode, value: string): Promise<void> {
  let last: unknown
  await until(`${reader.id.slice(0, 6)} to read ${value}`, async () => {
    last = await reader.dht.get('where', { author: author.id }).catch((e: Error) => e.name)
    return last === value
  })
  expect(last).toBe(value)
}

describe('four instances on one redis-server, Node peers spread over them', () => {
  it('links, broadcast and the DHT work across instances; a killed instance leaves the rest serving its peers once they move', async () => {
    const redisPrefix = `c${randomBytes(4).toString('hex')}`
    const servers = await Promise.all(
      Array.from({ length: 4 }, () =>
        instance({
          port: 0,
          host: '127.0.0.1',
          puzzleBits: 0,
          redisUrl: redis.url,
          redisSecret,
          redisPrefix,
          sweepMs: SWEEP_MS,
        }),
      ),
    )
    const urls = servers.map((s) => s.url)
    // The last signal status of each node (index): where it is registered.
    const status: SignalStatus[] = []
    // Node i registers on instance i % 4 and falls back to the next ones in turn.
    // One after another: the DHT is asserted right after, and a ring built by eight simultaneous joins
    // can take longer to settle than this test waits.
    for (let i = 0; i < N; i++) {
      const k = i % 4
      const node = await joinOverlay({
        signal: [...urls.slice(k), ...urls.slice(0, k)],
        network: 'cluster',
        relay: 'force',
        wrtc: false,
        puzzleBits: 0,
        maxPeers: 4,
        targetPeers: 3,
        onSignal: (st) => {
          status[i] = st
        },
      })
      nodes.push(node)
    }
    for (const n of nodes) n.handle('ping', () => 'pong')
    const registeredAt = (i: number) => (status[i]?.state === 'registered' ? status[i]?.server : undefined)
    expect(nodes.map((_, i) => registeredAt(i))).toEqual(nodes.map((_, i) => urls[i % 4]))
    // A broadcast travels mesh links only: wait for every node to have one (links opened for the ring
    // first carry the mesh only once both ends agree; faster joins reach "linked" before that).
    await until('every node linked, on the ring and in the mesh', () =>
      nodes.every(
        (n) => n.peers().length >= 2 && n.inspect().ring.joined && n.inspect().links.some((l) => l.mesh),
      ),
    )
    await broadcastReachesAll(nodes[0] as WeftNode, 'news', 'before')
    await (nodes[3] as WeftNode).dht.put('where', 'node 3')
    await readsBack(nodes[6] as WeftNode, nodes[3] as WeftNode, 'node 3')
    // The links were relayed from instance to instance, each frame to its target's instance only.
    const before = await Promise.all(servers.map((s) => s.metrics()))
    expect(before.every((m) => (m.relayFramesRemote ?? 0) > 0)).toBe(true)

    // Kill instance 1 outright; nodes 1 and 5 move to instance 2, the next URL of their lists.
    const killed = servers[1] as (typeof servers)[number]
    killed.child.kill('SIGKILL')
    const moved = [nodes[1], nodes[5]] as WeftNode[]
    await until('the moved nodes registered on instance 2', () =>
      [1, 5].every((i) => registeredAt(i) === urls[2]),
    )
    await until('every node linked again', () => nodes.every((n) => n.peers().length >= 1))
    // Until the moved nodes' links carry traffic again both ways (a request from each to every other
    // node, retried), what they send may be lost with a link being repaired: only then is a broadcast
    // expected to reach everyone. Frames in flight through the killed instance were lost, so the far
    // end of such a link closes it (a gap in its secure channel); the moved node learns it when it next
    // sends on the link (relay-gone), or at the link's heartbeat timeout (20 s) if its goodbye is lost
    // too: hence the longer wait.
    for (const m of moved)
      for (const n of nodes)
        if (n !== m)
          await until(
            `${m.id.slice(0, 6)} to reach ${n.id.slice(0, 6)}`,
            () =>
              m.request(n.id, 'ping', null, { timeoutMs: 2000 }).then(
                (r) => r === 'pong',
                () => false,
              ),
            45_000,
          )
    await until(
      'every node in the mesh again',
      () => nodes.every((n) => n.inspect().links.some((l) => l.mesh)),
      45_000,
    )
    await broadcastReachesAll(moved[1] as WeftNode, 'news', 'after, from a moved node')
    await broadcastReachesAll(nodes[0] as WeftNode, 'news', 'after, to the moved nodes')
    await (nodes[5] as WeftNode).dht.put('where', 'node 5, moved')
    await readsBack(nodes[2] as WeftNode, nodes[5] as WeftNode, 'node 5, moved')
    await readsBack(moved[0] as WeftNode, nodes[3] as WeftNode, 'node 3')
  })
})
