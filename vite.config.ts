/**
 * Two Vite builds into dist/web (scripts/build.mjs runs both):
 *   WEFT_BUILD=lib   the embeddable bundle: weft.mjs (ESM) and weft.js (IIFE, global `Weft`)
 *   WEFT_BUILD=demo  the demo page (index.html), which loads /weft.mjs like any embedding site
 * Source maps carry their sources (sourcesContent), so a stack trace from a page maps to weft's code.
 */
import { defineConfig } from 'vite'

const which = process.env.WEFT_BUILD ?? 'lib'

export default defineConfig(
  which === 'lib'
    ? {
        publicDir: false,
        build: {
          outDir: 'dist/web',
          emptyOutDir: false,
          target: 'es2022',
          sourcemap: true,
          lib: {
            entry: 'client/browser.ts',
            name: 'Weft',
            formats: ['es', 'iife'],
            fileName: (format) => (format === 'es' ? 'weft.mjs' : 'weft.js'),
          },
          // Vite leaves a library's ESM output unminified (whitespace and all, for bundlers that
          // re-bundle it); weft.mjs is also served to browsers as is, so it is minified like weft.js.
          rolldownOptions: { output: { minify: true } },
        },
      }
    : {
        root: 'client/demo',
        base: '/',
        publicDir: false,
        build: {
          outDir: '../../dist/web',
          emptyOutDir: false,
          target: 'es2022',
          rolldownOptions: { external: ['/weft.mjs'] },
        },
      },
)
