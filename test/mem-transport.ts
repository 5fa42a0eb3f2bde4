/**
 * The in-memory transport for this package's tests of whole nodes
 * (client/node/transport.test.ts, client/presence.test.ts,
 * client/files/files.test.ts): the one the testing kit ships,
 * testing/node/mem-transport.ts, used plain (real time, no loss).
 */
export { MemLink, MemNet } from '../testing/node/mem-transport.ts'
