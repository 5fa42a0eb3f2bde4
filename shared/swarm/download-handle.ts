/**
 * The object `get` returns: a view of one download for its caller. Pieces
 * read back from the store are hashed again before they are handed out, so
 * what the application gets is what the id names, whatever the store did.
 */
import { bytesEqual } from '../bytes.ts'
import type { SwarmContext } from './context.ts'
import { abortDownload, progressOf } from './download.ts'
import type { DownloadState } from './download-state.ts'
import { NotFoundError } from './errors.ts'
import { pieceHash } from './manifest.ts'
import type { Download } from './options.ts'

/**
 * Pieces `bytes()` reads back and hashes at once. One at a time, each store
 * read (an IndexedDB transaction in a browser) waited for the one before:
 * 32 MiB took ~410 ms in Chromium, 4 at once ~305 (8: ~335), medians of 8
 * interleaved reads on the shared 2-core machine (bench/swarm.ts, issue 13).
 */
export const READ_AHEAD = 4

export function downloadHandle(ctx: SwarmContext, dl: DownloadState): Download {
  const readPiece = async (i: number): Promise<Uint8Array> => {
    const m = dl.file?.manifest
    const data = await ctx.deps.store.getPiece(dl.id, i)
    if (!m || !data || !bytesEqual(await ctx.hash(data), pieceHash(m, i)))
      throw new NotFoundError(dl.id, `piece ${i} of ${dl.id} is no longer in the store`)
    return data
  }
  return {
    id: dl.id,
    manifest: () => dl.file?.manifest,
    progress: () => progressOf(ctx, dl),
    bits: () => dl.file?.have?.bytes.slice(),
    on: ((event: 'progress' | 'piece', fn: (e: never) => void) => {
      const set: Set<(e: never) => void> = event === 'piece' ? dl.pieceListeners : dl.progressListeners
      set.add(fn)
      return () => void set.delete(fn)
    }) as Download['on'],
    done: () => dl.result,
    async bytes() {
      await dl.result
      const m = dl.file?.manifest
      if (!m) throw new NotFoundError(dl.id)
      const out = new Uint8Array(m.size)
      let next = 0
      const reader = async () => {
        for (let i = next++; i < m.pieces; i = next++) out.set(await readPiece(i), i * m.pieceSize)
      }
      await Promise.all(Array.from({ length: Math.min(READ_AHEAD, m.pieces) }, reader))
      return out
    },
    async *pieces() {
      for (let i = 0; ; i++) {
        for (;;) {
          const f = dl.file
          const m = f?.manifest
          if (m && i >= m.pieces) return
          if (m && f?.have?.has(i)) break
          if (dl.settled instanceof Error) throw dl.settled
          if (dl.settled === 'done' && !f?.have?.has(i)) throw new NotFoundError(dl.id, `piece ${i} is gone`)
          await dl.nextChange()
        }
        yield await readPiece(i)
      }
    },
    abort: (reason?: string) => abortDownload(ctx, dl, reason),
  }
}
