/**
 * The node's trust boundary, attacked by a peer it is linked to.
 *
 * Three real nodes join through an in-process signal server with relay links
 * (no WebRTC): a victim, a well-behaved node and a hostile one. The hostile
 * node is an ordinary OverlayNode whose authenticated link to the victim we
 * abuse from the inside: `link.send` with arbitrary bodies of every Kind,
 * `link.sendPiece` with junk and mutated frames (sealed on the relay link's
 * secure channel, whose keys the hostile end holds), and for the bulk phase its
 * signal client's relay directly (the relay pipe paces itself at 200 KiB/s,
 * which would make thousands of frames slow). Inputs come from fast-check,
 * seeded, with a fixed number of runs:
 *
 * - random Values for every Kind (plain, and objects tagged like real messages);
 * - mutants of real messages of every protocol (mesh, route, sync, chord,
 *   link): wrong types, huge / negative / fractional / non-finite numbers,
 *   long strings and arrays, wrong ids, forged signatures, bad hop counts and
 *   TTLs, and "signed mutants", whose inner part is mutated and then signed
 *   correctly by the hostile node, so the checks behind the signature run;
 * - raw bytes: random pieces, real frames with bytes flipped, truncated or
 *   extended, bad headers, inconsistent chunks, a deflate bomb, frames over
 *   the size limits.
 *
 * For every frame the test predicts, with the same decoder and validators,
 * whether the victim's link must drop it, and checks that the victim counted
 * exactly those drops. Then it checks that the victim never threw (process
 * listeners), that its tables stayed within their configured bounds during
 * and after thousands of junk frames (sampled every 10 ms), that it was not
 * thrown off the signal server, and that it still works: a broadcast arrives
 * exactly once, requests both ways, the sync table and the DHT.
 *
 * Three regressions this test found (fixed in overlay.ts):
 * - Chord `route` messages naming made-up origins made the victim dial each
 *   one through the signal server, which then dropped it as abusive (600
 *   frames were enough). On-demand dials now have a budget.
 * - A link-setup signal (`rtc`) over an open relay link started a second
 *   relay dial to the same peer, and the open link's frames went to that
 *   dial's pipe and vanished for 10-15 s. Relay frames now go by session id.
 * - Sync's per-neighbour budget was forgotten every tick for a peer on a
 *   non-mesh link, so such a peer had 64 messages per 100 ms instead of per
 *   5 s. Sync frames are now taken from mesh links only.
 *
 * Not sent: a well-formed link `bye` (it closes the link, as it should) and a
 * well-formed Chord `leave` (a ring member that lies about its neighbours can
 * mislead Chord for a while; that is Chord's trust model, not input
 * validation).
 */
import { deflateRawSync } from 'node:zlib'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { concatBytes, toHex } from '../shared/bytes.ts'
import { parseChordMsg, type RecordWire } from '../shared/chord/messages.ts'
import { providerSigningBytes, recordSigningBytes, signRecord } from '../shared/chord/records.ts'
import { parseMeshMsg } from '../shared/mesh/messages.ts'
import { parsePresenceMsg } from '../shared/presence/messages.ts'
import { envelopeSigned, parseRouteMsg } from '../shared/router/messages.ts'
import { SIGN_DOMAIN } from '../shared/sync/entry.ts'
import { parseSyncMsg } from '../shared/sync/messages.ts'
import type { Value } from '../shared/types.ts'
import { CHUNK_BYTES, CHUNK_MARKER, type Reassembler, splitMessage } from '../shared/wire/chunk.ts'
import { decodeFrame, type Frame, Kind, WIRE_VERSION } from '../shared/wire/frame.ts'
import { encodeValue } from '../shared/wire/value.ts'
import { createSignalServer, type SignalServer } from '../signal-server/index.ts'
import { arbValue } from '../test/arbitraries.ts'
import { until } from '../test/until.ts'
import { NodeFacade } from './facade.ts'
import { joinOverlay } from './index.ts'
import { DEFAULT_RECV_LIMITS, type Link, parseLinkControl } from './links/link.ts'
import type { RelayPipe } from './links/relay.ts'
import type { OverlayNode } from './overlay.ts'

const SEED = 20_261_107
/** The node's own mesh topic for sync broadcasts (overlay.ts). */
const SYNC_TOPIC = '\u0000sync'

// Configured bounds asserted below (defaults of overlay.ts, mesh.ts, sync.ts, chunk.ts).
const MAX_CANDIDATES = 256
const MAX_LINKS = 48
const MAX_VIA_QUEUE = 64
const MESH_MISSING_PER_PEER = 1_024
const MESH_MISSING_MAX = 4_096
const MESH_ANNOUNCE_ROUNDS = 4
const MESH_PENDING_MAX = 256
const MESH_PENDING_MAX_BYTES = 8_388_608
const MESH_CACHE_MAX = 1_024
const MESH_CACHE_MAX_BYTES = 16_777_216
const MESH_SEEN_MAX = 20_000
const SYNC_PER_AUTHOR = 1_000
const SYNC_PEER_MSG_BUDGET = 64
const REASM_MAX_PARTIAL = 16
const REASM_MAX_PARTIAL_BYTES = 8 * 1024 * 1024
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024
const VIA_DIAL_BURST = 32

// ---------------------------------------------------------------- the network

/** A node's link to `peer`: the Link its dialer made (the link table holds NodeLinks). */
const linkOf = (n: OverlayNode, peer: string) => n.links.get(peer) as Link | undefined
const reassemblerOf = (l: Link) => (l as unknown as { reassembler: Reassembler }).reassembler

let server: SignalServer
let good: OverlayNode
let victim: OverlayNode
let hostile: OverlayNode

const processErrors: unknown[] = []
const onProcessError = (err: unknown) => void processErrors.push(err)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The hostile node's end of its link to the victim. */
function hostileLink(): Link {
  const l = linkOf(hostile, victim.id)
  if (l?.state !== 'open') throw new Error('the hostile link to the victim is not open')
  return l
}

/** The victim's end of the same link. */
function victimLink(): Link {
  const l = linkOf(victim, hostile.id)
  if (l?.state !== 'open') throw new Error("the victim's link to the hostile node is not open")
  return l
}

/**
 * Every frame sent before this has been decoded by the victim: its link
 * decodes in arrival order, and this request travels behind them. Then wait
 * for the asynchronous handlers (signature checks) to finish (a heuristic:
 * counters that stopped moving; exact counts of asynchronous drops are
 * awaited where they are asserted). Resolves with the time the echo came back.
 */
let barrierN = 0
async function barrier(): Promise<number> {
  const n = ++barrierN
  expect(await hostile.request(victim.id, 'echo', n, { timeoutMs: 20_000 })).toBe(n)
  const answered = Date.now()
  let last = ''
  for (let i = 0; i < 100; i++) {
    await sleep(40)
    const now = JSON.stringify([
      victim.counters,
      victim.mesh.counters,
      victim.syncTable.counters,
      victim.chord.counters,
    ])
    if (now === last) return answered
    last = now
  }
  return answered
}

