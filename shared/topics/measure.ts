/**
 * A measured run of topic multicast among whole nodes in the simulator
 * (shared/node/sim-net.ts), for the simulator test and `npm run bench --
 * sim-topics`: a ring of `n`, `topics` topics of `subscribers` random
 * subscribers each; every topic is published to (by one of its subscribers)
 * `publishes` times, before and after `crashFraction` of the nodes crash.
 *
 * Three more phases test the repair (repair.ts): `early`, published the
 * moment the topics are subscribed (the trees not formed yet); `churn`,
 * published the moment the nodes crash, while `late` new subscribers per
 * topic join (their joins slowed by the churn), measured after `repairMs`;
 * and `quiet`, a window with no publication, where no repair frame should go.
 *
 * Counted per publication: which live subscribers got it (coverage), and
 * every PUB a node received over a link, split by whether that node
 * subscribes to the topic (tree traffic; the ideal is one per subscriber
 * other than the publisher), and repair frames (IHAVE, IWANT) received.
 */
import { createNodeNet, type NodeNet, type SimNode } from '../node/sim-net.ts'
import { Kind } from '../wire/frame.ts'

export interface TopicsRunOptions {
  seed: number
  n: number
  degree?: number
  topics: number
  subscribers: number
  /** Publications per topic in each phase. */
  publishes: number
  /** @default 0.1 */
  crashFraction?: number
  /** Simulated time for repair after the crash. @default 30_000 */
  repairMs?: number
  /** New subscribers per topic joining as the nodes crash. @default 2 */
  late?: number
  /** The quiet window starts this long after the last publication's 5 s... @default 26_000 (31 s after it) */
  quietAfterMs?: number
  /** ...and lasts this long. @default 30_000 */
  quietMs?: number
}

export interface Phase {
  publications: number
  /** Live subscribers that got it / live subscribers, over all publications. */
  coverage: number
  /** PUB messages received over links. */
  treeMessages: number
  /** treeMessages / the ideal (one per live subscriber but the publisher). */
  perSubscriber: number
  /** Share of treeMessages received by nodes that do not subscribe to that topic (the roots). */
  nonSubscriberShare: number
  meanHops: number
  maxHops: number
  /** Latest delivery to a subscriber, ms after its publication. */
  lastMs: number
  /** IHAVE and IWANT frames received over links, per node. */
  repairPerNode: number
}

export interface TopicsRun {
  n: number
  topics: number
  subscribers: number
  /** Simulated ms from the subscriptions until every tree was whole. */
  formMs: number
  /** Deepest member (hops from its root). */
  depth: number
  /** Published as the topics were subscribed, measured once the trees were whole (+5 s). */
  early: Phase
  before: Phase
  crashed: number
  /** Published as the nodes crashed and late subscribers joined, measured `repairMs` on. */
  churn: Phase
  after: Phase
  /** Repair frames per node over the quiet window (no publication). */
  quietRepairPerNode: number
  /** Messages the wire check refused (an honest run: 0). */
  refused: number
}

