/**
 * weft for Node.js: `import { joinOverlay } from 'weft'`.
 * WebRTC comes from the `wrtc` option (@roamhq/wrtc); without it the node
 * can only use relay links through the signal server.
 */
import SimplePeer from 'simple-peer'
import { io } from 'socket.io-client'
import { checkPuzzleBits, DEFAULT_PUZZLE_BITS } from '../shared/identity/puzzle.ts'
import { folderStorage } from './folder-storage.ts'
import { loadNodeIdentity } from './identity-store.ts'
import { checkJoinOptions } from './join-options.ts'
import { type JoinOptions, OverlayNode } from './overlay.ts'

export * from './api.ts'

/** Join a weft network. Resolves once registered with a signal server and linked to a peer (or alone). */
export async function joinOverlay(options: JoinOptions): Promise<OverlayNode> {
  checkJoinOptions(options)
  const puzzleBits = checkPuzzleBits(options.puzzleBits ?? DEFAULT_PUZZLE_BITS)
  const identity = await loadNodeIdentity(options.dataDir, puzzleBits)
  const opts: JoinOptions = options.wrtc || options.relay ? options : { ...options, relay: 'force' }
  const storage = options.dataDir ? folderStorage(options.dataDir, '') : undefined
  const node = new OverlayNode(
    { SimplePeer: SimplePeer as never, io: io as never, identity, ...(storage ? { storage } : {}) },
    opts,
  )
  try {
    await node.start()
  } catch (err) {
    await node.close()
    throw err
  }
  return node
}