/** Fold the victim's table sizes into `peak` (the largest seen of each). */
function sizes(peak: Record<string, number>): void {
  const me = victim.manager
  const link = linkOf(victim, hostile.id)
  const reasm = link ? reassemblerOf(link).stats() : { partial: 0, partialBytes: 0 }
  let via = 0
  for (const q of me.viaQueue.values()) via = Math.max(via, q.length)
  // Entries by the hostile author (whatever their keys became in mutation): those carrying its key.
  const pk = toHex(hostile.identity.publicKey)
  let syncHostile = 0
  for (const e of (victim.syncTable.exportState() as { e: [Uint8Array, Uint8Array][] }).e)
    if (toHex(e[1]) === pk) syncHostile++
  const now: Record<string, number> = {
    ...victim.mesh.sizes(),
    syncHostile,
    syncEntries: victim.syncTable.size().entries,
    candidates: me.candidates.size,
    links: victim.links.size,
    dials: victim.dialer.dials.size,
    backoff: me.backoff.size,
    viaQueue: via,
    partial: reasm.partial,
    partialBytes: reasm.partialBytes,
    recvQueueBytes: link ? link.queuedBytes : 0,
  }
  for (const [k, v] of Object.entries(now)) peak[k] = Math.max(peak[k] ?? 0, v)
}

/** Drop counters of the victim (its own, its link's, and its protocols'), flat. */
function drops(): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(victim.stats())) if (/(^|\.)drop\./.test(k)) out[k] = v
  return out
}

function delta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0)
  return out
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0)

// ---------------------------------------------------------------- frames by hand

/** Sentinel floats a mutation may put anywhere; the encoder below turns them into NaN and infinities. */
const NAN_MARK = 1.25e-300
const INF_MARK = 2.25e-300
const NEG_INF_MARK = 3.25e-300

function f64(x: number): Uint8Array {
  const b = new Uint8Array(9)
  b[0] = 0xcb
  new DataView(b.buffer).setFloat64(1, x)
  return b
}
const MARKS: [Uint8Array, Uint8Array][] = [
  [f64(NAN_MARK), f64(Number.NaN)],
  [f64(INF_MARK), f64(Number.POSITIVE_INFINITY)],
  [f64(NEG_INF_MARK), f64(Number.NEGATIVE_INFINITY)],
]

/** MessagePack of `v`, with the sentinel floats replaced by NaN / ±Infinity (no codec would write those). */
function encodeJunk(v: Value): Uint8Array {
  const b = encodeValue(v)
  for (const [mark, repl] of MARKS) {
    for (let i = 0; i + 9 <= b.length; i++) {
      let hit = true
      for (let j = 0; j < 9 && hit; j++) hit = b[i + j] === mark[j]
      if (hit) b.set(repl, i)
    }
  }
  return b
}

/** A frame as the wire carries it (uncompressed), around a body that may hold NaN or infinities. */
function frameBytes(kind: number, body: Value): Uint8Array {
  return concatBytes(new Uint8Array([WIRE_VERSION, kind, 0]), encodeJunk(body))
}

/** MessagePack of a sync query { t: 'q', k: [n one-digit keys] }, written by hand. */
function bigQuery(n: number): Uint8Array {
  const head = new Uint8Array([0x82, 0xa1, 0x74, 0xa1, 0x71, 0xa1, 0x6b, 0xdd, 0, 0, 0, 0])
  new DataView(head.buffer).setUint32(8, n)
  const keys = new Uint8Array(2 * n)
  for (let i = 0; i < n; i++) keys.set([0xa1, 0x30 + (i % 10)], 2 * i)
  return concatBytes(head, keys)
}

/** Message ids for hand-made chunks, far from the hostile link's own counter (which starts at 0). */
let junkMsgId = 0x8000_0000
function pieces(frame: Uint8Array): Uint8Array[] {
  return splitMessage(frame, junkMsgId++ >>> 0, 64 * 1024 * 1024)
}

function withSid(sid: number, piece: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + piece.length)
  new DataView(out.buffer).setUint32(0, sid)
  out.set(piece, 4)
  return out
}

/**
 * Bulk sending: straight into the hostile node's signal-server relay with
 * its link's session id, skipping the relay pipe's pacing. In small bursts,
 * so the server's queue to the victim never passes its congestion mark.
 */
async function blast(list: Uint8Array[]): Promise<void> {
  const link = hostileLink()
  const sid = (link.pipe as RelayPipe).sid
  const relay = (b: Uint8Array) => void hostile.signalClient.relay(victim.id, withSid(sid, b))
  let bytes = 0
  for (const p of list) {
    // Sealed on the link's secure channel (the hostile peer holds its keys), in order with the link's own.
    await link.sendPiece(p, relay)
    bytes += p.length
    if (bytes > 256 * 1024) {
      bytes = 0
      await sleep(15)
    } else await new Promise((r) => setImmediate(r))
  }
}

const VALIDATORS = {
  [Kind.Link]: (b: Value) => parseLinkControl(b) !== null,
  [Kind.Mesh]: (b: Value) => parseMeshMsg(b) !== null,
  [Kind.Route]: (b: Value) => parseRouteMsg(b) !== null,
  [Kind.Sync]: (b: Value) => parseSyncMsg(b) !== null,
  [Kind.Chord]: (b: Value) => parseChordMsg(b) !== null,
  [Kind.Presence]: (b: Value) => parsePresenceMsg(b) !== null,
}

/** What the victim's link must do with a frame: drop it (the counter it bumps), or pass it on. */
async function predict(frame: Uint8Array): Promise<{ drop: string } | { frame: Frame }> {
  if (frame.length > MAX_MESSAGE_BYTES + 3) return { drop: 'reassembler' }
  let reason = ''
  const f = await decodeFrame(frame, {
    validators: VALIDATORS,
    onDrop: (r) => {
      reason = r
    },
  })
  return f ? { frame: f } : { drop: `drop.frame.${reason}` }
}

/** Frames we must not send: they are legitimate orders the victim rightly obeys (see the header). */
function obeyed(f: Frame): boolean {
  if (f.kind === Kind.Link) return parseLinkControl(f.body)?.t === 'bye'
  if (f.kind === Kind.Chord) return parseChordMsg(f.body)?.t === 'leave'
  return false
}

/** Frames sent per phase that the victim's link must pass on, and must drop. */
const totals: Record<string, { passed: number; dropped: number }> = {}

/** Counters predicted per batch, checked exactly against the victim's. */
class Expect {
  readonly drops: Record<string, number> = {}
  passed = 0
  skipped = 0
  async add(frame: Uint8Array): Promise<boolean> {
    const p = await predict(frame)
    if ('frame' in p) {
      if (obeyed(p.frame)) {
        this.skipped++
        return false
      }
      this.passed++
    } else if (p.drop !== 'reassembler') this.drops[p.drop] = (this.drops[p.drop] ?? 0) + 1
    return true
  }
  check(before: Record<string, number>, phase: string): void {
    const t = totals[phase] ?? { passed: 0, dropped: 0 }
    totals[phase] = t
    t.passed += this.passed
    t.dropped += sum(this.drops)
    const got = delta(before, drops())
    for (const [k, n] of Object.entries(this.drops)) expect({ [k]: got[k] ?? 0 }).toEqual({ [k]: n })
    // No frame-level drop we did not predict.
    for (const k of Object.keys(got))
      if (k.startsWith('drop.frame.')) expect({ [k]: got[k] }).toEqual({ [k]: this.drops[k] ?? 0 })
  }
}

// ---------------------------------------------------------------- real messages and their mutants

const ID_CHARS = '0123456789abcdef'
const arbId = fc.string({ unit: fc.constantFrom(...ID_CHARS), minLength: 40, maxLength: 40 })
const someIds = fc.sample(arbId, { seed: SEED, numRuns: 8 })
const anId = (i: number) => someIds[i % someIds.length] as string

interface Template {
  name: string
  kind: Kind
  base: Value
  /** Build the body from the (mutated) base: sign what needs signing. */
  finish?: (mutated: Value) => Promise<Value>
}

