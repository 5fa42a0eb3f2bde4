/**
 * Stub hosts for presence's unit tests: each is a real `createPresence` with
 * a shared virtual clock, fake keys, and its broadcasts and link messages
 * kept in arrays that a test delivers by hand (`deliver`, `pump`). One fake,
 * used by every presence test file; test-only (not built or shipped).
 */
import type { Keyring } from '../shared/identity/keys.ts'
import type { PresenceMsg } from '../shared/presence/messages.ts'
import {
  createPresence,
  type Presence,
  type PresenceEvent,
  type PresenceOptions,
} from '../shared/presence/presence.ts'
import { encodeBody, type RecordBody, signedBytes, type WireRecord } from '../shared/presence/record.ts'
import { createFakeKeyring } from '../shared/sim/fake-keys.ts'
import type { Value } from '../shared/types.ts'
import { encodeValue } from '../shared/wire/value.ts'

export const T0 = 1_700_000_000_000
export const A = 'aa'.repeat(20)
export const B = 'bb'.repeat(20)
export const C = 'cc'.repeat(20)
export const D = 'dd'.repeat(20)

/** A shared virtual clock. */
export function clock(start = T0) {
  const c = {
    t: start,
    now: () => c.t,
    advance(ms: number) {
      c.t += ms
    },
  }
  return c
}
export type Clock = ReturnType<typeof clock>

export interface PStub {
  id: string
  keys: Keyring
  presence: Presence
  /** Link messages sent, in order, not yet delivered. */
  sent: [string, PresenceMsg][]
  /** Records broadcast, in order, not yet delivered. */
  broadcasts: Value[]
  /** Every record ever broadcast. */
  announced: Value[]
  neighbours: string[]
  events: PresenceEvent[]
  /** What `random()` returns (the jitter's draw). */
  rand: number
}

export function pstub(
  id: string,
  c: Clock,
  opts: PresenceOptions = {},
  keys: Keyring = createFakeKeyring(id),
): PStub {
  const sent: [string, PresenceMsg][] = []
  const broadcasts: Value[] = []
  const announced: Value[] = []
  // The host's fields are read at each call: tests change neighbours and rand as they go.
  const host = { neighbours: [] as string[], rand: 0.5 }
  const presence = createPresence(
    {
      id,
      keys,
      now: () => c.now(),
      random: () => host.rand,
      neighbours: () => host.neighbours,
      send: (to, m) => void sent.push([to, m]),
      broadcast: (r) => {
        broadcasts.push(r)
        announced.push(r)
        return undefined
      },
    },
    opts,
  )
  const events: PresenceEvent[] = []
  presence.onPresence((e) => void events.push(e))
  return {
    id,
    keys,
    presence,
    sent,
    broadcasts,
    announced,
    events,
    get neighbours() {
      return host.neighbours
    },
    set neighbours(v) {
      host.neighbours = v
    },
    get rand() {
      return host.rand
    },
    set rand(v) {
      host.rand = v
    },
  }
}

/** Link `a` and `b`: each lists the other as a neighbour and hears linkUp. */
export function link(a: PStub, b: PStub): void {
  if (!a.neighbours.includes(b.id)) a.neighbours.push(b.id)
  if (!b.neighbours.includes(a.id)) b.neighbours.push(a.id)
  a.presence.linkUp(b.id)
  b.presence.linkUp(a.id)
}

export function unlink(a: PStub, b: PStub): void {
  a.neighbours = a.neighbours.filter((x) => x !== b.id)
  b.neighbours = b.neighbours.filter((x) => x !== a.id)
  a.presence.linkDown(b.id)
  b.presence.linkDown(a.id)
}

/** Hand every broadcast of `from` not yet delivered to each of `to`, as the mesh would (origin = from). */
export async function deliver(from: PStub, ...to: PStub[]): Promise<void> {
  await from.presence.settled()
  const recs = from.broadcasts.splice(0)
  for (const r of recs) for (const t of to) await t.presence.handleBroadcast(from.id, r)
}

/** Deliver link messages among `stubs` until none is left. */
export async function pump(...stubs: PStub[]): Promise<void> {
  const byId = new Map(stubs.map((s) => [s.id, s]))
  for (;;) {
    let moved = false
    for (const s of stubs) {
      await s.presence.settled()
      for (const [to, m] of s.sent.splice(0)) {
        moved = true
        await byId.get(to)?.presence.handle(s.id, m)
      }
    }
    if (!moved) return
  }
}

/** Advance the clock by `ms` in steps of `step`, ticking every stub. */
export async function run(c: Clock, ms: number, stubs: PStub[], step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    c.advance(step)
    for (const s of stubs) s.presence.tick(c.now())
    for (const s of stubs) await s.presence.settled()
  }
}

/** A record signed by `keys`, with a state given as a Value (or none: a leave), or raw state bytes. */
export async function craft(
  keys: Keyring,
  b: Omit<RecordBody, 'state'> & { state?: Value | Uint8Array | undefined },
  opts: { raw?: boolean } = {},
): Promise<WireRecord> {
  const { state, ...prefix } = b
  const encoded =
    state === undefined ? undefined : opts.raw && state instanceof Uint8Array ? state : encodeValue(state)
  const body = encodeBody(encoded === undefined ? prefix : { ...prefix, state: encoded })
  return [body, keys.publicKey, await keys.sign(signedBytes(body))]
}

/** The ids in a stub's table, sorted. */
export function seen(s: PStub): string[] {
  return [...s.presence.get().keys()].sort()
}
