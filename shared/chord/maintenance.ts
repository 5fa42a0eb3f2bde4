/**
 * Keeping the ring right (Chord's stabilization), driven by the node's tick:
 *   - stabilize: ask the successor for its predecessor and successor list;
 *     adopt the predecessor when it lies between us and the successor (and
 *     keep stepping back while the next one does too), take the successor's
 *     list as the tail of ours, then notify the successor;
 *   - notify: a node that lies between our predecessor and us becomes it;
 *   - fix-fingers: look up one finger start; every following start that the
 *     answer also covers takes the same node, so a full cycle costs about
 *     log2 N lookups rather than 160;
 *   - check-predecessor: ping it; no answer clears it (liveness.ts).
 *
 * Joining: look up our own id through any member, take the answer's
 * successor list, notify the successor (it hands over the records we are
 * now responsible for) and tell the predecessor it has a new successor
 * (`newSucc`, which saves it a stabilization round); fingers start from the
 * successor's table as hints and are corrected by fix-fingers. Leaving:
 * `leave` tells both neighbours whom to take instead; a neighbour takes it
 * only when it is what an honest leave says (`honestLeave`), else drops it
 * (`drop.leave`) and stabilization closes the gap as after a crash.
 *
 * Repair after failures. A timed-out stabilization pings the whole successor
 * list at once, so a run of dead successors is found in one timeout rather
 * than one per stabilization. A node whose successors all died (it answers
 * no lookup past its own range meanwhile) takes the nearest live node after
 * it that it or its predecessor knows, and walks back through predecessors
 * before it publishes the list; when it knows no live node at all, it is
 * alone and answers for the whole ring, as a node that created one. A node left
 * without a predecessor looks up its own id and sends `newSucc` to the node
 * the ring names as its predecessor, which may have lost it from its list.
 *
 * Merging rings. Two groups that started at once (each found no member
 * answering) make two rings that stabilization alone never joins: every
 * node's successor is right within its own ring. The node's other links are
 * the evidence (`consider`): a live peer on a ring that lies between us and
 * our successor is a closer successor than ours. We ask it for its
 * predecessor, step back as stabilize does, take the merged list (both lists
 * in ring order from us) and notify it; a peer between our predecessor and
 * us is told we may be its successor (`newSucc`, which it checks). Each such
 * step splices one node into the other ring; stabilization's step-back
 * carries it on until one ring is left. Two rings can also interleave so
 * that no link lies between ring neighbours: now and then (`probe`, from
 * 5 stabilize periods doubling to a minute, back to the start when it finds
 * one) a node looks its own id up through a linked node; on its own ring
 * the answer names it, on another it names the nodes around its place
 * there, which it then considers.
 */
import { NoRouteError } from '../errors.ts'
import { bump } from '../protocol.ts'
import type { Liveness } from './liveness.ts'
import type { Lookup } from './lookup.ts'
import type { ChordMsg } from './messages.ts'
import type { ChordContext } from './options.ts'
import { between, distance, fromOrigin, RING_BITS, startsUpTo } from './ring.ts'
import type { RoutingTable } from './routing-table.ts'
import type { Rpc } from './rpc.ts'
import type { SuccessorCheck } from './succ-check.ts'

export interface Maintenance {
  /** Join through `bootstrap` (a member); NoRouteError when it leads nowhere. */
  join(bootstrap: string): Promise<void>
  stabilize(): Promise<void>
  fixFingers(): Promise<void>
  checkPredecessor(): Promise<void>
  onNotify(from: string): void
  onNewSucc(from: string): void
  /**
   * `from` leaves: splice it out (its predecessor becomes ours, its successors ours), then forget
   * it; a leave from a neighbour that is not what an honest one sends is dropped (`drop.leave`).
   */
  onLeave(from: string, p: string | null, list: string[]): void
  /**
   * Live peers we know from elsewhere (links): one that lies between us and
   * our successor, or our predecessor and us, is a sign of a second ring
   * (or a join not yet stabilized). Resolves true when the ring changed.
   */
  consider(peers: Iterable<string>): Promise<boolean>
  /** Look our own id up through `via`: if it is on another ring, merge with it (resolves true when the ring changed). */
  probe(via: string): Promise<boolean>
}

