/**
 * The list of other signal servers a client is given (in its register and
 * peers acks), GWebCache style, but only from sources the operator
 * controls: the servers it configured (`servers`), then the public URLs the
 * other instances sharing its Redis announce. Nothing a client says ever
 * enters it: a stranger's registration once could put an attacker's URL into
 * every later client's list. Never lists this server's own URLs, nor the one
 * the client is connected to. Pure.
 */
import { MAX_SERVERS, normalizeServerUrl } from '../shared/signal-events.ts'

export interface ServerBookOptions {
  /** Servers the operator configured; listed first. */
  configured?: readonly string[]
  /** URLs that mean this server itself (never listed). */
  self?: readonly string[]
  /** Other instances' announced URLs, now. @default none */
  cluster?: () => readonly string[]
}

export interface ServerBook {
  /** Up to `n` servers, configured first, then the other instances'; never one whose host is `exceptHost`. */
  list(n?: number, exceptHost?: string): string[]
}

const normalized = (urls: readonly string[]): string[] =>
  urls.map(normalizeServerUrl).filter((u): u is string => u !== null)

export function createServerBook(options: ServerBookOptions = {}): ServerBook {
  const self = new Set(normalized(options.self ?? []))
  const configured = [...new Set(normalized(options.configured ?? []))].filter((u) => !self.has(u))
  const cluster = options.cluster ?? (() => [])
  return {
    list(n = MAX_SERVERS, exceptHost) {
      const out: string[] = []
      const seen = new Set(self)
      for (const u of [...configured, ...normalized(cluster())]) {
        if (out.length >= n) break
        if (seen.has(u) || (exceptHost !== undefined && new URL(u).host === exceptHost)) continue
        seen.add(u)
        out.push(u)
      }
      return out
    },
  }
}
