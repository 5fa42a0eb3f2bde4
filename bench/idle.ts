/**
 * idle: what a stable network costs each node when nobody does anything.
 *
 * 24 whole nodes (createTestNetwork: the real host, connection manager and
 * protocols, default options, over an in-memory network on a virtual clock)
 * join, link and settle for 2 minutes; then 5 minutes of quiet are measured:
 * every frame a node sends (protocol frames by kind, and link controls:
 * heartbeats, PEX, roles) and its encoded bytes. The data channel's own
 * framing (SCTP/DTLS, ~30–60 B a message) is not counted.
 *
 * - msgsPerNodeSec / bytesPerNodeSec: mean over nodes. Goal ≤ 3 and ≤ 400.
 * - byKind: messages/s and bytes/s per node, per frame kind.
 * - crashNoticedMs: a node crashes; how long until every ring neighbour has
 *   dropped it and the ring is whole again (median and max over 5 crashes,
 *   and each), and until no live node holds it in presence.
 * - before: the same figures measured before the idle back-off (issue 14,
 *   at commit 575a812), printed beside them.
 *
 * What backs off while nothing changes (and snaps back on any change): Chord's
 * stabilize / fix-fingers / check-predecessor (to idleMaxMs, 30 s), presence
 * announcements (to maxIntervalMs, 300 s; a crash is reported by the crashed
 * node's link neighbours), table anti-entropy (to antiEntropyMaxMs, 60 s) and
 * peer exchange (sent when it changes, else every 120 s).
 *
 *   npm run bench -- idle
 */
import { createTestNetwork } from '../testing/node/index.ts'
import { isMain, median, report } from './report.ts'

const N = Number(process.env.WEFT_IDLE_N ?? 24)
const WARM_MS = 120_000
const MEASURE_MS = 300_000
const KINDS: Record<string, string> = {
  1: 'link',
  2: 'mesh',
  3: 'route',
  4: 'sync',
  5: 'chord',
  6: 'presence',
  7: 'swarm',
  8: 'topic',
  control: 'control',
}

export async function run(): Promise<Record<string, unknown>> {
  const t0 = performance.now()
  const net = await createTestNetwork(N, { seed: 24 })
  await net.linked()
  await net.advance(WARM_MS)
  const msgs = new Map<string, number>()
  const bytes = new Map<string, number>()
  net.onFrame((f) => {
    const k = KINDS[String(f.kind)] ?? String(f.kind)
    msgs.set(k, (msgs.get(k) ?? 0) + 1)
    bytes.set(k, (bytes.get(k) ?? 0) + f.bytes)
  })
  await net.advance(MEASURE_MS)
  net.onFrame(undefined)
  const perNodeSec = (x: number) => x / N / (MEASURE_MS / 1000)
  const byKind: Record<string, { msgs: number; bytes: number }> = {}
  let m = 0
  let b = 0
  for (const [k, n] of msgs) {
    byKind[k] = { msgs: round(perNodeSec(n), 3), bytes: round(perNodeSec(bytes.get(k) ?? 0), 1) }
    m += n
    b += bytes.get(k) ?? 0
  }

  // Failure detection still works: crash a node, time until the ring is whole without it.
  const noticed: number[] = []
  const gone: number[] = []
  for (let i = 0; i < 5; i++) {
    const live = net.live()
    const victim = live[(i * 7) % live.length]
    if (!victim) break
    const start = net.clock.now()
    net.crash(victim)
    // Presence first (it ends sooner): the ring's time is then read at its own moment, or at once.
    await net.run(() => net.live().every((w) => !w.presence.get().has(victim.id)), { timeoutMs: 300_000 })
    gone.push(net.clock.now() - start)
    await net.linked({ timeoutMs: 300_000 })
    noticed.push(net.clock.now() - start)
  }
  const figures = {
    n: N,
    msgsPerNodeSec: round(perNodeSec(m), 2),
    bytesPerNodeSec: Math.round(perNodeSec(b)),
    byKind,
    crashNoticedMsP50: Math.round(median(noticed)),
    crashNoticedMsMax: Math.round(Math.max(...noticed)),
    crashNoticedMs: noticed.map(Math.round).join(' '),
    presenceGoneMsMax: Math.round(Math.max(...gone)),
    before: JSON.stringify(BEFORE),
    wallMs: Math.round(performance.now() - t0),
  }
  await net.close()
  report('idle', figures)
  return figures
}

/** Measured with this bench before the back-off (commit 575a812, same machine): per node. */
const BEFORE = {
  msgsPerNodeSec: 23.94,
  bytesPerNodeSec: 2857,
  byKind: { chord: [4.97, 733.4], sync: [0.763, 13], mesh: [17.505, 1897.9], control: [0.706, 212.6] },
  crashNoticedMsP50: 16636,
  crashNoticedMsMax: 16867,
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d

if (isMain(import.meta.url)) await run()
