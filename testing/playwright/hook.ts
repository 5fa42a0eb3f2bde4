/**
 * The kit's side of the test hook (client/test-hook.ts), as it runs in each
 * peer's page: an init script, installed in the peer's browser context, that
 * defines `globalThis.__weftTestHook__` before the page's own scripts run.
 * When the app calls `joinOverlay`, the hook
 * - points it at the test's signal server (whatever the app wrote),
 * - gives it a network name of the test's own (`t3.chat` for the app's
 *   `chat`), so tests sharing the worker's server never meet,
 * - applies the relay mode and join options the test chose for this peer,
 * and records the node (or the error), which the kit reads from Node.
 *
 * `installHook` is sent to the page as source text (`installHookScript`), so
 * it must not use anything from outside its own body.
 */
import type { JoinOptions } from '../../client/api.ts'
import { TEST_HOOK_GLOBAL } from '../../client/test-hook.ts'

export type Relay = 'auto' | 'force' | 'never'

/** Options a test may set over the app's (everything but the server, the callbacks and Node's wrtc). */
export type JoinOverrides = Omit<Partial<JoinOptions>, 'signal' | 'onSignal' | 'wrtc'>

/** What one peer's hook is told (JSON: it travels into the page). */
export interface HookConfig {
  /** The test's signal server; replaces the app's `signal`. */
  signal: string
  /** Prepended to every network name; '' keeps the app's names. */
  prefix: string
  /** Replaces the network name the app asks for (then prefixed). */
  network?: string
  /** Replaces the app's relay mode. */
  relay?: Relay
  /** Set over the app's options. */
  join: JoinOverrides
}

/** What the hook records, read by the kit through `globalThis.__weftTestHook__.state`. */
export interface HookState {
  /** joinOverlay calls seen. */
  calls: number
  /** The network name of the last call, as joined. */
  network?: string | undefined
  /** The last node joined. */
  node?: unknown
  /** Its id. */
  id?: string | undefined
  /** The last failure, `Name: message`. */
  error?: string | undefined
}

/** Runs in the page (see the module comment): self-contained. */
export function installHook(scope: object, cfg: HookConfig): void {
  const MAX = 64 // the network name rule: 1 to 64 of [A-Za-z0-9._-]
  const scoped = (name: string): string => {
    if (cfg.prefix === '') return name
    const full = cfg.prefix + name
    if (full.length <= MAX) return full
    // Too long with the prefix: cut, and keep distinct names distinct with a hash of the whole (FNV-1a).
    let h = 0x811c9dc5
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0
    const tag = `-${h.toString(16).padStart(8, '0')}`
    return cfg.prefix + name.slice(0, MAX - cfg.prefix.length - tag.length) + tag
  }
  const state: HookState = { calls: 0 }
  const hook = {
    state,
    options(o: Record<string, unknown>): Record<string, unknown> {
      state.calls++
      const asked = typeof o.network === 'string' ? o.network : 'default'
      const out: Record<string, unknown> = { ...o, ...cfg.join, signal: cfg.signal }
      if (cfg.relay !== undefined) out.relay = cfg.relay
      out.network = scoped(cfg.network ?? asked)
      state.network = out.network as string
      return out
    },
    joined(node: { id?: unknown }) {
      state.node = node
      state.id = typeof node.id === 'string' ? node.id : undefined
      delete state.error
    },
    failed(err: unknown) {
      const e = err as { name?: unknown; message?: unknown } | null
      state.error =
        e !== null && typeof e === 'object' && typeof e.message === 'string'
          ? `${typeof e.name === 'string' ? e.name : 'Error'}: ${e.message}`
          : String(err)
    },
  }
  Object.defineProperty(scope, '__weftTestHook__', { value: hook, configurable: true })
}

/** The init script for one peer: `installHook` as source, called with its config. */
export function installHookScript(cfg: HookConfig): string {
  return `(${installHook.toString()})(globalThis, ${JSON.stringify(cfg)});`
}

/** The global's name, as the page sees it (one definition: client/test-hook.ts). */
export const HOOK = TEST_HOOK_GLOBAL
