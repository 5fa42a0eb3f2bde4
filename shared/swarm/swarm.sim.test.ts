import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { createSwarmNet, type Distribution, distribute, randomBytes } from './sim-net.ts'

const PIECE = 16_384
/** 160 bytes per ms: a 16 KiB piece leaves a node in about 100 ms. */
const UPLINK = PIECE / 100

async function run(seed: number, n: number, opts: { liars?: number[] } = {}) {
  const net = createSwarmNet({ seed, n, uplinkBytesPerMs: UPLINK, swarm: { pieceSize: PIECE }, ...opts })
  const data = randomBytes(net.sim, 64 * PIECE)
  const seeder = net.ids[0] as string
  const others = net.ids.filter((id) => id !== seeder && !(opts.liars ?? []).some((k) => net.ids[k] === id))
  for (const k of opts.liars ?? []) await net.swarm(net.ids[k] as string).add(data, { name: 'file.bin' })
  const d = await distribute(net, seeder, data, others)
  return { net, data, d, others }
}

const finished = (d: Distribution, n: number) => () => d.finishedAt.size + d.failed.size >= n

async function sameBytes(d: Distribution, data: Uint8Array, id: string) {
  const got = await (d.downloads.get(id) as NonNullable<ReturnType<typeof d.downloads.get>>).bytes()
  return got.length === data.length && Buffer.from(got).equals(Buffer.from(data))
}

describe('swarm in the simulator', () => {
  it('one seeder, a 64-piece file, 25 and 200 nodes: everyone gets it byte for byte, and 8 times the nodes take far less than 8 times as long', async () => {
    const seed = testSeed(2024)
    await withSeed(seed, async () => {
      const times: number[] = []
      for (const n of [25, 200]) {
        const { net, data, d, others } = await run(seed, n)
        expect(await net.sim.runUntilTrue(finished(d, others.length), 300_000)).toBe(true)
        expect(d.failed.size).toBe(0)
        expect(d.finishedAt.size).toBe(n - 1)
        for (const id of others.slice(0, 3)) expect(await sameBytes(d, data, id)).toBe(true)
        times.push(Math.max(...d.finishedAt.values()))
        // The seeder sent a small share of what was delivered: the swarm did the rest.
        const seederOut = net.swarm(net.ids[0] as string).counters['swarm.piece.out'] as number
        expect(seederOut).toBeLessThan(3 * 64)
        expect(net.sum('swarm.piece.in')).toBe((n - 1) * 64)
      }
      const [t25, t200] = times as [number, number]
      // Linear growth would make it 8x; log N, a few piece-times more (bench/sim-swarm.ts has the table).
      expect(t200 / t25).toBeLessThan(1.6)
      // At least the time for the seeder to send each piece once (64 x 100 ms).
      expect(t25).toBeGreaterThan(6_400)
    })
  })

  it('lying peers that serve corrupted pieces are detected and banned, and every honest download completes', async () => {
    const seed = testSeed(7)
    await withSeed(seed, async () => {
      const { net, data, d, others } = await run(seed, 40, { liars: [1, 2] })
      expect(await net.sim.runUntilTrue(finished(d, others.length), 300_000)).toBe(true)
      expect(d.failed.size).toBe(0)
      expect(d.finishedAt.size).toBe(others.length)
      expect(net.sum('drop.swarm.bad-piece-hash')).toBeGreaterThan(0)
      expect(net.sum('swarm.peer.banned')).toBeGreaterThan(0)
      for (const id of others.slice(0, 5)) expect(await sameBytes(d, data, id)).toBe(true)
    })
  })

  it('the seeder leaves once the swarm holds every piece somewhere: the others finish from each other', async () => {
    const seed = testSeed(11)
    await withSeed(seed, async () => {
      const { net, data, d, others } = await run(seed, 30)
      const union = () => {
        const held = new Set<number>()
        for (const dl of d.downloads.values()) {
          const bits = dl.bits()
          if (bits)
            for (let i = 0; i < 64; i++) if (((bits[i >> 3] as number) >> (7 - (i & 7))) & 1) held.add(i)
        }
        return held.size === 64
      }
      expect(await net.sim.runUntilTrue(union, 120_000)).toBe(true)
      expect(d.finishedAt.size).toBe(0) // nobody is done yet: the rest comes from peers alone
      await net.sim.crash(net.ids[0] as string)
      expect(await net.sim.runUntilTrue(finished(d, others.length), 300_000)).toBe(true)
      expect(d.failed.size).toBe(0)
      expect(d.finishedAt.size).toBe(others.length)
      for (const id of others.slice(0, 3)) expect(await sameBytes(d, data, id)).toBe(true)
    })
  })

  it('is deterministic: the same seed gives the same finishing times', async () => {
    const once = async () => {
      const { net, d, others } = await run(5, 20)
      await net.sim.runUntilTrue(finished(d, others.length), 300_000)
      return [...d.finishedAt].sort()
    }
    expect(await once()).toEqual(await once())
  })
})
