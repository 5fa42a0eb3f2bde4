/**
 * A deterministic network simulator for the protocol state machines.
 *
 * Every node is a `ProtocolNode` built by a factory from `SimDeps`. Links are
 * undirected; each gets a latency drawn from the seeded PRNG when it is made,
 * and delivery on a link is FIFO per direction (like an ordered, reliable
 * data channel) unless the message is lost. Time is virtual: `run*` pops
 * events (deliveries and per-node ticks) in (time, seq) order, and awaits a
 * node's `handle`/`tick` when it returns a promise, so a run with the same
 * seed and the same calls produces the same trace, always.
 *
 * Bandwidth (optional, `uplinkBytesPerMs`): each node's messages leave one
 * after another through an uplink of that rate, each taking sizeOf(msg) /
 * rate ms, then travel the link's latency; `send` then returns a promise that
 * resolves (in virtual time) when the message has left, as a real link's
 * send resolves once the bytes are handed on after backpressure.
 *
 * Faults: message loss, partitions (and healing), node crash (its links go
 * down, its state is gone) and restart (a new instance from the factory,
 * links back up).
 *
 * A failing test should print the seed; `replay` hints in README. With the
 * same seed the run repeats exactly.
 *
 * Built to run 10,000 nodes: ticks, which outnumber messages, are not in the
 * event heap but in a FIFO (ticks.ts); the next event is the earlier of the
 * FIFO's head and the heap's top by (time, seq), so the order is exactly
 * that of one queue. Links are found through a map per node (no string keys
 * on the hot path), each node's live neighbours are kept until the topology
 * changes, and a message's size is estimated once, at the send.
 */
import type { ProtocolNode } from '../protocol.ts'
import { type Event, fnv1aHex, type HeapEvent, type Rec } from './events.ts'
import { EventHeap } from './heap.ts'
import { Links } from './links.ts'
import { deriveSeed, mulberry32, type Rng, randomId } from './prng.ts'
import { estimateSize } from './size.ts'
import { TickQueue, tickBefore } from './ticks.ts'
import type { NodeCounters, NodeFactory, SimDeps, SimNode, SimOptions, SimTotals } from './types.ts'

export { estimateSize } from './size.ts'
export type { NodeCounters, NodeFactory, SimDeps, SimNode, SimOptions, SimTotals } from './types.ts'

export class Sim<M> {
  readonly seed: number
  readonly rng: Rng
  now = 0
  readonly totals: SimTotals = { delivered: 0, lost: 0, undeliverable: 0, events: 0 }
  readonly traceLog: string[] = []

  private readonly opts: Required<Omit<SimOptions<M>, 'sizeOf'>> & { sizeOf: (msg: M) => number }
  private readonly nodes = new Map<string, Rec<M>>()
  private readonly factories = new Map<string, NodeFactory<M>>()
  /** Who is linked to whom, each link's latency and FIFO state (links.ts). */
  private readonly links = new Links()
  private readonly queue = new EventHeap<HeapEvent<M>>()
  private readonly ticks = new TickQueue()
  /** Bumped by every change of links, node states or partitions: cached neighbour lists are then stale. */
  private topology = 0
  private readonly liveCache = new Map<string, { topology: number; ids: string[] }>()
  private readonly epochs = new Map<string, number>()
  /** Per node: when its uplink is free again (uplink model only). */
  private readonly uplinkFree = new Map<string, number>()
  private group = new Map<string, number>()
  private seq = 0
  /** Links removed so far: a message sent since the last one finds its link still there. */
  private cuts = 0

  constructor(opts: SimOptions<M>) {
    this.seed = opts.seed >>> 0
    this.rng = mulberry32(deriveSeed(this.seed, 'sim'))
    this.opts = {
      seed: this.seed,
      latency: opts.latency ?? { min: 5, max: 50 },
      loss: opts.loss ?? 0,
      tickMs: opts.tickMs ?? 100,
      sizeOf: opts.sizeOf ?? estimateSize,
      trace: opts.trace ?? false,
      connectOnSend: opts.connectOnSend ?? false,
      uplinkBytesPerMs: opts.uplinkBytesPerMs ?? Number.POSITIVE_INFINITY,
      yieldEachEvent: opts.yieldEachEvent ?? true,
    }
  }

  /** A fresh random node id from the run's PRNG. */
  randomId(): string {
    return randomId(this.rng)
  }

  /** Set the message loss probability from now on. */
  setLoss(p: number): void {
    this.opts.loss = p
  }

