import { describe, expect, it, vi } from 'vitest'
import { bytesEqual, toHex } from '../bytes.ts'
import { generateIdentity, type Identity } from '../identity/keys.ts'
import { type Channel, type ChannelKeys, createChannelKeys, deriveChannel } from './channel.ts'
import { type LinkEnd, linkProofBytes, linkTranscript } from './transcript.ts'

const utf8 = (s: string) => new TextEncoder().encode(s)
/** Random bytes (getRandomValues fills at most 64 KiB per call). */
function rnd(n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65536)))
  return out
}

interface End {
  identity: Identity
  keys: ChannelKeys
  nonce: Uint8Array
}

async function end(): Promise<End> {
  return {
    identity: await generateIdentity({ puzzleBits: 0 }),
    keys: await createChannelKeys(),
    nonce: rnd(32),
  }
}

const linkEnd = (e: End, ephemeral = e.keys.publicKey): LinkEnd => ({
  id: e.identity.id,
  nonce: e.nonce,
  ephemeral,
  fingerprint: '',
})

/** The whole handshake of a relay link between a and b, no one in the middle: both channels. */
/** The receiving node's counters (B's), where a dead channel is counted. */
type Counted = { ab: Channel; ba: Channel; th: Uint8Array; counters: Record<string, number> }

async function handshake(a: End, b: End): Promise<Counted> {
  const th = await linkTranscript({ transport: 'relay', network: 'n', ends: [linkEnd(a), linkEnd(b)] })
  const thB = await linkTranscript({ transport: 'relay', network: 'n', ends: [linkEnd(b), linkEnd(a)] })
  expect(toHex(thB)).toBe(toHex(th)) // the order of the ends does not matter
  const sigA = await a.identity.sign(linkProofBytes(th, a.identity.id))
  const sigB = await b.identity.sign(linkProofBytes(thB, b.identity.id))
  expect(await b.identity.verify(a.identity.publicKey, linkProofBytes(thB, a.identity.id), sigA)).toBe(true)
  expect(await a.identity.verify(b.identity.publicKey, linkProofBytes(th, b.identity.id), sigB)).toBe(true)
  const ab = await deriveChannel({ mine: a.keys, theirs: b.keys.publicKey, transcript: th })
  const counters: Record<string, number> = {}
  const ba = await deriveChannel({ mine: b.keys, theirs: a.keys.publicKey, transcript: thB, counters })
  if (!ab || !ba) throw new Error('no channel')
  return { ab, ba, th, counters }
}

async function pair(): Promise<Counted & { a: End; b: End }> {
  const [a, b] = await Promise.all([end(), end()])
  return { ...(await handshake(a, b)), a, b }
}

