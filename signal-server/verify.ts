/**
 * The registration signature check, with node:crypto rather than the
 * shared WebCrypto `verify` (shared/identity/keys.ts): that one keeps the
 * last 4,096 imported keys (a CryptoKey and its native handle, ~1 KB each),
 * which pays off for a node that verifies the same peers' signatures again
 * and again, but the server checks each key once per registration, so the
 * cache only held ~4 MB of keys it would not use again. Here the key lives
 * for the one call, and the check is synchronous (no key import, no
 * thread-pool round trips: ~240 µs of CPU on the loaded bench machine, against
 * ~320 µs for WebCrypto's import and verify). The node id is hashed here too, synchronously.
 */
import { createHash, verify } from 'node:crypto'
import { isPublicKey, SIGNATURE_BYTES } from '../shared/identity/keys.ts'

// DER SubjectPublicKeyInfo of an Ed25519 key, up to the 32 key bytes (RFC 8410).
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/** Whether `sig` is `publicKey`'s Ed25519 signature of `data`. Never throws. */
export function verifyOnce(publicKey: Uint8Array, data: Uint8Array, sig: Uint8Array): boolean {
  if (!isPublicKey(publicKey) || !(sig instanceof Uint8Array) || sig.length !== SIGNATURE_BYTES) return false
  try {
    // The key given inline, not as a KeyObject: no key object made, ~1/3 less CPU than createPublicKey first.
    return verify(
      null,
      data,
      { key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' },
      sig,
    )
  } catch {
    return false
  }
}

/** The node id of `publicKey`: what nodeIdOf (shared/identity/keys.ts) answers, without a promise. */
export function nodeIdNow(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest().subarray(0, 20).toString('hex')
}
