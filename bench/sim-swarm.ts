/**
 * sim-swarm: how long one seeder's file takes to reach every node, as the
 * swarm grows, in the simulator.
 *
 * N nodes, one seeder, a flash crowd (every other node starts the download
 * at once). 16 KiB pieces, every node uploads 160 bytes/ms (a piece leaves
 * in 100 ms, the time unit below), one-way latency 5-50 ms, downloads
 * unlimited; the DHT is a shared provider list. Each row is the median of
 * SEEDS runs (different seeds).
 *
 * - last: virtual ms until the last node is done (time to full distribution)
 * - median: the median node's time
 * - per-doubling: how much `last` grew from the row before
 * - seederPieces: pieces the seeder uploaded (64 would mean each exactly once)
 * - waste: pieces received beyond what was needed (endgame duplicates, late copies)
 *
 * With the 64-piece file the time is bound by the seeder sending each piece
 * about once (64 x 100 ms); the log N part (the depth of the distribution
 * tree) is a piece-time or so per doubling. The 8-piece file shows that
 * part more plainly. Linear growth would multiply `last` by 8 from 25 to 200.
 *
 *   npm run bench -- sim-swarm
 */
import { createSwarmNet, distribute, randomBytes } from '../shared/swarm/sim-net.ts'
import { isMain, median, report } from './report.ts'

const PIECE = 16_384
const SIZES = [25, 50, 100, 200]
const SEEDS = [1, 2, 3]

async function once(seed: number, n: number, pieces: number) {
  const net = createSwarmNet({ seed, n, uplinkBytesPerMs: PIECE / 100, swarm: { pieceSize: PIECE } })
  const data = randomBytes(net.sim, pieces * PIECE)
  const seeder = net.ids[0] as string
  const d = await distribute(net, seeder, data)
  const done = await net.sim.runUntilTrue(() => d.finishedAt.size + d.failed.size >= n - 1, 600_000)
  if (!done || d.failed.size > 0)
    throw new Error(`seed ${seed} n ${n}: ${d.finishedAt.size} done, ${d.failed.size} failed`)
  const times = [...d.finishedAt.values()]
  const needed = (n - 1) * pieces
  return {
    last: Math.max(...times),
    median: median(times),
    seederPieces: net.swarm(seeder).counters['swarm.piece.out'] ?? 0,
    waste: (net.sum('swarm.piece.dup') + net.sum('swarm.piece.in') - needed) / needed,
  }
}

async function table(pieces: number) {
  const rows: Record<string, number | string>[] = []
  let prev: number | undefined
  for (const n of SIZES) {
    const runs = []
    for (const seed of SEEDS) runs.push(await once(seed, n, pieces))
    const last = median(runs.map((r) => r.last))
    rows.push({
      N: n,
      last: Math.round(last),
      median: Math.round(median(runs.map((r) => r.median))),
      'per-doubling': prev === undefined ? '' : Math.round(last - prev),
      seederPieces: median(runs.map((r) => r.seederPieces)),
      waste: `${(100 * median(runs.map((r) => r.waste))).toFixed(1)}%`,
    })
    prev = last
  }
  return rows
}

if (isMain(import.meta.url)) {
  const t0 = performance.now()
  const p64 = await table(64)
  console.log('\n64 pieces (virtual ms)')
  console.table(p64)
  const p8 = await table(8)
  console.log('\n8 pieces (virtual ms)')
  console.table(p8)
  const ratio = (rows: Record<string, number | string>[]) =>
    Number(((rows.at(-1)?.last as number) / (rows[0]?.last as number)).toFixed(2))
  report('sim-swarm', {
    pieces64: p64,
    pieces8: p8,
    'last(200)/last(25), 64 pieces (linear: 8)': ratio(p64),
    'last(200)/last(25), 8 pieces (linear: 8)': ratio(p8),
    realSeconds: Math.round((performance.now() - t0) / 1000),
  })
}
