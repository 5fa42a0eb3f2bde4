/**
 * Two Vite builds into dist/web (scripts/build.mjs runs both):
 *   WEFT_BUILD=lib   the embeddable bundle: weft.mjs (ESM) and weft.js (IIFE, global `Weft`)
 *   WEFT_BUILD=demo  the demo page (index.html), which loads /weft.mjs like any embedding site
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
          rollupOptions: { external: ['/weft.mjs'] },
        },
      },
)
