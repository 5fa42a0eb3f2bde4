import { describe, expect, it } from 'vitest'
import { toHex } from '../bytes.ts'
import { WeftError } from '../errors.ts'
import {
  AccessDeniedError,
  CONTENT_OVERHEAD,
  contentAad,
  DEFAULT_NETWORK_ITERATIONS,
  deriveNetworkKeys,
  networkTag,
} from './network.ts'

const utf8 = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array | null) => (b ? new TextDecoder().decode(b) : null)
const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n))
// Fewer PBKDF2 rounds where the stretching is not what is tested (one test uses the default).
const FAST = { iterations: 1000 }
const A = 'a'.repeat(40)
const B = 'b'.repeat(40)

describe('private network admission', () => {
  it('members prove the secret to each other over a link transcript', async () => {
    const [ka, kb] = await Promise.all([
      deriveNetworkKeys('team', 'correct horse battery staple', FAST),
      deriveNetworkKeys('team', 'correct horse battery staple', FAST),
    ])
    const th = rnd(32)
    const tagA = await ka.admissionProof(th, A)
    expect(tagA.length).toBe(32)
    expect(await kb.checkAdmission(th, A, tagA)).toBe(true)
    expect(kb.counters['network.admitted']).toBe(1)
    expect(await ka.checkAdmission(th, B, await kb.admissionProof(th, B))).toBe(true)
  })

  it('a node with another secret, or the same secret under another name, cannot make a tag members accept', async () => {
    const member = await deriveNetworkKeys('team', 's3cret', FAST)
    const th = rnd(32)
    for (const outsider of await Promise.all([
      deriveNetworkKeys('team', 's3creT', FAST),
      deriveNetworkKeys('team', 's3cret ', FAST),
      deriveNetworkKeys('other', 's3cret', FAST),
      deriveNetworkKeys('team', 's3cret', { iterations: 1001 }),
    ])) {
      expect(await member.checkAdmission(th, A, await outsider.admissionProof(th, A))).toBe(false)
      // And the outsider refuses the member in turn: that end's error is AccessDeniedError.
      expect(await outsider.checkAdmission(th, B, await member.admissionProof(th, B))).toBe(false)
    }
    // A node with no secret has nothing to send but bytes of its choosing.
    expect(await member.checkAdmission(th, A, new Uint8Array(32))).toBe(false)
    expect(await member.checkAdmission(th, A, rnd(32))).toBe(false)
    expect(await member.checkAdmission(th, A, new Uint8Array(0))).toBe(false)
    expect(await member.checkAdmission(th, A, rnd(33))).toBe(false)
    expect(member.counters['drop.network.admission']).toBe(8)
    expect(member.counters['network.admitted']).toBeUndefined()
  })

  it('a tag is fresh per link and per prover: replaying one on another link, or as another node, fails', async () => {
    const k = await deriveNetworkKeys('team', 'secret', FAST)
    const th1 = rnd(32)
    const th2 = rnd(32)
    const tag = await k.admissionProof(th1, A)
    expect(toHex(tag)).not.toBe(toHex(await k.admissionProof(th2, A)))
    expect(toHex(tag)).not.toBe(toHex(await k.admissionProof(th1, B)))
    expect(await k.checkAdmission(th2, A, tag)).toBe(false)
    expect(await k.checkAdmission(th1, B, tag)).toBe(false)
  })

  it('a tag does not carry the secret: it holds neither the secret, its hash, nor a derived key, and tags of a link look unrelated', async () => {
    const secret = 'hunter2-hunter2-hunter2'
    const k = await deriveNetworkKeys('team', secret, FAST)
    const tags = await Promise.all(Array.from({ length: 32 }, () => k.admissionProof(rnd(32), A)))
    const hexes = tags.map(toHex)
    expect(new Set(hexes).size).toBe(32)
    const secretHash = toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(secret))))
    for (const h of hexes) {
      expect(h).not.toContain(toHex(utf8(secret)).slice(0, 16))
      expect(h).not.toBe(secretHash)
    }
    // Roughly half the bits differ between any two tags (unrelated outputs, not a shared prefix).
    const bitsDiffer = (x: Uint8Array, y: Uint8Array) =>
      x.reduce(
        (n, b, i) => n + [...((b ^ (y[i] as number)) >>> 0).toString(2)].filter((c) => c === '1').length,
        0,
      )
    const d = bitsDiffer(tags[0] as Uint8Array, tags[1] as Uint8Array)
    expect(d).toBeGreaterThan(64)
    expect(d).toBeLessThan(192)
  })

  it('the default stretching is applied: same keys from the same inputs, and the secret may be bytes', async () => {
    const th = rnd(32)
    const k1 = await deriveNetworkKeys('team', 'pw')
    const k2 = await deriveNetworkKeys('team', utf8('pw'), { iterations: DEFAULT_NETWORK_ITERATIONS })
    const k3 = await deriveNetworkKeys('team', 'pw', FAST)
    const tag = await k1.admissionProof(th, A)
    expect(await k2.checkAdmission(th, A, tag)).toBe(true)
    expect(await k3.checkAdmission(th, A, tag)).toBe(false)
  })

  it('refuses an empty secret or a nonsensical iteration count', async () => {
    await expect(deriveNetworkKeys('team', '')).rejects.toThrow(RangeError)
    await expect(deriveNetworkKeys('team', new Uint8Array())).rejects.toThrow(RangeError)
    await expect(deriveNetworkKeys('team', 'x', { iterations: 0 })).rejects.toThrow(RangeError)
  })

  it('AccessDeniedError is a named WeftError', () => {
    const e = new AccessDeniedError(A)
    expect(e).toBeInstanceOf(WeftError)
    expect(e.name).toBe('AccessDeniedError')
    expect(e.peer).toBe(A)
    expect(new AccessDeniedError().message).toMatch(/access denied/)
  })
})

