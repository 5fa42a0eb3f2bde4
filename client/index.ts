/**
 * weft for Node.js: `import { joinOverlay } from 'weft'`.
 *
 * WebRTC comes from the `wrtc` option: the module of node-datachannel's
 * polyfill, werift or @roamhq/wrtc (links/wrtc-adapter.ts makes each work
 * with simple-peer). Without the option the node loads the first of those
 * that is installed, node-datachannel first (weft's optional dependency);
 * with none installed, or `wrtc: false`, it can only use relay links
 * through the signal server.
 */
import SimplePeer from 'simple-peer'
import { io } from 'socket.io-client'
import { checkPuzzleBits, DEFAULT_PUZZLE_BITS } from '../shared/identity/puzzle.ts'
import { NodeFacade } from './facade.ts'
import { folderStorage } from './folder-storage.ts'
import { loadNodeIdentity } from './identity-store.ts'
import { checkJoinOptions } from './join-options.ts'
import { adaptWrtc, loadWrtc } from './links/wrtc-adapter.ts'
import type { JoinOptions } from './node/options.ts'
import { OverlayNode } from './overlay.ts'
import type { WeftNode } from './weft-node.ts'

export * from './api.ts'
export {
  type AdaptedWrtc,
  adaptWrtc,
  identifyWrtc,
  loadWrtc,
  WRTC_STACKS,
  type WrtcStack,
} from './links/wrtc-adapter.ts'

/** Join a weft network. Resolves once registered with a signal server and linked to a peer (or alone). */
export async function joinOverlay(options: JoinOptions): Promise<WeftNode> {
  checkJoinOptions(options)
  const puzzleBits = checkPuzzleBits(options.puzzleBits ?? DEFAULT_PUZZLE_BITS)
  // A wrong `wrtc` is the caller's mistake: say so now, not at the first link.
  const wrtc = options.wrtc === false ? undefined : options.wrtc ? adaptWrtc(options.wrtc) : await loadWrtc()
  const identity = await loadNodeIdentity(options.dataDir, puzzleBits)
  const opts: JoinOptions = wrtc
    ? { ...options, wrtc }
    : options.relay
      ? { ...options, wrtc: false }
      : { ...options, wrtc: false, relay: 'force' }
  const storage = options.dataDir ? folderStorage(options.dataDir, '') : undefined
  const { dataDir } = options
  const node = new OverlayNode(
    {
      SimplePeer: SimplePeer as never,
      io: io as never,
      identity,
      ...(storage ? { storage } : {}),
      // Files in <dataDir>/files (opened with node.files, so a Node process without files never opens it).
      ...(dataDir
        ? {
            fileStore: async (maxBytes: number | undefined) =>
              (await import('./files/folder-store.ts')).peerPieceStore(dataDir, maxBytes),
          }
        : {}),
    },
    opts,
  )
  try {
    await node.start()
  } catch (err) {
    await node.close()
    throw err
  }
  return new NodeFacade(node)
}
