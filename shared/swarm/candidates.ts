/**
 * Candidates: peers a download may dial, from the DHT's provider records,
 * peer exchange and the host. Bounded per file (`maxCandidates`, the one
 * remembered longest goes first); a candidate that does not answer, says it
 * lacks the file or is full is tried again later (1 s doubling, up to the
 * lookup interval), then forgotten. A download dials random ready
 * candidates until it has `targetPeers` peers, connected or answering.
 */
import { isNodeId } from '../bytes.ts'
import { bump } from '../protocol.ts'
import type { SwarmContext } from './context.ts'
import type { DownloadState } from './download-state.ts'
import type { FileSwarm } from './file-swarm.ts'

/** Ask the DHT for providers while we have fewer peers than we want. */
export function lookup(ctx: SwarmContext, f: FileSwarm, dl: DownloadState, now: number): void {
  const find = ctx.deps.findProviders
  if (!find || dl.lookupPending || now < dl.lookupAt || f.peers.size >= ctx.opts.targetPeers) return
  dl.lookupPending = true
  if (f.peers.size === 0) {
    dl.lookupAt = now + dl.lookupGap
    dl.lookupGap = Math.min(ctx.opts.lookupIntervalMs, dl.lookupGap * 2)
  } else dl.lookupAt = now + ctx.opts.lookupIntervalMs
  bump(ctx.counters, 'swarm.lookup')
  // A host's lookup that throws at once is a failed lookup, not an exception in tick.
  new Promise<string[]>((resolve) => resolve(find.call(ctx.deps, f.id)))
    .then((ids) => {
      if (!dl.active || !Array.isArray(ids)) return
      addCandidates(ctx, f, ids.slice(0, ctx.opts.maxCandidates))
      dialMore(ctx, f)
    })
    .catch(() => bump(ctx.counters, 'swarm.lookup-failed'))
    .finally(() => {
      dl.lookupPending = false
    })
}

/** Remember peers to dial (from the DHT, pex, the host), bounded. */
export function addCandidates(ctx: SwarmContext, f: FileSwarm, ids: readonly unknown[]): void {
  const now = ctx.now()
  for (const id of ids) {
    if (!isNodeId(id) || id === ctx.deps.id || f.banned.has(id) || f.peers.has(id) || f.connecting.has(id))
      continue
    if (f.candidates.has(id)) continue
    if (f.candidates.size >= ctx.opts.maxCandidates) {
      // Full: the one remembered longest goes (a Map iterates in insertion order).
      f.candidates.delete(f.candidates.keys().next().value as string)
    }
    f.candidates.set(id, { retryAt: now, failures: 0 })
  }
}

/** Say hello to random candidates until we have targetPeers (connected and waiting). */
export function dialMore(ctx: SwarmContext, f: FileSwarm): void {
  if (!f.download?.active) return
  const now = ctx.now()
  const room = Math.min(ctx.opts.targetPeers, ctx.opts.maxPeers) - f.peers.size - f.connecting.size
  if (room <= 0) return
  const ready = [...f.candidates].filter(([, c]) => c.retryAt <= now).map(([id]) => id)
  for (let n = 0; n < room && ready.length > 0; n++) {
    const k = Math.floor(ctx.deps.random() * ready.length)
    const id = ready[k] as string
    ready[k] = ready[ready.length - 1] as string
    ready.pop()
    f.candidates.delete(id)
    f.connecting.set(id, now + ctx.opts.helloTimeoutMs)
    ctx.send(id, f.have ? { t: 'hello', file: f.id, bits: f.have.bytes.slice() } : { t: 'hello', file: f.id })
  }
}

/** A candidate did not work out: try it again later, then forget it. */
export function candidateFailed(ctx: SwarmContext, f: FileSwarm, id: string, failures = 1): void {
  if (!f.download?.active || f.banned.has(id)) return
  const c = f.candidates.get(id) ?? { retryAt: 0, failures: 0 }
  c.failures += failures
  if (c.failures > 5) return void f.candidates.delete(id)
  c.retryAt = ctx.now() + Math.min(ctx.opts.lookupIntervalMs, 1_000 * 2 ** c.failures)
  f.candidates.delete(id)
  if (f.candidates.size < ctx.opts.maxCandidates) f.candidates.set(id, c)
}
