/**
 * One download's own state beside its file's swarm: who is asked for the
 * manifest, DHT lookups, what lied, the rate meter, the listeners, and the
 * promise `done()` gives. The rules that move it are in download.ts.
 */
import type { FileSwarm } from './file-swarm.ts'
import type { FileInfo, PieceEvent, Progress } from './options.ts'
import { RateMeter } from './rate.ts'
import type { FileRef } from './uri.ts'

export class DownloadState {
  readonly meter: RateMeter
  readonly progressListeners = new Set<(p: Progress) => void>()
  readonly pieceListeners = new Set<(e: PieceEvent) => void>()
  private waiters: (() => void)[] = []
  /** 'done', or the error it ended with; undefined while it runs. */
  settled: 'done' | Error | undefined
  readonly result: Promise<FileInfo>
  resolve!: (info: FileInfo) => void
  reject!: (err: Error) => void
  /** Its file's swarm, once loaded. */
  file: FileSwarm | undefined
  /** Peers asked for the manifest (each once), and the request waiting. */
  readonly metaAsked = new Set<string>()
  metaReq: { peer: string; deadline: number } | undefined
  /** A manifest is being checked and stored. */
  metaBusy = false
  /** Some peer sent a manifest that did not hash to the id. */
  liedManifest = false
  /** Pieces some peer sent with a wrong hash or length. */
  readonly liedPieces = new Set<number>()
  lookupAt: number
  lookupGap = 1_000
  lookupPending = false
  /** Last time a connected peer had a piece we lack (or we had nothing to wait for). */
  lastSourceAt: number
  /** Peers reported in the last progress event. */
  lastPeers = -1
  /** Unsubscribes from the caller's AbortSignal. */
  unlisten: (() => void) | undefined

  constructor(
    readonly ref: FileRef,
    readonly startedAt: number,
    rateWindowMs: number,
  ) {
    this.meter = new RateMeter(rateWindowMs, startedAt)
    this.lookupAt = startedAt
    this.lastSourceAt = startedAt
    this.result = new Promise<FileInfo>((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
    // Nobody may be waiting on done(): an unobserved failure must not be an unhandled rejection.
    this.result.catch(() => {})
  }

  get id(): string {
    return this.ref.id
  }

  get active(): boolean {
    return this.settled === undefined
  }

  /** Wake everything waiting for news (pieces(), bytes()). */
  changed(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  nextChange(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve))
  }
}
