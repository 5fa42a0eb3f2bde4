/**
 * The weft signal server, as a library: `createSignalServer(options)`
 * (server.ts) and its types. `main.ts` is the command line around it; the
 * layout of the rooms is in server.ts and README.md.
 */
export type { SignalServerOptions } from './options.ts'
export { createSignalServer, type SignalServer } from './server.ts'