describe('secure channel', () => {
  it('carries frames both ways, any size, with and without aad', async () => {
    const { ab, ba } = await pair()
    const sizes = [0, 1, 15, 16, 17, 1000, 16 * 1024, 256 * 1024]
    for (const n of sizes) {
      const m = rnd(n)
      const aad = utf8(`frame ${n}`)
      const sealed = await ab.seal(m, aad)
      expect(sealed.length).toBe(n + 16)
      expect(bytesEqual((await ba.open(sealed, aad)) ?? new Uint8Array([1]), m)).toBe(true)
      const back = await ba.seal(m)
      expect(bytesEqual((await ab.open(back)) ?? new Uint8Array([1]), m)).toBe(true)
    }
    expect([ab.sent, ab.received, ba.sent, ba.received]).toEqual([8, 8, 8, 8])
    expect(ab.failure).toBeUndefined()
  })

  it('hides the plaintext: the same frame sealed twice differs, and neither contains it', async () => {
    const { ab } = await pair()
    const m = utf8('a secret that is long enough to be found if it leaked through')
    const s1 = await ab.seal(m)
    const s2 = await ab.seal(m)
    expect(toHex(s1)).not.toBe(toHex(s2))
    expect(toHex(s1)).not.toContain(toHex(m.subarray(0, 8)))
  })

  it('a change to any byte of a frame fails it, and the channel is dead afterwards', async () => {
    const m = utf8('transfer 10 coins to bob')
    for (let i = 0; i < m.length + 16; i++) {
      const { ab, ba, counters } = await pair()
      const sealed = await ab.seal(m)
      const next = await ab.seal(m)
      sealed[i] = (sealed[i] as number) ^ 0x01
      expect(await ba.open(sealed)).toBeNull()
      expect(ba.failure).toBe('forged')
      expect(counters).toEqual({ 'drop.channel.forged': 1 })
      // The next frame is genuine, but the channel is closed for good.
      expect(await ba.open(next)).toBeNull()
      await expect(ba.seal(m)).rejects.toMatchObject({ name: 'ClosedError' })
    }
  })

  it('a truncated frame, or one shorter than a tag, fails', async () => {
    const { ab, ba } = await pair()
    const sealed = await ab.seal(utf8('hello'))
    expect(await ba.open(sealed.subarray(0, sealed.length - 1))).toBeNull()
    const { ab: ab2, ba: ba2, counters } = await pair()
    await ab2.seal(utf8('x'))
    expect(await ba2.open(new Uint8Array(15))).toBeNull()
    expect(ba2.failure).toBe('short')
    expect(counters).toEqual({ 'drop.channel.short': 1 })
  })

  it('refuses a replayed frame', async () => {
    const { ab, ba, counters } = await pair()
    const f0 = await ab.seal(utf8('pay once'))
    expect(await ba.open(f0)).not.toBeNull()
    expect(await ba.open(f0)).toBeNull()
    expect(ba.failure).toBe('forged')
    expect(counters['drop.channel.forged']).toBe(1)
  })

  it('refuses reordered frames', async () => {
    const { ab, ba } = await pair()
    const f0 = await ab.seal(utf8('first'))
    const f1 = await ab.seal(utf8('second'))
    expect(await ba.open(f1)).toBeNull()
    expect(await ba.open(f0)).toBeNull()
  })

  it('refuses a frame dropped and reinjected later', async () => {
    const { ab, ba } = await pair()
    const f0 = await ab.seal(utf8('0'))
    const f1 = await ab.seal(utf8('1'))
    const f2 = await ab.seal(utf8('2'))
    expect(await ba.open(f0)).not.toBeNull()
    expect(await ba.open(f2)).toBeNull() // f1 was held back
    expect(await ba.open(f1)).toBeNull()
  })

  it('refuses a frame with other additional data', async () => {
    const { ab, ba } = await pair()
    const sealed = await ab.seal(utf8('body'), new Uint8Array([0xc2]))
    expect(await ba.open(sealed, new Uint8Array([0xc3]))).toBeNull()
  })

  it('refuses a frame sent back to its sender (each direction has its own key)', async () => {
    const { ab, ba } = await pair()
    const sealed = await ab.seal(utf8('reflect me'))
    expect(await ab.open(sealed)).toBeNull()
    expect(ab.failure).toBe('forged')
    // Its real receiver opens it.
    expect(await ba.open(sealed)).not.toBeNull()
  })

  it('keys are fresh per link: a frame of one link fails on the next link between the same nodes', async () => {
    const [a, b] = await Promise.all([end(), end()])
    const one = await handshake(a, b)
    const a2 = { ...a, keys: await createChannelKeys(), nonce: rnd(32) }
    const b2 = { ...b, keys: await createChannelKeys(), nonce: rnd(32) }
    const two = await handshake(a2, b2)
    const sealed = await one.ab.seal(utf8('from the first link'))
    expect(await two.ba.open(sealed)).toBeNull()
  })

  it('a channel keyed with another transcript cannot read the frames (wrong key)', async () => {
    const { ab, a, b } = await pair()
    const other = await deriveChannel({ mine: b.keys, theirs: a.keys.publicKey, transcript: rnd(32) })
    expect(await other?.open(await ab.seal(utf8('x')))).toBeNull()
  })

  it('uses every nonce once: frame n of a direction is sealed with the 96-bit counter n, even when seals overlap', async () => {
    const { ab, ba } = await pair()
    const spy = vi.spyOn(crypto.subtle, 'encrypt')
    try {
      const frames = await Promise.all(Array.from({ length: 64 }, (_, i) => ab.seal(utf8(`frame ${i}`))))
      frames.push(...(await Promise.all(Array.from({ length: 8 }, () => ba.seal(utf8('back'))))))
      const ivOf = (alg: unknown) =>
        typeof alg === 'object' && alg !== null && 'iv' in alg && alg.iv instanceof Uint8Array
          ? toHex(alg.iv)
          : ''
      const ivs = spy.mock.calls.map(([alg]) => ivOf(alg))
      expect(ivs.length).toBe(72)
      expect(new Set(ivs.slice(0, 64)).size).toBe(64)
      expect(ivs.slice(0, 64)).toEqual(
        Array.from({ length: 64 }, (_, i) => `0000000000000000${i.toString(16).padStart(8, '0')}`),
      )
      // The other direction counts from 0 too, under its own key.
      expect(ivs[64]).toBe('000000000000000000000000')
      // Overlapping opens in wire order all succeed.
      const opened = await Promise.all(frames.slice(0, 64).map((f) => ba.open(f)))
      expect(opened.map((p) => new TextDecoder().decode(p ?? new Uint8Array()))).toEqual(
        Array.from({ length: 64 }, (_, i) => `frame ${i}`),
      )
    } finally {
      spy.mockRestore()
    }
  })

  it('opens settle in call order: no frame after a failed one is given out, even if it was already decrypted', async () => {
    const { ab, ba } = await pair()
    const f = await Promise.all([0, 1, 2, 3].map((i) => ab.seal(utf8(`f${i}`))))
    const tampered = f[1] as Uint8Array
    tampered[0] = (tampered[0] as number) ^ 1
    const results = await Promise.all(f.map((x) => ba.open(x)))
    expect(results[0]).not.toBeNull()
    expect(results.slice(1)).toEqual([null, null, null])
  })

  it('refuses to seal or open past its frame limit (the link must be set up again)', async () => {
    const [a, b] = await Promise.all([end(), end()])
    const th = rnd(32)
    const counters: Record<string, number> = {}
    const ab = await deriveChannel({
      mine: a.keys,
      theirs: b.keys.publicKey,
      transcript: th,
      maxFrames: 3,
      counters,
    })
    const ba = await deriveChannel({
      mine: b.keys,
      theirs: a.keys.publicKey,
      transcript: th,
      maxFrames: 3,
      counters,
    })
    if (!ab || !ba) throw new Error('no channel')
    for (let i = 0; i < 3; i++) expect(await ba.open(await ab.seal(utf8(`${i}`)))).not.toBeNull()
    await expect(ab.seal(utf8('one too many'))).rejects.toMatchObject({ name: 'ClosedError' })
    expect(ab.failure).toBe('exhausted')
    expect(await ba.open(new Uint8Array(20))).toBeNull()
    expect(ba.failure).toBe('exhausted')
    expect(counters).toEqual({ 'drop.channel.exhausted': 2 })
  })

  it('refuses a peer ephemeral key of small order, of the wrong size, or our own key reflected', async () => {
    const a = await end()
    const th = rnd(32)
    const zero = new Uint8Array(32)
    const one = new Uint8Array(32)
    one[0] = 1
    // An order-8 point, and p - 1 with the ignored top bit set.
    const order8 = Uint8Array.from(
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'.match(/../g) ?? [],
      (h) => Number.parseInt(h, 16),
    )
    const pMinus1 = new Uint8Array(32).fill(0xff)
    pMinus1[0] = 0xec
    for (const bad of [zero, one, order8, pMinus1, rnd(31), a.keys.publicKey])
      expect(await deriveChannel({ mine: a.keys, theirs: bad, transcript: th })).toBeNull()
  })
})

