/**
 * Where the files engine comes from: a dynamic import, which the ESM build
 * (weft.mjs) turns into its chunk weft-files.mjs and the Node build keeps.
 * The IIFE build (weft.js) replaces this module with load-engine-iife.ts
 * (vite.config.ts).
 */
export const loadEngine = (): Promise<typeof import('./engine.ts')> => import('./engine.ts')