describe('private network content', () => {
  it('members read what members sealed; the sealed bytes hide it', async () => {
    const [ka, kb] = await Promise.all([
      deriveNetworkKeys('team', 's', FAST),
      deriveNetworkKeys('team', 's', FAST),
    ])
    const aad = contentAad('broadcast', 'chat', A, '17')
    const sealed = await ka.sealContent(A, utf8('meet at noon'), aad)
    expect(sealed.length).toBe(utf8('meet at noon').length + CONTENT_OVERHEAD)
    expect(text(await kb.openContent(A, sealed, aad))).toBe('meet at noon')
    expect(toHex(sealed)).not.toContain(toHex(utf8('meet at')))
    const again = await ka.sealContent(A, utf8('meet at noon'), aad)
    expect(toHex(again)).not.toBe(toHex(sealed)) // random ivs
  })

  it('outsiders (another secret, another network) can neither read nor inject', async () => {
    const member = await deriveNetworkKeys('team', 's', FAST)
    const outsider = await deriveNetworkKeys('team', 't', FAST)
    const aad = contentAad('table', 'room/topic', A)
    expect(await outsider.openContent(A, await member.sealContent(A, utf8('x'), aad), aad)).toBeNull()
    expect(await member.openContent(A, await outsider.sealContent(A, utf8('injected'), aad), aad)).toBeNull()
    expect(await member.openContent(A, rnd(64), aad)).toBeNull()
    expect(member.counters['drop.network.content']).toBe(2)
  })

  it('a ciphertext cannot be moved to another record, kind or author', async () => {
    const k = await deriveNetworkKeys('team', 's', FAST)
    const sealed = await k.sealContent(A, utf8('v'), contentAad('dht', 'profile', A))
    expect(await k.openContent(A, sealed, contentAad('dht', 'profile2', A))).toBeNull()
    expect(await k.openContent(A, sealed, contentAad('table', 'profile', A))).toBeNull()
    expect(await k.openContent(B, sealed, contentAad('dht', 'profile', B))).toBeNull()
    expect(await k.openContent(B, sealed, contentAad('dht', 'profile', A))).toBeNull()
    expect(text(await k.openContent(A, sealed, contentAad('dht', 'profile', A)))).toBe('v')
  })

  it('a change to any byte fails; short or mislabelled input is refused without a throw', async () => {
    const k = await deriveNetworkKeys('team', 's', FAST)
    const aad = contentAad('table', 'k', A)
    const sealed = await k.sealContent(A, utf8('value'), aad)
    for (let i = 0; i < sealed.length; i++) {
      const t = new Uint8Array(sealed)
      t[i] = (t[i] as number) ^ 0x40
      expect(await k.openContent(A, t, aad)).toBeNull()
    }
    expect(await k.openContent(A, sealed.subarray(0, CONTENT_OVERHEAD - 1), aad)).toBeNull()
    expect(await k.openContent(A, new Uint8Array(), aad)).toBeNull()
  })

  it('contentAad keeps field boundaries: ("ab","c") and ("a","bc") differ', () => {
    expect(toHex(contentAad('dht', 'ab', 'c'))).not.toBe(toHex(contentAad('dht', 'a', 'bc')))
    expect(toHex(contentAad('dht', 'k'))).not.toBe(toHex(contentAad('table', 'k')))
  })
})

describe('network tag', () => {
  it('is 32 hex characters, the same for everyone with the name, and hides the name', async () => {
    const t = await networkTag('team')
    expect(t).toMatch(/^[0-9a-f]{32}$/)
    expect(await networkTag('team')).toBe(t)
    expect(await networkTag('Team')).not.toBe(t)
    expect(t).not.toContain(toHex(utf8('team')))
  })
})
