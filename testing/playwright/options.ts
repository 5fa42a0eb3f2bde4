/**
 * The kit's options. Set them in the Playwright configuration's `use`, or
 * per file with `test.use({ ... })`; the `weftServer` and `weftBrowser`
 * ones are per worker (a file that changes them gets workers of its own).
 */
import type { JoinOverrides, Relay } from './hook.ts'

export type { JoinOverrides, Relay }

/** The worker's signal server (`weftServer` option). */
export interface WeftServerOptions {
  /**
   * A folder served at the signal server's origin (its STATIC_DIR): your
   * app's page and modules, which then load weft from the same server
   * (`/weft.mjs`, `/weft.js`). Relative to the Playwright configuration's
   * folder. Without it the server serves weft's own pages (the demo at `/`,
   * `/embed.html`), and peers with a relative `url` go to Playwright's
   * `baseURL` if you set one (your app's own dev server).
   * @default undefined (none)
   */
  serve?: string
  /**
   * Environment of the server process, set last: any of `weft-signal`'s
   * variables (`npx weft-signal --help`), e.g. `{ PUZZLE_BITS: '12' }` for
   * an app that joins with `puzzleBits: 12`. The kit sets `PORT` (a free
   * one), `HOST=127.0.0.1`, `STATIC_DIR` (from `serve`) and lifts the
   * per-source limits (every page comes from 127.0.0.1).
   * @default {}
   */
  env?: Record<string, string>
  /** How long the server may take to answer `/healthz` after it is started. @default 20000 */
  startTimeoutMs?: number
  /** Lines of the server's output kept (the newest), to print when a test fails. @default 5000 */
  logLines?: number
}

/** The browser (`weftBrowser` option). */
export interface WeftBrowserOptions {
  /**
   * The Chromium to launch. Unset: `CHROMIUM_PATH`, else the configuration's
   * `launchOptions.executablePath`, else its `channel`, else Playwright's own
   * Chromium if installed (`npx playwright install chromium`), else a system
   * Chromium: its headless shell first (`/usr/bin/chromium-headless-shell`,
   * Debian's `chromium-headless-shell`: a tab costs about half the CPU), then
   * `/usr/bin/chromium`, ….
   * @default undefined (found as above)
   */
  executablePath?: string
  /**
   * Add the flags WebRTC between pages of one machine needs
   * (`--disable-features=WebRtcHideLocalIpsWithMdns` and a few that keep a
   * headless Chromium quiet) to the configuration's `launchOptions.args`.
   * @default true
   */
  flags?: boolean
}

/** Defaults for the peers of a test (`weftPeers` option); `weft.peers(n, options)` overrides them. */
export interface WeftPeerDefaults {
  /**
   * The page each peer opens: absolute, or relative to the signal server
   * (with `serve`, or without a `baseURL`) or to `baseURL`. Unset: a peer
   * without an app, on a page of the server's origin (its `/healthz`), where
   * the kit itself calls `joinOverlay` and leaves the module as
   * `globalThis.weft` (for tests of weft, or a scripted participant).
   * @default undefined (a peer without an app)
   */
  url?: string
  /**
   * Give each test networks of its own: the network name the app asks for
   * (`chat`) becomes `t<n>.chat` in test n of the worker, so tests sharing
   * the worker's server never meet. `peer.network` is the name joined;
   * `weft.network('chat')` gives it for other participants (a `weft-peer`).
   * @default true
   */
  isolate?: boolean
  /** How long `weft.peers()` waits for a page to join. @default 60000 */
  joinTimeoutMs?: number
  /** How long the wait helpers (`linked`, `waitForKey`, …) wait unless told. @default 30000 */
  waitTimeoutMs?: number
  /**
   * When a test fails: print the signal server's output during the test, its
   * non-zero counters, and each peer's console errors (also attached to the
   * report as `weft-signal.log`).
   * @default true
   */
  printOnFailure?: boolean
}

/** One peer (`weft.peer(options)`). */
export interface PeerOptions {
  /** The page to open; see `WeftPeerDefaults.url`. @default the `weftPeers` option's `url` */
  url?: string
  /** The peer's relay mode, over the app's: `'force'` makes it a firewalled node whose links all go through the server. @default the app's (a peer without an app: 'auto') */
  relay?: Relay
  /** The network name to join instead of the app's (still made the test's own, see `isolate`). @default the app's (a peer without an app: 'default') */
  network?: string
  /** Join options set over the app's (any but `signal`, `onSignal`, `wrtc`), e.g. `{ maxPeers: 3 }`. @default {} */
  joinOptions?: JoinOverrides
  /** Wait until the page's node has joined (else call `peer.joined()` later, e.g. after a click that joins). @default true */
  join?: boolean
  /** How long to wait for the join. @default the `weftPeers` option's `joinTimeoutMs` */
  timeoutMs?: number
}

/** Several peers (`weft.peers(n, options)`). */
export interface PeersOptions extends Omit<PeerOptions, 'relay' | 'joinOptions'> {
  /** One relay mode for all, or one per peer in order (peers past the list's end keep the app's). @default the app's */
  relay?: Relay | readonly (Relay | undefined)[]
  /** Join options for all, or per peer from its index. @default {} */
  joinOptions?: JoinOverrides | ((index: number) => JoinOverrides)
  /**
   * Open the peers at once instead of one after another. One after another
   * (each joined before the next opens), every peer but the first finds the
   * others at its join, as users arriving do.
   * @default false
   */
  parallel?: boolean
}

/** Options of a wait. */
export interface WaitOptions {
  /** @default the `weftPeers` option's `waitTimeoutMs` */
  timeoutMs?: number
}
