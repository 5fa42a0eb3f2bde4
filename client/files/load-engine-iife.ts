/**
 * weft.js (one classic script, no module graph) loads the files engine as
 * weft-files-all.mjs, a self-contained ES module beside it (vite.config.ts),
 * on first use of `node.files`: pages without files do not pay for it.
 * Its URL is taken from the script's own when it runs.
 */
const base =
  typeof document !== 'undefined' && document.currentScript instanceof HTMLScriptElement
    ? document.currentScript.src
    : typeof location !== 'undefined'
      ? location.href
      : ''

export const loadEngine = (): Promise<typeof import('./engine.ts')> =>
  import(/* @vite-ignore */ new URL('weft-files-all.mjs', base).href)
