/** The registration signature check and node id (verify.ts) agree with the shared WebCrypto ones. */
import { describe, expect, it } from 'vitest'
import { generateIdentity, nodeIdOf, verify } from '../shared/identity/keys.ts'
import { nodeIdNow, verifyOnce } from './verify.ts'

describe('verifyOnce', () => {
  it('accepts what the shared verify accepts and refuses a changed byte, another key, bad sizes', async () => {
    const a = await generateIdentity({ puzzleBits: 0 })
    const b = await generateIdentity({ puzzleBits: 0 })
    const msg = new TextEncoder().encode('weft-register\nlocalhost:1\nnonce')
    const sig = await a.sign(msg)
    expect(await verify(a.publicKey, msg, sig)).toBe(true)
    expect(verifyOnce(a.publicKey, msg, sig)).toBe(true)
    const flipped = sig.slice()
    flipped[10] = (flipped[10] as number) ^ 1
    expect(verifyOnce(a.publicKey, msg, flipped)).toBe(false)
    const other = msg.slice()
    other[0] = (other[0] as number) ^ 1
    expect(verifyOnce(a.publicKey, other, sig)).toBe(false)
    expect(verifyOnce(b.publicKey, msg, sig)).toBe(false)
    expect(verifyOnce(a.publicKey, msg, sig.subarray(0, 63))).toBe(false)
    expect(verifyOnce(a.publicKey.subarray(0, 31), msg, sig)).toBe(false)
    expect(verifyOnce(new Uint8Array(32), msg, sig)).toBe(false) // a small-order point
  })

  it('nodeIdNow is nodeIdOf', async () => {
    for (let i = 0; i < 5; i++) {
      const { publicKey, id } = await generateIdentity({ puzzleBits: 0 })
      expect(nodeIdNow(publicKey)).toBe(await nodeIdOf(publicKey))
      expect(nodeIdNow(publicKey)).toBe(id)
    }
  })
})
