/**
 * sim-sync: the sync table over the mesh, in the simulator, N = 256.
 *
 * - updateHops: hops for one update to reach every replica (the hop count of
 *   the last replica's first delivery), mean and max over updates from random
 *   origins once the mesh's tree has formed. Goal: no more than the mesh's own
 *   last-delivery hop, measured on the same network with plain broadcasts
 *   from the same origins (meshLdh). The flood transport's figure (the
 *   shortest-path depth) is given for reference.
 * - healRounds: the network splits in two halves; each side writes (40 keys
 *   of its own and 10 keys both sides write); then it heals. Anti-entropy
 *   periods from the heal to every replica holding the same table:
 *   ceil(healMs / antiEntropyMs), at the default period (5 s) and at 1 s.
 *   Goal ≤ 2. Entries sent by anti-entropy per entry a replica lacked
 *   (1 = nothing sent twice) and the anti-entropy bytes are given too.
 * - overheadBytes: the encoded `p` message (encodeValue) minus the key's
 *   UTF-8 bytes and the value's encoded bytes, for a plain set; with a
 *   lease, a delete and a 60 KB value alongside. Goal ≤ 150. The mesh's own
 *   envelope around it is reported apart (meshEnvelopeBytes).
 * - idleBytesPerNodeSec: what anti-entropy costs a node while nothing changes.
 *
 *   npm run bench -- sim-sync
 */
import { utf8 } from '../shared/bytes.ts'
import { createFakeKeyring } from '../shared/sim/fake-keys.ts'
import { shuffle } from '../shared/sim/prng.ts'
import { encodeBody, signedBytes } from '../shared/sync/entry.ts'
import type { PutMsg, SyncMsg } from '../shared/sync/messages.ts'
import { createSyncNet, type NetMsg, type SyncNet } from '../shared/sync/sim-net.ts'
import { SYNC_TOPIC } from '../shared/sync/sync.ts'
import type { Value } from '../shared/types.ts'
import { encodeValue } from '../shared/wire/value.ts'
import { isMain, report } from './report.ts'

const N = 256
const DEGREE = 6
const SEED = 2026
const WARMUP = 30
const MEASURED = 60

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d

function lastHop(net: SyncNet, msgId: string | undefined): number {
  let last = 0
  for (const h of (msgId && net.deliveries.get(msgId)?.values()) || []) last = Math.max(last, h)
  return last
}

async function updateFigures(transport: 'mesh' | 'flood') {
  const net = await createSyncNet({ seed: SEED, n: N, degree: DEGREE, transport })
  const { sim, ids } = net
  await sim.runFor(1_000)
  const hops: number[] = []
  const meshLdh: number[] = []
  let covered = 0
  for (let m = 0; m < WARMUP + MEASURED; m++) {
    const origin = ids[Math.floor(sim.rng() * N)] as string
    const key = `room/${m}`
    await net.set(origin, key, { title: 'hello', m })
    await sim.runFor(3_000)
    if (m < WARMUP) continue
    hops.push(lastHop(net, net.lastBroadcast(origin)))
    if (ids.every((id) => net.sync(id).get(key) !== undefined)) covered++
    const mesh = net.node(origin).mesh
    if (mesh) {
      const id = await mesh.broadcast('bench', { title: 'hello', m })
      await sim.runFor(3_000)
      meshLdh.push(lastHop(net, id))
    }
  }
  return { hops, meshLdh, coverage: covered / MEASURED, viaBroadcast: net.sum('accepted.broadcast') }
}

async function healFigures(antiEntropyMs: number) {
  const net = await createSyncNet({
    seed: SEED + antiEntropyMs,
    n: N,
    degree: DEGREE,
    sync: { antiEntropyMs },
    sim: SIM,
  })
  const { sim, ids } = net
  await sim.runFor(1_000)
  const order = shuffle(sim.rng, [...ids])
  const left = order.slice(0, N / 2)
  const right = order.slice(N / 2)
  await sim.partition([left, right])
  for (let i = 0; i < 40; i++) {
    await net.set(left[i] as string, `left/${i}`, { i, side: 'left' })
    await net.set(right[i] as string, `right/${i}`, { i, side: 'right' })
  }
  for (let i = 0; i < 10; i++) {
    await net.set(left[40 + i] as string, `both/${i}`, 'left')
    await net.set(right[40 + i] as string, `both/${i}`, 'right')
  }
  await sim.runFor(5_000)
  const lacking = 2 * (N / 2) * 50 // each replica lacks the other side's 40 keys and 10 newer-or-not versions
  const sentBefore = net.sum('ae.entriesSent')
  const bytesBefore = aeBytes(net)
  await sim.heal()
  const t0 = sim.now
  let converged = false
  while (!converged && sim.now - t0 < 20 * antiEntropyMs) {
    await sim.runFor(10)
    converged = net.converged()
  }
  const healMs = sim.now - t0
  return {
    converged,
    healMs,
    healRounds: Math.max(1, Math.ceil(healMs / antiEntropyMs)),
    entriesSentPerLacking: (net.sum('ae.entriesSent') - sentBefore) / lacking,
    aeKBytes: (aeBytes(net) - bytesBefore) / 1024,
  }
}

