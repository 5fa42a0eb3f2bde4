/**
 * What a replica tells its listeners: a change to the live view (`onChange`,
 * the application's event) and every version it accepts (`onAccept`, for
 * persistence hosts and instrumentation). A listener that throws is counted
 * (`listenerErrors`) and never stops the replica.
 */
import type { Hlc } from '../hlc.ts'
import { bump, type Counters } from '../protocol.ts'
import type { Value } from '../types.ts'
import { type Entry, entryValue } from './entry.ts'

export interface SyncChange {
  key: string
  /** The new value; undefined when the key was deleted, or evicted from this replica by the table's bounds. */
  value: Value | undefined
  /** The author of the new version (of the evicted one, for an eviction). */
  from: string
}

/** Where an accepted version came from. */
export type AcceptSource = 'local' | 'broadcast' | 'anti-entropy' | 'import'

/** Every version a replica accepts (for persistence hosts and instrumentation). */
export interface SyncAccept {
  key: string
  author: string
  hlc: Hlc
  /** The lease the new version carries, if any. */
  lease: { owner: string; expires: number } | undefined
  /** When the author took that lease (its clock); the HLC wall for a version without one. */
  since: number
  /** `since` as this replica credits it: no earlier than its first sight here − claimSkewMs. */
  claim: number
  /** It replaced another author's version by an earlier lease acquisition (contention). */
  preempted: boolean
  tombstone: boolean
  via: AcceptSource
  /** This replica's clock when it accepted. */
  at: number
}

export interface Events {
  onChange(fn: (e: SyncChange) => void): () => void
  onAccept(fn: (e: SyncAccept) => void): () => void
  /** `e` was accepted in place of `prev` (counted `accepted`, `accepted.<via>`, `contention.preempted`). */
  accepted(prev: Entry | undefined, e: Entry, via: AcceptSource, now: number, preempted: boolean): void
  /** `e` left this replica by the table's bounds: its value, if any, shows as gone. */
  evicted(e: Entry): void
}

export function createEvents(counters: Counters): Events {
  const changeListeners = new Set<(e: SyncChange) => void>()
  const acceptListeners = new Set<(e: SyncAccept) => void>()

  function call<T>(fn: (x: T) => void, x: T): void {
    try {
      fn(x)
    } catch {
      // The application's listener failed; the replica carries on.
      bump(counters, 'listenerErrors')
    }
  }

  function change(ch: SyncChange): void {
    for (const fn of [...changeListeners]) call(fn, ch)
  }

  return {
    onChange(fn) {
      changeListeners.add(fn)
      return () => void changeListeners.delete(fn)
    },

    onAccept(fn) {
      acceptListeners.add(fn)
      return () => void acceptListeners.delete(fn)
    },

    accepted(prev, e, via, now, preempted) {
      bump(counters, 'accepted')
      bump(counters, `accepted.${via}`)
      if (preempted) bump(counters, 'contention.preempted')
      if (acceptListeners.size > 0) {
        const ev: SyncAccept = {
          key: e.key,
          author: e.author,
          hlc: e.hlc,
          lease: e.expires === undefined ? undefined : { owner: e.author, expires: e.expires },
          since: e.since,
          claim: e.claim,
          preempted,
          tombstone: e.tombstone,
          via,
          at: now,
        }
        for (const fn of [...acceptListeners]) call(fn, ev)
      }
      // A delete of a key the live view did not hold changes nothing there.
      if (changeListeners.size === 0 || (e.tombstone && (!prev || prev.tombstone))) return
      change({ key: e.key, value: entryValue(e), from: e.author })
    },

    evicted(e) {
      if (!e.tombstone && changeListeners.size > 0) change({ key: e.key, value: undefined, from: e.author })
    },
  }
}
