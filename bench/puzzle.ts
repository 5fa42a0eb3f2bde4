/**
 * puzzle: what the identity puzzle (shared/identity/puzzle.ts) costs an
 * honest node, once per identity, in Chromium and in Node.
 *
 *  - keygensPerSec: Ed25519 key pairs generated, exported and hashed per
 *    second (WebCrypto), one core.
 *  - msP50 / msP90 at the default difficulty: time to find one identity
 *    (a geometric number of tries, so the tail is long: p90 ≈ 2.3 × mean).
 *  - expectedMs = 2^bits / keygensPerSec.
 *
 *   npm run bench -- puzzle      (builds first when dist/ is missing)
 */
import { blankPage, startSignalServer } from '../e2e/fixtures.ts'
import { DEFAULT_PUZZLE_BITS, puzzleBits } from '../shared/identity/puzzle.ts'
import { ensureBuilt, launch } from './_browser-kit.ts'
import { isMain, median, quantile, report } from './report.ts'

const IDENTITIES = 40

async function nodeFigures(): Promise<{ keygensPerSec: number; times: number[] }> {
  const t0 = performance.now()
  let n = 0
  while (performance.now() - t0 < 2000) {
    const kp = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign'])) as CryptoKeyPair
    puzzleBits(new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey)))
    n++
  }
  const keygensPerSec = n / ((performance.now() - t0) / 1000)
  const { generateIdentity } = await import('../shared/identity/keys.ts')
  const times: number[] = []
  for (let i = 0; i < IDENTITIES; i++) {
    const t = performance.now()
    await generateIdentity()
    times.push(performance.now() - t)
  }
  return { keygensPerSec, times }
}

async function browserFigures(): Promise<{ keygensPerSec: number; times: number[] }> {
  ensureBuilt()
  const server = await startSignalServer()
  const browser = await launch()
  try {
    const page = await blankPage(await browser.newContext(), server.url)
    // A string, not a function: tsx's name helpers (__name) do not exist in the page.
    const script = `(async (bits, identities) => {
      const prefix = new TextEncoder().encode('weft-id-puzzle/1')
      function lead(h) {
        let z = 0
        for (const b of h) {
          if (b === 0) z += 8
          else return z + Math.clz32(b) - 24
        }
        return z
      }
      async function one() {
        const kp = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign'])
        const pk = new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey))
        const buf = new Uint8Array(prefix.length + pk.length)
        buf.set(prefix)
        buf.set(pk, prefix.length)
        return lead(new Uint8Array(await crypto.subtle.digest('SHA-256', buf)))
      }
      const t0 = performance.now()
      let n = 0
      while (performance.now() - t0 < 2000) {
        await one()
        n++
      }
      const keygensPerSec = n / ((performance.now() - t0) / 1000)
      const times = []
      for (let i = 0; i < identities; i++) {
        const t = performance.now()
        while ((await one()) < bits);
        times.push(performance.now() - t)
      }
      return { keygensPerSec, times }
    })(${DEFAULT_PUZZLE_BITS}, ${IDENTITIES})`
    return (await page.evaluate(script)) as { keygensPerSec: number; times: number[] }
  } finally {
    await browser.close()
    await server.stop()
  }
}

export async function main(): Promise<void> {
  const bits = DEFAULT_PUZZLE_BITS
  const out: Record<string, unknown> = { bits, identities: IDENTITIES }
  for (const [where, f] of [
    ['chromium', browserFigures],
    ['node', nodeFigures],
  ] as const) {
    const { keygensPerSec, times } = await f()
    out[`${where}KeygensPerSec`] = Math.round(keygensPerSec)
    out[`${where}ExpectedMs`] = Math.round((2 ** bits / keygensPerSec) * 1000)
    out[`${where}MsP50`] = Math.round(median(times))
    out[`${where}MsP90`] = Math.round(quantile(times, 0.9))
  }
  report('puzzle', out)
}

if (isMain(import.meta.url)) await main()
