/**
 * Stub hosts for router tests (test-only): a few routers whose links, next
 * hops and message delivery the test controls. Messages wait in one queue
 * until `flush` delivers them (in order, each handled before the next), so a
 * test can drop, hold or replay any of them; time moves only by `advance`,
 * which ticks every router. Keys are the simulator's fast fakes.
 */

import { NoRouteError } from '../shared/errors.ts'
import type { RouteMsg } from '../shared/router/messages.ts'
import type { Router, RouterOptions } from '../shared/router/options.ts'
import { createRouter } from '../shared/router/router.ts'
import { createFakeKeyring } from '../shared/sim/fake-keys.ts'
import { mulberry32, randomId } from '../shared/sim/prng.ts'
import type { Value } from '../shared/types.ts'

export interface Sent {
  from: string
  to: string
  msg: RouteMsg
}

export interface StubNode {
  readonly id: string
  readonly router: Router
  /** Open links (both ends hold each other). */
  readonly links: Set<string>
  /** The next hop this node's host names toward a destination it has no link to (tests set them). */
  readonly hops: Map<string, string>
  /** Destinations `connect` refuses (as a signal server that does not know them). */
  readonly unreachable: Set<string>
  /** Destinations whose next `connect`s are refused as a full peer refuses (NoRouteError, refused 'full'), how many more times. */
  readonly full: Map<string, number>
  /** Every `connect` call, by destination. */
  readonly connects: string[]
  readonly signals: { from: string; data: Value; overLink: boolean }[]
  readonly resentSignals: { dst: string; data: Value }[]
}

export interface StubNet {
  /** The clock every router reads. */
  now: number
  readonly nodes: Map<string, StubNode>
  /** Messages sent and not yet delivered, oldest first. */
  readonly queue: Sent[]
  /** Every message delivered, in order. */
  readonly delivered: Sent[]
  add(id?: string, options?: RouterOptions): StubNode
  node(id: string): StubNode
  link(a: string, b: string): void
  /** Close the link at both ends (each router hears linkDown). */
  unlink(a: string, b: string): void
  /** Deliver queued messages until none is left; those `drop` picks are lost instead. Returns how many were delivered. */
  flush(drop?: (m: Sent) => boolean): Promise<number>
  /** Move the clock on, tick every router, and flush. */
  advance(ms: number, drop?: (m: Sent) => boolean): Promise<void>
}

export function createStubNet(seed = 1, defaults: RouterOptions = {}): StubNet {
  const rng = mulberry32(seed)
  const nodes = new Map<string, StubNode>()
  const queue: Sent[] = []
  const delivered: Sent[] = []

  const net: StubNet = {
    now: 1_000_000,
    nodes,
    queue,
    delivered,

    add(id = randomId(rng), options = {}) {
      const links = new Set<string>()
      const hops = new Map<string, string>()
      const unreachable = new Set<string>()
      const full = new Map<string, number>()
      const connects: string[] = []
      const signals: StubNode['signals'] = []
      const resentSignals: StubNode['resentSignals'] = []
      const router = createRouter(
        {
          id,
          keys: createFakeKeyring(id),
          now: () => net.now,
          random: rng,
          nextHop(dst) {
            if (links.has(dst)) return { via: dst, open: true }
            const via = hops.get(dst)
            return via === undefined ? null : { via, open: links.has(via) }
          },
          send(to, msg) {
            if (!links.has(to)) throw new Error(`stub: no link from ${id} to ${to}`)
            queue.push({ from: id, to, msg })
          },
          sendVia(to, msg, cannot) {
            // A link opened on demand: at once, unless `to` is unreachable from here (then `cannot`).
            if (to !== id && !links.has(to) && (unreachable.has(to) || !nodes.has(to))) return cannot?.()
            if (to !== id && !links.has(to)) net.link(id, to)
            queue.push({ from: id, to, msg })
          },
          async connect(to) {
            connects.push(to)
            if (unreachable.has(to) || !nodes.has(to)) throw new Error(`stub: ${to} unreachable`)
            const refusals = full.get(to) ?? 0
            if (refusals > 0) {
              full.set(to, refusals - 1)
              throw new NoRouteError(to, `${to} refused: full`, 'full')
            }
            net.link(id, to)
          },
          onSignal: (from, data, overLink) => void signals.push({ from, data, overLink }),
          resendSignal: (dst, data) => void resentSignals.push({ dst, data }),
        },
        { ...defaults, ...options },
      )
      const node: StubNode = { id, router, links, hops, unreachable, full, connects, signals, resentSignals }
      nodes.set(id, node)
      return node
    },

    node(id) {
      const n = nodes.get(id)
      if (!n) throw new Error(`stub: no node ${id}`)
      return n
    },

    link(a, b) {
      net.node(a).links.add(b)
      net.node(b).links.add(a)
    },

    unlink(a, b) {
      net.node(a).links.delete(b)
      net.node(b).links.delete(a)
      net.node(a).router.linkDown(b)
      net.node(b).router.linkDown(a)
    },

    async flush(drop) {
      let n = 0
      // Let sends that wait on a signature or a connect reach the queue first.
      await settle()
      for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
        if (drop?.(m)) continue
        const to = nodes.get(m.to)
        // A message on a link that closed meanwhile is lost, as on a real link.
        if (!to?.links.has(m.from)) continue
        delivered.push(m)
        n++
        await to.router.handle(m.from, m.msg)
        await settle()
      }
      return n
    },

    async advance(ms, drop) {
      net.now += ms
      for (const n of nodes.values()) n.router.tick(net.now)
      await net.flush(drop)
    },
  }
  return net
}

/** Let every pending promise callback run (the stubs' signatures and connects resolve at once). */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** Until `p` settles: the network flushed in real time (the sealing is real WebCrypto), the clock still. */
export async function real<T>(net: StubNet, p: Promise<T>, ms = 10_000): Promise<T> {
  let done = false
  const out = p.finally(() => {
    done = true
  })
  out.catch(() => {})
  const end = Date.now() + ms
  while (!done && Date.now() < end) {
    await net.flush()
    await new Promise((r) => setTimeout(r, 2))
  }
  return out
}

/** Three nodes in a line, a - b - c: a reaches c through b, and c reaches a. */
export function lineNet(seed = 1, options: RouterOptions = {}) {
  const net = createStubNet(seed, options)
  const a = net.add('a'.repeat(40))
  const b = net.add('b'.repeat(40))
  const c = net.add('c'.repeat(40))
  net.link(a.id, b.id)
  net.link(b.id, c.id)
  a.hops.set(c.id, b.id)
  c.hops.set(a.id, b.id)
  return { net, a, b, c }
}