export function createMaintenance(
  ctx: ChordContext,
  table: RoutingTable,
  liveness: Liveness,
  rpc: Rpc,
  lookup: Lookup,
  /** Adopting a successor's list (succ-check.ts). */
  check: SuccessorCheck,
  /** Stabilize again at the next tick (a successor stopped answering). */
  stabilizeSoon: () => void,
): Maintenance {
  const { self, counters } = ctx
  const { isDead } = liveness
  const { request } = rpc
  let fixNext = 0

  type PredAnswer = Extract<ChordMsg, { t: 'pred' }>

  /** From `s`, which answered `res`: step back through predecessors that lie between us and it, a round trip a step. */
  async function stepBack(s: string, res: PredAnswer): Promise<{ s: string; res: PredAnswer }> {
    for (let step = 0; step < 64; step++) {
      const x = res.p
      if (x === null || x === self || !between(x, self, s) || isDead(x)) break
      const back = await request(x, (r) => ({ t: 'getPred', r }))
      if (back?.t !== 'pred') break
      s = x
      res = back
    }
    return { s, res }
  }

  async function stabilize(): Promise<void> {
    if (table.successors().length === 0) {
      const pred = table.predecessor()
      if (!table.hadSuccessor()) {
        // Alone in a ring we created (the paper's successor = self): adopt whoever notified us.
        if (pred !== null) table.setSuccessors([pred])
      } else await recoverSuccessor()
      if (table.successors().length === 0) return
    }
    const first = table.successors()[0] as string
    const res = await request(first, (r) => ({ t: 'getPred', r }))
    if (res?.t !== 'pred') {
      if (!res) {
        // It is marked dead. Others in the list may have died with it: ping them all at once
        // rather than finding out one stabilization at a time, and go on at the next tick.
        stabilizeSoon()
        await Promise.all(table.successors().map((x) => request(x, (r) => ({ t: 'ping', r }))))
      }
      return
    }
    // The successor's predecessor lies between us: it is our closer successor. Keep stepping back
    // (a round trip a step) until none does, so a far successor, after failures, is corrected in one
    // stabilization and our predecessors never copy a list that skips live nodes.
    const { s, res: at } = await stepBack(first, res)
    if (table.successors()[0] !== first) return // changed meanwhile (a newSucc, a death): start again next time
    // Its list checked, not taken on its word: what it newly names is unverified until heard from
    // (succ-check.ts).
    table.setSuccessors(check.merge(s, [s], at.s, table.successors()))
    const now = table.successors()[0]
    if (now !== undefined) ctx.send(now, { t: 'notify' })
  }

  async function fixFingers(): Promise<void> {
    const s0 = table.successors()[0]
    if (s0 === undefined) {
      for (let i = 0; i < RING_BITS; i++) table.setFinger(i, null)
      return
    }
    // The starts up to our successor take it, without a lookup.
    let i = Math.max(fixNext, startsUpTo(self, s0))
    for (let k = fixNext; k < i; k++) table.setFinger(k, s0)
    if (i >= RING_BITS) {
      fixNext = 0
      return
    }
    const start = table.start(i)
    const res = await lookup.route(start, false) // not cross-checked: a finger only chooses whom we ask (lookup.ts)
    const f = res?.s.find((x) => !isDead(x))
    // An answer before the start (from a stale successor list) is no finger.
    if (f === undefined || f === self || !(f === start || between(f, start, self))) {
      table.setFinger(i, null)
      fixNext = (i + 1) % RING_BITS
      return
    }
    // Every following start up to f takes f too.
    const j = Math.max(i + 1, startsUpTo(self, f))
    for (; i < j; i++) table.setFinger(i, f)
    fixNext = j % RING_BITS
  }

  /**
   * Every successor failed. Take the nearest live node after us that we, or
   * our predecessor, know (the predecessor's fingers just past us are close),
   * then step back through predecessors to the nearest one.
   */
  async function recoverSuccessor(): Promise<void> {
    bump(counters, 'ring.recover')
    const cands = new Set(table.known())
    const pred = table.predecessor()
    if (pred !== null) {
      const res = await request(pred, (r) => ({ t: 'table', r }))
      if (res?.t === 'fingers') for (const x of res.f) cands.add(x)
    }
    let best: string | null = null
    for (const x of cands) if (x !== self && !isDead(x) && (best === null || between(x, self, best))) best = x
    if (best === null) {
      // Nobody we know is alive, nobody is left to ask: we are alone (until someone notifies us).
      bump(counters, 'ring.alone')
      table.becomeAlone()
      return
    }
    // Walk back from there through predecessors, one round trip a step, before anyone copies the
    // list: a far successor in our list would reach our predecessors' lists too.
    let list: string[] = []
    for (let step = 0; best !== null && step < 64; step++) {
      if (table.successors().length > 0) return // someone notified us meanwhile
      const at: string = best
      const res = await request(at, (r) => ({ t: 'getPred', r }))
      if (res?.t !== 'pred') {
        best = list[0] ?? null
        list = list.slice(1)
        continue
      }
      list = [at, ...res.s]
      const p = res.p
      if (p === null || p === self || !between(p, self, at) || isDead(p)) break
      best = p
    }
    if (table.successors().length === 0 && list.length > 0) table.setSuccessors(list)
  }

  /** Finger hints from a node's table: finger[i] = the first hint at or past start[i] (before coming round to us). */
  async function fetchFingerHints(from: string): Promise<void> {
    const res = await request(from, (r) => ({ t: 'table', r }))
    if (res?.t !== 'fingers') return
    const hints = [...new Set([from, ...res.f, ...table.successors()])]
      .filter((x) => x !== self && !isDead(x))
      .map((x) => ({ x, d: distance(self, x) }))
      .sort((a, b) => (a.d < b.d ? -1 : a.d > b.d ? 1 : 0))
    const finger = table.fingerTable()
    // Hints in ring order from us: start[i] takes the first whose distance is at least 2^i.
    let h = 0
    for (let i = 0; i < RING_BITS; i++) {
      while (h < hints.length && (hints[h] as { d: bigint }).d < 1n << BigInt(i)) h++
      const best = hints[h]
      if (best === undefined) break
      if (finger[i] === null) table.setFinger(i, best.x)
    }
  }

  async function checkPredecessor(): Promise<void> {
    const p = table.predecessor()
    if (p === null) {
      if (table.hadSuccessor()) await seekPredecessor()
      return
    }
    await request(p, (r) => ({ t: 'ping', r })) // a timeout marks it dead, which clears it
  }

  /**
   * No predecessor has notified us: the node the ring believes precedes our id
   * may have lost us from its successor list (all its successors died at once).
   * Look up our own id and tell that node we are its successor, as a joining node does.
   */
  async function seekPredecessor(): Promise<void> {
    const r = await lookup.routeIter(self)
    if (!r || table.predecessor() !== null) return
    if (r.p !== self && !r.s.includes(self)) {
      bump(counters, 'ring.seekPredecessor')
      ctx.send(r.p, { t: 'newSucc' })
    }
  }

  /**
   * Is a `leave` from our predecessor (`follow`: we take its predecessor)
   * or our successor (`precede`: we take its successors) what an honest
   * leaving node sends, `p` its predecessor and `list` its successor list?
   * The list is in ring order from it (nor it nor a repeat in it); our
   * predecessor names us as its successor, and a predecessor before which
   * we know no live node nearer it (a far one would make us answer for its
   * range until our true predecessor notifies us); our successor names us
   * as its predecessor.
   */
  function honestLeave(
    from: string,
    p: string | null,
    list: string[],
    follow: boolean,
    precede: boolean,
  ): boolean {
    let last = 0n
    for (const x of list) {
      const d = distance(from, x)
      if (d <= last) return false
      last = d
    }
    if (follow) {
      if (list[0] !== self || p === from || (p === self && !precede)) return false
      if (p !== null && p !== self)
        for (const x of table.known()) if (x !== from && !isDead(x) && between(x, p, from)) return false
    }
    return !precede || p === self
  }

  /** Both lists in ring order from us (the nearest first), without the dead. */
  function inRingOrder(list: Iterable<string>): string[] {
    return [...new Set(list)].filter((x) => x !== self && !isDead(x)).sort(fromOrigin(self))
  }

  /**
   * Is `via` on another ring? Look our own id up through it (its ring's
   * routing): on ours the answer names us; on another it names the nodes
   * that would be our predecessor and successors there, which `consider` takes.
   */
  async function probe(via: string): Promise<boolean> {
    bump(counters, 'ring.merge.probe')
    const r = await lookup.routeIter(self, [via])
    if (!r || r.s.includes(self) || r.p === self) return false
    bump(counters, 'ring.merge.found')
    return consider([r.p, ...r.s])
  }

  async function consider(peers: Iterable<string>): Promise<boolean> {
    const first = table.successors()[0]
    const pred = table.predecessor()
    if (first === undefined) return false // alone: the node's entry joins through a link
    let closer: string | null = null
    let behind: string | null = null
    for (const x of peers) {
      if (x === self || isDead(x)) continue
      if (between(x, self, first) && (closer === null || between(x, self, closer))) closer = x
      if (pred !== null && between(x, pred, self) && (behind === null || between(x, behind, self))) behind = x
    }
    // Behind us: it checks (onNewSucc) and, if we are closer than its successor, takes us and notifies.
    if (behind !== null) {
      bump(counters, 'ring.merge.told')
      ctx.send(behind, { t: 'newSucc' })
    }
    if (closer === null) return false
    const res = await request(closer, (r) => ({ t: 'getPred', r }))
    // Only a node on a ring (it has successors) is taken: one that is still joining will notify us.
    if (res?.t !== 'pred' || res.s.length === 0) return false
    const { s, res: at } = await stepBack(closer, res)
    if (table.successors()[0] !== first) return false // changed meanwhile
    bump(counters, 'ring.merge.adopted')
    table.setSuccessors(inRingOrder([s, ...at.s, ...table.successors()]))
    ctx.send(s, { t: 'notify' })
    return true
  }

  return {
    consider,
    probe,
    async join(bootstrap) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const r = await lookup.routeIter(self, [bootstrap])
        const s = r?.s.filter((x) => x !== self) ?? []
        if (!r || s.length === 0) continue
        table.setSuccessors(s)
        const first = table.successors()[0]
        if (first === undefined) continue
        ctx.send(first, { t: 'notify' })
        if (r.p !== self && r.p !== first) ctx.send(r.p, { t: 'newSucc' })
        ctx.background(fetchFingerHints(first))
        bump(counters, 'joined')
        return
      }
      throw new NoRouteError(bootstrap, `could not join the ring through ${bootstrap}`)
    },
    stabilize,
    fixFingers,
    checkPredecessor,
    onNotify(from) {
      const pred = table.predecessor()
      if (pred === null || between(from, pred, self)) table.setPredecessor(from)
      // Alone in the ring we created: the first node to notify us is also our successor.
      if (table.successors().length === 0 && !table.hadSuccessor()) table.setSuccessors([from])
    },
    onNewSucc(from) {
      const succs = table.successors()
      if (succs.length === 0 || between(from, self, succs[0] as string)) {
        table.setSuccessors([from, ...succs])
        ctx.send(from, { t: 'notify' })
      }
    },
    onLeave(from, p, list) {
      const follow = table.predecessor() === from
      const precede = table.successors()[0] === from
      if ((follow || precede) && !honestLeave(from, p, list, follow, precede)) {
        bump(counters, 'drop.leave')
        return
      }
      bump(counters, 'ring.leave')
      if (follow) table.setPredecessor(p === self ? null : p)
      liveness.markDead(from)
      if (precede) {
        // It is going away: nobody is left to charge for names that stay silent. Of its list we take
        // the nodes we know; one new node only when we know none (stabilization brings the rest).
        const old = table.successors()
        const known = check.merge(from, [], list, old, 0)
        table.setSuccessors(known.length > 0 ? known : check.merge(from, [], list, old, 1))
      }
    },
  }
}
