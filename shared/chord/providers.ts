/**
 * Provider records: "node p provides key k", for finding services and
 * users. A key's providers are a multi-writer set: each provider signs only
 * its own entry (key, provider, issue time, lifetime), placed at
 * id160(utf8(key)) and stored on that position's owners like a record. An
 * entry expires `ttl` after it was signed, so a provider that stops (or
 * crashes) disappears within one lifetime; one that goes on re-signs and
 * re-stores its entries every `provideRefreshMs`.
 */
import { bump } from '../protocol.ts'
import type { ChordContext } from './options.ts'
import { checkProvider, signProvider } from './records.ts'
import type { Rpc } from './rpc.ts'
import type { Storage } from './storage.ts'

export interface Providers {
  /** Announce that this node provides `key`; refreshed until unprovide. */
  provide(key: string): Promise<void>
  unprovide(key: string): void
  /** Node ids that provide `key`: the union of the verified entries of up to `replicas` owners. */
  find(key: string): Promise<string[]>
  /** Re-sign and re-store every key we provide. */
  refresh(): Promise<void>
  /** The keys this node provides. */
  readonly provided: Set<string>
}

export function createProviders(ctx: ChordContext, rpc: Rpc, storage: Storage): Providers {
  const { self, deps, o, counters } = ctx
  const provided = new Set<string>()

  async function provideOnce(key: string): Promise<void> {
    const pos = await storage.positionOf(key)
    const rec = await signProvider(deps.keys, self, key, Math.floor(deps.now()), o.providerTtlMs)
    await storage.storeFor(pos, [], [rec])
  }

  return {
    provided,
    async provide(key) {
      provided.add(key)
      await provideOnce(key)
    },
    unprovide(key) {
      provided.delete(key)
    },
    async refresh() {
      for (const key of [...provided]) {
        if (!provided.has(key)) continue
        try {
          await provideOnce(key)
        } catch {
          bump(counters, 'provide.refreshFailed')
        }
      }
    },
    async find(key) {
      // No early stop: providers announced while the ring was settling may sit on different
      // owners, so the answer is the union over up to `replicas` of them.
      const answers = await storage.askOwners(await storage.positionOf(key), key, async (w) => {
        if (w === self) return storage.store.providersOf(key, deps.now())
        const res = await rpc.request(w, (r) => ({ t: 'getProv', r, k: key }))
        return res?.t === 'provs' ? res.provs : undefined
      })
      const found = new Set<string>()
      for (const [, list] of answers)
        for (const p of list) {
          if (p.k !== key || found.has(p.p)) continue
          if ((await checkProvider(deps.keys, p, storage.providerLimits, deps.now())) !== null) {
            bump(counters, 'drop.provs.bad')
            continue
          }
          found.add(p.p)
        }
      return [...found]
    },
  }
}
