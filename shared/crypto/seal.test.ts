import { describe, expect, it } from 'vitest'
import { bytesEqual, concatBytes, toHex } from '../bytes.ts'
import { createBoxKeyPair } from './box-record.ts'
import { createOpener, createSealer, REPLY_OVERHEAD, SEAL_OVERHEAD } from './seal.ts'

const utf8 = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array | null | undefined) => (b ? new TextDecoder().decode(b) : null)
/** What the router would bind: source, destination, the envelope's nonce and signed time. */
const aadOf = (src: string, dst: string, n = 'n1', w = 1000) => utf8(`${src}\n${dst}\n${n}\n${w}`)

async function setup() {
  const box = await createBoxKeyPair()
  return { box, sealer: createSealer(), opener: createOpener(box) }
}

describe('sealed envelopes', () => {
  it('the recipient opens what was sealed to its box key, and answers with a reply only the sender opens', async () => {
    const { box, sealer, opener } = await setup()
    const aad = aadOf('src', 'dst')
    const m = await sealer.seal(box.publicKey, utf8('hello bob'), aad)
    expect(m.bytes.length).toBe(utf8('hello bob').length + SEAL_OVERHEAD)
    const got = await opener.open(m.bytes, aad)
    expect(text(got?.plaintext)).toBe('hello bob')
    const raad = aadOf('dst', 'src', 'n2', 1001)
    const reply = await got?.sealReply(utf8('hello alice'), raad)
    if (!reply) throw new Error('no reply')
    expect(reply.length).toBe(utf8('hello alice').length + REPLY_OVERHEAD)
    expect(text(await m.openReply(reply, raad))).toBe('hello alice')
    expect(opener.counters['seal.opened']).toBe(1)
  })

  it('an intermediate node with its own box key cannot open an envelope passing through it', async () => {
    const { box, sealer } = await setup()
    const relay = createOpener(await createBoxKeyPair())
    const aad = aadOf('src', 'dst')
    const m = await sealer.seal(box.publicKey, utf8('for bob only'), aad)
    expect(await relay.open(m.bytes, aad)).toBeNull()
    expect(relay.counters['drop.seal.forged']).toBe(1)
    expect(toHex(m.bytes)).not.toContain(toHex(utf8('for bob')))
  })

  it('a second message to the same recipient reuses the session: no new exchange on either side', async () => {
    const { box, sealer, opener } = await setup()
    const aad = aadOf('s', 'd')
    for (let i = 0; i < 5; i++) {
      const m = await sealer.seal(box.publicKey, utf8(`m${i}`), aad)
      expect(text((await opener.open(m.bytes, aad))?.plaintext)).toBe(`m${i}`)
    }
    expect(sealer.counters['seal.session']).toBe(1)
    expect(opener.counters['seal.session-derived']).toBe(1)
    // Concurrent first messages to a new recipient share one session too.
    const other = await createBoxKeyPair()
    await Promise.all(Array.from({ length: 8 }, () => sealer.seal(other.publicKey, utf8('x'), aad)))
    expect(sealer.counters['seal.session']).toBe(2)
  })

  it('each message has a fresh iv: the same plaintext sealed twice differs', async () => {
    const { box, sealer } = await setup()
    const a = await sealer.seal(box.publicKey, utf8('same'), new Uint8Array())
    const b = await sealer.seal(box.publicKey, utf8('same'), new Uint8Array())
    expect(toHex(a.bytes.subarray(0, 33))).toBe(toHex(b.bytes.subarray(0, 33))) // one session
    expect(toHex(a.bytes.subarray(33))).not.toBe(toHex(b.bytes.subarray(33)))
  })

  it('a change to any byte fails: tampered envelopes are dropped and counted', async () => {
    const { box, sealer, opener } = await setup()
    const aad = aadOf('s', 'd')
    const m = await sealer.seal(box.publicKey, utf8('pay 10'), aad)
    for (let i = 0; i < m.bytes.length; i++) {
      const t = new Uint8Array(m.bytes)
      t[i] = (t[i] as number) ^ 0x01
      expect(await opener.open(t, aad)).toBeNull()
    }
    const c = opener.counters
    expect(
      (c['drop.seal.forged'] ?? 0) + (c['drop.seal.malformed'] ?? 0) + (c['drop.seal.bad-key'] ?? 0),
    ).toBe(m.bytes.length)
    expect(text((await opener.open(m.bytes, aad))?.plaintext)).toBe('pay 10') // the original still opens
  })

  it('cannot be moved to another envelope: other source, destination, nonce or time in the aad fails', async () => {
    const { box, sealer, opener } = await setup()
    const m = await sealer.seal(box.publicKey, utf8('x'), aadOf('alice', 'bob', 'n1', 1000))
    for (const aad of [
      aadOf('mallory', 'bob', 'n1', 1000),
      aadOf('alice', 'carol', 'n1', 1000),
      aadOf('alice', 'bob', 'n2', 1000),
      aadOf('alice', 'bob', 'n1', 1001),
    ])
      expect(await opener.open(m.bytes, aad)).toBeNull()
  })

  it('a swapped ephemeral key (another valid key in the header) fails', async () => {
    const { box, sealer, opener } = await setup()
    const aad = aadOf('s', 'd')
    const m1 = await sealer.seal(box.publicKey, utf8('one'), aad)
    const m2 = await createSealer().seal(box.publicKey, utf8('two'), aad)
    const swapped = concatBytes(m2.bytes.subarray(0, 33), m1.bytes.subarray(33))
    expect(await opener.open(swapped, aad)).toBeNull()
  })

  it('refuses a small-order ephemeral key and never seals to a small-order box key', async () => {
    const { box, sealer, opener } = await setup()
    const aad = aadOf('s', 'd')
    const m = await sealer.seal(box.publicKey, utf8('x'), aad)
    const zeroKey = new Uint8Array(m.bytes)
    zeroKey.fill(0, 1, 33)
    expect(await opener.open(zeroKey, aad)).toBeNull()
    expect(opener.counters['drop.seal.bad-key']).toBe(1)
    await expect(sealer.seal(new Uint8Array(32), utf8('x'), aad)).rejects.toThrow(RangeError)
    await expect(sealer.seal(new Uint8Array(31).fill(9), utf8('x'), aad)).rejects.toThrow(RangeError)
  })

  it('refuses what is not a sealed envelope (short, wrong first byte, a reply) without throwing', async () => {
    const { box, sealer, opener } = await setup()
    const aad = aadOf('s', 'd')
    const m = await sealer.seal(box.publicKey, utf8('x'), aad)
    const reply = await (await opener.open(m.bytes, aad))?.sealReply(utf8('r'), aad)
    for (const bad of [new Uint8Array(0), m.bytes.subarray(0, SEAL_OVERHEAD - 1), reply ?? new Uint8Array(1)])
      expect(await opener.open(bad, aad)).toBeNull()
    const wrongTag = new Uint8Array(m.bytes)
    wrongTag[0] = 0x03
    expect(await opener.open(wrongTag, aad)).toBeNull()
    expect(opener.counters['drop.seal.malformed']).toBe(4)
  })

  it('a reply is bound to its request: the answer to one request does not open as the answer to another', async () => {
    const { box, sealer, opener } = await setup()
    const aad = aadOf('s', 'd')
    const r1 = await sealer.seal(box.publicKey, utf8('balance of alice?'), aad)
    const r2 = await sealer.seal(box.publicKey, utf8('balance of bob?'), aad)
    const o1 = await opener.open(r1.bytes, aad)
    const answer1 = await o1?.sealReply(utf8('100'), aad)
    if (!answer1) throw new Error('no answer')
    expect(text(await r1.openReply(answer1, aad))).toBe('100')
    expect(await r2.openReply(answer1, aad)).toBeNull()
    expect(sealer.counters['drop.seal.reply-forged']).toBe(1)
  })

  it('a tampered reply, or one with other aad, fails', async () => {
    const { box, sealer, opener } = await setup()
    const aad = aadOf('s', 'd')
    const m = await sealer.seal(box.publicKey, utf8('q'), aad)
    const raad = aadOf('d', 's')
    const reply = await (await opener.open(m.bytes, aad))?.sealReply(utf8('answer'), raad)
    if (!reply) throw new Error('no reply')
    for (let i = 0; i < reply.length; i++) {
      const t = new Uint8Array(reply)
      t[i] = (t[i] as number) ^ 0x80
      expect(await m.openReply(t, raad)).toBeNull()
    }
    expect(await m.openReply(reply, aadOf('d', 'mallory'))).toBeNull()
    expect(await m.openReply(reply.subarray(0, REPLY_OVERHEAD - 1), raad)).toBeNull()
    expect(text(await m.openReply(reply, raad))).toBe('answer')
  })

  it('a session ends after maxUses messages or maxAgeMs, and what it sealed still opens (replies too)', async () => {
    const box = await createBoxKeyPair()
    const sealer = createSealer({ maxUses: 3, maxAgeMs: 1000 })
    const opener = createOpener(box)
    const aad = new Uint8Array()
    sealer.tick(0)
    const eph = async () => toHex((await sealer.seal(box.publicKey, utf8('x'), aad)).bytes.subarray(1, 33))
    const first = [await eph(), await eph(), await eph()]
    expect(new Set(first).size).toBe(1)
    const fourth = await eph()
    expect(fourth).not.toBe(first[0])
    expect(sealer.counters['seal.session']).toBe(2)
    sealer.tick(500)
    const early = await sealer.seal(box.publicKey, utf8('before expiry'), aad)
    expect(toHex(early.bytes.subarray(1, 33))).toBe(fourth)
    sealer.tick(2000)
    expect(sealer.sessions).toBe(0)
    expect(await eph()).not.toBe(fourth)
    // The old session's message and its reply still work: the SealedMessage holds its keys.
    const opened = await opener.open(early.bytes, aad)
    expect(text(opened?.plaintext)).toBe('before expiry')
    const reply = await opened?.sealReply(utf8('late answer'), aad)
    expect(text(await early.openReply(reply ?? new Uint8Array(), aad))).toBe('late answer')
  })

  it('a flood of envelopes each with a new ephemeral key keeps the opener’s memory bounded', async () => {
    const box = await createBoxKeyPair()
    const opener = createOpener(box, { maxSessions: 16, maxIdleMs: 1000 })
    opener.tick(0)
    const aad = new Uint8Array()
    for (let i = 0; i < 64; i++) {
      const m = await createSealer().seal(box.publicKey, utf8(`${i}`), aad)
      expect(text((await opener.open(m.bytes, aad))?.plaintext)).toBe(`${i}`)
      expect(opener.sessions).toBeLessThanOrEqual(16)
    }
    expect(opener.counters['seal.session-derived']).toBe(64)
    opener.tick(5000)
    expect(opener.sessions).toBe(0)
  })

  it('the sealer keeps at most maxSessions recipients', async () => {
    const sealer = createSealer({ maxSessions: 4 })
    for (let i = 0; i < 10; i++)
      await sealer.seal((await createBoxKeyPair()).publicKey, utf8('x'), new Uint8Array())
    expect(sealer.sessions).toBe(4)
  })

  it('opens a message sealed to another box key of ours only with that key', async () => {
    const [b1, b2] = await Promise.all([createBoxKeyPair(), createBoxKeyPair()])
    const m = await createSealer().seal(b1.publicKey, utf8('to b1'), new Uint8Array())
    expect(await createOpener(b2).open(m.bytes, new Uint8Array())).toBeNull()
    const got = await createOpener(b1).open(m.bytes, new Uint8Array())
    expect(bytesEqual(got?.plaintext ?? new Uint8Array(), utf8('to b1'))).toBe(true)
  })
})