let templates: Template[] = []

/** As the hostile node's protocols sign: with its core's keyring (in the network's scope). */
async function sign(data: Uint8Array): Promise<Uint8Array> {
  return hostile.core.keys.sign(data)
}

/** Sign `make()`'s bytes; a mutant that cannot be encoded gets 64 random bytes instead. */
async function signOr(make: () => Uint8Array): Promise<Uint8Array> {
  try {
    return await sign(make())
  } catch {
    return crypto.getRandomValues(new Uint8Array(64))
  }
}

function gossipBody(topic: string, data: Value): Value {
  return {
    v: 2,
    o: hostile.id,
    k: hostile.identity.publicKey,
    t: topic,
    d: data,
    n: crypto.getRandomValues(new Uint8Array(8)),
    w: Date.now(),
  }
}

async function signedGossip(body: Value, hops = 1): Promise<Value> {
  const payload = encodeJunk(body)
  return { type: 'gossip', payload, sig: await sign(payload), hops }
}

function syncBody(key: string, value: Value, wall = Date.now(), lease: Value = 0): Value {
  return [key, wall, 0, lease, value]
}

async function syncEntry(body: Value): Promise<Value> {
  let bytes: Uint8Array
  try {
    bytes = encodeJunk(body)
  } catch {
    bytes = new Uint8Array([0x90])
  }
  return [bytes, hostile.identity.publicKey, await signOr(() => concatBytes(SIGN_DOMAIN, bytes))]
}

function recordBase(key: string): Value {
  return { k: key, vb: encodeValue({ junk: key }), d: false, a: hostile.id, q: Date.now(), t: Date.now() }
}

async function signedRecord(m: Value): Promise<Value> {
  const r = m as Record<string, Value>
  const s = await signOr(() => recordSigningBytes(r as never))
  return { ...r, pk: hostile.identity.publicKey, s }
}

async function signedProvider(m: Value): Promise<Value> {
  const p = m as Record<string, Value>
  const s = await signOr(() => providerSigningBytes(p as never))
  return { ...p, pk: hostile.identity.publicKey, s }
}

async function fwd(inner: Value, dst: string): Promise<Value> {
  let body: Uint8Array
  try {
    body = encodeJunk(inner)
  } catch {
    body = new Uint8Array([0xc1])
  }
  const n = crypto.getRandomValues(new Uint8Array(8))
  const w = Date.now()
  const sig = await signOr(() => envelopeSigned(hostile.id, dst, n, w, body))
  return { t: 'fwd', src: hostile.id, dst, ttl: 32, n, w, pk: hostile.identity.publicKey, sig, body }
}

/** Real messages of every protocol, valid as built (some signed by the hostile node). */
async function buildTemplates(): Promise<Template[]> {
  const now = Date.now()
  const entry = await syncEntry(syncBody('hostile/t', 1))
  const record = await signedRecord(recordBase('hostile/rec'))
  const provider = await signedProvider({ k: 'hostile/prov', p: hostile.id, t: now, ttl: 60_000 })
  const fp = new Uint8Array(8).fill(7)
  return [
    // mesh
    { name: 'gossip', kind: Kind.Mesh, base: await signedGossip(gossipBody('junk', { a: 1 })) },
    {
      name: 'gossip (signed mutant)',
      kind: Kind.Mesh,
      base: gossipBody('junk', { a: 1 }),
      finish: (b) => signedGossip(b),
    },
    { name: 'ihave', kind: Kind.Mesh, base: { type: 'ihave', ids: [anId(0), anId(1)] } },
    { name: 'graft', kind: Kind.Mesh, base: { type: 'graft', ids: [anId(2)] } },
    { name: 'prune', kind: Kind.Mesh, base: { type: 'prune', id: anId(3) } },
    { name: 'mesh route', kind: Kind.Mesh, base: { type: 'route', o: anId(6), m: 1 } },
    {
      name: 'ihave (route flags)',
      kind: Kind.Mesh,
      base: { type: 'ihave', ids: [anId(0), anId(1)], r: [1] },
    },
    // route
    { name: 'msg', kind: Kind.Route, base: { t: 'msg', topic: 'junk', data: { a: 1 } } },
    { name: 'req', kind: Kind.Route, base: { t: 'req', id: 1, method: 'nothing', data: null } },
    { name: 'res', kind: Kind.Route, base: { t: 'res', id: 987_654, data: 1 } },
    { name: 'err', kind: Kind.Route, base: { t: 'err', id: 987_655, code: 'remote', message: 'x' } },
    { name: 'sig', kind: Kind.Route, base: { t: 'sig', data: { t: 'dial', mesh: true } } },
    {
      name: 'sig rtc',
      kind: Kind.Route,
      base: { t: 'sig', data: { t: 'rtc', s: { type: 'offer' }, mesh: true } },
    },
    { name: 'noroute', kind: Kind.Route, base: { t: 'noroute', dst: anId(4), n: new Uint8Array(8) } },
    { name: 'fwd', kind: Kind.Route, base: await fwd({ t: 'msg', topic: 'junk', data: 1 }, victim.id) },
    { name: 'fwd transit', kind: Kind.Route, base: await fwd({ t: 'msg', topic: 'junk', data: 1 }, anId(5)) },
    {
      name: 'fwd (signed mutant)',
      kind: Kind.Route,
      base: { t: 'req', id: 5, method: 'nothing', data: [1, 2] },
      finish: (m) => fwd(m, victim.id),
    },
    // sync
    { name: 'put', kind: Kind.Sync, base: { t: 'p', e: entry } },
    {
      name: 'put (signed mutant)',
      kind: Kind.Sync,
      base: syncBody('hostile/m', { v: 1 }, now, 5000),
      finish: async (b) => ({ t: 'p', e: await syncEntry(b) }),
    },
    { name: 'summary', kind: Kind.Sync, base: { t: 's', r: new Uint8Array(8).fill(1) } },
    { name: 'buckets', kind: Kind.Sync, base: { t: 'b', b: new Uint8Array(512).fill(2) } },
    { name: 'versions', kind: Kind.Sync, base: { t: 'v', i: [0, 1], v: [['k', now, 0, fp]] } },
    { name: 'query', kind: Kind.Sync, base: { t: 'q', k: ['hostile/t', 'k'] } },
    { name: 'entries', kind: Kind.Sync, base: { t: 'e', e: [entry] } },
    // presence
    { name: 'pull', kind: Kind.Presence, base: { t: 'pull' } },
    {
      name: 'dump',
      kind: Kind.Presence,
      base: {
        t: 'dump',
        r: [[new Uint8Array(12).fill(3), new Uint8Array(32).fill(4), new Uint8Array(64), 5]],
      },
    },
    // chord
    { name: 'ping', kind: Kind.Chord, base: { t: 'ping', r: 1 } },
    { name: 'find', kind: Kind.Chord, base: { t: 'find', r: 2, k: anId(0) } },
    { name: 'found', kind: Kind.Chord, base: { t: 'found', r: 3, p: anId(1), s: [anId(2)] } },
    { name: 'closer', kind: Kind.Chord, base: { t: 'closer', r: 4, n: [anId(3)] } },
    { name: 'route', kind: Kind.Chord, base: { t: 'route', r: 5, k: anId(4), o: anId(5), h: 1 } },
    { name: 'routed', kind: Kind.Chord, base: { t: 'routed', r: 6, p: anId(6), s: [anId(7)], h: 2 } },
    { name: 'getPred', kind: Kind.Chord, base: { t: 'getPred', r: 7 } },
    { name: 'pred', kind: Kind.Chord, base: { t: 'pred', r: 8, p: null, s: [anId(0)] } },
    { name: 'notify', kind: Kind.Chord, base: { t: 'notify' } },
    { name: 'newSucc', kind: Kind.Chord, base: { t: 'newSucc' } },
    { name: 'table', kind: Kind.Chord, base: { t: 'table', r: 9 } },
    { name: 'fingers', kind: Kind.Chord, base: { t: 'fingers', r: 10, f: [anId(1)] } },
    {
      name: 'offer',
      kind: Kind.Chord,
      base: { t: 'offer', r: 11, recs: [['k', anId(2), now, now]], provs: [['k', anId(3), now]] },
    },
    {
      name: 'want',
      kind: Kind.Chord,
      base: { t: 'want', r: 12, recs: [['k', anId(2)]], provs: [['k', anId(4)]] },
    },
    { name: 'store', kind: Kind.Chord, base: { t: 'store', r: 13, recs: [record], provs: [provider] } },
    {
      name: 'store (signed record mutant)',
      kind: Kind.Chord,
      base: recordBase('hostile/rm'),
      finish: async (m) => ({ t: 'store', r: 0, recs: [await signedRecord(m)], provs: [] }),
    },
    {
      name: 'store (signed provider mutant)',
      kind: Kind.Chord,
      base: { k: 'hostile/pm', p: hostile.id, t: now, ttl: 60_000 },
      finish: async (m) => ({ t: 'store', r: 0, recs: [], provs: [await signedProvider(m)] }),
    },
    { name: 'stored', kind: Kind.Chord, base: { t: 'stored', r: 14, ok: 1, err: null, q: null } },
    { name: 'get', kind: Kind.Chord, base: { t: 'get', r: 15, k: 'hostile/rec', a: hostile.id } },
    { name: 'got', kind: Kind.Chord, base: { t: 'got', r: 16, rec: record } },
    { name: 'getProv', kind: Kind.Chord, base: { t: 'getProv', r: 17, k: 'hostile/prov' } },
    { name: 'provs', kind: Kind.Chord, base: { t: 'provs', r: 18, provs: [provider] } },
    { name: 'chord err', kind: Kind.Chord, base: { t: 'err', r: 19, code: 'busy' } },
    // link
    { name: 'link ping', kind: Kind.Link, base: { t: 'ping', ts: now } },
    { name: 'link pong', kind: Kind.Link, base: { t: 'pong', ts: now } },
    { name: 'pex', kind: Kind.Link, base: { t: 'pex', peers: [anId(5), anId(6)] } },
    { name: 'role', kind: Kind.Link, base: { t: 'role', mesh: true } },
    {
      name: 'hello',
      kind: Kind.Link,
      base: {
        t: 'hello',
        pk: hostile.identity.publicKey,
        nonce: new Uint8Array(32),
        mesh: true,
        ek: new Uint8Array(32).fill(9),
      },
    },
    { name: 'proof', kind: Kind.Link, base: { t: 'proof', sig: new Uint8Array(64).fill(9) } },
  ]
}

