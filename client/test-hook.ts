/**
 * The test hook: how a test harness (`weft/testing/playwright`) reaches the
 * nodes an app makes, without the app's help.
 *
 * The harness defines `globalThis.__weftTestHook__` in each test page before
 * the page's own scripts run (a Playwright init script). The browser's
 * `joinOverlay`, when it finds one, lets it adjust the app's options (the
 * test's signal server, a network name of the test's own, the relay mode the
 * test chose for this peer) and tells it about the node it made, or about
 * the error it failed with. Outside a test there is no such global and
 * nothing happens.
 *
 * Only functions are called: markup cannot stand in for the hook (an element
 * whose id is the global's name makes the global an element, whose
 * properties are elements or strings, never functions). A script of the page
 * could define it, but such a script can already call joinOverlay itself.
 */
import type { JoinOptions } from './node/options.ts'
import type { WeftNode } from './weft-node.ts'

/** The name of the global the harness defines. */
export const TEST_HOOK_GLOBAL = '__weftTestHook__'

export interface TestHook {
  /** The app's options in, the options to join with out. */
  options?(options: JoinOptions): JoinOptions
  /** A node joinOverlay made, once it has joined. */
  joined?(node: WeftNode): void
  /** What joinOverlay failed with. */
  failed?(error: unknown): void
  /**
   * True: this node plays a lying peer in a test of files: every piece it
   * serves has a byte flipped, and it does not check them before sending.
   */
  lieAboutFiles?(): boolean
}

/** The hook in `scope` (a page's globalThis), if a harness installed one. */
export function findTestHook(scope: object): TestHook | undefined {
  const hook: unknown = Reflect.get(scope, TEST_HOOK_GLOBAL)
  if (hook === null || typeof hook !== 'object') return undefined
  const fn = (name: keyof TestHook) => {
    const f: unknown = Reflect.get(hook, name)
    return typeof f === 'function' ? (f as (...args: unknown[]) => unknown).bind(hook) : undefined
  }
  const options = fn('options')
  const joined = fn('joined')
  const failed = fn('failed')
  const lie = fn('lieAboutFiles')
  // A report that throws is the harness's problem, never the app's: its node or its error stands.
  const quietly = (f: (x: unknown) => unknown) => (x: unknown) => {
    try {
      f(x)
    } catch {}
  }
  const out: TestHook = {}
  if (options) out.options = (o) => options(o) as JoinOptions
  if (joined) out.joined = quietly(joined)
  if (failed) out.failed = quietly(failed)
  if (lie) out.lieAboutFiles = () => lie() === true
  return out
}