/** Bytes of sync link messages (anti-entropy) sent so far: the simulator counts only those, encoded. */
function aeBytes(net: SyncNet): number {
  let total = 0
  for (const id of net.sim.upIds()) total += net.sim.node(id).counters.bytesOut
  return total
}

const SIM = { sizeOf: (msg: NetMsg) => (msg.p === 'sync' ? encodeValue(msg.m as Value).length : 0) }

async function idleFigures() {
  const net = await createSyncNet({ seed: SEED + 7, n: N, degree: DEGREE, sim: SIM })
  const { sim, ids } = net
  for (let i = 0; i < 100; i++) await net.set(ids[i % N] as string, `k${i}`, i)
  await sim.runFor(10_000)
  const before = aeBytes(net)
  const seconds = 60
  await sim.runFor(seconds * 1_000)
  return { idleBytesPerNodeSec: (aeBytes(net) - before) / N / seconds }
}

async function overheadFigures() {
  const keys = createFakeKeyring('ab'.repeat(20))
  const wall = Date.UTC(2026, 10, 21)
  const put = async (key: string, value: Value | undefined, leaseMs = 0) => {
    const body = encodeBody(key, [wall, 3], leaseMs, value === undefined ? undefined : encodeValue(value))
    const msg: PutMsg = { t: 'p', e: [body, keys.publicKey, await keys.sign(signedBytes(body))] }
    const size = encodeValue(msg).length
    return { msg, overhead: size - utf8(key).length - (value === undefined ? 0 : encodeValue(value).length) }
  }
  const plain = await put('room/42/title', 'hello, weft')
  const leased = await put('room/42/title', 'hello, weft', 30_000)
  const del = await put('room/42/title', undefined)
  const large = await put('room/42/blob', new Uint8Array(60_000))
  // The mesh broadcast that carries it: body { v, o, k, t, d, n } signed, inside a gossip message.
  const envelope = encodeValue({
    type: 'gossip',
    payload: encodeValue({
      v: 1,
      o: 'ab'.repeat(20),
      k: keys.publicKey,
      t: SYNC_TOPIC,
      d: plain.msg as SyncMsg as Value,
      n: new Uint8Array(8),
    }),
    sig: new Uint8Array(64),
    hops: 3,
  }).length
  return {
    overheadBytes: plain.overhead,
    overheadBytesLease: leased.overhead,
    overheadBytesDelete: del.overhead,
    overheadBytesLargeValue: large.overhead,
    meshEnvelopeBytes: envelope - encodeValue(plain.msg as SyncMsg as Value).length,
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const t0 = performance.now()
  const overhead = await overheadFigures()
  const mesh = await updateFigures('mesh')
  const flood = await updateFigures('flood')
  const heal = await healFigures(5_000)
  const heal1s = await healFigures(1_000)
  const idle = await idleFigures()
  const figures = {
    nodes: N,
    degree: DEGREE,
    updates: MEASURED,
    updateHops: round(mean(mesh.hops)),
    updateHopsMax: Math.max(...mesh.hops),
    meshLdh: round(mean(mesh.meshLdh)),
    meshLdhMax: Math.max(...mesh.meshLdh),
    updateCoverage: mesh.coverage,
    floodUpdateHops: round(mean(flood.hops)),
    floodUpdateHopsMax: Math.max(...flood.hops),
    healConverged: heal.converged && heal1s.converged,
    healRounds: heal.healRounds,
    healMs: Math.round(heal.healMs),
    healRounds1s: heal1s.healRounds,
    healMs1s: Math.round(heal1s.healMs),
    healEntriesSentPerLacking: round(heal.entriesSentPerLacking),
    healAeKBytes: Math.round(heal.aeKBytes),
    ...overhead,
    idleBytesPerNodeSec: round(idle.idleBytesPerNodeSec, 1),
    wallMs: Math.round(performance.now() - t0),
  }
  report('sim-sync', figures)
  return figures
}

if (isMain(import.meta.url)) await run()
