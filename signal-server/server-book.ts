/**
 * The address book of other signal servers, GWebCache style: servers
 * configured by the operator, plus those clients mention when they register
 * (each client tells us the servers it knows, so caches learn of each other).
 * Bounded: learned entries are kept most-recently-mentioned first and the
 * oldest fall off. Pure.
 */
import { MAX_SERVERS, normalizeServerUrl } from '../shared/signal-events.ts'

export interface ServerBookOptions {
  /** Servers the operator configured; always listed first. */
  configured?: readonly string[]
  /** URLs that mean this server itself (never listed). */
  self?: readonly string[]
  /** Learned servers kept at most. @default 64 */
  maxLearned?: number
}

export interface ServerBook {
  /** Note servers a client mentioned (invalid URLs are ignored). */
  learn(urls: readonly string[]): void
  /** Up to `n` servers, configured first, then the most recently learned; never `exceptHost`'s own URL. */
  list(n?: number, exceptHost?: string): string[]
  size(): number
}

export function createServerBook(options: ServerBookOptions = {}): ServerBook {
  const maxLearned = options.maxLearned ?? 64
  const self = new Set((options.self ?? []).map(normalizeServerUrl).filter((u) => u !== null))
  const configured = [
    ...new Set((options.configured ?? []).map(normalizeServerUrl).filter((u) => u !== null)),
  ].filter((u) => !self.has(u))
  const configuredSet = new Set(configured)
  // Insertion order = recency: re-learning moves an entry to the end.
  const learned = new Set<string>()

  return {
    learn(urls) {
      for (const raw of urls.slice(0, MAX_SERVERS)) {
        const u = normalizeServerUrl(raw)
        if (u === null || self.has(u) || configuredSet.has(u)) continue
        learned.delete(u)
        learned.add(u)
        if (learned.size > maxLearned) {
          const oldest = learned.values().next().value
          if (oldest !== undefined) learned.delete(oldest)
        }
      }
    },
    list(n = MAX_SERVERS, exceptHost) {
      const out: string[] = []
      const skip = (u: string) => exceptHost !== undefined && new URL(u).host === exceptHost
      for (const u of configured) {
        if (out.length >= n) return out
        if (!skip(u)) out.push(u)
      }
      const recent = [...learned].reverse()
      for (const u of recent) {
        if (out.length >= n) break
        if (!skip(u)) out.push(u)
      }
      return out
    },
    size: () => configured.length + learned.size,
  }
}
