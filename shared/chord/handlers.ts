/**
 * What a node does with each message a peer sends it: validation at the
 * boundary, then one handler per message type (a table keyed by `t`).
 *
 * `handle` takes anything: the sender must be another node's id
 * (`drop.from`), the message must parse (`parseChordMsg`: a fresh, typed
 * message or null, `drop.malformed`). Any message proves its sender alive.
 * Answers go to the request they name (rpc.ts), but a `routed` for a
 * route we passed on, which goes back the way the route came; every other
 * type has its handler below, and no handler throws into the host. What a request makes
 * us send back (a record, provider records, lists of ids) is charged to the
 * asking peer's window budget; past it the answer is a small `err busy`
 * (reply-budget.ts). The `route`s a peer has us pass on are counted too: at
 * most `routeBudget` per window (the same window budget, in routes); past
 * it a route is dropped (`drop.routeBudget`) and answered `err busy`. The
 * peer, when it passed the route on for another, passes that `err` back the
 * way an answer goes (taken only from the node it passed the route to, and
 * once), and the origin looks up iteratively at once. What its routes may
 * hold of the table of answers to pass back is bounded in route-relays.ts.
 * An `err left` is its sender saying, over its own link, that it has left
 * the ring: it is marked dead at once (`peer.left`).
 */
import { isNodeId } from '../bytes.ts'
import { bump } from '../protocol.ts'
import type { Liveness } from './liveness.ts'
import { MAX_STEPS } from './lookup.ts'
import type { Maintenance } from './maintenance.ts'
import {
  type ChordMsg,
  type ChordReply,
  type ChordRequest,
  type ChordRequestType,
  isReply,
  LIMITS,
  parseChordMsg,
} from './messages.ts'
import type { ChordContext } from './options.ts'
import type { Replication } from './replication.ts'
import { createReplyBudget, createWindowBudget, replyBytes } from './reply-budget.ts'
import { createRouteRelays } from './route-relays.ts'
import type { RoutingTable } from './routing-table.ts'
import type { Rpc } from './rpc.ts'
import type { Storage } from './storage.ts'

/** The `err` code of a node that has left the ring (chord.ts `leave`): every request it gets is answered so. */
export const LEFT = 'left'
/** The `err` code of a request over the asking peer's budget (a reply's, or a route's). */
export const BUSY = 'busy'
/** Candidates a `closer` answer carries. */
const CLOSER_COUNT = 6
/** Routes passed on whose answers we may pass back (the oldest forgotten first). */
export const MAX_RELAYS = 1024

type Handler<T extends ChordRequestType> = (
  from: string,
  msg: Extract<ChordRequest, { t: T }>,
) => void | Promise<void>

type Routed = Extract<ChordMsg, { t: 'routed' }>
type Err = Extract<ChordMsg, { t: 'err' }>

type RequestHandlers = { [T in ChordRequestType]: Handler<T> }

export type HandlerTable = RequestHandlers & {
  /** A `routed` for a route we passed on: pass it back the way the route came (false: not ours to pass). */
  relay(msg: Routed): boolean
  /**
   * An `err busy` for a route we passed on: from the node we passed it to, pass it back the way
   * the route came, once; from any other node, drop it (`drop.routeErr`). False: not a route of ours.
   */
  relayErr(from: string, msg: Err): boolean
}

export interface HandlerParts {
  table: RoutingTable
  liveness: Liveness
  rpc: Rpc
  maintenance: Maintenance
  replication: Replication
  storage: Storage
}