type Path = (string | number)[]

function pathsOf(v: Value, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix)
  if (prefix.length >= 4 || v === null || typeof v !== 'object' || v instanceof Uint8Array) return out
  if (Array.isArray(v))
    for (let i = 0; i < Math.min(3, v.length); i++) pathsOf(v[i] as Value, [...prefix, i], out)
  else for (const [k, x] of Object.entries(v)) pathsOf(x, [...prefix, k], out)
  return out
}

/** A copy of `v` with the value at `path` replaced by f(old); undefined removes it. */
function update(v: Value, path: Path, f: (old: Value | undefined) => Value | undefined): Value {
  if (path.length === 0) return f(v) ?? null
  const [head, ...rest] = path as [string | number, ...Path]
  if (Array.isArray(v)) {
    const out = [...v]
    const i = head as number
    if (rest.length > 0) out[i] = update(out[i] ?? null, rest, f)
    else {
      const nv = f(out[i])
      if (nv === undefined) out.splice(i, 1)
      else out[i] = nv
    }
    return out
  }
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const out: Record<string, Value> = { ...v }
    const old = out[head as string]
    if (rest.length === 0) {
      const nv = f(old)
      if (nv === undefined) delete out[head as string]
      else out[head as string] = nv
    } else out[head as string] = update(old ?? null, rest, f)
    return out
  }
  return v
}

const TAGS = (
  'gossip ihave graft prune fwd sig noroute msg req res err p s b v q e ping pong find found closer route ' +
  'routed getPred pred notify newSucc table fingers offer want store stored get got getProv provs hello proof pex role'
).split(' ')
const FIELDS = (
  't type r k s p n o h f e i v m ids id payload sig hops topic data method code message src dst ttl pk body ' +
  'peers mesh ts nonce recs provs ok err rec constructor toString'
).split(' ')

/** Leaves a mutation may put anywhere: wrong types, awkward numbers, near-miss ids, sizes past limits. */
const arbJunk: fc.Arbitrary<Value> = fc.oneof(
  fc.constantFrom<Value>(
    null,
    true,
    false,
    0,
    -1,
    -0,
    0.5,
    -0.5,
    255,
    256,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    -(2 ** 53),
    1e308,
    -1e308,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    NAN_MARK,
    INF_MARK,
    NEG_INF_MARK,
    '',
    'x',
    'leave',
    'bye',
    'f'.repeat(40),
    'F'.repeat(40),
    'g'.repeat(40),
    '0'.repeat(39),
    '0'.repeat(41),
    [],
    {},
  ),
  fc.constantFrom(0, 1, 7, 8, 31, 33, 63, 65, 513).map((n) => new Uint8Array(n).fill(0xab)),
  fc.constantFrom(257, 4097).map((n) => 'k'.repeat(n)),
  arbId,
  fc.constantFrom(...TAGS),
  arbValue,
)

type Op = 'replace' | 'delete' | 'tweak' | 'grow' | 'shrink' | 'retag' | 'add'
interface Step {
  path: number
  op: Op
  leaf: Value
  n: number
  field: string
  tag: string
}
const arbStep: fc.Arbitrary<Step> = fc.record({
  path: fc.nat(),
  op: fc.constantFrom<Op>('replace', 'delete', 'tweak', 'grow', 'shrink', 'retag', 'add'),
  leaf: arbJunk,
  n: fc.nat(1_000_000),
  field: fc.constantFrom(...FIELDS),
  tag: fc.constantFrom(...TAGS),
})
const arbMutant = fc.record({ template: fc.nat(), steps: fc.array(arbStep, { minLength: 1, maxLength: 3 }) })

function tweak(old: Value | undefined, n: number): Value | undefined {
  if (old instanceof Uint8Array) {
    const b = old.length === 0 ? new Uint8Array(1) : new Uint8Array(old)
    b[n % b.length] = ((b[n % b.length] as number) ^ (1 << (n % 8))) & 0xff
    return b
  }
  if (typeof old === 'string') {
    if (/^[0-9a-f]{40}$/.test(old)) return [old.toUpperCase(), `${old.slice(0, 39)}g`, old.slice(1)][n % 3]
    return [`${old}x`, old.slice(1), old.toUpperCase(), ''][n % 4]
  }
  if (typeof old === 'number')
    return [old + 1, old - 1, -old - 1, old * 2 ** 32, old + 0.5, 2 ** 53, NAN_MARK][n % 7]
  if (typeof old === 'boolean') return !old
  return old === null ? 0 : null
}

