/**
 * crypto: what the privacy primitives of shared/crypto cost, in Chromium and
 * in Node (the same code, bench/_crypto-suite.ts, bundled for the page).
 *
 *  - envelope*Ms: sealing/opening a routed envelope with a 256-byte body:
 *    p50/p90/mean per message, with the session cache (the normal case), and
 *    envelopeFirstMessageMs without it (a new X25519 exchange on both sides:
 *    what every message would cost if nothing were cached). Goal ≤ 0.2 ms
 *    p50 in Chromium.
 *  - channel16KiB: seal+open throughput of the secure channel with 16 KiB
 *    frames, one frame at a time and pipelined 16 deep, in MB/s (to compare
 *    with the relay's 256 KiB/s quota and a direct link's ~10–25 MB/s).
 *  - channelSetupMs: both ends' ephemeral keys, transcript and channel keys.
 *  - networkDeriveMs: PBKDF2 + HKDF of a private network's keys (once per join).
 *
 * Chromium's page is served cross-origin isolated (COOP/COEP), so
 * performance.now() ticks in 5 µs steps instead of 100 µs.
 *
 *   npm run bench -- crypto
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'vite'
import { launch } from './_browser-kit.ts'
import { runCryptoSuite } from './_crypto-suite.ts'
import { isMain, report } from './report.ts'

const here = dirname(fileURLToPath(import.meta.url))

/** The suite and shared/crypto as one IIFE script defining `WeftCryptoBench`. */
async function bundle(): Promise<string> {
  const result = await build({
    configFile: false,
    logLevel: 'silent',
    build: {
      write: false,
      minify: false,
      lib: {
        entry: join(here, '_crypto-suite.ts'),
        name: 'WeftCryptoBench',
        formats: ['iife'],
        fileName: 'suite',
      },
    },
  })
  const outputs = Array.isArray(result) ? result : [result]
  for (const o of outputs)
    if ('output' in o) for (const chunk of o.output) if (chunk.type === 'chunk') return chunk.code
  throw new Error('vite build gave no script')
}

async function browserFigures(): Promise<Record<string, unknown>> {
  const code = await bundle()
  // A page on http://localhost (a secure context: WebCrypto's X25519 needs one), cross-origin isolated.
  const server = createServer((req, res) => {
    res.writeHead(200, {
      'content-type': req.url === '/suite.js' ? 'text/javascript' : 'text/html',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    })
    res.end(req.url === '/suite.js' ? code : '<!doctype html><title>crypto bench</title>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://localhost:${(server.address() as AddressInfo).port}`
  const browser = await launch()
  try {
    const page = await browser.newPage()
    page.on('pageerror', (err) => console.log(`[page error] ${err.message}`))
    await page.goto(url)
    await page.addScriptTag({ url: `${url}/suite.js` })
    const isolated = await page.evaluate('crossOriginIsolated')
    // A string, not a function: tsx's name helpers (__name) do not exist in the page.
    const figures = (await page.evaluate(
      'WeftCryptoBench.runCryptoSuite({ now: () => performance.now() })',
    )) as Record<string, unknown>
    return { crossOriginIsolated: isolated, ...figures }
  } finally {
    await browser.close()
    await new Promise((resolve) => server.close(resolve))
  }
}

async function nodeFigures(): Promise<Record<string, unknown>> {
  return runCryptoSuite({ now: () => performance.now() })
}

export async function main(): Promise<void> {
  const out: Record<string, unknown> = {}
  for (const [where, f] of [
    ['chromium', browserFigures],
    ['node', nodeFigures],
  ] as const) {
    const figures = await f()
    for (const [k, v] of Object.entries(figures)) out[`${where}.${k}`] = v
  }
  report('crypto', out)
}

if (isMain(import.meta.url)) await main()
