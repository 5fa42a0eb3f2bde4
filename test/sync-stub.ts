/**
 * Stub replicas for the sync table's unit tests: each is a real `createSync`
 * with a virtual clock, fake keys, and its link messages and broadcasts kept
 * in arrays that a test delivers by hand (`deliver`, `pump`). One fake, used
 * by every sync test file.
 */
import type { Hlc } from '../shared/hlc.ts'
import type { Keyring } from '../shared/identity/keys.ts'
import { createFakeKeyring } from '../shared/sim/fake-keys.ts'
import { encodeBody, signedBytes } from '../shared/sync/entry.ts'
import type { PutMsg, SyncMsg } from '../shared/sync/messages.ts'
import {
  createSync,
  type Sync,
  type SyncAccept,
  type SyncChange,
  type SyncOptions,
} from '../shared/sync/sync.ts'
import type { Value } from '../shared/types.ts'
import { encodeValue } from '../shared/wire/value.ts'

export const T0 = 1_700_000_000_000
export const A = 'aa'.repeat(20)
export const B = 'bb'.repeat(20)
export const C = 'cc'.repeat(20)

/** A shared virtual clock for stub replicas. */
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

export interface Stub {
  id: string
  sync: Sync
  keys: Keyring
  /** Messages sent on links, in order. */
  sent: [string, SyncMsg][]
  /** Messages broadcast, in order. */
  broadcasts: SyncMsg[]
  neighbours: string[]
  changes: SyncChange[]
  accepts: SyncAccept[]
  /** The replica's clock is off by this much from the shared clock. */
  offset: number
}

export function stub(
  id: string,
  c: ReturnType<typeof clock>,
  opts: SyncOptions = {},
  keys: Keyring = createFakeKeyring(id),
): Stub {
  const sent: [string, SyncMsg][] = []
  const broadcasts: SyncMsg[] = []
  const sync = createSync(
    {
      id,
      keys,
      // The stub's fields are read at each call: tests change neighbours and offset as they go.
      now: () => c.now() + s.offset,
      random: () => 0.5,
      neighbours: () => s.neighbours,
      send: (to, m) => void sent.push([to, m]),
      broadcast: (m) => void broadcasts.push(m),
    },
    opts,
  )
  const s: Stub = { id, keys, sync, sent, broadcasts, neighbours: [], changes: [], accepts: [], offset: 0 }
  sync.onChange((e) => void s.changes.push(e))
  sync.onAccept((e) => void s.accepts.push(e))
  return s
}

/** Hand every broadcast of `from` (not yet delivered) to each of `to`. */
export async function deliver(from: Stub, ...to: Stub[]): Promise<void> {
  const msgs = from.broadcasts.splice(0)
  for (const m of msgs) for (const t of to) await t.sync.handleBroadcast(from.id, m)
}

/** A put signed by `keys` with any fields, for crafted and hostile inputs. */
export async function craft(
  keys: Keyring,
  key: string,
  hlc: Hlc,
  value: Value | undefined,
  leaseMs = 0,
  heldMs = 0,
): Promise<PutMsg> {
  const body = encodeBody(key, hlc, leaseMs, value === undefined ? undefined : encodeValue(value), heldMs)
  return { t: 'p', e: [body, keys.publicKey, await keys.sign(signedBytes(body))] }
}

export function flip(b: Uint8Array, i: number): void {
  b[i] = (b[i] as number) ^ 1
}

/** Run link messages between stubs until none is left (anti-entropy in isolation). */
export async function pump(stubs: Stub[], max = 10_000): Promise<number> {
  const byId = new Map(stubs.map((s) => [s.id, s]))
  let n = 0
  for (;;) {
    let moved = false
    for (const s of stubs) {
      const out = s.sent.splice(0)
      for (const [to, m] of out) {
        moved = true
        n++
        await byId.get(to)?.sync.handle(s.id, m)
      }
    }
    if (!moved || n > max) return n
  }
}
