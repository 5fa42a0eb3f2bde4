/**
 * `createTestNetwork(n, opts)`: n weft nodes, the same as in production
 * (`OverlayNode` behind the `NodeFacade` that `joinOverlay` returns: the
 * `WeftNode` interface), whose links are replaced by an in-memory network
 * (mem-transport.ts) with seeded loss and latency, partitions and crashes,
 * all on one virtual clock (clock.ts).
 *
 * Time: every node's timers (its protocols' tick, the connection manager,
 * presence announcements and expiry, leases, request and DHT timeouts, the
 * entry's waits, close()'s lingering) and every frame's delay are timers of
 * the virtual clock, which moves only inside `advance`, `run`, `linked`,
 * `add` and `close`. Between timers the network lets promises settle: the
 * node's cryptography (WebCrypto signatures, sealing) is real asynchronous
 * work, so settling awaits macrotasks until no WebCrypto operation is
 * under way (crypto-watch.ts) and nothing has moved for a few turns
 * (`settle`). What stays real: that cryptography and the microtasks
 * of event delivery; nothing in the node reads the real clock over this
 * transport (the links' own heartbeats, pacing and the signal client are
 * not used).
 *
 * So an operation that waits for an answer (`request`, `dht.get`, ...)
 * is awaited through `net.run(promise)`, which advances time until it
 * settles; `broadcast`, `sync.set` and `presence.set` return at once, and
 * `net.run(() => condition)` waits for their effect.
 */
import { NodeFacade } from '../../client/facade.ts'
import type { JoinOptions } from '../../client/node/options.ts'
import { OverlayNode } from '../../client/overlay.ts'
import type { WeftNode } from '../../client/weft-node.ts'
import { generateIdentity } from '../../shared/identity/keys.ts'
import { deriveSeed, mulberry32 } from '../../shared/sim/prng.ts'
import { type ClockView, VirtualClock } from './clock.ts'
import { inFlight, watchCrypto } from './crypto-watch.ts'
import { type FrameEvent, MemNet, type MemNetStats } from './mem-transport.ts'

/** Options of each node, as `joinOverlay` takes them (those that mean something without a signal server). */
export type TestNodeOptions = Omit<
  JoinOptions,
  | 'signal'
  | 'network'
  | 'puzzleBits'
  | 'wrtc'
  | 'iceServers'
  | 'timeoutMs'
  | 'onSignal'
  | 'dataDir'
  | 'overlaySignals'
>

export interface TestNetworkOptions {
  /** Seeds the network's loss and latency and each node's randomness (peer choice, jitter). @default 1 */
  seed?: number
  /** Probability that a protocol frame is lost, 0 to <1. @default 0 */
  loss?: number
  /** Each frame's delay, [min, max] ms of virtual time (a frame never overtakes an earlier one on its link). @default [1, 10] */
  latencyMs?: readonly [number, number]
  /** The network's name. @default 'test' */
  network?: string
  /** Presence: as JoinOptions.presence (intervalMs 1000 to 120000). */
  presence?: { intervalMs?: number }
  /**
   * The identity puzzle (JoinOptions.puzzleBits): identities are generated
   * to meet it, so keep it 0 unless the puzzle is what you test. @default 0
   */
  puzzleBits?: number
  /** Every other node option (maxPeers, requestTimeoutMs, secret, ...). */
  node?: TestNodeOptions
  /** The virtual clock's start, ms since the epoch. @default Date.UTC(2030, 0, 1) */
  startTime?: number
}

export interface RunOptions {
  /** Most virtual time to advance before giving up (an Error naming what was awaited). @default 60000 */
  timeoutMs?: number
}

/**
 * The nodes of a network of `N`: a tuple when N is a literal (up to 32), so
 * `const [a, b] = net.nodes` needs no checks under noUncheckedIndexedAccess.
 */
export type TestNodes<N extends number, Acc extends WeftNode[] = []> = number extends N
  ? WeftNode[]
  : Acc['length'] extends N
    ? [...Acc, ...WeftNode[]]
    : Acc['length'] extends 32
      ? WeftNode[]
      : TestNodes<N, [...Acc, WeftNode]>