export function createHandlers(ctx: ChordContext, parts: HandlerParts): HandlerTable {
  const { deps, o, counters, send, self } = ctx
  const { table, maintenance, replication, storage } = parts
  const budget = createReplyBudget(o, counters)
  /** Can `from` be sent `msg` within its budget? (charged when it can) */
  const affords = (from: string, msg: ChordMsg): boolean => {
    if (budget.take(from, replyBytes(msg), deps.now())) return true
    bump(counters, 'drop.replyBudget')
    return false
  }
  /** Routes we passed on for each peer, per window. */
  const routes = createWindowBudget(
    { limit: o.routeBudget, windowMs: o.replyWindowMs },
    counters,
    'routeBudget.evicted',
  )
  /**
   * Routes we passed on: the peer each came from, until its origin stops waiting (routeRec's
   * timeout), so that the answer can go back over the links the route came by.
   */
  const relays = createRouteRelays({ max: MAX_RELAYS, ttlMs: 4 * o.requestTimeoutMs }, counters)
  const busy = (r: number): Err => ({ t: 'err', r, code: BUSY })
  /** Answer `from`'s request: `msg` within its budget, else `err busy`. */
  const reply = (from: string, msg: ChordReply): void => send(from, affords(from, msg) ? msg : busy(msg.r))
  return {
    ping: (from, m) => send(from, { t: 'pong', r: m.r }),

    find(from, m) {
      const a = table.answerFor(m.k)
      if (a) reply(from, { t: 'found', r: m.r, p: a.p, s: a.s })
      else {
        // Every successor died: we do not know who follows us, and must not claim the position.
        if (table.successors().length === 0) bump(counters, 'find.noSuccessor')
        reply(from, { t: 'closer', r: m.r, n: table.closestPreceding(m.k, CLOSER_COUNT) })
      }
    },

    route(from, m) {
      const a = table.answerFor(m.k)
      if (a) {
        // To the origin over our link to it; with none, back to the node that asked us, which
        // passes it back as the route came (relay): we open no link to an id a peer names. Its
        // bytes are charged to the node that asked us.
        const msg: Routed = { t: 'routed', r: m.r, p: a.p, s: a.s, h: m.h }
        const direct = m.o === from || deps.linked?.(m.o) === true
        if (!affords(from, msg)) return
        if (!direct) bump(counters, 'route.back')
        send(direct ? m.o : from, msg)
        return
      }
      const next = table.closestPreceding(m.k, 1)[0]
      if (next === undefined || m.h >= MAX_STEPS) {
        bump(counters, 'drop.routeStuck')
        return
      }
      const now = deps.now()
      const held = m.o === self ? undefined : relays.pendingFrom(m.r, now)
      if (held !== undefined && held !== from) {
        // Another peer's route of this id is under way: its answer is that peer's, not this one's.
        bump(counters, 'drop.routeTaken')
        return
      }
      if (!routes.take(from, 1, now)) {
        // Said to the peer that sent it, its origin or the node that passed it on (which passes
        // the err back): the origin looks up iteratively at once. One small err per route.
        bump(counters, 'drop.routeBudget')
        const err = busy(m.r)
        if (affords(from, err)) send(from, err)
        return
      }
      if (m.o !== self) relays.add(m.r, from, next, now)
      send(next, { ...m, h: m.h + 1 })
    },

    relay(msg) {
      const back = relays.take(msg.r, deps.now())
      if (back === undefined) return false
      bump(counters, 'route.relayed')
      if (affords(back, msg)) send(back, msg)
      return true
    },

    relayErr(from, msg) {
      const now = deps.now()
      const to = relays.passedTo(msg.r, now)
      if (to === undefined) return false
      if (to !== from) {
        // Not from whom the route went to (that node could as well have dropped it): it ends nothing.
        bump(counters, 'drop.routeErr')
        return true
      }
      const back = relays.take(msg.r, now) as string
      bump(counters, 'route.errBack')
      const err = busy(msg.r)
      if (affords(back, err)) send(back, err)
      return true
    },

    getPred: (from, m) => reply(from, { t: 'pred', r: m.r, p: table.predecessor(), s: table.passedOn() }),
    notify: (from) => maintenance.onNotify(from),
    newSucc: (from) => maintenance.onNewSucc(from),
    leave: (from, m) => maintenance.onLeave(from, m.p, m.s),
    table: (from, m) => reply(from, { t: 'fingers', r: m.r, f: table.known().slice(0, LIMITS.ids) }),

    offer: (from, m) => replication.onOffer(from, m),
    store: (from, m) => replication.onStore(from, m),
    get: (from, m) => reply(from, { t: 'got', r: m.r, rec: storage.store.getRecord(m.a, m.k)?.rec ?? null }),
    getProv: (from, m) =>
      reply(from, {
        t: 'provs',
        r: m.r,
        provs: storage.store.providersOf(m.k, deps.now()).slice(0, LIMITS.records),
      }),
  }
}

/**
 * A message from `from`, validated here whatever the host did; never throws.
 * When we have `left` the ring (chord.ts `leave`), a request is answered
 * `err left` (its sender takes us as gone at once, not after two timeouts)
 * and not run; replies still go to our requests.
 */
export function dispatch(
  ctx: ChordContext,
  parts: Pick<HandlerParts, 'liveness' | 'rpc'>,
  handlers: HandlerTable,
  from: string,
  raw: unknown,
  left = false,
): void | Promise<void> {
  const { counters } = ctx
  if (!isNodeId(from) || from === ctx.self) {
    bump(counters, 'drop.from')
    return
  }
  const msg = parseChordMsg(raw)
  if (!msg) {
    bump(counters, 'drop.malformed')
    return
  }
  parts.liveness.heard(from)
  if (isReply(msg)) {
    // An answer or err busy for a route we passed on goes back the way it came; an err is ours
    // when it names a request of ours to its sender (a peer naming a pending id cannot take it).
    const passedBack =
      msg.t === 'routed'
        ? handlers.relay(msg)
        : msg.t === 'err' &&
          msg.code === BUSY &&
          !parts.rpc.expects(from, msg.r) &&
          handlers.relayErr(from, msg)
    if (!passedBack) parts.rpc.onReply(from, msg)
    // It says so itself, over its own link: it has left the ring (gone now, not after two timeouts).
    if (msg.t === 'err' && msg.code === LEFT) {
      bump(counters, 'peer.left')
      parts.liveness.markDead(from)
    }
    return
  }
  if (left) {
    if ('r' in msg && msg.r > 0) ctx.send(from, { t: 'err', r: msg.r, code: LEFT })
    return bump(counters, 'drop.left')
  }
  try {
    return run(handlers, from, msg)
  } catch {
    bump(counters, 'error.internal') // no handler throws; if one ever did, the host must not see it
  }
}

/** The handler for `msg`'s type. (TypeScript cannot pair a union's members with a mapped type's: one cast, here.) */
function run<T extends ChordRequestType>(
  handlers: RequestHandlers,
  from: string,
  msg: Extract<ChordRequest, { t: T }>,
): void | Promise<void> {
  const h = handlers[msg.t as T] as Handler<T>
  return h(from, msg)
}
