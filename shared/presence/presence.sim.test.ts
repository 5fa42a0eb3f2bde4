/**
 * Presence in the simulator: 100 nodes (WEFT_PRESENCE_N=200 for the figures
 * in the README; it costs about four times the CPU) over the real mesh, 5 % of messages
 * lost, default options. One network goes through a node's whole life in
 * turn (the join of every node at once is the costly part): everyone sees
 * everyone; a stable minute, measured; updates; graceful leaves; crashes,
 * gone within the documented bound and not before; a late joiner that sees
 * everyone at once through its pulls. The run prints its seed on failure
 * (WEFT_SEED=… replays it).
 */
import { describe, expect, it } from 'vitest'
import { testSeed, withSeed } from '../../test/seed.ts'
import { shuffle } from '../sim/prng.ts'
import { resolvePresenceOptions } from './options.ts'
import { createPresenceNet, type PresenceNet } from './sim-net.ts'

const N = Number(process.env.WEFT_PRESENCE_N ?? 100)
const LOSS = 0.05
const TICK_MS = 100
const cfg = resolvePresenceOptions()

/** Up nodes' counters and the mesh's, summed, for a cost window. */
function totals(net: PresenceNet) {
  const t = { messages: 0, bytes: 0, payloads: 0, control: 0, presenceLink: 0, announced: 0, delivered: 0 }
  for (const id of net.sim.upIds()) {
    const c = net.sim.node(id).counters
    const m = net.node(id).mesh.counters
    const p = net.presence(id).counters
    t.messages += c.messagesOut
    t.bytes += c.bytesOut
    t.payloads += m.payloadSent ?? 0
    t.control += m.controlSent ?? 0
    t.presenceLink += (p.pullSent ?? 0) + (p.dumpSent ?? 0)
    t.announced += p.announced ?? 0
    t.delivered += m.delivered ?? 0
  }
  return t
}

/** When every up node other than `id` stopped holding it (after `from`), or undefined if some still do. */
function goneAt(net: PresenceNet, id: string, from: number): number[] {
  return net.events.filter((e) => e.id === id && e.kind === 'leave' && e.time >= from).map((e) => e.time)
}

