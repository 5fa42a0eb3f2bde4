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
      for (let i = 0; i < m.pieces; i++) out.set(await readPiece(i), i * m.pieceSize)
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