  get size(): number {
    return this.nodes.size
  }

  ids(): string[] {
    return [...this.nodes.keys()]
  }

  upIds(): string[] {
    return [...this.nodes.values()].filter((n) => n.up).map((n) => n.id)
  }

  node(id: string): SimNode<M> {
    const n = this.nodes.get(id)
    if (!n) throw new Error(`sim: no node ${id}`)
    return n
  }

  /** The protocol instance of a node, typed by the caller. */
  proto<P extends ProtocolNode<M>>(id: string): P {
    return this.node(id).proto as P
  }

  /** Add a node built by `factory`; it starts ticking at a random phase. */
  addNode(id: string, factory: NodeFactory<M>): SimNode<M> {
    if (this.nodes.has(id)) throw new Error(`sim: duplicate node ${id}`)
    this.factories.set(id, factory)
    this.links.of(id)
    const node = this.instantiate(id, factory)
    this.nodes.set(id, node)
    this.topology++
    return node
  }

  private instantiate(id: string, factory: NodeFactory<M>): Rec<M> {
    const epoch = (this.epochs.get(id) ?? 0) + 1
    this.epochs.set(id, epoch)
    this.uplinkFree.delete(id)
    const rng = mulberry32(deriveSeed(this.seed, `${id}/${epoch}`))
    const counters: NodeCounters = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
    const deps: SimDeps<M> = {
      id,
      send: (to, msg) => this.send(id, epoch, to, msg),
      now: () => this.now,
      random: rng,
      neighbours: () => this.liveNeighbours(id),
    }
    const proto = factory(deps)
    const node: Rec<M> = { id, up: true, proto, counters, rng, epoch, links: this.links.of(id), gone: false }
    const time = this.now + Math.floor(rng() * this.opts.tickMs)
    this.ticks.insert({ time, seq: this.seq++, type: 'tick', node: id, epoch })
    return node
  }

  /** Make an undirected link; both ends get `linkUp` when both are up and not partitioned. */
  async link(a: string, b: string): Promise<void> {
    if (a === b || this.hasLink(a, b)) return
    const { min, max } = this.opts.latency
    this.addLink(a, b, min + this.rng() * (max - min))
    if (this.connected(a, b)) {
      await this.node(a).proto.linkUp?.(b)
      await this.node(b).proto.linkUp?.(a)
    }
  }

  async unlink(a: string, b: string): Promise<void> {
    if (!this.hasLink(a, b)) return
    const wasUp = this.connected(a, b)
    this.links.remove(a, b)
    this.cuts++
    this.topology++
    if (wasUp) {
      await this.nodes.get(a)?.proto.linkDown?.(b)
      await this.nodes.get(b)?.proto.linkDown?.(a)
    }
  }

  hasLink(a: string, b: string): boolean {
    return this.links.has(a, b)
  }

  /** How many links `id` has by topology, whatever their state. */
  linkCount(id: string): number {
    return this.links.count(id)
  }

  /** All neighbours by topology, whatever their state. */
  linksOf(id: string): string[] {
    return [...this.links.of(id).keys()]
  }

  /** Neighbours reachable now: link exists, both up, same partition group. A fresh array each call. */
  liveNeighbours(id: string): string[] {
    return this.live(id).slice()
  }

  /** The cached list behind liveNeighbours (never handed out): recomputed after a topology change. */
  private live(id: string): readonly string[] {
    const c = this.liveCache.get(id)
    if (c && c.topology === this.topology) return c.ids
    const ids: string[] = []
    for (const b of this.links.of(id).keys()) if (this.connected(id, b)) ids.push(b)
    if (c) {
      c.topology = this.topology
      c.ids = ids
    } else this.liveCache.set(id, { topology: this.topology, ids })
    return ids
  }

  /** True when a message from a to b can be delivered now. */
  connected(a: string, b: string): boolean {
    return (
      (this.nodes.get(a)?.up ?? false) &&
      (this.nodes.get(b)?.up ?? false) &&
      this.links.has(a, b) &&
      (this.group.size === 0 || this.groupOf(a) === this.groupOf(b))
    )
  }

  /**
   * Split the network: nodes in different groups cannot exchange messages
   * and see their cross links go down. Nodes not named form group 0.
   */
  async partition(groups: string[][]): Promise<void> {
    const before = this.liveLinkSet()
    this.group = new Map()
    groups.forEach((g, i) => {
      for (const id of g) this.group.set(id, i + 1)
    })
    this.topology++
    await this.notifyChanges(before)
  }