/** A test network: its nodes and its controls. */
export interface TestNetwork<Nodes extends WeftNode[] = WeftNode[]> {
  /** Every node made, in order (crashed and closed ones stay, so indexes are stable; `add` appends). */
  readonly nodes: Nodes
  /** The virtual clock: `now()` in ms. */
  readonly clock: { now(): number }
  /** The network's seed. */
  readonly seed: number
  /** Nodes neither crashed nor closed. */
  live(): WeftNode[]
  /** Wait (on virtual time) until the live nodes form one connected network and one Chord ring. */
  linked(opts?: RunOptions): Promise<void>
  /** Move virtual time forward by `ms`, firing every timer on the way in time order. */
  advance(ms: number): Promise<void>
  /**
   * Advance virtual time until `what` holds (a condition) or settles (a
   * promise; resolves with its value, rejects with its error). Rejects when
   * `timeoutMs` of virtual time pass first.
   */
  run<T>(what: Promise<T>, opts?: RunOptions): Promise<T>
  run(what: () => boolean, opts?: RunOptions): Promise<void>
  /** Let the work under way finish without moving time. */
  settle(): Promise<void>
  /** Split the network: nodes in different groups lose their links and cannot link until `heal()` (nodes in no group form one more). */
  partition(...groups: WeftNode[][]): void
  /** End the partition: the nodes link again by themselves. */
  heal(): void
  /** Stop `node` at once, as a killed tab: no goodbye, its links close at the far ends, its timers stop. */
  crash(node: WeftNode): void
  /** A new node joins (on virtual time); it is added to `nodes`. */
  add(opts?: TestNodeOptions): Promise<WeftNode>
  /** The network's counters: frames sent, dropped, delivered; links cut; dials refused. */
  stats(): MemNetStats
  /** Called with each frame's fate (from, to, kind, dropped, delayMs): for traces. */
  onFrame(fn: ((e: FrameEvent) => void) | undefined): void
  /** Close every live node (each says goodbye, on virtual time). */
  close(): Promise<void>
}

/** How many quiet event-loop turns make the network settled (see `settle`). */
const QUIET_TURNS = 3
/** A settle gives up after this much real time (something keeps moving without time: a busy loop). */
const SETTLE_REAL_MS = 30_000
/** With no timer left, `run` waits this much real time for work under way before giving up. */
const IDLE_REAL_MS = 2_000

const macrotask = () => new Promise<void>((resolve) => setImmediate(resolve))

