/**
 * Two Vite builds into dist/web (scripts/build.mjs runs both):
 *   WEFT_BUILD=lib   the embeddable bundle: weft.mjs (ESM) and weft.js (IIFE, global `Weft`)
 *   WEFT_BUILD=demo  the demo page (index.html), which loads /weft.mjs like any embedding site
 * Source maps carry their sources (sourcesContent), so a stack trace from a page maps to weft's code.
 */
import { defineConfig, type Plugin } from 'vite'

/**
 * weft's signal client connects with the WebSocket transport only (client/signal-client.ts), so the
 * browser bundle leaves out engine.io-client's HTTP long-polling and WebTransport transports (about
 * 2 KB gzip): its transport table is replaced by one that holds the WebSocket transport alone.
 */
function websocketOnly(): Plugin {
  return {
    name: 'weft-websocket-only',
    transform(_code, id) {
      if (!id.replace(/\\/g, '/').endsWith('/engine.io-client/build/esm/transports/index.js')) return null
      return {
        code: 'import { WS } from "./websocket.js";\nexport const transports = { websocket: WS };\n',
        map: null,
      }
    },
  }
}

const which = process.env.WEFT_BUILD ?? 'lib'

export default defineConfig(
  which === 'lib'
    ? {
        publicDir: false,
        plugins: [websocketOnly()],
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
