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
 *   lease, a renewal (a lease taken 3 s earlier: it carries its `since`), a
 *   delete and a 60 KB value alongside. Goal ≤ 150. The mesh's own envelope
 *   around it is reported apart (meshEnvelopeBytes).
 * - contentionMs: 2 (and 5) nodes take a lease on one key at the same
 *   virtual instant (clocks ±300 ms apart); time until every replica names
 *   the same owner (the earliest acquisition) and holds the same table, mean
 *   and max over trials, without loss and with 10% loss. Also the same with
 *   the two contenders on the two sides of a partition healed 1 s later
 *   (anti-entropy has to carry the winner), measured from the heal. Each
 *   replica credits a claim only up to claimSkewMs before it first sees it
 *   (sync.ts, Claims), and here claims travel up to 15 hops of 5–50 ms and
 *   clocks differ by up to 600 ms: these run with claimSkewMs 1.5 s (2 s for
 *   the heal), what such a network needs. contentionAgreedDefaultSkew: the
 *   same five-way contention with the default 500 ms, where far replicas
 *   resolve by arrival and may disagree until the lease ends. For
 *   reference, contentionMs2NoWindow: the same with contentionWindowMs 0,
 *   i.e. the rule before contention was resolved (agreement only after the
 *   20 s lease and its grace).
 * - idleBytesPerNodeSec: what anti-entropy costs a node while nothing changes.
 * - theftTaken: a node takes a lease; a thief, `delay` ms later by its clock,
 *   broadcasts a claim dated 1 ms before that acquisition (clocks ±100 ms).
 *   The share of replicas whose owner is the thief 2 s later, per delay, with
 *   the default claimSkewMs (500 ms) and with 1.5 s: the race that claims
 *   leave open, and where it closes.
 *
 *   npm run bench -- sim-sync
 */
import { utf8 } from '../shared/bytes.ts'
import { createFakeKeyring } from '../shared/sim/fake-keys.ts'
import { shuffle } from '../shared/sim/prng.ts'
import { encodeBody, signedBytes } from '../shared/sync/entry.ts'
import type { PutMsg } from '../shared/sync/messages.ts'
import { createSyncNet, type NetMsg, type SyncNet } from '../shared/sync/sim-net.ts'
import { SYNC_TOPIC, type SyncOptions } from '../shared/sync/sync.ts'
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

const SIM = { sizeOf: (msg: NetMsg) => (msg.p === 'sync' ? encodeValue(msg.m).length : 0) }

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
  const put = async (key: string, value: Value | undefined, leaseMs = 0, heldMs = 0) => {
    const body = encodeBody(
      key,
      [wall, 3],
      leaseMs,
      value === undefined ? undefined : encodeValue(value),
      heldMs,
    )
    const msg: PutMsg = { t: 'p', e: [body, keys.publicKey, await keys.sign(signedBytes(body))] }
    const size = encodeValue(msg).length
    return { msg, overhead: size - utf8(key).length - (value === undefined ? 0 : encodeValue(value).length) }
  }
  const plain = await put('room/42/title', 'hello, weft')
  const leased = await put('room/42/title', 'hello, weft', 30_000)
  const renewal = await put('room/42/title', 'hello, weft', 30_000, 3_000)
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
      d: plain.msg,
      n: new Uint8Array(8),
    }),
    sig: new Uint8Array(64),
    hops: 3,
  }).length
  return {
    overheadBytes: plain.overhead,
    overheadBytesLease: leased.overhead,
    overheadBytesRenewal: renewal.overhead,
    overheadBytesDelete: del.overhead,
    overheadBytesLargeValue: large.overhead,
    meshEnvelopeBytes: envelope - encodeValue(plain.msg).length,
  }
}

