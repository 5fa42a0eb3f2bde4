/**
 * What the browser benchmarks share (bench/browser.ts, bench/swarm.ts): the
 * build they need, Chromium launched the same way, and the raw
 * RTCDataChannel rate between two pages, the yardstick the overlay's
 * figures are divided by. Not a benchmark itself (the `_` prefix).
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Browser, chromium, type Page } from '@playwright/test'
import { SYSTEM_CHROMIUMS } from '../testing/playwright/chromium.ts'
import { median } from './report.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Build dist/ when it is missing (the pages load dist/web/weft.mjs from the signal server). */
/** Build the bundles from the sources as they are now (~7 s): a dist/ left from an older checkout would be measured instead. */
export function ensureBuilt(): void {
  execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' })
}

/**
 * The Chromium the benchmarks run: CHROMIUM_PATH, else the full browser at /usr/bin/chromium (what
 * users run, and what the README's figures were measured in), else the test kit's system places
 * (the headless shell that `npm test`'s set-up installs first), else Playwright's own Chromium if it
 * is installed. Named in each browser benchmark's output.
 */
export function benchChromium(exists: (path: string) => boolean = existsSync): string {
  const named = process.env.CHROMIUM_PATH
  if (named) {
    if (!exists(named)) throw new Error(`CHROMIUM_PATH=${named}: no such file`)
    return named
  }
  const own = chromium.executablePath()
  const found = [...new Set(['/usr/bin/chromium', ...SYSTEM_CHROMIUMS, own])].find(exists)
  if (!found)
    throw new Error(
      'no Chromium for the browser benchmarks: apt-get install -y chromium (or chromium-headless-shell), ' +
        'npx playwright install chromium, or set CHROMIUM_PATH',
    )
  return found
}

/** Chromium with the flags WebRTC between local pages needs (PLATFORM.md), and `extra` ones. */
export async function launch(extra: readonly string[] = []): Promise<Browser> {
  const executablePath = benchChromium()
  console.log(`chromium: ${executablePath}`)
  return chromium.launch({
    executablePath,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      ...extra,
    ],
  })
}

/** How the raw channel is driven: message size, and the bufferedAmount backpressure. */
export interface RawOptions {
  /** Bytes per dc.send. */
  messageBytes: number
  /** Bytes sent in all. */
  totalBytes: number
  /** bufferedAmountLowThreshold: sending resumes when the buffer drains to this. */
  lowWaterBytes: number
  /** Sending pauses while bufferedAmount is above this. */
  capBytes: number
}

type RawWin = { rawPc?: RTCPeerConnection | undefined; rawDc?: RTCDataChannel | undefined; rawRx: number }

/** A raw RTCDataChannel from one page to another, kept open between measurements. */
export interface RawChannel {
  /**
   * MB/s (10^6 bytes/s) of one transfer, from the first send to the last
   * byte received in the second page.
   */
  measure(o: RawOptions): Promise<number>
  close(): Promise<void>
}

/**
 * Open a raw, ordered RTCDataChannel from page `a` to page `b` (each in its
 * own browser context), signals passed through this process with
 * non-trickle ICE.
 */
export async function openRawChannel(a: Page, b: Page): Promise<RawChannel> {
  // Offer/answer with non-trickle ICE (gathering completes on loopback in milliseconds).
  const offer = await a.evaluate(async () => {
    const w = window as unknown as RawWin
    const pc = new RTCPeerConnection()
    w.rawPc = pc
    w.rawDc = pc.createDataChannel('raw', { ordered: true })
    await pc.setLocalDescription(await pc.createOffer())
    await new Promise<void>((r) => {
      if (pc.iceGatheringState === 'complete') r()
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r()
    })
    return pc.localDescription?.toJSON()
  })
  const answer = await b.evaluate(async (offer) => {
    const w = window as unknown as RawWin
    const pc = new RTCPeerConnection()
    w.rawPc = pc
    w.rawRx = 0
    pc.ondatachannel = (e) => {
      e.channel.binaryType = 'arraybuffer'
      e.channel.onmessage = (m) => {
        w.rawRx += (m.data as ArrayBuffer).byteLength
      }
    }
    await pc.setRemoteDescription(offer as RTCSessionDescriptionInit)
    await pc.setLocalDescription(await pc.createAnswer())
    await new Promise<void>((r) => {
      if (pc.iceGatheringState === 'complete') r()
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r()
    })
    return pc.localDescription?.toJSON()
  }, offer)
  await a.evaluate(async (answer) => {
    const w = window as unknown as RawWin
    await w.rawPc?.setRemoteDescription(answer as RTCSessionDescriptionInit)
    await new Promise<void>((r) => {
      if (w.rawDc?.readyState === 'open') r()
      else if (w.rawDc) w.rawDc.onopen = () => r()
    })
  }, answer)
  return {
    async measure(o) {
      await b.evaluate(() => {
        ;(window as unknown as RawWin).rawRx = 0
      })
      const t0 = Date.now()
      await a.evaluate(async (o) => {
        const w = window as unknown as RawWin
        const dc = w.rawDc as RTCDataChannel
        const buf = new Uint8Array(o.messageBytes)
        for (let i = 0; i < buf.length; i += 65536)
          crypto.getRandomValues(buf.subarray(i, Math.min(buf.length, i + 65536)))
        dc.bufferedAmountLowThreshold = o.lowWaterBytes
        for (let sent = 0; sent < o.totalBytes; sent += o.messageBytes) {
          if (dc.bufferedAmount > o.capBytes)
            await new Promise<void>((r) =>
              dc.addEventListener('bufferedamountlow', () => r(), { once: true }),
            )
          dc.send(buf)
        }
      }, o)
      await b.waitForFunction((total) => (window as unknown as RawWin).rawRx >= total, o.totalBytes, {
        timeout: 120_000,
        polling: 20,
      })
      return o.totalBytes / 1e6 / ((Date.now() - t0) / 1000)
    },
    async close() {
      for (const p of [a, b])
        await p.evaluate(() => {
          const w = window as unknown as RawWin
          w.rawPc?.close()
          w.rawPc = undefined
          w.rawDc = undefined
        })
    },
  }
}

/** One measurement on a channel opened for it (cold: its first transfer), then closed. */
export async function rawThroughput(a: Page, b: Page, o: RawOptions): Promise<number> {
  const ch = await openRawChannel(a, b)
  try {
    return await ch.measure(o)
  } finally {
    await ch.close()
  }
}

/** Median ms from the joinOverlay call to each phase, in the order they come, as figures `<prefix>.<phase>Ms`. */
export function phaseFigures(prefix: string, phases: Record<string, number[]>): Record<string, number> {
  const order = Object.entries(phases).sort((x, y) => median(x[1]) - median(y[1]))
  return Object.fromEntries(order.map(([name, at]) => [`${prefix}.${name}Ms`, +median(at).toFixed(1)]))
}
