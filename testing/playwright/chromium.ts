/**
 * Which Chromium the kit launches, and with what flags.
 *
 * WebRTC between headless pages on one machine needs a few flags (weft's
 * PLATFORM notes): without `--disable-features=WebRtcHideLocalIpsWithMdns`
 * the ICE candidates are `.local` names that may not resolve. Chromium keeps
 * only the last `--disable-features` it is given, so the kit folds every
 * feature list of the configuration into one flag with its own.
 *
 * The browser: an explicit `executablePath` (the kit's option), else
 * `CHROMIUM_PATH`, else the configuration's `launchOptions.executablePath`,
 * else a `channel` (Playwright finds it), else Playwright's own Chromium if
 * it is installed, else a system Chromium at the usual places; else an error
 * that names how to get one.
 */
import type { LaunchOptions } from '@playwright/test'

/** The flags every weft peer's Chromium gets (unless `flags: false`). */
export const CHROMIUM_FLAGS: readonly string[] = [
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
]

/**
 * Where a system Chromium (or Chrome) usually is. The kit's browser is headless, so Chromium's
 * headless shell (Debian's `chromium-headless-shell`: the build Playwright itself runs headless
 * tests in) comes first: a tab costs about half the CPU it costs in the full browser.
 */
export const SYSTEM_CHROMIUMS: readonly string[] = [
  '/usr/bin/chromium-headless-shell',
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/snap/bin/chromium',
  '/usr/bin/google-chrome',
  '/usr/bin/google-chrome-stable',
  '/Applications/Chromium.app/Contents/MacOS/Chromium',
  '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
]

/** `args` with the kit's flags added once, and every `--disable-features` list folded into one. */
export function mergeChromiumArgs(args: readonly string[], extra: readonly string[]): string[] {
  const features: string[] = []
  const out: string[] = []
  for (const a of [...args, ...extra]) {
    const m = /^--disable-features=(.*)$/.exec(a)
    if (m) {
      for (const f of (m[1] as string).split(',')) if (f !== '' && !features.includes(f)) features.push(f)
    } else if (!out.includes(a)) out.push(a)
  }
  if (features.length > 0) out.push(`--disable-features=${features.join(',')}`)
  return out
}

export interface ChromiumChoice {
  /** Pass this as executablePath; undefined: let Playwright choose (its own browser, or the channel). */
  executablePath: string | undefined
  /** Where the choice came from, for messages. */
  source: 'option' | 'CHROMIUM_PATH' | 'launchOptions' | 'channel' | 'playwright' | 'system'
}

/**
 * Choose the Chromium. `playwrightHas` says whether Playwright's own Chromium is installed; `exists`
 * checks a path (both injected, for tests).
 */
export function chooseChromium(i: {
  option: string | undefined
  env: Record<string, string | undefined>
  launchOptions: Pick<LaunchOptions, 'executablePath' | 'channel'>
  playwrightHas: () => boolean
  exists: (path: string) => boolean
}): ChromiumChoice {
  const named = (path: string, source: ChromiumChoice['source']): ChromiumChoice => {
    if (!i.exists(path))
      throw new Error(
        `weft/testing/playwright: no Chromium at ${path} (from ${source === 'option' ? 'the executablePath option' : source})`,
      )
    return { executablePath: path, source }
  }
  if (i.option) return named(i.option, 'option')
  if (i.env.CHROMIUM_PATH) return named(i.env.CHROMIUM_PATH, 'CHROMIUM_PATH')
  if (i.launchOptions.executablePath) return named(i.launchOptions.executablePath, 'launchOptions')
  if (i.launchOptions.channel) return { executablePath: undefined, source: 'channel' }
  if (i.playwrightHas()) return { executablePath: undefined, source: 'playwright' }
  const system = SYSTEM_CHROMIUMS.find((p) => i.exists(p))
  if (system) return { executablePath: system, source: 'system' }
  throw new Error(
    "weft/testing/playwright: no Chromium found. Install Playwright's (npx playwright install chromium) " +
      'or the system one (apt-get install -y chromium-headless-shell, or chromium), or name one: CHROMIUM_PATH=/path/to/chromium, ' +
      "or test.use({ weftBrowser: { executablePath: '/path/to/chromium' } })",
  )
}