  /** Undo every partition: cross links come back up. */
  async heal(): Promise<void> {
    const before = this.liveLinkSet()
    this.group = new Map()
    this.topology++
    await this.notifyChanges(before)
  }

  /** Crash a node: it loses its state, its links go down for its neighbours, its messages in flight are lost. */
  async crash(id: string): Promise<void> {
    const n = this.node(id)
    if (!n.up) return
    const live = this.liveNeighbours(id)
    n.up = false
    this.topology++
    this.epochs.set(id, (this.epochs.get(id) ?? 0) + 1)
    for (const b of live) await this.nodes.get(b)?.proto.linkDown?.(id)
  }

  /** Restart a crashed node as a new instance (from `factory`, or the one it was added with). */
  async restart(id: string, factory?: NodeFactory<M>): Promise<SimNode<M>> {
    const old = this.node(id) as Rec<M>
    if (old.up) await this.crash(id)
    const f = factory ?? this.factories.get(id)
    if (!f) throw new Error(`sim: no factory for ${id}`)
    this.factories.set(id, f)
    const node = this.instantiate(id, f)
    old.gone = true
    this.nodes.set(id, node)
    this.topology++
    for (const b of this.liveNeighbours(id)) {
      await node.proto.linkUp?.(b)
      await this.nodes.get(b)?.proto.linkUp?.(id)
    }
    return node
  }

  /** Remove a node and its links for good. */
  async remove(id: string): Promise<void> {
    for (const b of [...this.links.of(id).keys()]) await this.unlink(id, b)
    const gone = this.nodes.get(id)
    if (gone) gone.gone = true
    this.nodes.delete(id)
    this.links.forget(id)
    this.liveCache.delete(id)
    this.topology++
    this.factories.delete(id)
    this.epochs.set(id, (this.epochs.get(id) ?? 0) + 1)
  }

  /** Run every event up to and including virtual time `t`. */
  async runUntil(t: number): Promise<void> {
    for (;;) {
      const e = this.next()
      if (!e || e.time > t) break
      this.take(e)
      this.now = Math.max(this.now, e.time)
      const r = this.step(e)
      if (r) await r
    }
    this.now = Math.max(this.now, t)
  }

  async runFor(ms: number): Promise<void> {
    await this.runUntil(this.now + ms)
  }

  /**
   * Run until `done()` holds (checked after each event) or `maxMs` of
   * virtual time pass. Returns whether `done()` held.
   */
  async runUntilTrue(done: () => boolean, maxMs: number): Promise<boolean> {
    const end = this.now + maxMs
    if (done()) return true
    for (;;) {
      const e = this.next()
      if (!e || e.time > end) break
      this.take(e)
      this.now = Math.max(this.now, e.time)
      const r = this.step(e)
      if (r) await r
      if (done()) return true
    }
    this.now = Math.max(this.now, end)
    return done()
  }

  /** Run deliveries only (no ticks) until no message is in flight, or `maxMs` pass. */
  async drain(maxMs = 60_000): Promise<void> {
    const end = this.now + maxMs
    for (;;) {
      const e = this.next()
      if (!e || e.time > end) break
      if (!this.hasPendingMessages()) break
      this.take(e)
      this.now = Math.max(this.now, e.time)
      const r = this.step(e)
      if (r) await r
    }
  }

  private pending = 0

  /** The next event in (time, seq) order: the tick FIFO's head or the heap's top. */
  private next(): Event<M> | undefined {
    const m = this.queue.peek()
    const k = this.ticks.peek()
    if (!k) return m
    if (!m) return k
    return tickBefore(k, m) ? k : m
  }

  private take(e: Event<M>): void {
    if (e.type === 'tick') this.ticks.shift()
    else this.queue.pop()
  }

  hasPendingMessages(): boolean {
    return this.pending > 0
  }

  /** A short fingerprint of the trace (FNV-1a of every line), for determinism tests. */
  traceHash(): string {
    return fnv1aHex(this.traceLog)
  }

