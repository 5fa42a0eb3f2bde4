/**
 * weft/testing: weft nodes on an in-memory network with a virtual clock,
 * for unit tests of apps built on weft (Vitest, node:test). See
 * testing/README.md.
 */
export type { WeftNode } from '../../client/weft-node.ts'
export { type ClockView, VirtualClock } from './clock.ts'
export { type FrameEvent, MemLink, MemNet, type MemNetOptions, type MemNetStats } from './mem-transport.ts'
export {
  createTestNetwork,
  type RunOptions,
  type TestNetwork,
  type TestNetworkOptions,
  type TestNodeOptions,
} from './network.ts'