function grow(old: Value | undefined, n: number): Value | undefined {
  if (Array.isArray(old)) {
    const len = [33, 65, 161, 257, 513][n % 5] as number
    const fill = old[0] ?? anId(n)
    return Array.from({ length: len }, () => fill)
  }
  if (typeof old === 'string')
    return old.repeat(Math.ceil(([257, 4097][n % 2] as number) / (old.length || 1)) + 1)
  if (old instanceof Uint8Array) return new Uint8Array([65, 1025, 20_000][n % 3] as number).fill(n & 0xff)
  if (typeof old === 'number') return [2 ** 53, 1e21, 2 ** 32 + 1][n % 3]
  return old
}

function shrink(old: Value | undefined, n: number): Value | undefined {
  if (Array.isArray(old)) return n % 2 ? [] : old.slice(0, -1)
  if (typeof old === 'string') return old.slice(0, -1)
  if (old instanceof Uint8Array) return old.subarray(0, Math.max(0, old.length - 1 - (n % 4)))
  return undefined
}

function mutate(base: Value, steps: Step[]): Value {
  let v = base
  for (const s of steps) {
    const paths = pathsOf(v)
    const path = paths[s.path % paths.length] as Path
    switch (s.op) {
      case 'replace':
        v = update(v, path, () => s.leaf)
        break
      case 'delete':
        v = path.length === 0 ? s.leaf : update(v, path, () => undefined)
        break
      case 'tweak':
        v = update(v, path, (o) => tweak(o, s.n))
        break
      case 'grow':
        v = update(v, path, (o) => grow(o, s.n))
        break
      case 'shrink':
        v = update(v, path, (o) => shrink(o, s.n))
        break
      case 'retag':
        if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array))
          v = 'type' in v ? { ...v, type: s.tag } : { ...v, t: s.tag }
        break
      case 'add':
        v = update(v, path, (o) =>
          o !== null && typeof o === 'object' && !Array.isArray(o) && !(o instanceof Uint8Array)
            ? { ...o, [s.field]: s.leaf }
            : o,
        )
        break
    }
  }
  return v
}

// ---------------------------------------------------------------- setup

beforeAll(async () => {
  process.on('unhandledRejection', onProcessError)
  process.on('uncaughtException', onProcessError)
  server = await createSignalServer({
    port: 0,
    host: '127.0.0.1',
    log: () => {},
    // The bulk phase pushes a few MB through the relay quickly; the server's own quota and its
    // congestion limit are not under test (on a loaded machine the victim reads its socket slower
    // than the blast arrives, and the server would drop frames whose drops the test counts exactly).
    relayBytesPerSec: 256 * 1024 * 1024,
    congestionMaxPackets: 1_000_000,
    congestionMaxBytes: 2 ** 40,
  })
  const opts = { signal: server.address, network: 'hostile-peer', relay: 'force' as const }
  good = NodeFacade.internals(await joinOverlay(opts))
  victim = NodeFacade.internals(await joinOverlay(opts))
  hostile = NodeFacade.internals(await joinOverlay(opts))
  const nodes = [good, victim, hostile]
  await until('three linked nodes on one ring', () =>
    nodes.every(
      (n) =>
        n.linkDetails().filter((l) => l.mesh).length === 2 &&
        n.chord.successors().length === 2 &&
        n.chord.predecessor() !== null,
    ),
  )
  for (const n of nodes) n.handle('echo', (d) => d)
  // Every drop is counted here, over one link: the victim does not drop the link for the forged
  // copies (strikes.ts) until the last test, which checks that it does.
  victim.strikes.max = Number.POSITIVE_INFINITY
  templates = await buildTemplates()
})

afterAll(async () => {
  await Promise.all([good, victim, hostile].map((n) => n?.close()))
  await server?.close()
  process.off('unhandledRejection', onProcessError)
  process.off('uncaughtException', onProcessError)
})

// ---------------------------------------------------------------- the attack

