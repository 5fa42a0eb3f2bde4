/**
 * Identity: an Ed25519 key pair through WebCrypto (browsers and Node, no
 * extra library). The node id is the first 160 bits of SHA-256(raw public
 * key), as 40 lowercase hex characters; it is also the node's Chord position.
 */
import { concatBytes, id160, toHex, utf8 } from '../bytes.ts'
import { checkPuzzleBits, DEFAULT_PUZZLE_BITS, meetsPuzzle } from './puzzle.ts'

export const PUBLIC_KEY_BYTES = 32
export const SIGNATURE_BYTES = 64

const ED25519 = { name: 'Ed25519' } as const

/** What protocol state machines are given to sign and check: real keys here, a fast fake in the simulator. */
export interface Keyring {
  /** This node's raw public key. */
  readonly publicKey: Uint8Array
  sign(data: Uint8Array): Promise<Uint8Array>
  /** True when `sig` is `publicKey`'s signature over `data`; false (never a throw) for anything malformed. */
  verify(publicKey: Uint8Array, data: Uint8Array, sig: Uint8Array): Promise<boolean>
  /** The node id a public key stands for. */
  idOf(publicKey: Uint8Array): Promise<string>
}

/**
 * `keys`, signing and checking in `network`'s scope: over `weft-scope/1\n` ‖ name ‖ `\n` ‖ the
 * bytes. The node core's protocols sign this way (shared/node/core.ts), so a record, entry or
 * broadcast signed in one network is refused in another.
 */
export function scopedKeyring(keys: Keyring, network: string): Keyring {
  const scope = utf8(`weft-scope/1\n${network}\n`)
  return {
    publicKey: keys.publicKey,
    sign: (data) => keys.sign(concatBytes(scope, data)),
    verify: (pk, data, sig) => keys.verify(pk, concatBytes(scope, data), sig),
    idOf: (pk) => keys.idOf(pk),
  }
}

export interface Identity extends Keyring {
  readonly id: string
  readonly keyPair: CryptoKeyPair
}

// Encodings of the small-order points of Ed25519 (libsodium's blocklist). A key
// like these "verifies" forged signatures on some implementations, so none is accepted.
const SMALL_ORDER = new Set([
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
])

/** A 32-byte raw Ed25519 public key that is not one of the small-order points. */
export function isPublicKey(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array && x.length === PUBLIC_KEY_BYTES && !SMALL_ORDER.has(toHex(x))
}

/** Node id of a raw Ed25519 public key. */
export function nodeIdOf(publicKey: Uint8Array): Promise<string> {
  return id160(publicKey)
}

// Imported public keys, by hex; bounded so a stream of strangers cannot grow it.
const VERIFY_CACHE_MAX = 4096
const verifyKeys = new Map<string, Promise<CryptoKey | null>>()

function importPublicKey(publicKey: Uint8Array): Promise<CryptoKey | null> {
  const hex = toHex(publicKey)
  let p = verifyKeys.get(hex)
  if (p) {
    verifyKeys.delete(hex)
    verifyKeys.set(hex, p)
    return p
  }
  p = crypto.subtle
    .importKey('raw', publicKey as Uint8Array<ArrayBuffer>, ED25519, true, ['verify'])
    .catch(() => null)
  verifyKeys.set(hex, p)
  if (verifyKeys.size > VERIFY_CACHE_MAX) {
    const oldest = verifyKeys.keys().next().value
    if (oldest !== undefined) verifyKeys.delete(oldest)
  }
  return p
}

/** Verify an Ed25519 signature. Never throws: malformed keys or signatures are simply false. */
export async function verify(publicKey: Uint8Array, data: Uint8Array, sig: Uint8Array): Promise<boolean> {
  if (!isPublicKey(publicKey) || !(sig instanceof Uint8Array) || sig.length !== SIGNATURE_BYTES) return false
  const key = await importPublicKey(publicKey)
  if (!key) return false
  try {
    return await crypto.subtle.verify(
      ED25519,
      key,
      sig as Uint8Array<ArrayBuffer>,
      data as Uint8Array<ArrayBuffer>,
    )
  } catch {
    return false
  }
}

/** Build an identity from a key pair (for example one restored from IndexedDB). */
export async function identityFromKeyPair(keyPair: CryptoKeyPair): Promise<Identity> {
  const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', keyPair.publicKey))
  const id = await nodeIdOf(publicKey)
  return {
    id,
    publicKey,
    keyPair,
    async sign(data) {
      return new Uint8Array(
        await crypto.subtle.sign(ED25519, keyPair.privateKey, data as Uint8Array<ArrayBuffer>),
      )
    },
    verify,
    idOf: nodeIdOf,
  }
}

/**
 * Create a new identity. Browsers keep the private key non-extractable (it
 * can still be stored in IndexedDB as a CryptoKey); `extractable: true` is
 * for Node, which keeps keys in a folder as PKCS#8. Key pairs are generated
 * until one meets the network's identity puzzle (`puzzleBits`, see
 * puzzle.ts): about 2^puzzleBits tries, once per identity.
 */
export async function generateIdentity(
  opts: { extractable?: boolean; puzzleBits?: number } = {},
): Promise<Identity> {
  const bits = checkPuzzleBits(opts.puzzleBits ?? DEFAULT_PUZZLE_BITS)
  for (;;) {
    const keyPair = (await crypto.subtle.generateKey(ED25519, opts.extractable ?? false, [
      'sign',
      'verify',
    ])) as CryptoKeyPair
    if (bits > 0) {
      const raw = new Uint8Array(await crypto.subtle.exportKey('raw', keyPair.publicKey))
      if (!isPublicKey(raw) || !meetsPuzzle(raw, bits)) continue
    }
    return identityFromKeyPair(keyPair)
  }
}

/** Export an extractable identity as PKCS#8 bytes (Node folder storage). */
export async function exportIdentity(identity: Identity): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.exportKey('pkcs8', identity.keyPair.privateKey))
}

/** Import an identity from PKCS#8 bytes written by exportIdentity. */
export async function importIdentity(pkcs8: Uint8Array): Promise<Identity> {
  const privateKey = await crypto.subtle.importKey('pkcs8', pkcs8 as Uint8Array<ArrayBuffer>, ED25519, true, [
    'sign',
  ])
  // WebCrypto has no "public from private" call; the JWK export carries x (the public key).
  const jwk = await crypto.subtle.exportKey('jwk', privateKey)
  if (!jwk.x) throw new Error('not an Ed25519 private key')
  const publicKey = await crypto.subtle.importKey(
    'jwk',
    { kty: 'OKP', crv: 'Ed25519', x: jwk.x },
    ED25519,
    true,
    ['verify'],
  )
  return identityFromKeyPair({ privateKey, publicKey })
}