/** n weft nodes on an in-memory network with a virtual clock (see the module comment). */
export async function createTestNetwork<const N extends number>(
  n: N,
  opts: TestNetworkOptions = {},
): Promise<TestNetwork<TestNodes<N>>> {
  if (!Number.isInteger(n) || n < 0) throw new TypeError('n must be a whole number of nodes')
  const seed = opts.seed ?? 1
  const puzzleBits = opts.puzzleBits ?? 0
  const clock = new VirtualClock(opts.startTime ?? Date.UTC(2030, 0, 1))
  const mem = new MemNet({ clock, seed, loss: opts.loss ?? 0, latencyMs: opts.latencyMs ?? [1, 10] })
  const unwatch = watchCrypto()
  const nodes: WeftNode[] = []
  const inner = new Map<WeftNode, { node: OverlayNode; clock: ClockView }>()
  const crashed = new Set<WeftNode>()
  let made = 0

  const isLive = (w: WeftNode) => !crashed.has(w) && !(inner.get(w)?.node.isClosed ?? true)
  const live = () => nodes.filter(isLive)
  const internal = (w: WeftNode) => {
    const i = inner.get(w)
    if (!i) throw new TypeError('not a node of this network')
    return i
  }

  async function settle(): Promise<void> {
    let seen = clock.activity
    let quiet = 0
    const began = performance.now()
    for (let turn = 1; ; turn++) {
      if (turn % 1000 === 0 && performance.now() - began > SETTLE_REAL_MS)
        throw new Error(`the network did not settle within ${SETTLE_REAL_MS} ms of real time`)
      if (inFlight() > 0) {
        await macrotask()
        quiet = 0
        continue
      }
      await macrotask()
      // Timers due now (a frame with no delay, a timeout of 0) fire without moving time.
      while (clock.fireNext(clock.now())) await Promise.resolve()
      if (clock.activity !== seen) {
        seen = clock.activity
        quiet = 0
      } else if (++quiet >= QUIET_TURNS) return
    }
  }

  /** Fire every timer due at the next instant (up to `limit`); false when none is due by then. */
  function fireInstant(limit: number): boolean {
    const due = clock.nextDue()
    if (due === undefined || due > limit) return false
    while (clock.nextDue() === due) clock.fireNext(due)
    return true
  }

  /** Time has one driver at a time: a second run or advance while one is under way is a mistake. */
  let driving: string | undefined
  async function drive<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (driving !== undefined)
      throw new Error(
        `net.${what} while net.${driving} is under way: await one at a time (net.run(Promise.all([...])) waits for several)`,
      )
    driving = what
    try {
      return await fn()
    } finally {
      driving = undefined
    }
  }

  const advance = (ms: number): Promise<void> =>
    drive('advance', async () => {
      if (!(ms >= 0 && Number.isFinite(ms))) throw new RangeError(`advance takes ms >= 0, not ${ms}`)
      const target = clock.now() + ms
      await settle()
      while (fireInstant(target)) await settle()
      clock.moveTo(target)
      await settle()
    })

  function run<T>(what: Promise<T>, opts?: RunOptions): Promise<T>
  function run(what: () => boolean, opts?: RunOptions): Promise<void>
  function run<T>(what: Promise<T> | (() => boolean), ro: RunOptions = {}): Promise<T | undefined> {
    return drive('run', () => runNow(what, ro))
  }

  async function runNow<T>(what: Promise<T> | (() => boolean), ro: RunOptions): Promise<T | undefined> {
    const timeoutMs = ro.timeoutMs ?? 60_000
    let done: (() => boolean) | undefined
    let outcome: { ok: true; value: T } | { ok: false; err: unknown } | undefined
    if (typeof what === 'function') done = what
    else {
      what.then(
        (value) => {
          outcome = { ok: true, value }
        },
        (err: unknown) => {
          outcome = { ok: false, err }
        },
      )
      done = () => outcome !== undefined
    }
    const start = clock.now()
    const end = start + timeoutMs
    let idleSince: number | undefined
    for (;;) {
      await settle()
      if (done()) break
      const due = clock.nextDue()
      if (due === undefined) {
        // No timer left (every node closed or crashed): only work under way can still finish it.
        idleSince ??= performance.now()
        if (performance.now() - idleSince > IDLE_REAL_MS)
          throw new Error('net.run: nothing is left to happen')
        await new Promise((r) => setTimeout(r, 5))
        continue
      }
      idleSince = undefined
      if (due > end) {
        clock.moveTo(end)
        throw new Error(
          `net.run: ${typeof what === 'function' ? 'the condition did not hold' : 'the promise did not settle'} within ${timeoutMs} ms of virtual time`,
        )
      }
      fireInstant(due)
    }
    if (outcome === undefined) return undefined
    if (!outcome.ok) throw outcome.err
    return outcome.value
  }

  async function add(nodeOpts: TestNodeOptions = {}): Promise<WeftNode> {
    const index = made++
    const identity = await generateIdentity({ puzzleBits })
    const view = clock.view()
    const node = new OverlayNode(
      { identity, transport: mem.transport, random: mulberry32(deriveSeed(seed, `node:${index}`)) },
      {
        ...(opts.presence ? { presence: opts.presence } : {}),
        ...opts.node,
        ...nodeOpts,
        signal: [],
        network: opts.network ?? 'test',
        puzzleBits,
      },
      view,
    )
    const facade = new NodeFacade(node)
    inner.set(facade, { node, clock: view })
    await run(node.start())
    nodes.push(facade)
    return facade
  }

  /** One network: the live nodes' links connect them all, and successor pointers make one cycle of them all. */
  function isLinked(): boolean {
    const ids = live().map((w) => w.id)
    if (ids.length <= 1) return true
    const set = new Set(ids)
    const views = new Map(live().map((w) => [w.id, w.inspect()]))
    // Links: a walk from the first node reaches every live node.
    const seen = new Set<string>([ids[0] as string])
    const todo = [ids[0] as string]
    while (todo.length > 0) {
      const at = todo.pop() as string
      for (const l of views.get(at)?.links ?? [])
        if (set.has(l.id) && !seen.has(l.id)) {
          seen.add(l.id)
          todo.push(l.id)
        }
    }
    if (seen.size !== set.size) return false
    // The ring: following first successors from any node visits every live node once and comes back.
    let at = ids[0] as string
    const visited = new Set<string>()
    for (let i = 0; i < ids.length; i++) {
      const next = views.get(at)?.ring.successors[0]
      if (next === undefined || !set.has(next) || visited.has(next)) return false
      visited.add(next)
      at = next
    }
    return at === ids[0] && visited.size === ids.length
  }

  try {
    for (let i = 0; i < n; i++) await add()
  } catch (err) {
    unwatch()
    throw err
  }

  return {
    // n nodes were made above: the tuple type says so.
    nodes: nodes as TestNodes<N>,
    clock,
    seed,
    live,
    linked: (ro) => run(isLinked, ro),
    advance,
    run,
    settle,
    partition(...groups) {
      mem.partition(groups.map((g) => g.map((w) => internal(w).node.id)))
    },
    heal: () => mem.heal(),
    crash(w) {
      const { node, clock: view } = internal(w)
      if (crashed.has(w)) return
      crashed.add(w)
      view.stop()
      mem.crash(node.id)
    },
    add,
    stats: () => mem.stats(),
    onFrame(fn) {
      mem.onFrame = fn
    },
    async close() {
      try {
        await run(Promise.all(live().map((w) => w.close())))
      } finally {
        unwatch()
      }
    },
  }
}
