/**
 * The WebCrypto primitives shared/crypto is built from, typed for shared/
 * (X25519, HKDF-SHA-256, AES-256-GCM, HMAC-SHA-256, PBKDF2-SHA-256, SHA-256),
 * and the byte helpers of its grammars (PROTOCOL-crypto.md). Nothing here
 * holds state; no crypto library is used: browsers and Node 20 have all of it.
 *
 * Functions that take bytes from a peer return null on anything malformed
 * (a low-order X25519 key, a tag that does not verify); they never throw.
 */
import { concatBytes, toHex, utf8 } from '../bytes.ts'

/** Bytes backed by an ArrayBuffer, which is what WebCrypto takes. */
export type Bytes = Uint8Array<ArrayBuffer>

/** X25519 public keys and shared secrets, AES-256 and HMAC keys, SHA-256 digests: all 32 bytes. */
export const KEY_BYTES = 32
/** AES-GCM nonce (IV). */
export const IV_BYTES = 12
/** AES-GCM authentication tag, appended to every ciphertext. */
export const TAG_BYTES = 16

const X25519 = { name: 'X25519' } as const

/** `x` itself when an ArrayBuffer backs it, else a copy (WebCrypto refuses SharedArrayBuffer views). */
export function own(x: Uint8Array): Bytes {
  return x.buffer instanceof ArrayBuffer ? (x as Bytes) : new Uint8Array(x)
}

/** UTF-8 of a protocol label, e.g. `label('weft-seal/1')`. */
export const label = utf8

/** `n` as 8 bytes, big-endian (n a safe integer ≥ 0). */
export function u64(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`u64: ${n} is not a safe integer ≥ 0`)
  const out = new Uint8Array(8)
  const view = new DataView(out.buffer)
  view.setUint32(0, Math.floor(n / 2 ** 32))
  view.setUint32(4, n >>> 0)
  return out
}

/** A length-prefixed field: u16be(length) followed by the bytes (UTF-8 for a string). */
export function lp(x: string | Uint8Array): Uint8Array {
  const b = typeof x === 'string' ? utf8(x) : x
  if (b.length > 0xffff) throw new RangeError(`field of ${b.length} bytes is longer than 65,535`)
  return concatBytes(new Uint8Array([b.length >> 8, b.length & 0xff]), b)
}

export function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n))
}

export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', own(data)))
}

// ---- X25519 (RFC 7748) ----

/** An X25519 key pair: the raw public key to send, the private key kept non-extractable. */
export interface X25519KeyPair {
  readonly publicKey: Uint8Array
  readonly privateKey: CryptoKey
}

export async function generateX25519(): Promise<X25519KeyPair> {
  const kp = (await crypto.subtle.generateKey(X25519, false, ['deriveBits'])) as CryptoKeyPair
  return {
    publicKey: new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey)),
    privateKey: kp.privateKey,
  }
}

// The encodings of the points of small order on Curve25519 (and their non-canonical
// twins, u + p), as libsodium blocks them: a shared secret with one is known to everyone.
const SMALL_ORDER_X25519 = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
]

/**
 * A plausible X25519 public key: 32 bytes, not a point of small order. (The
 * top bit is ignored by X25519, so it is cleared before the comparison.)
 */
export function isX25519PublicKey(x: unknown): x is Uint8Array {
  if (!(x instanceof Uint8Array) || x.length !== KEY_BYTES) return false
  const masked = new Uint8Array(x)
  masked[31] = (masked[31] as number) & 0x7f
  return !SMALL_ORDER_X25519.includes(toHex(masked))
}

/** Import a peer's raw X25519 public key; null when it is not one. */
export async function importX25519(publicKey: Uint8Array): Promise<CryptoKey | null> {
  if (!isX25519PublicKey(publicKey)) return null
  try {
    return await crypto.subtle.importKey('raw', own(publicKey), X25519, true, [])
  } catch {
    return null
  }
}

/**
 * X25519(privateKey, publicKey): the 32-byte shared secret, or null for a
 * public key that is malformed or of small order (an all-zero secret).
 */
export async function x25519(
  privateKey: CryptoKey,
  publicKey: Uint8Array | CryptoKey,
): Promise<Uint8Array | null> {
  const pub = publicKey instanceof Uint8Array ? await importX25519(publicKey) : publicKey
  if (!pub) return null
  try {
    const s = new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: pub }, privateKey, 256))
    return s.some((b) => b !== 0) ? s : null
  } catch {
    return null
  }
}

// ---- HKDF-SHA-256 (RFC 5869), HMAC-SHA-256, PBKDF2-SHA-256 ----

/** HKDF-SHA-256: `bytes` of output keying material from `ikm`, `salt` and `info`. */
export async function hkdf(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  bytes: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey('raw', own(ikm), 'HKDF', false, ['deriveBits'])
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: own(salt), info: own(info) },
      key,
      bytes * 8,
    ),
  )
}

export function hmacKey(raw: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', own(raw), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
    'verify',
  ])
}

export async function hmac(key: CryptoKey, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign('HMAC', key, own(data)))
}

/**
 * Check an HMAC tag. WebCrypto's verify compares in constant time (BoringSSL's
 * CRYPTO_memcmp in Chromium, timingSafeEqual in Node), so a prover learns
 * nothing from how long a refusal takes. False for a tag of the wrong length.
 */
export async function hmacVerify(key: CryptoKey, tag: Uint8Array, data: Uint8Array): Promise<boolean> {
  if (!(tag instanceof Uint8Array) || tag.length !== KEY_BYTES) return false
  try {
    return await crypto.subtle.verify('HMAC', key, own(tag), own(data))
  } catch {
    return false
  }
}

/** PBKDF2-HMAC-SHA-256: stretch a (possibly low-entropy) secret into `bytes` of key material. */
export async function pbkdf2(
  secret: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  bytes: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey('raw', own(secret), 'PBKDF2', false, ['deriveBits'])
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: 'PBKDF2', hash: 'SHA-256', salt: own(salt), iterations },
      key,
      bytes * 8,
    ),
  )
}

// ---- AES-256-GCM ----

export function aesKey(raw: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', own(raw), 'AES-GCM', false, ['encrypt', 'decrypt'])
}

/** AES-GCM encrypt: ciphertext || 16-byte tag. */
export async function aesSeal(
  key: CryptoKey,
  iv: Uint8Array,
  plain: Uint8Array,
  aad: Uint8Array,
): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.encrypt({ name: 'AES-GCM', iv: own(iv), additionalData: own(aad) }, key, own(plain)),
  )
}

/** AES-GCM decrypt; null when the tag does not verify (any changed byte, a wrong key, nonce or aad). */
export async function aesOpen(
  key: CryptoKey,
  iv: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Promise<Uint8Array | null> {
  if (sealed.length < TAG_BYTES) return null
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: own(iv), additionalData: own(aad) },
        key,
        own(sealed),
      ),
    )
  } catch {
    return null
  }
}
