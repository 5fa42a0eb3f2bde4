/**
 * A private network's content (JoinOptions.secret): broadcast data, table
 * values and DHT values are sealed under the network's content keys
 * (shared/crypto/network.ts, PROTOCOL-crypto.md section 4) before they
 * enter the protocols, and opened when they come out, so whatever carries
 * or stores them (relays, the server, a DHT share on disk, a node that is
 * no member) holds ciphertext only, and cannot make any that opens.
 *
 *   sealed value = { "\u0000sealed": sealContent(author, msgpack(value), aad) }
 *   aad          = contentAad('broadcast', topic, author) | ('table', key, author) | ('dht', key, author)
 *
 * The key is the author's (its id is in the key and the aad), and the record
 * is signed by the author as before, so a member can make content only as
 * itself, and a ciphertext moved to another topic, key, kind or author does
 * not open. What does not open is dropped and counted (`drop.network.content`).
 *
 * The table's `get` and `entries` are synchronous, so this keeps the opened
 * value beside each sealed one (`mirror`), filled as versions arrive (its
 * listener is installed before the saved table is imported); a version not
 * yet opened reads as absent for that moment.
 */
import { bytesEqual } from '../shared/bytes.ts'
import { type ContentKind, contentAad, type NetworkKeys } from '../shared/crypto/network.ts'
import type { Sync, SyncChange } from '../shared/sync/index.ts'
import type { Value } from '../shared/types.ts'
import { decodeValue, encodeValue } from '../shared/wire/value.ts'

/** The one key of a sealed value (NUL-prefixed: no application key looks like it). */
const SEALED_KEY = '\u0000sealed'

export function sealedBytes(v: Value | undefined): Uint8Array | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return undefined
  const keys = Object.keys(v)
  const b = (v as Record<string, Value>)[SEALED_KEY]
  return keys.length === 1 && b instanceof Uint8Array ? b : undefined
}

export interface ContentSealer {
  seal(kind: ContentKind, field: string, author: string, value: Value): Promise<Value>
  /** The opened value, or null when it is not sealed content that opens (dropped, counted). */
  open(kind: ContentKind, field: string, author: string, value: Value): Promise<Value | null>
}

export function contentSealer(keys: NetworkKeys): ContentSealer {
  return {
    async seal(kind, field, author, value) {
      const sealed = await keys.sealContent(author, encodeValue(value), contentAad(kind, field, author))
      return { [SEALED_KEY]: sealed }
    },
    async open(kind, field, author, value) {
      const b = sealedBytes(value)
      const plain = b ? await keys.openContent(author, b, contentAad(kind, field, author)) : null
      if (!plain) {
        // openContent counted a failed open; a value that was not sealed at all is counted here.
        if (!b) keys.counters['drop.network.content'] = (keys.counters['drop.network.content'] ?? 0) + 1
        return null
      }
      return decodeValue(plain)
    },
  }
}

/**
 * The table as the application sees it in a private network: values sealed
 * on the way in, opened on the way out; `on('change')` hears opened values.
 */
export function privateTable(
  table: Sync,
  self: string,
  content: ContentSealer,
): {
  set(key: string, value: Value, opts?: { leaseMs?: number }): Promise<void>
  get(key: string): Value | undefined
  entries(): [string, Value][]
  onChange(fn: (e: SyncChange) => void): () => void
} {
  const mirror = new Map<string, { sealed: Uint8Array; plain: Value }>()
  const listeners = new Set<(e: SyncChange) => void>()
  const opened = (key: string, v: Value | undefined): Value | undefined => {
    const b = sealedBytes(v)
    const m = mirror.get(key)
    return b && m && bytesEqual(m.sealed, b) ? m.plain : undefined
  }
  const learn = async (key: string, author: string, v: Value): Promise<Value | null> => {
    const b = sealedBytes(v)
    const plain = await content.open('table', key, author, v)
    // Kept only if it is still the table's version (a newer one may have come meanwhile).
    const current = sealedBytes(table.get(key))
    if (plain !== null && b && current && bytesEqual(current, b)) mirror.set(key, { sealed: b, plain })
    return plain
  }
  table.onChange((e) => {
    if (e.value === undefined) {
      mirror.delete(e.key)
      for (const fn of [...listeners]) fn(e)
      return
    }
    void learn(e.key, e.from, e.value).then((plain) => {
      if (plain === null) return
      for (const fn of [...listeners]) fn({ ...e, value: plain })
    })
  })
  return {
    async set(key, value, opts) {
      const sealed = await content.seal('table', key, self, value)
      const b = sealedBytes(sealed) as Uint8Array
      mirror.set(key, { sealed: b, plain: value })
      await table.set(key, sealed, opts)
    },
    get: (key) => opened(key, table.get(key)),
    entries() {
      const out: [string, Value][] = []
      for (const [k, v] of table.entries()) {
        const plain = opened(k, v)
        if (plain !== undefined) out.push([k, plain])
      }
      return out
    },
    onChange(fn) {
      listeners.add(fn)
      return () => void listeners.delete(fn)
    },
  }
}