describe('link handshake with a party in the middle', () => {
  it("a relay that swaps in its own ephemeral keys is caught: the peer's proof does not cover the substituted key", async () => {
    const [a, b, m] = await Promise.all([end(), end(), end()])
    // The relay M forwards each hello with its own ephemeral key in place of the sender's.
    const aView = await linkTranscript({
      transport: 'relay',
      network: 'n',
      ends: [linkEnd(a), linkEnd(b, m.keys.publicKey)],
    })
    const bView = await linkTranscript({
      transport: 'relay',
      network: 'n',
      ends: [linkEnd(a, m.keys.publicKey), linkEnd(b)],
    })
    expect(toHex(aView)).not.toBe(toHex(bView))
    // B signs what it saw; A checks it against what A saw, and refuses the link.
    const sigB = await b.identity.sign(linkProofBytes(bView, b.identity.id))
    expect(await a.identity.verify(b.identity.publicKey, linkProofBytes(aView, b.identity.id), sigB)).toBe(
      false,
    )
    const sigA = await a.identity.sign(linkProofBytes(aView, a.identity.id))
    expect(await b.identity.verify(a.identity.publicKey, linkProofBytes(bView, a.identity.id), sigA)).toBe(
      false,
    )
    // And had A not checked, M could read A's frames (which is why the proof must cover the keys).
    const am = await deriveChannel({ mine: a.keys, theirs: m.keys.publicKey, transcript: aView })
    const ma = await deriveChannel({ mine: m.keys, theirs: a.keys.publicKey, transcript: aView })
    expect(await ma?.open(await (am as Channel).seal(utf8('x')))).not.toBeNull()
  })

  it('swapping the two ends’ ephemeral keys changes the transcript, and the proofs fail', async () => {
    const [a, b] = await Promise.all([end(), end()])
    const honest = await linkTranscript({ transport: 'relay', network: 'n', ends: [linkEnd(a), linkEnd(b)] })
    const swapped = await linkTranscript({
      transport: 'relay',
      network: 'n',
      ends: [linkEnd(a, b.keys.publicKey), linkEnd(b, a.keys.publicKey)],
    })
    expect(toHex(swapped)).not.toBe(toHex(honest))
    const sigA = await a.identity.sign(linkProofBytes(honest, a.identity.id))
    expect(await b.identity.verify(a.identity.publicKey, linkProofBytes(swapped, a.identity.id), sigA)).toBe(
      false,
    )
  })

  it('a proof made for one link does not verify on another (fresh nonces), nor for the other end', async () => {
    const [a, b] = await Promise.all([end(), end()])
    const th1 = await linkTranscript({ transport: 'relay', network: 'n', ends: [linkEnd(a), linkEnd(b)] })
    const th2 = await linkTranscript({
      transport: 'relay',
      network: 'n',
      ends: [linkEnd(a), linkEnd({ ...b, nonce: rnd(32) })],
    })
    const sigA = await a.identity.sign(linkProofBytes(th1, a.identity.id))
    expect(await b.identity.verify(a.identity.publicKey, linkProofBytes(th2, a.identity.id), sigA)).toBe(
      false,
    )
    // B cannot pass A's proof off as its own (the signer's id is signed).
    expect(await a.identity.verify(a.identity.publicKey, linkProofBytes(th1, b.identity.id), sigA)).toBe(
      false,
    )
  })
})
