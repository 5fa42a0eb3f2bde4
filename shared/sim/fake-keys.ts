/**
 * A fast stand-in for Ed25519 in the simulator, where a thousand nodes sign
 * and check many messages. The "public key" is 32 bytes whose first 20 are
 * the node id; a "signature" is a 64-byte keyed hash of (key, data). It is
 * not secure (anyone can compute it); it is enough to model honest nodes and
 * forgers that alter data or signatures. Real keys are tested elsewhere.
 */
import { fromHex, toHex } from '../bytes.ts'
import type { Keyring } from '../identity/keys.ts'

function fakeSig(publicKey: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(64)
  // Eight independent FNV-1a lanes over key || data, each 32 bits: 256 bits, repeated twice.
  for (let lane = 0; lane < 8; lane++) {
    let h = (0x811c9dc5 ^ Math.imul(lane + 1, 0x9e3779b1)) >>> 0
    for (let i = 0; i < publicKey.length; i++) h = Math.imul(h ^ (publicKey[i] as number), 0x01000193)
    for (let i = 0; i < data.length; i++) h = Math.imul(h ^ (data[i] as number), 0x01000193)
    h ^= h >>> 15
    h = Math.imul(h, 0x2c1b3c6d)
    h ^= h >>> 12
    out[lane * 4] = h & 0xff
    out[lane * 4 + 1] = (h >>> 8) & 0xff
    out[lane * 4 + 2] = (h >>> 16) & 0xff
    out[lane * 4 + 3] = (h >>> 24) & 0xff
  }
  out.copyWithin(32, 0, 32)
  return out
}

export function fakePublicKey(id: string): Uint8Array {
  const pk = new Uint8Array(32)
  pk.set(fromHex(id) ?? new Uint8Array(20))
  return pk
}

/** A Keyring for node `id` in the simulator. */
export function createFakeKeyring(id: string): Keyring {
  const publicKey = fakePublicKey(id)
  return {
    publicKey,
    sign: async (data) => fakeSig(publicKey, data),
    verify: async (pk, data, sig) => {
      if (
        !(pk instanceof Uint8Array) ||
        pk.length !== 32 ||
        !(sig instanceof Uint8Array) ||
        sig.length !== 64
      )
        return false
      const want = fakeSig(pk, data)
      for (let i = 0; i < 64; i++) if (want[i] !== sig[i]) return false
      return true
    },
    idOf: async (pk) => toHex(pk.subarray(0, 20)),
  }
}