describe('a hostile peer', () => {
  let dropsAtStart: Record<string, number>
  let reconnectsAtStart: number
  const sent = { frames: 0, predictedDrops: 0 }

  it('sends a link-setup signal over the open relay link: the link keeps working (regression)', async () => {
    dropsAtStart = drops()
    reconnectsAtStart = victim.stats().signalReconnects as number
    // The victim used to answer it with a second relay dial to the same peer, and the open link's
    // frames went to that dial's pipe (another session id) and vanished: the link was deaf for
    // 10-15 s. Relay frames now go by session id, and a node whose relays are forced does not
    // take WebRTC signals as an upgrade of an open relay link at all.
    const link = victimLink()
    await hostileLink().send({
      kind: Kind.Route,
      body: { t: 'sig', data: { t: 'rtc', s: { type: 'offer', sdp: 'v=0' }, mesh: true } },
    })
    const t0 = Date.now()
    // The echo behind it comes back in milliseconds (the bound leaves a loaded machine ample room),
    // not after the 10-15 s the regression cost. Timed to the echo, not to the barrier's settling.
    const answered = await barrier()
    expect(answered - t0).toBeLessThan(5000)
    expect(victim.dialer.dials.has(hostile.id)).toBe(false)
    expect(victimLink()).toBe(link)
    expect(processErrors).toEqual([])
  })

  it('cannot get a fresh sync budget by taking its link out of the mesh (regression)', async () => {
    const link = hostileLink()
    const sync = () => ({ ...victim.syncTable.counters })
    // Out of the mesh on the victim's side: a role message, and no agreeing to come back meanwhile.
    const setMesh = link.setMesh
    link.setMesh = () => {}
    try {
      await link.sendControl({ t: 'role', mesh: false })
      await until('the link to leave the mesh', () => !victimLink().isMesh)
      const before = sync()
      const notMesh = victim.counters['drop.sync.not-mesh'] ?? 0
      // 300 queries over about a second: the budget is 64 messages per neighbour per 5 s. Sync's
      // tick (every 100 ms) used to forget a non-neighbour's budget, so all 300 were answered.
      for (let i = 0; i < 300; i++) {
        await link.send({ kind: Kind.Sync, body: { t: 'q', k: ['hostile/t'] } })
        if (i % 30 === 29) await sleep(100)
      }
      await barrier()
      const answered = (delta(before, sync())['out.e'] ?? 0) as number
      expect(answered).toBeLessThanOrEqual(SYNC_PEER_MSG_BUDGET)
      // (and the hostile node's own summaries: it still counts the link as a mesh link)
      expect((victim.counters['drop.sync.not-mesh'] ?? 0) - notMesh).toBeGreaterThanOrEqual(300)
    } finally {
      link.setMesh = setMesh
      await link.sendControl({ t: 'role', mesh: true })
    }
    await until('the link to rejoin the mesh', () => victimLink().isMesh)
    expect(processErrors).toEqual([])
  })

  it('sends random Values of every Kind through link.send: each one the validators refuse is dropped and counted', async () => {
    const kinds = [Kind.Link, Kind.Mesh, Kind.Route, Kind.Sync, Kind.Chord]
    // Plain random Values, and objects tagged like real messages with random fields, so parsers get past the tag.
    const tagged = fc
      .tuple(fc.constantFrom(...TAGS), fc.dictionary(fc.constantFrom(...FIELDS), arbValue, { maxKeys: 5 }))
      .map(([tag, fields]): Value => ({ ...fields, [fields.type !== undefined ? 'type' : 't']: tag }))
    const arbFrame = fc.tuple(fc.constantFrom(...kinds), fc.oneof(arbValue, tagged))
    await fc.assert(
      fc.asyncProperty(fc.array(arbFrame, { minLength: 25, maxLength: 25 }), async (batch) => {
        const before = drops()
        const exp = new Expect()
        const link = hostileLink()
        for (const [kind, body] of batch) {
          if (!(await exp.add(frameBytes(kind, body)))) continue
          await link.send({ kind, body })
          sent.frames++
        }
        await barrier()
        exp.check(before, 'values')
        sent.predictedDrops += sum(exp.drops)
        expect(processErrors).toEqual([])
      }),
      { seed: SEED, numRuns: 12, endOnFailure: true },
    )
    expect(totals.values?.dropped).toBeGreaterThan(250)
  })

  it('sends mutants of real mesh, route, sync, chord and link messages: refused by shape, or by the protocol', async () => {
    const protocolDrops = sum(delta(dropsAtStart, drops()))
    await fc.assert(
      fc.asyncProperty(fc.array(arbMutant, { minLength: 25, maxLength: 25 }), async (batch) => {
        const before = drops()
        const exp = new Expect()
        const link = hostileLink()
        for (const m of batch) {
          const t = templates[m.template % templates.length] as Template
          const mutated = mutate(t.base, m.steps)
          const body = t.finish ? await t.finish(mutated) : mutated
          const frame = frameBytes(t.kind, body)
          // Growth compounds (a long array of long byte strings): keep the run fast, sizes near limits come later.
          if (frame.length > 256 * 1024) continue
          if (!(await exp.add(frame))) continue
          // Small frames through the relay pipe; larger ones (paced at 200 KiB/s there) straight to the relay.
          if (frame.length <= 16 * 1024) void link.sendPiece(frame)
          else await blast(pieces(frame))
          sent.frames++
        }
        await barrier()
        exp.check(before, 'mutants')
        sent.predictedDrops += sum(exp.drops)
        expect(processErrors).toEqual([])
      }),
      { seed: SEED + 1, numRuns: 12, endOnFailure: true },
    )
    expect(totals.mutants?.dropped).toBeGreaterThan(50)
    expect(totals.mutants?.passed).toBeGreaterThan(50)
    // Mutants that passed the shape checks were refused further in: by signature, quota, hop count, time...
    const protocol = Object.entries(delta(dropsAtStart, drops())).filter(
      ([k]) => !k.startsWith('drop.frame.'),
    )
    expect(protocol.length).toBeGreaterThan(5)
    expect(sum(delta(dropsAtStart, drops()))).toBeGreaterThan(protocolDrops)
  })

  it('sends raw junk through link.sendPiece: random bytes, real frames mangled, bad headers and chunks', async () => {
    const real = await Promise.all(
      templates.map(async (t) => frameBytes(t.kind, t.finish ? await t.finish(t.base) : t.base)),
    )
    const arbMangled = fc
      .tuple(
        fc.nat(),
        fc.nat(),
        fc.nat(255),
        fc.constantFrom('flip', 'truncate', 'extend', 'version', 'kind', 'flags'),
      )
      .map(([which, at, byte, how]) => {
        const f = new Uint8Array(real[which % real.length] as Uint8Array)
        const i = at % f.length
        switch (how) {
          case 'flip':
            {
              const j = 3 + (at % Math.max(1, f.length - 3))
              f[j] = ((f[j] ?? 0) ^ (1 << (at % 8))) & 0xff
            }
            return f
          case 'truncate':
            return f.subarray(0, Math.max(1, i))
          case 'extend':
            return concatBytes(f, new Uint8Array(1 + (at % 9)).fill(byte))
          case 'version':
            f[0] = [0, 2, 0x7f, 0xbf][at % 4] as number
            return f
          case 'kind':
            f[1] = [0, 6, 255][at % 3] as number
            return f
          default:
            f[2] = [2, 0x80, 0xfe, 1][at % 4] as number // 1: "deflated", but it is not
            return f
        }
      })
    // A chunk whose header lies: wrong count, index past the end, length over the limit, short payload.
    const arbChunk = fc
      .tuple(fc.nat(0xffff), fc.nat(0xffff), fc.nat(0xffffffff), fc.nat(64))
      .map(([index, count, length, payload]) => {
        const c = new Uint8Array(13 + payload)
        const view = new DataView(c.buffer)
        view.setUint8(0, CHUNK_MARKER)
        view.setUint32(1, junkMsgId++ >>> 0)
        view.setUint16(5, index)
        view.setUint16(7, count)
        view.setUint32(9, length)
        return { chunk: c }
      })
    const arbPiece = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => ({ raw: b })),
      arbMangled.map((f) => ({ raw: f })),
      arbChunk,
    )
    const before0 = reassemblerOf(victimLink()).stats().dropped
    let chunksSent = 0
    await fc.assert(
      fc.asyncProperty(fc.array(arbPiece, { minLength: 40, maxLength: 40 }), async (batch) => {
        const before = drops()
        const exp = new Expect()
        const link = hostileLink()
        for (const p of batch) {
          if ('chunk' in p) {
            void link.sendPiece(p.chunk)
            chunksSent++
            continue
          }
          if (p.raw.length === 0) continue
          // A first byte in the marker range goes to the reassembler, not the frame decoder.
          const marker = (p.raw[0] as number) >= 0xc0 && (p.raw[0] as number) <= 0xcf
          if (!marker && !(await exp.add(p.raw))) continue
          void link.sendPiece(p.raw)
          sent.frames++
        }
        await barrier()
        exp.check(before, 'raw')
        sent.predictedDrops += sum(exp.drops)
        expect(processErrors).toEqual([])
      }),
      { seed: SEED + 2, numRuns: 10, endOnFailure: true },
    )
    expect(totals.raw?.dropped).toBeGreaterThan(150)
    const after = reassemblerOf(victimLink()).stats()
    expect(sum(after.dropped) - sum(before0)).toBeGreaterThanOrEqual(chunksSent)
    expect(after.partial).toBeLessThanOrEqual(REASM_MAX_PARTIAL)
  })

  it('floods thousands of junk frames: every table the victim keeps stays within its bound', async () => {
    const before = drops()
    const dialRateBefore = victim.counters['send.dial-rate'] ?? 0
    const routedBackBefore = victim.stats()['dht.route.back'] ?? 0
    const recordsBefore = victim.chord.storedKeys()
    const peak: Record<string, number> = {}
    const watcher = setInterval(() => sizes(peak), 10)
    const list: Uint8Array[] = []
    const frame = (kind: Kind, body: Value) => list.push(...pieces(frameBytes(kind, body)))

    // Mesh: announcements of 10,240 broadcasts that do not exist (the missing table is the place to fill).
    for (let i = 0; i < 20; i++)
      frame(Kind.Mesh, {
        type: 'ihave',
        ids: Array.from({ length: 512 }, () => toHex(crypto.getRandomValues(new Uint8Array(20)))),
      })
    // Mesh: 1,200 genuine broadcasts (the payload cache holds 1,024), 600 forged ones (pending checks).
    for (let i = 0; i < 1200; i++) frame(Kind.Mesh, await signedGossip(gossipBody('junk', i)))
    for (let i = 0; i < 600; i++) {
      const g = (await signedGossip(gossipBody('junk', -i))) as Record<string, Value>
      frame(Kind.Mesh, { ...g, sig: crypto.getRandomValues(new Uint8Array(64)) })
    }
    // Mesh near the limits: a payload of 1 MiB + 1 byte; hop counts 0, 65 (over the default maxHops) and 256.
    frame(Kind.Mesh, { type: 'gossip', payload: new Uint8Array(1_048_577), sig: new Uint8Array(64), hops: 1 })
    frame(Kind.Mesh, { ...((await signedGossip(gossipBody('junk', 'h'))) as Record<string, Value>), hops: 0 })
    frame(Kind.Mesh, {
      ...((await signedGossip(gossipBody('junk', 'h'))) as Record<string, Value>),
      hops: 65,
    })
    frame(Kind.Mesh, {
      ...((await signedGossip(gossipBody('junk', 'h'))) as Record<string, Value>),
      hops: 256,
    })
    // Sync: 1,100 signed entries by the hostile author, as broadcasts (the per-author quota is 1,000).
    for (let i = 0; i < 1100; i++)
      frame(
        Kind.Mesh,
        await signedGossip(
          gossipBody(SYNC_TOPIC, { t: 'p', e: await syncEntry(syncBody(`hostile/${i}`, i)) }),
        ),
      )
    // Sync near the limits: a body of 1 MiB + 1, a query of 65,537 keys.
    frame(Kind.Sync, {
      t: 'p',
      e: [new Uint8Array(1_048_577), hostile.identity.publicKey, new Uint8Array(64)],
    })
    // (by hand: over MAX_VALUE_ITEMS, no encoder of ours writes it)
    list.push(...pieces(concatBytes(new Uint8Array([WIRE_VERSION, Kind.Sync, 0]), bigQuery(65_537))))
    // Chord: lookups answered to 600 made-up origins; records with forged signatures; unsolicited answers.
    for (let i = 0; i < 600; i++)
      frame(Kind.Chord, {
        t: 'route',
        r: i + 1,
        k: victim.id,
        o: toHex(crypto.getRandomValues(new Uint8Array(20))),
        h: 1,
      })
    for (let i = 0; i < 200; i++) {
      const r = (await signedRecord(recordBase(`hostile/forged/${i}`))) as Record<string, Value>
      frame(Kind.Chord, { t: 'store', r: i + 1, recs: [{ ...r, s: new Uint8Array(64).fill(i) }], provs: [] })
    }
    for (let i = 0; i < 300; i++) frame(Kind.Chord, { t: 'pred', r: 1_000_000 + i, p: null, s: [anId(i)] })
    // Route: 500 requests for no handler, 300 forwarded envelopes with forged signatures.
    for (let i = 0; i < 500; i++) frame(Kind.Route, { t: 'req', id: i, method: 'nothing', data: i })
    for (let i = 0; i < 300; i++)
      frame(Kind.Route, {
        ...((await fwd({ t: 'msg', topic: 'junk', data: i }, victim.id)) as Record<string, Value>),
        sig: new Uint8Array(64).fill(i),
      })
    // Link: peer exchange with 3,200 made-up peers.
    for (let i = 0; i < 100; i++)
      frame(Kind.Link, {
        t: 'pex',
        peers: Array.from({ length: 32 }, () => toHex(crypto.getRandomValues(new Uint8Array(20)))),
      })
    // Raw: 1,000 random pieces, 100 first chunks of messages that never finish, a frame over 4 MiB,
    // and a deflate bomb (5 MiB of zeros in a few KB).
    for (let i = 0; i < 1000; i++) list.push(crypto.getRandomValues(new Uint8Array(1 + (i % 60))))
    for (let i = 0; i < 100; i++) {
      const first = pieces(frameBytes(Kind.Mesh, { junk: new Uint8Array(40_000).fill(i) }))[0] as Uint8Array
      list.push(first)
    }
    const huge = new Uint8Array(CHUNK_BYTES)
    huge.set([CHUNK_MARKER, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0x01, 0x01, 0, 0x40, 0, 0x04])
    list.push(huge)
    const bomb = concatBytes(
      new Uint8Array([WIRE_VERSION, Kind.Mesh, 1]),
      deflateRawSync(new Uint8Array(5 * 1024 * 1024)),
    )
    list.push(...pieces(bomb), ...pieces(bomb))

    await blast(list)
    await barrier()
    // The barrier's settling is a heuristic; the results of signature checks asserted exactly below
    // (forged records and envelopes, the hostile author's sync quota, the payload cache) are awaited.
    await until(
      'the signature checks of the flood to finish',
      () => {
        sizes(peak)
        const d = delta(before, drops())
        return (
          victim.mesh.sizes().pending === 0 &&
          (d['dht.drop.record.signature'] ?? 0) >= 200 &&
          (d['drop.route.forged'] ?? 0) >= 300 &&
          (d['dht.drop.unexpectedReply'] ?? 0) >= 300 &&
          (peak.syncHostile ?? 0) >= SYNC_PER_AUTHOR &&
          (peak.cached ?? 0) >= MESH_CACHE_MAX
        )
      },
      20_000,
    )
    await sleep(300)
    const got = delta(before, drops())

    expect(processErrors).toEqual([])
    // Drops were counted, by reason.
    expect(got['mesh.drop.missingQuota'] ?? 0).toBeGreaterThan(9_000)
    expect(got['mesh.drop.badSignature'] ?? 0).toBeGreaterThan(0)
    expect(got['mesh.drop.tooLarge'] ?? 0).toBeGreaterThanOrEqual(1)
    expect(got['mesh.drop.badHops'] ?? 0).toBeGreaterThanOrEqual(2)
    expect(got['sync.drop.quota'] ?? 0).toBeGreaterThan(0)
    expect(got['dht.drop.record.signature'] ?? 0).toBe(200)
    // All 300 of the flood; on a loaded machine an honest reply that came after its request timed
    // out counts here too (301 seen once under load 12-15).
    expect(got['dht.drop.unexpectedReply'] ?? 0).toBeGreaterThanOrEqual(300)
    expect(got['dht.drop.unexpectedReply'] ?? 0).toBeLessThanOrEqual(305)
    expect(got['drop.route.forged'] ?? 0).toBe(300)
    expect(got['drop.frame.too-large'] ?? 0).toBeGreaterThanOrEqual(2) // the bomb, twice
    expect(got['drop.frame.invalid'] ?? 0).toBeGreaterThanOrEqual(2) // 1 MiB sync body, 256 hops
    expect(got['drop.frame.items'] ?? 0).toBeGreaterThanOrEqual(1) // 65,537 keys: over MAX_VALUE_ITEMS, not decoded
    // The made-up Chord origins (the victim is responsible for k, so it answers o): it is linked to
    // none of them, so each answer goes back the way its route came, to the hostile peer, and no dial
    // is made for them (route.back; within the peer's reply budget). Regressions: it dialled all 600
    // and the server dropped it as abusive; then a dial budget let a burst and a rate of them through.
    const routedBack = (victim.stats()['dht.route.back'] ?? 0) - routedBackBefore
    expect(routedBack).toBeGreaterThan(0)
    expect(routedBack + (got['dht.drop.replyBudget'] ?? 0)).toBe(600)
    expect((victim.counters['send.dial-rate'] ?? 0) - dialRateBefore).toBe(0)
    expect(sum(got)).toBeGreaterThan(list.length / 2)

    // Bounds, at their peak during the flood (sampled every 10 ms) and now.
    clearInterval(watcher)
    sizes(peak)
    expect(peak.missing).toBeLessThanOrEqual(MESH_MISSING_MAX)
    expect(peak.missing).toBeGreaterThanOrEqual(MESH_MISSING_PER_PEER) // the hostile node's quota filled...
    expect(peak.pending).toBeLessThanOrEqual(MESH_PENDING_MAX)
    expect(peak.pendingBytes).toBeLessThanOrEqual(MESH_PENDING_MAX_BYTES)
    expect(peak.cached).toBe(MESH_CACHE_MAX) // ...and the payload cache: the bounds, not the traffic, stopped them
    expect(peak.cachedBytes).toBeLessThanOrEqual(MESH_CACHE_MAX_BYTES)
    expect(peak.seen).toBeLessThanOrEqual(MESH_SEEN_MAX)
    expect(peak.announceQueue).toBeLessThanOrEqual(MESH_CACHE_MAX * MESH_ANNOUNCE_ROUNDS)
    expect(peak.syncHostile).toBe(SYNC_PER_AUTHOR)
    expect(peak.candidates).toBeLessThanOrEqual(MAX_CANDIDATES)
    expect(peak.links).toBeLessThanOrEqual(MAX_LINKS)
    expect(peak.dials).toBeLessThanOrEqual(VIA_DIAL_BURST + 2)
    expect(peak.viaQueue).toBeLessThanOrEqual(MAX_VIA_QUEUE)
    expect(peak.partial).toBe(REASM_MAX_PARTIAL)
    expect(peak.partialBytes).toBeLessThanOrEqual(REASM_MAX_PARTIAL_BYTES)
    expect(peak.recvQueueBytes).toBeLessThanOrEqual(DEFAULT_RECV_LIMITS.maxQueueBytes)
    // Nothing the hostile node sent in the flood was a record the DHT could keep (all forged).
    expect(victim.chord.storedKeys()).toBe(recordsBefore)
    expect(victim.core.router.sizes().pending).toBe(0)
  })

  it('did not get the victim thrown off the signal server', () => {
    const m = server.metrics()
    expect(m['kicked.abuse'] ?? 0).toBe(0)
    expect(victim.stats().signalReconnects).toBe(reconnectsAtStart)
    expect(victim.stats().signalConnected).toBe(1)
    // And the server dropped none of the junk on its way (the exact counts above rely on it).
    expect(m['relayErrors.congested'] ?? 0).toBe(0)
  })

  it('writes into the victim’s DHT namespace, replays its older record, dates one ahead: each refused and counted in stats()', async () => {
    const key = 'owned/profile'
    await victim.dht.put(key, 'first')
    // Three nodes, three copies: the hostile node holds the victim's record, and can replay it.
    await until('the hostile node to hold the first version', () => hostile.chord.holds(key, victim.id))
    const held = (hostile.chord.exportState() as { recs: RecordWire[] }).recs
    const first = held.find((r) => r.k === key && r.a === victim.id) as RecordWire
    await victim.dht.put(key, 'second')
    const before = victim.stats()
    const now = Date.now()
    const above = { seq: first.q + 1_000_000, time: now }
    const inVictimsName = await signRecord(
      hostile.identity,
      victim.id,
      key,
      encodeValue('stolen'),
      false,
      above,
    )
    const victimsKey: RecordWire = { ...inVictimsName, pk: victim.identity.publicKey }
    const tombstone = await signRecord(hostile.identity, victim.id, key, new Uint8Array(0), true, above)
    const ahead = await signRecord(hostile.identity, hostile.id, 'owned/ahead', encodeValue(1), false, {
      seq: 1,
      time: now + 10 * 60_000,
    })
    const recs = [first, inVictimsName, victimsKey, tombstone, ahead]
    await hostileLink().send({ kind: Kind.Chord, body: { t: 'store', r: 0, recs, provs: [] } })
    await barrier()
    const refused = () => delta(before, victim.stats())
    await until('the five refusals', () => {
      const d = refused()
      const counted = [
        'dht.store.stale',
        'dht.drop.record.author',
        'dht.drop.record.signature',
        'dht.drop.record.future',
      ]
      return counted.reduce((n, k) => n + (d[k] ?? 0), 0) >= recs.length
    })
    const d = refused()
    expect(d['dht.store.stale']).toBe(1)
    expect(d['dht.drop.record.author']).toBe(2)
    expect(d['dht.drop.record.signature']).toBe(1)
    expect(d['dht.drop.record.future']).toBe(1)
    expect(await good.dht.get(key, { author: victim.id })).toBe('second')
    expect(await victim.dht.get(key)).toBe('second')
    expect(victim.chord.holds('owned/ahead', hostile.id)).toBe(false)
    expect(processErrors).toEqual([])
  })

  it('leaves the victim working: one broadcast delivery, requests both ways, sync table and DHT', async () => {
    const nonce = toHex(crypto.getRandomValues(new Uint8Array(8)))
    const seen: Value[] = []
    const off = victim.subscribe('news', (d, meta) => {
      if (meta.from === good.id && (d as { nonce?: string })?.nonce === nonce) seen.push(d)
    })
    await good.broadcast('news', { nonce })
    await until('the broadcast', () => seen.length > 0)
    expect(await victim.request(good.id, 'echo', { x: 1 })).toEqual({ x: 1 })
    expect(await good.request(victim.id, 'echo', [1, 'two'])).toEqual([1, 'two'])
    await victim.sync.set('ok/victim', { v: 1 })
    await good.sync.set('ok/good', { v: 2 })
    await until(
      'sync both ways',
      () => good.sync.get('ok/victim') !== undefined && victim.sync.get('ok/good') !== undefined,
    )
    expect(good.sync.get('ok/victim')).toEqual({ v: 1 })
    expect(victim.sync.get('ok/good')).toEqual({ v: 2 })
    await victim.dht.put('ok/dht', { v: 3 })
    expect(await good.dht.get('ok/dht', { author: victim.id })).toEqual({ v: 3 })
    expect(await victim.dht.get('ok/dht')).toEqual({ v: 3 })
    await good.dht.put('ok/dht2', 'four')
    expect(await victim.dht.get('ok/dht2', { author: good.id })).toBe('four')
    await sleep(300)
    expect(seen).toHaveLength(1)
    off()
    expect(processErrors).toEqual([])
  })

  it('counted the junk, and its traces age out', async () => {
    const total = delta(dropsAtStart, drops())
    expect(sum(total)).toBeGreaterThan(sent.predictedDrops)
    // Missing ids are given up after their GRAFT attempts; nothing waits on a signature check.
    await until('the missing table to drain', () => victim.mesh.sizes().missing === 0, 20_000)
    expect(victim.mesh.sizes().pending).toBe(0)
    expect(processErrors).toEqual([])
  })

  it('keeps sending broadcasts with forged signatures: the victim drops its link (misbehaved)', async () => {
    victim.strikes.max = 8
    victim.strikes.forget(hostile.id) // (the strikes the junk above earned, uncapped)
    const before = victim.stats()['misbehaved.mesh.badSignature'] ?? 0
    const link = hostileLink()
    // This link object: once dropped, the two may link again at once (the connection manager re-dials).
    const dropped = victimLink()
    for (let i = 0; i < 8; i++) {
      const g = (await signedGossip(gossipBody('forged', i))) as Record<string, Value>
      await link.send({ kind: Kind.Mesh, body: { ...g, sig: crypto.getRandomValues(new Uint8Array(64)) } })
    }
    await until('the victim to drop the link', () => dropped.state === 'closed')
    expect(victim.stats()['link.misbehaved']).toBe(1)
    expect(victim.stats()['misbehaved.mesh.badSignature']).toBe(before + 8)
    expect(victim.stats()['link.closed.misbehaved']).toBe(1)
    expect(processErrors).toEqual([])
  })
})
