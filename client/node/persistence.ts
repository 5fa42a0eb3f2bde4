/**
 * What a node keeps across runs, in its storage (IndexedDB per identity slot
 * in browsers, a folder in Node, or nothing): the sync table, and for an
 * always-on peer (`persistDht`) its share of the DHT.
 *
 * - The table is loaded before the node joins (then reconciled with the
 *   network by anti-entropy) and saved after changes: at most one snapshot
 *   per SAVE_GAP_MS, the first change after a quiet spell at once; and on
 *   close. The browser entry also calls `save` on pagehide (best effort: a
 *   gap is filled by peers later).
 * - The DHT share is loaded before the join and saved every DHT_SAVE_MS and
 *   on close.
 *
 * A failed save is counted (`save.failed`), never thrown.
 */
import type { Chord } from '../../shared/chord/index.ts'
import { bump, type Counters } from '../../shared/protocol.ts'
import type { Sync } from '../../shared/sync/index.ts'
import type { NodeStorage } from '../storage.ts'
import type { Clock, TimerId } from './clock.ts'

/** At most one table snapshot per this long; the first change after a quiet spell is saved at once. */
const SAVE_GAP_MS = 250
/** How often an always-on peer writes its DHT share to disk. */
const DHT_SAVE_MS = 15_000

export interface PersistenceDeps {
  readonly storage: NodeStorage
  readonly network: string
  readonly sync: Sync
  readonly chord: Chord
  readonly counters: Counters
  readonly clock: Clock
  /** Keep the DHT share too. */
  readonly persistDht: boolean
}

export class Persistence {
  private saveTimer: TimerId | undefined
  private lastSave = 0
  private lastDhtSave: number
  private stopped = false

  constructor(private readonly deps: PersistenceDeps) {
    this.lastDhtSave = deps.clock.now()
    deps.sync.onAccept(() => this.scheduleSave())
  }

  /** The table and the DHT share as this node last saw them (before joining). Never rejects. */
  async load(): Promise<void> {
    const { storage, network } = this.deps
    // Both read at once (two IndexedDB round trips on the join's path would be one after the other).
    const [table, dht] = await Promise.all([
      storage.load(`sync-${network}`).catch(() => undefined),
      storage.load(`dht-${network}`).catch(() => undefined),
    ])
    if (table !== undefined) await this.deps.sync.importState(table).catch(() => 0)
    if (dht !== undefined) await this.deps.chord.importState(dht).catch(() => 0)
  }

  /** The node's tick: an always-on peer's DHT share goes to disk every DHT_SAVE_MS. */
  tick(now: number): void {
    if (this.deps.persistDht && now - this.lastDhtSave > DHT_SAVE_MS) {
      this.lastDhtSave = now
      void this.saveDht()
    }
  }

  private scheduleSave(): void {
    if (this.saveTimer || this.stopped) return
    const wait = Math.max(0, this.lastSave + SAVE_GAP_MS - this.deps.clock.now())
    this.saveTimer = this.deps.clock.setTimeout(() => void this.save(), wait)
  }

  /** Write this node's share of the DHT (an always-on peer does, periodically and on close). */
  async saveDht(): Promise<void> {
    await this.deps.storage
      .save(`dht-${this.deps.network}`, this.deps.chord.exportState())
      .catch(() => bump(this.deps.counters, 'save.failed'))
  }

  /** Write the table snapshot now (also called by the browser entry on pagehide). */
  async save(): Promise<void> {
    this.deps.clock.clearTimeout(this.saveTimer)
    this.saveTimer = undefined
    this.lastSave = this.deps.clock.now()
    await this.deps.storage
      .save(`sync-${this.deps.network}`, this.deps.sync.exportState())
      .catch(() => bump(this.deps.counters, 'save.failed'))
  }

  /** The node closes: a pending table snapshot is written now, and the DHT share of an always-on peer. */
  async close(): Promise<void> {
    this.stopped = true
    if (this.saveTimer) await this.save()
    if (this.deps.persistDht) await this.saveDht()
  }
}