  private send(from: string, epoch: number, to: string, msg: M): void | Promise<void> {
    const sender = this.nodes.get(from)
    if (!sender?.up || sender.epoch !== epoch) return // a crashed instance's late send
    let st = sender.links.get(to)
    const receiver = this.nodes.get(to)
    if (st === undefined && this.opts.connectOnSend && from !== to && receiver) {
      const { min, max } = this.opts.latency
      st = this.addLink(from, to, min + this.rng() * (max - min))
    }
    // connected(from, to), with both ends in hand: the sender is up and the link exists.
    if (
      st === undefined ||
      !receiver?.up ||
      (this.group.size > 0 && this.groupOf(from) !== this.groupOf(to))
    ) {
      this.totals.undeliverable++
      return
    }
    const size = this.opts.sizeOf(msg)
    sender.counters.messagesOut++
    sender.counters.bytesOut += size
    // With an uplink model the message leaves once the sender's earlier ones have, taking size / rate.
    const rate = this.opts.uplinkBytesPerMs
    let left = this.now
    let sent: Promise<void> | undefined
    if (Number.isFinite(rate)) {
      left = Math.max(this.now, this.uplinkFree.get(from) ?? 0) + size / rate
      this.uplinkFree.set(from, left)
      sent = new Promise<void>((resolve) =>
        this.queue.push({ time: left, seq: this.seq++, type: 'sent', resolve }),
      )
    }
    if (this.opts.loss > 0 && this.rng() < this.opts.loss) {
      this.totals.lost++
      return sent
    }
    const time = this.links.schedule(st, from < to, left)
    this.pending++
    this.queue.push({
      time,
      seq: this.seq++,
      type: 'msg',
      from,
      to,
      msg,
      epoch: receiver.epoch,
      size,
      tx: sender,
      rx: receiver,
      cuts: this.cuts,
    })
    return sent
  }

  /** Run one event: an async step (continuations run before the next event), or with yieldEachEvent false, direct. */
  private step(e: Event<M>): void | Promise<void> {
    return this.opts.yieldEachEvent ? this.dispatchAsync(e) : this.dispatch(e)
  }

  private async dispatchAsync(e: Event<M>): Promise<void> {
    if (e.type === 'sent') {
      e.resolve()
      return
    }
    await this.dispatch(e)
  }

  private dispatch(e: Event<M>): void | Promise<void> {
    this.totals.events++
    // As an async step, so the sender's continuation runs before the next event.
    if (e.type === 'sent') return resolveSent(e.resolve)
    if (e.type === 'tick') {
      const n = this.nodes.get(e.node)
      if (!n?.up || n.epoch !== e.epoch) return
      // The same object goes to the back of the FIFO: one tick pending per node, no allocation.
      e.time += this.opts.tickMs
      e.seq = this.seq++
      this.ticks.append(e)
      return n.proto.tick(this.now)
    }
    this.pending--
    // Lost when the receiver crashed or restarted since sending, or the link went away. The
    // instances of the send (the current ones unless replaced or removed since) save the lookups.
    const n = e.rx
    const cut = this.group.size > 0 && this.groupOf(e.from) !== this.groupOf(e.to)
    const senderUp = e.tx.gone ? (this.nodes.get(e.from)?.up ?? false) : e.tx.up
    if (!n.up || n.gone || !senderUp || (e.cuts !== this.cuts && !n.links.has(e.from)) || cut) {
      this.totals.undeliverable++
      return
    }
    this.totals.delivered++
    n.counters.messagesIn++
    n.counters.bytesIn += e.size
    if (this.opts.trace) this.traceLog.push(`${e.time.toFixed(3)} ${e.from.slice(0, 8)}>${e.to.slice(0, 8)}`)
    return n.proto.handle(e.from, e.msg)
  }

  private addLink(a: string, b: string, latency: number): number {
    this.topology++
    return this.links.add(a, b, latency)
  }

  private groupOf(id: string): number {
    return this.group.get(id) ?? 0
  }

  /** The links up now by index, their ends in id order, in the order they were made. */
  private liveLinkSet(): Map<number, [string, string]> {
    const s = new Map<number, [string, string]>()
    for (const [i, a, b] of this.links.all()) if (this.connected(a, b)) s.set(i, [a, b])
    return s
  }

  private async notifyChanges(before: Map<number, [string, string]>): Promise<void> {
    const after = this.liveLinkSet()
    for (const [i, [a, b]] of before) {
      if (after.has(i)) continue
      await this.nodes.get(a)?.proto.linkDown?.(b)
      await this.nodes.get(b)?.proto.linkDown?.(a)
    }
    for (const [i, [a, b]] of after) {
      if (before.has(i)) continue
      await this.nodes.get(a)?.proto.linkUp?.(b)
      await this.nodes.get(b)?.proto.linkUp?.(a)
    }
  }
}

export function createSim<M>(opts: SimOptions<M>): Sim<M> {
  return new Sim(opts)
}

async function resolveSent(resolve: () => void): Promise<void> {
  resolve()
}