describe('presence in the simulator', () => {
  it(`${N} nodes, ${LOSS * 100} % loss: join, a stable minute, updates, leaves, crashes and a late joiner`, async () => {
    const seed = testSeed(2024)
    await withSeed(seed, async () => {
      const net = await createPresenceNet({ seed, n: N, degree: 6, sim: { loss: LOSS, tickMs: TICK_MS } })
      const rng = net.sim.rng

      // Join: everyone sees everyone (all joined at t = 0, each announcing on its first link).
      expect(await net.runUntil(() => net.allSeeAll(), 10_000)).toBe(true)
      const joinedBy = net.sim.now
      console.log(`presence sim: ${N} nodes see each other ${joinedBy} ms after a simultaneous join`)

      // A stable minute, once the first announcements (made seeing only a few, so with the 10 s
      // interval of a small network) have given way to ones made seeing everyone: the cost per node.
      await net.sim.runFor(10_000)
      // A quiet node doubles its interval after each periodic announcement (from 10 s at N = 100,
      // 20 s at N = 200): by now it has announced at least once more than on joining.
      const base = Math.max(cfg.intervalMs, Math.ceil((1000 * N) / cfg.networkRate))
      const interval = net.presence(net.ids[0] as string).interval()
      expect(interval).toBeGreaterThan(base)
      expect(interval).toBeLessThanOrEqual(cfg.maxIntervalMs)
      const before = totals(net)
      const windowStart = net.sim.now
      await net.sim.runFor(60_000)
      const after = totals(net)
      const per = (k: keyof typeof before) => Math.round((after[k] - before[k]) / N)
      const cost = {
        messages: per('messages'),
        bytes: per('bytes'),
        payloads: per('payloads'),
        control: per('control'),
        presenceLink: per('presenceLink'),
        delivered: per('delivered'),
      }
      const announcedPerMin = after.announced - before.announced
      console.log(
        `presence sim: stable minute at N = ${N}, ${LOSS * 100} % loss, interval ${interval} ms: ` +
          `${announcedPerMin} announcements network-wide; per node ${JSON.stringify(cost)} (bytes estimated)`,
      )
      // The network-wide rate is at most networkRate (jitter brings announcements up to 10 % early),
      // and falls as the intervals double: here each node announces about twice in the minute.
      expect(announcedPerMin).toBeLessThanOrEqual(60 * cfg.networkRate * 0.5)
      expect(announcedPerMin).toBeGreaterThanOrEqual(N)
      // Every node got every announcement (give or take those crossing the window's edges).
      expect(Math.abs(cost.delivered - announcedPerMin)).toBeLessThanOrEqual(0.03 * announcedPerMin)
      expect(cost.presenceLink).toBe(0) // no pulls in a stable network
      expect(net.allSeeAll()).toBe(true)
      // Nobody alive was ever taken for gone (that needs three announcements in a row missed).
      expect(net.events.filter((e) => e.kind === 'leave')).toEqual([])
      expect(windowStart).toBeGreaterThan(joinedBy)

      // Updates reach every node.
      const movers = shuffle(rng, net.sim.upIds()).slice(0, 10)
      const t0 = net.sim.now
      await Promise.all(movers.map((id, i) => net.presence(id).set({ cursor: [i, i * 2], name: `n${i}` })))
      const updated = () =>
        net.sim.upIds().every((at) => {
          const view = net.presence(at).get()
          return movers.every((id, i) => (view.get(id)?.state as { name?: string } | null)?.name === `n${i}`)
        })
      expect(await net.runUntil(updated, 5_000)).toBe(true)
      console.log(`presence sim: 10 updates seen everywhere in ${Math.round(net.sim.now - t0)} ms`)

      // Graceful leaves: each keeps its links 1 s after leave(), then goes.
      const leavers = shuffle(rng, net.sim.upIds()).slice(0, 10)
      const t1 = net.sim.now
      await net.leave(leavers, 1_000)
      const left = () => leavers.every((id) => net.seers(id) === 0)
      expect(await net.runUntil(left, 5_000)).toBe(true)
      const leftIn = Math.max(...leavers.flatMap((id) => goneAt(net, id, t1))) - t1
      console.log(`presence sim: 10 graceful leaves seen everywhere in ${Math.round(leftIn)} ms`)
      expect(leftIn).toBeLessThanOrEqual(3_000)
      const leaveReasons = net.events
        .filter((e) => e.kind === 'leave' && leavers.includes(e.id) && !leavers.includes(e.at))
        .map((e) => e.reason)
      expect(leaveReasons.length).toBe(leavers.length * (N - 10))
      expect(leaveReasons.filter((r) => r !== 'left')).toEqual([])

      // Crashes: the victims' link neighbours report them lost lostAfterMs after their links close;
      // everyone else expires them lostGraceMs after the report arrives (none can answer it). So gone
      // everywhere within lostAfterMs + lostGraceMs + propagation (2 s allowed) + two ticks of the
      // crash, and not before lostAfterMs + lostGraceMs — long before ttl(interval), the fallback
      // when nobody reports (the intervals have backed off to tens of seconds by now).
      const victims = shuffle(rng, net.sim.upIds()).slice(0, 10)
      const observer = net.presence(net.sim.upIds().find((id) => !victims.includes(id)) as string)
      const crashAt = net.sim.now
      for (const id of victims) await net.crash(id)
      const bounds = new Map(
        victims.map((id) => {
          const iv = net.announcedInterval(id) as number
          const ttl = observer.ttl(iv) // 3 × interval + 2 s: the fallback, not reached
          const min = cfg.lostAfterMs + cfg.lostGraceMs
          return [id, { iv, ttl, min: min - 1, max: min + 2_000 + 2 * TICK_MS }]
        }),
      )
      const maxBound = Math.max(...[...bounds.values()].map((b) => b.max))
      expect(await net.runUntil(() => victims.every((id) => net.seers(id) === 0), maxBound + 1_000)).toBe(
        true,
      )
      let first = Number.POSITIVE_INFINITY
      let last = 0
      for (const id of victims) {
        const b = bounds.get(id) as { iv: number; ttl: number; min: number; max: number }
        const times = goneAt(net, id, crashAt).map((t) => t - crashAt)
        expect(times.length).toBe(N - 20)
        for (const t of times) {
          expect(t).toBeGreaterThan(b.min)
          expect(t).toBeLessThanOrEqual(b.max)
          first = Math.min(first, t)
          last = Math.max(last, t)
        }
      }
      const ivs = [...new Set([...bounds.values()].map((b) => b.iv))].join(', ')
      console.log(
        `presence sim: crashes seen everywhere ${Math.round(first)}–${Math.round(last)} ms after ` +
          `(announced intervals ${ivs} ms, ttl ${observer.ttl(Math.min(...[...bounds.values()].map((b) => b.iv)))} ms; ` +
          `bound lostAfterMs + lostGraceMs + 2 s + two ticks, ${maxBound} ms)`,
      )

      // A late joiner sees everyone at once (its pulls), long before an interval; everyone sees it.
      // The documented bound is a pull round trip, plus pullRetryMs when its pulls or their answers
      // were lost (at this test's seed both pulls are lost, and the retry brings the table).
      const newcomer = await net.add(3)
      const t2 = net.sim.now
      const up = () => net.sim.upIds()
      const seesAll = () => net.presence(newcomer).get().size === up().length
      expect(await net.runUntil(seesAll, cfg.pullRetryMs + 1_000, 10)).toBe(true)
      const sawAllIn = net.sim.now - t2
      expect(await net.runUntil(() => net.seers(newcomer) === up().length - 1, 5_000)).toBe(true)
      console.log(
        `presence sim: a late joiner saw all ${up().length} nodes in ${sawAllIn} ms, and all saw it in ${net.sim.now - t2} ms`,
      )
      expect(net.allSeeAll()).toBe(true)
      // Every table stayed within its bounds.
      for (const id of up()) expect(net.presence(id).sizes().nodes).toBe(up().length)
    })
  }, 600_000)
})
