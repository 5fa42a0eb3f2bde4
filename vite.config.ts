/**
 * Two Vite builds into dist/web (scripts/build.mjs runs both):
 *   WEFT_BUILD=lib   the embeddable ESM bundle: weft.mjs, and weft-files.mjs (loaded by node.files)
 *   WEFT_BUILD=lib-iife  the same as one IIFE script: weft.js (global `Weft`), which loads
 *                    WEFT_BUILD=files-all, weft-files-all.mjs (the files engine, self-contained), on first use
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

/** The IIFE build loads the files engine from weft-files-all.mjs (client/files/load-engine-iife.ts). */
function iifeFilesLoader(): Plugin {
  return {
    name: 'weft-iife-files-loader',
    enforce: 'pre',
    async resolveId(source, importer, options) {
      if (!source.endsWith('/load-engine.ts')) return null
      const r = await this.resolve(
        source.replace(/load-engine\.ts$/, 'load-engine-iife.ts'),
        importer,
        options,
      )
      return r?.id ?? null
    },
  }
}

const which = process.env.WEFT_BUILD ?? 'lib'

/**
 * The files swarm (client/files/engine.ts, shared/swarm/, the IndexedDB store) is loaded on first use
 * of `node.files`: in weft.mjs it is a chunk of its own, weft-files.mjs, that pages without files never
 * fetch. Only those modules go into it (not what they share with the rest, which stays in weft.mjs);
 * the link parser's few modules (uri, limits, errors) stay in weft.mjs, which checks links at once.
 */
const FILES_CHUNK =
  /[\\/](shared[\\/]swarm[\\/](?!uri|limits|errors)|client[\\/]files[\\/](engine|idb-store)\.ts)/

export default defineConfig(
  which === 'files-all'
    ? {
        publicDir: false,
        build: {
          outDir: 'dist/web',
          emptyOutDir: false,
          target: 'es2022',
          sourcemap: true,
          lib: { entry: 'client/files/engine.ts', formats: ['es'], fileName: () => 'weft-files-all.mjs' },
          rolldownOptions: { output: { minify: true, codeSplitting: false } },
        },
      }
    : which === 'lib' || which === 'lib-iife'
      ? {
          publicDir: false,
          plugins: which === 'lib' ? [websocketOnly()] : [websocketOnly(), iifeFilesLoader()],
          build: {
            outDir: 'dist/web',
            emptyOutDir: false,
            target: 'es2022',
            sourcemap: true,
            // Two runs (scripts/build.mjs): ESM with its files chunk, then the IIFE, which has it inline.
            lib: {
              entry: 'client/browser.ts',
              name: 'Weft',
              formats: which === 'lib' ? ['es'] : ['iife'],
              fileName: (format) => (format === 'es' ? 'weft.mjs' : 'weft.js'),
            },
            // Vite leaves a library's ESM output unminified (whitespace and all, for bundlers that
            // re-bundle it); weft.mjs is also served to browsers as is, so it is minified like weft.js.
            rolldownOptions:
              which === 'lib'
                ? {
                    // The entry may export what the files chunk needs of it.
                    preserveEntrySignatures: 'allow-extension',
                    output: {
                      minify: true,
                      chunkFileNames: 'weft-[name].mjs',
                      codeSplitting: {
                        groups: [{ name: 'files', includeDependenciesRecursively: false, test: FILES_CHUNK }],
                      },
                    },
                  }
                : { output: { minify: true, codeSplitting: false } },
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
