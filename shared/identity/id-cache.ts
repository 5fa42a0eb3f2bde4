/**
 * The node id of a public key, remembered: every protocol that checks signed
 * messages (mesh broadcasts, table entries, presence records, publications)
 * must confirm that the claimed origin is the id of the key it carries, and
 * the same few keys sign most messages. Bounded: past `max` keys the least
 * recently added is forgotten.
 */
import { toHex } from '../bytes.ts'
import type { Keyring } from './keys.ts'

export const ID_CACHE_MAX = 1_024

/** `idOf(key)`, cached for up to `max` keys. */
export function createIdCache(
  keys: Pick<Keyring, 'idOf'>,
  max = ID_CACHE_MAX,
): (key: Uint8Array) => Promise<string> {
  const byKey = new Map<string, string>()
  return async (key) => {
    const hex = toHex(key)
    const hit = byKey.get(hex)
    if (hit !== undefined) return hit
    const id = await keys.idOf(key)
    byKey.set(hex, id)
    if (byKey.size > max) {
      const oldest = byKey.keys().next()
      if (!oldest.done) byKey.delete(oldest.value)
    }
    return id
  }
}