async function contentionFigures(
  contenders: number,
  loss: number,
  partitioned: boolean,
  sync: SyncOptions = {},
) {
  const LEASE = 20_000
  const took: number[] = []
  let agreedAll = true
  for (let trial = 0; trial < CONTENTION_TRIALS; trial++) {
    const seed = SEED + 100 * contenders + trial + (partitioned ? 50 : 0) + loss * 1_000
    const net = await createSyncNet({ seed, n: N, degree: DEGREE, clockSkewMs: 300, sim: { loss }, sync })
    const { sim, ids } = net
    await sim.runFor(1_000)
    const order = shuffle(sim.rng, [...ids])
    const who = (partitioned ? [order[0], order[N - 1]] : order.slice(0, contenders)) as string[]
    if (partitioned) await sim.partition([order.slice(0, N / 2), order.slice(N / 2)])
    const key = `door/${trial}`
    await Promise.all(who.map((id) => net.sync(id).set(key, { by: id }, { leaseMs: LEASE })))
    for (const id of who) await net.node(id).settle()
    const since = (id: string) => (net.sync(id).lease(key)?.expires as number) - LEASE
    const winner = [...who].sort((x, y) => since(x) - since(y) || (x < y ? -1 : 1))[0]
    if (partitioned) {
      await sim.runFor(1_000)
      await sim.heal()
    }
    const t0 = sim.now
    // With a zero window nobody wins the contention: agreement comes when the leases end (no owner).
    const expected = sync.contentionWindowMs === 0 ? undefined : winner
    const agreed = () => ids.every((id) => net.sync(id).owner(key) === expected) && net.converged()
    const ok = await sim.runUntilTrue(agreed, 2 * LEASE)
    agreedAll &&= ok
    took.push(ok ? sim.now - t0 : Number.POSITIVE_INFINITY)
  }
  return { meanMs: Math.round(mean(took)), maxMs: Math.round(Math.max(...took)), agreedAll }
}

/** Share of replicas (the thief excepted) that hand a fresh lease to a claim back-dated by a thief `delay` ms later. */
async function theftFigures(delay: number, sync: SyncOptions = {}) {
  const LEASE = 30_000
  let taken = 0
  let replicas = 0
  for (let trial = 0; trial < THEFT_TRIALS; trial++) {
    const net = await createSyncNet({
      seed: SEED + 300 + trial,
      n: N,
      degree: DEGREE,
      clockSkewMs: 100,
      sync,
    })
    const { sim, ids } = net
    await sim.runFor(1_000)
    const [owner, thief] = shuffle(sim.rng, [...ids]) as [string, string]
    await net.set(owner, 'door', 'owner', { leaseMs: LEASE })
    const since = (net.sync(owner).lease('door')?.expires as number) - LEASE
    await sim.runFor(delay)
    const keys = createFakeKeyring(thief)
    const wall = net.clock(thief)
    const body = encodeBody('door', [wall, 0], 600_000, encodeValue('thief'), wall - (since - 1))
    const claim: PutMsg = { t: 'p', e: [body, keys.publicKey, await keys.sign(signedBytes(body))] }
    await net.node(thief).mesh?.broadcast(SYNC_TOPIC, claim)
    await sim.runFor(2_000)
    for (const id of ids) {
      if (id === thief) continue
      replicas++
      if (net.sync(id).owner('door') === thief) taken++
    }
  }
  return round(taken / replicas, 3)
}

const THEFT_TRIALS = 3
const CONTENTION_TRIALS = 5

export async function run(): Promise<Record<string, unknown>> {
  const t0 = performance.now()
  const overhead = await overheadFigures()
  const mesh = await updateFigures('mesh')
  const flood = await updateFigures('flood')
  const heal = await healFigures(5_000)
  const heal1s = await healFigures(1_000)
  const idle = await idleFigures()
  const WIDE: SyncOptions = { claimSkewMs: 1_500 }
  const c2 = await contentionFigures(2, 0, false, WIDE)
  const c5 = await contentionFigures(5, 0, false, WIDE)
  const c5loss = await contentionFigures(5, 0.1, false, WIDE)
  const cPart = await contentionFigures(2, 0, true, { claimSkewMs: 2_000 })
  const c5Default = await contentionFigures(5, 0, false)
  const theftTaken: Record<string, number> = {}
  const theftTakenWide: Record<string, number> = {}
  for (const delay of [100, 300, 500, 800, 1_500]) {
    theftTaken[`${delay}ms`] = await theftFigures(delay)
    theftTakenWide[`${delay}ms`] = await theftFigures(delay, WIDE)
  }
  // Without contention resolution (a zero window): the replicas agree only once the lease has ended.
  const cOld = await contentionFigures(2, 0, false, { ...WIDE, contentionWindowMs: 0 })
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
    contentionAgreed: c2.agreedAll && c5.agreedAll && c5loss.agreedAll && cPart.agreedAll,
    contentionMs2: c2.meanMs,
    contentionMs2Max: c2.maxMs,
    contentionMs5: c5.meanMs,
    contentionMs5Max: c5.maxMs,
    contentionMs5Loss10: c5loss.meanMs,
    contentionMs5Loss10Max: c5loss.maxMs,
    contentionHealMs: cPart.meanMs,
    contentionHealMsMax: cPart.maxMs,
    contentionAgreedDefaultSkew: c5Default.agreedAll,
    theftTaken,
    theftTakenWide,
    contentionMs2NoWindow: cOld.meanMs,
    wallMs: Math.round(performance.now() - t0),
  }
  report('sim-sync', figures)
  return figures
}

if (isMain(import.meta.url)) await run()