export async function topicsRun(o: TopicsRunOptions): Promise<TopicsRun> {
  const net = await createNodeNet({ seed: o.seed, n: o.n, degree: o.degree ?? 6 })
  await net.buildRing()
  const rng = net.sim.rng
  const names = Array.from({ length: o.topics }, (_, i) => `room-${i}`)
  const subs = new Map<string, string[]>()
  /** Receipts: publication key → node → hops and when. */
  const got = new Map<string, Map<string, { hops: number; at: number }>>()
  const subscribe = (topic: string, id: string) =>
    net.core(id).subscribe(topic, (data, meta) => {
      const key = `${topic}/${String(data)}`
      const m = got.get(key) ?? new Map<string, { hops: number; at: number }>()
      got.set(key, m)
      if (!m.has(id)) m.set(id, { hops: meta.hops, at: net.sim.now })
    })
  for (const topic of names) {
    const chosen = new Set<string>()
    while (chosen.size < o.subscribers) chosen.add(net.ids[Math.floor(rng() * o.n)] as string)
    subs.set(topic, [...chosen])
    for (const id of chosen) subscribe(topic, id)
  }
  // Count every PUB a node takes off a link, by topic, and every repair frame.
  const received = new Map<string, Map<string, number>>()
  let repairFrames = 0
  for (const id of net.ids) {
    const p = net.sim.proto<SimNode>(id)
    const handle = p.handle.bind(p)
    p.handle = (from, m) => {
      if (m.kind === Kind.Topic && m.msg.type === 'pub') {
        const t = received.get(m.msg.topic) ?? new Map<string, number>()
        received.set(m.msg.topic, t)
        t.set(id, (t.get(id) ?? 0) + 1)
      }
      if (m.kind === Kind.Topic && (m.msg.type === 'ihave' || m.msg.type === 'iwant')) repairFrames++
      return handle(from, m)
    }
  }

  let seq = 0
  type Pub = { topic: string; key: string; from: string; at: number }
  function publishAll(exclude: Set<string> = new Set()): Pub[] {
    received.clear()
    repairFrames = 0
    const pubs: Pub[] = []
    for (let r = 0; r < o.publishes; r++)
      for (const topic of names) {
        const live = (subs.get(topic) as string[]).filter((id) => net.sim.node(id).up && !exclude.has(id))
        const from = live[Math.floor(rng() * live.length)] as string
        const data = seq++
        pubs.push({ topic, key: `${topic}/${data}`, from, at: net.sim.now })
        void net
          .core(from)
          .publish(topic, data)
          .catch(() => {})
      }
    return pubs
  }
  function measure(pubs: Pub[]): Phase {
    let want = 0
    let have = 0
    let ideal = 0
    let tree = 0
    let outside = 0
    let lastMs = 0
    const hops: number[] = []
    for (const p of pubs) {
      const live = (subs.get(p.topic) as string[]).filter((id) => net.sim.node(id).up)
      const r = got.get(p.key) ?? new Map<string, { hops: number; at: number }>()
      want += live.length
      ideal += live.length - 1
      for (const id of live) {
        const g = r.get(id)
        if (!g) continue
        have++
        lastMs = Math.max(lastMs, g.at - p.at)
        if (id !== p.from) hops.push(g.hops)
      }
    }
    for (const [topic, byNode] of received) {
      const members = new Set(subs.get(topic))
      for (const [id, n] of byNode) {
        tree += n
        if (!members.has(id)) outside += n
      }
    }
    return {
      publications: pubs.length,
      coverage: want === 0 ? 1 : have / want,
      treeMessages: tree,
      perSubscriber: ideal === 0 ? 0 : tree / ideal,
      nonSubscriberShare: tree === 0 ? 0 : outside / tree,
      meanHops: hops.length === 0 ? 0 : hops.reduce((a, b) => a + b, 0) / hops.length,
      maxHops: hops.length === 0 ? 0 : Math.max(...hops),
      lastMs: Math.round(lastMs),
      repairPerNode: repairFrames / net.sim.upIds().length,
    }
  }

  // Published the moment the topics are subscribed: the trees are not there yet.
  const t0 = net.sim.now
  const earlyPubs = publishAll()
  const whole = () => names.every((t) => treeWhole(net, subs.get(t) as string[], t))
  await net.sim.runUntilTrue(whole, 120_000)
  const formMs = net.sim.now - t0
  await net.sim.runFor(5_000)
  const early = measure(earlyPubs)
  const depth = Math.max(...names.map((t) => treeDepth(net, subs.get(t) as string[], t)))

  const beforePubs = publishAll()
  await net.sim.runFor(5_000)
  const before = measure(beforePubs)

  // The crash, with publications crossing the trees as they break and late subscribers joining.
  const up = net.sim.upIds()
  const crashed = Math.round(o.n * (o.crashFraction ?? 0.1))
  for (let i = 0; i < crashed; i++) {
    const j = i + Math.floor(rng() * (up.length - i))
    const t = up[i] as string
    up[i] = up[j] as string
    up[j] = t
    await net.crash(up[i] as string)
  }
  const newcomers = new Set<string>()
  for (const topic of names) {
    const list = subs.get(topic) as string[]
    for (let k = 0; k < (o.late ?? 2); k++) {
      const live = net.sim.upIds().filter((id) => !list.includes(id))
      const id = live[Math.floor(rng() * live.length)] as string
      list.push(id)
      newcomers.add(id)
      subscribe(topic, id)
    }
  }
  const churnPubs = publishAll(newcomers)
  await net.sim.runFor(o.repairMs ?? 30_000)
  const churn = measure(churnPubs)
  const afterPubs = publishAll()
  await net.sim.runFor(5_000)
  const after = measure(afterPubs)
  // Quiet: no publication (by default from 31 s after the last one, when the history has emptied, for 30 s).
  await net.sim.runFor(o.quietAfterMs ?? 26_000)
  repairFrames = 0
  await net.sim.runFor(o.quietMs ?? 30_000)
  const quietRepairPerNode = repairFrames / net.sim.upIds().length
  return {
    n: o.n,
    topics: o.topics,
    subscribers: o.subscribers,
    formMs,
    depth,
    early,
    before,
    crashed,
    churn,
    after,
    quietRepairPerNode,
    refused: net.refused.count,
  }
}

/** Every live subscriber of `topic` is attached (or is the root). */
function treeWhole(net: NodeNet, members: string[], topic: string): boolean {
  return members.every((id) => {
    if (!net.sim.node(id).up) return true
    const info = net
      .core(id)
      .topics?.info()
      .find((i) => i.topic === topic)
    return info !== undefined && (info.state === 'attached' || info.state === 'root')
  })
}

function treeDepth(net: NodeNet, members: string[], topic: string): number {
  let deepest = 0
  for (const id of members) {
    let d = 0
    let at: string | null = id
    while (at !== null && d < 64) {
      const here: string = at
      const info = net
        .core(here)
        .topics?.info()
        .find((i) => i.topic === topic)
      at = info?.parent ?? null
      if (at !== null) d++
    }
    deepest = Math.max(deepest, d)
  }
  return deepest
}
