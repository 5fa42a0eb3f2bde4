import { describe, expect, it } from 'vitest'
import { sha256, toHex, utf8 } from '../bytes.ts'
import { exportIdentity, generateIdentity, importIdentity, nodeIdOf, verify } from './keys.ts'

describe('identity', () => {
  it('id is the first 160 bits of SHA-256(public key), 40 lowercase hex', async () => {
    const me = await generateIdentity()
    expect(me.id).toMatch(/^[0-9a-f]{40}$/)
    expect(me.id).toBe(toHex((await sha256(me.publicKey)).subarray(0, 20)))
    expect(await nodeIdOf(me.publicKey)).toBe(me.id)
    expect(me.publicKey.length).toBe(32)
  })

  it('signs and verifies; tampered data, signature or key fail', async () => {
    const me = await generateIdentity()
    const other = await generateIdentity()
    const data = utf8('hello weft')
    const sig = await me.sign(data)
    expect(sig.length).toBe(64)
    expect(await verify(me.publicKey, data, sig)).toBe(true)
    const tampered = data.slice()
    tampered[0] = (tampered[0] ?? 0) ^ 1
    expect(await verify(me.publicKey, tampered, sig)).toBe(false)
    const badSig = sig.slice()
    badSig[10] = (badSig[10] ?? 0) ^ 0x80
    expect(await verify(me.publicKey, data, badSig)).toBe(false)
    expect(await verify(other.publicKey, data, sig)).toBe(false)
  })

  it('never throws on malformed keys or signatures', async () => {
    const data = utf8('x')
    expect(await verify(new Uint8Array(3), data, new Uint8Array(64))).toBe(false)
    expect(await verify(new Uint8Array(32), data, new Uint8Array(64))).toBe(false)
    expect(await verify(new Uint8Array(32).fill(255), data, new Uint8Array(12))).toBe(false)
    // biome-ignore lint/suspicious/noExplicitAny: hostile input on purpose
    expect(await verify('nope' as any, data, null as any)).toBe(false)
  })

  it('ids are stable for a key across export and import', async () => {
    const me = await generateIdentity({ extractable: true })
    const again = await importIdentity(await exportIdentity(me))
    expect(again.id).toBe(me.id)
    const sig = await again.sign(utf8('persisted'))
    expect(await verify(me.publicKey, utf8('persisted'), sig)).toBe(true)
  })
})
