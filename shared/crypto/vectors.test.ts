/**
 * Known answers. The primitives against their RFC vectors, then every wire
 * construction of PROTOCOL-crypto.md against a second implementation written
 * here from the document with node:crypto (a different API over a different
 * call path) and against frozen bytes, so that a refactor that changes the
 * wire, or a document that stops describing it, fails here.
 */
import nc from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { concatBytes, fromHex, toHex } from '../bytes.ts'
import { boxRecordSigned } from './box-record.ts'
import { deriveChannel } from './channel.ts'
import { contentAad, deriveNetworkKeys, networkTag } from './network.ts'
import { aesKey, aesOpen, aesSeal, hkdf, hmac, hmacKey, pbkdf2, x25519 } from './primitives.ts'
import { createOpener, createSealer } from './seal.ts'
import { linkProofBytes, linkTranscript } from './transcript.ts'

const hex = (s: string): Uint8Array => {
  const b = fromHex(s.replace(/\s+/g, ''))
  if (!b) throw new Error(`bad hex ${s}`)
  return b
}
const utf8 = (s: string) => new TextEncoder().encode(s)
const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url')

// RFC 7748 §6.1
const ALICE_PRIV = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a')
const ALICE_PUB = hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a')
const BOB_PRIV = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb')
const BOB_PUB = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f')
const SHARED = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742'

/** A WebCrypto X25519 private key from fixed bytes (JWK import needs the public half too). */
const importPriv = (d: Uint8Array, x: Uint8Array) =>
  crypto.subtle.importKey(
    'jwk',
    { kty: 'OKP', crv: 'X25519', d: b64u(d), x: b64u(x) },
    { name: 'X25519' },
    false,
    ['deriveBits'],
  )

// ---- the reference implementation: node:crypto, written from PROTOCOL-crypto.md ----
const ref = {
  x25519(priv: Uint8Array, privPub: Uint8Array, pub: Uint8Array): Uint8Array {
    const privateKey = nc.createPrivateKey({
      key: { kty: 'OKP', crv: 'X25519', d: b64u(priv), x: b64u(privPub) },
      format: 'jwk',
    })
    const publicKey = nc.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(pub) }, format: 'jwk' })
    return new Uint8Array(nc.diffieHellman({ privateKey, publicKey }))
  },
  hkdf: (ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, n: number) =>
    new Uint8Array(nc.hkdfSync('sha256', ikm, salt, info, n)),
  seal(key: Uint8Array, iv: Uint8Array, plain: Uint8Array, aad: Uint8Array): Uint8Array {
    const c = nc.createCipheriv('aes-256-gcm', key, iv)
    c.setAAD(aad)
    return concatBytes(c.update(plain), c.final(), c.getAuthTag())
  },
  open(key: Uint8Array, iv: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
    const d = nc.createDecipheriv('aes-256-gcm', key, iv)
    d.setAAD(aad)
    d.setAuthTag(sealed.subarray(sealed.length - 16))
    return concatBytes(d.update(sealed.subarray(0, sealed.length - 16)), d.final())
  },
  sha256: (b: Uint8Array) => new Uint8Array(nc.createHash('sha256').update(b).digest()),
  lp: (b: Uint8Array) => concatBytes(new Uint8Array([b.length >> 8, b.length & 0xff]), b),
  u64: (n: number) => {
    const b = Buffer.alloc(8)
    b.writeBigUInt64BE(BigInt(n))
    return new Uint8Array(b)
  },
}

describe('primitives: RFC vectors', () => {
  it('X25519, RFC 7748 §6.1, both ways', async () => {
    const a = await importPriv(ALICE_PRIV, ALICE_PUB)
    const b = await importPriv(BOB_PRIV, BOB_PUB)
    expect(toHex((await x25519(a, BOB_PUB)) ?? new Uint8Array())).toBe(SHARED)
    expect(toHex((await x25519(b, ALICE_PUB)) ?? new Uint8Array())).toBe(SHARED)
    expect(toHex(ref.x25519(ALICE_PRIV, ALICE_PUB, BOB_PUB))).toBe(SHARED)
  })

  it('HKDF-SHA-256, RFC 5869 test cases 1 and 3', async () => {
    const ikm = new Uint8Array(22).fill(0x0b)
    expect(toHex(await hkdf(ikm, hex('000102030405060708090a0b0c'), hex('f0f1f2f3f4f5f6f7f8f9'), 42))).toBe(
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    )
    expect(toHex(await hkdf(ikm, new Uint8Array(), new Uint8Array(), 42))).toBe(
      '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    )
  })

  it('HMAC-SHA-256, RFC 4231 test case 2', async () => {
    const k = await hmacKey(utf8('Jefe'))
    expect(toHex(await hmac(k, utf8('what do ya want for nothing?')))).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    )
  })

  it('PBKDF2-HMAC-SHA-256, RFC 7914 §11', async () => {
    expect(toHex(await pbkdf2(utf8('passwd'), utf8('salt'), 1, 64))).toBe(
      '55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc' +
        '49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783',
    )
  })

  it('AES-256-GCM, the GCM specification’s test cases 13 and 14', async () => {
    const k = await aesKey(new Uint8Array(32))
    const iv = new Uint8Array(12)
    expect(toHex(await aesSeal(k, iv, new Uint8Array(), new Uint8Array()))).toBe(
      '530f8afbc74536b9a963b4f1c4cb738b',
    )
    const c14 = await aesSeal(k, iv, new Uint8Array(16), new Uint8Array())
    expect(toHex(c14)).toBe('cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919')
    expect(toHex((await aesOpen(k, iv, c14, new Uint8Array())) ?? new Uint8Array(1))).toBe(
      '00000000000000000000000000000000',
    )
  })
})

// Fixed inputs of the wire vectors.
const ID_A = '1'.repeat(40)
const ID_B = 'f'.repeat(40)
const NONCE_A = new Uint8Array(32).fill(0xaa)
const NONCE_B = new Uint8Array(32).fill(0xbb)

describe('wire: the link transcript and the secure channel', () => {
  const transcriptRef = () =>
    ref.sha256(
      concatBytes(
        utf8('weft-link/2\n'),
        ref.lp(utf8('relay')),
        ref.lp(utf8('demo')),
        utf8(ID_A),
        ref.lp(utf8('')),
        NONCE_A,
        ALICE_PUB,
        utf8(ID_B),
        ref.lp(utf8('')),
        NONCE_B,
        BOB_PUB,
      ),
    )
  const TH = 'e808d6c286dbfef132717e293b5f69816c1f66b42dc12beefb08f75dc3d3d117'

  it('the transcript hash', async () => {
    const th = await linkTranscript({
      transport: 'relay',
      network: 'demo',
      // B first: the ends are written in the order of their ids whatever the input order.
      ends: [
        { id: ID_B, nonce: NONCE_B, ephemeral: BOB_PUB, fingerprint: '' },
        { id: ID_A, nonce: NONCE_A, ephemeral: ALICE_PUB, fingerprint: '' },
      ],
    })
    expect(toHex(th)).toBe(toHex(transcriptRef()))
    expect(toHex(th)).toBe(TH)
    expect(toHex(linkProofBytes(th, ID_A))).toBe(toHex(concatBytes(utf8(`weft-link/2 proof\n${ID_A}`), th)))
  })

  it('the first frames each way', async () => {
    const th = transcriptRef()
    const ab = await deriveChannel({
      mine: { publicKey: ALICE_PUB, privateKey: await importPriv(ALICE_PRIV, ALICE_PUB) },
      theirs: BOB_PUB,
      transcript: th,
    })
    const ba = await deriveChannel({
      mine: { publicKey: BOB_PUB, privateKey: await importPriv(BOB_PRIV, BOB_PUB) },
      theirs: ALICE_PUB,
      transcript: th,
    })
    if (!ab || !ba) throw new Error('no channel')
    const ss = hex(SHARED)
    const kAB = ref.hkdf(ss, th, concatBytes(utf8('weft-channel/1'), ALICE_PUB, BOB_PUB), 32)
    const kBA = ref.hkdf(ss, th, concatBytes(utf8('weft-channel/1'), BOB_PUB, ALICE_PUB), 32)
    const nonce = (n: number) => concatBytes(new Uint8Array(4), ref.u64(n))
    const aad = new Uint8Array([0xc2])
    const f0 = await ab.seal(utf8('frame zero'), aad)
    const f1 = await ab.seal(utf8('frame one'), aad)
    expect(toHex(f0)).toBe(toHex(ref.seal(kAB, nonce(0), utf8('frame zero'), aad)))
    expect(toHex(f1)).toBe(toHex(ref.seal(kAB, nonce(1), utf8('frame one'), aad)))
    expect(toHex(f0)).toBe('4cf1b8b4de07d72759ccd2295b5224e6199b75cd90e7fff619f7')
    const back = ref.seal(kBA, nonce(0), utf8('reply zero'), aad)
    expect(new TextDecoder().decode((await ab.open(back, aad)) ?? new Uint8Array())).toBe('reply zero')
    expect(toHex(await ba.seal(utf8('reply zero'), aad))).toBe(toHex(back))
  })
})

describe('wire: sealed envelopes', () => {
  // Alice's key is the sender's session key e, Bob's the recipient's box key R.
  const okm = () => ref.hkdf(hex(SHARED), concatBytes(ALICE_PUB, BOB_PUB), utf8('weft-seal/1'), 64)
  const IV = new Uint8Array(12).fill(0x11)
  const AAD = utf8('src\ndst\nnonce\n1000')
  const SEALED =
    '018520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a111111111111111111111111' +
    'eaa6e56a5252b68958ce46b7573461631e056e64c06313094f'

  it('the recipient opens a message built by the reference, and its reply opens there', async () => {
    const kReq = okm().subarray(0, 32)
    const kRep = okm().subarray(32)
    const header = concatBytes(new Uint8Array([0x01]), ALICE_PUB)
    const sealed = concatBytes(header, IV, ref.seal(kReq, IV, utf8('hello bob'), concatBytes(header, AAD)))
    expect(toHex(sealed)).toBe(SEALED)
    const opener = createOpener({ publicKey: BOB_PUB, privateKey: await importPriv(BOB_PRIV, BOB_PUB) })
    const got = await opener.open(sealed, AAD)
    expect(new TextDecoder().decode(got?.plaintext ?? new Uint8Array())).toBe('hello bob')
    const raad = utf8('dst\nsrc\nnonce2\n1001')
    const reply = (await got?.sealReply(utf8('hi alice'), raad)) ?? new Uint8Array()
    expect(reply[0]).toBe(0x02)
    const riv = reply.subarray(1, 13)
    const plain = ref.open(kRep, riv, reply.subarray(13), concatBytes(new Uint8Array([0x02]), IV, raad))
    expect(new TextDecoder().decode(plain)).toBe('hi alice')
  })

  it('the reference opens what the sealer made (with its own session key)', async () => {
    const sealed = (await createSealer().seal(BOB_PUB, utf8('to bob'), AAD)).bytes
    const e = sealed.subarray(1, 33)
    const ss = await x25519(await importPriv(BOB_PRIV, BOB_PUB), e)
    if (!ss) throw new Error('no secret')
    const kReq = ref.hkdf(ss, concatBytes(e, BOB_PUB), utf8('weft-seal/1'), 64).subarray(0, 32)
    const plain = ref.open(
      kReq,
      sealed.subarray(33, 45),
      sealed.subarray(45),
      concatBytes(sealed.subarray(0, 33), AAD),
    )
    expect(new TextDecoder().decode(plain)).toBe('to bob')
  })
})

describe('wire: box records and private networks', () => {
  it('the bytes a box record signs', () => {
    const pk = new Uint8Array(32).fill(7)
    expect(toHex(boxRecordSigned(BOB_PUB, pk, 1_700_000_000_123))).toBe(
      toHex(concatBytes(utf8('weft-box/1\n'), BOB_PUB, pk, ref.u64(1_700_000_000_123))),
    )
  })

  it('the admission tag and sealed content of a network', async () => {
    const name = 'team'
    const secret = 'correct horse battery staple'
    const root = new Uint8Array(nc.pbkdf2Sync(secret, `weft-network/1\n${name}`, 100_000, 32, 'sha256'))
    const admission = ref.hkdf(root, new Uint8Array(), utf8('weft-network/1 admission'), 32)
    const content = ref.hkdf(root, new Uint8Array(), utf8('weft-network/1 content'), 32)
    const th = new Uint8Array(32).fill(0x5a)
    const tagRef = new Uint8Array(
      nc
        .createHmac('sha256', admission)
        .update(concatBytes(utf8(`weft-admit/1\n${ID_A}`), th))
        .digest(),
    )
    const keys = await deriveNetworkKeys(name, secret)
    const tag = await keys.admissionProof(th, ID_A)
    expect(toHex(tag)).toBe(toHex(tagRef))
    expect(toHex(tag)).toBe('699bcb01a704a7ad7e258bf73dd50713327c272325750d0a69a4596c5511a59c')

    const aad = contentAad('dht', 'profile', ID_A)
    expect(toHex(aad)).toBe(
      toHex(
        concatBytes(
          utf8('weft-content/1\n'),
          ref.lp(utf8('dht')),
          ref.lp(utf8('profile')),
          ref.lp(utf8(ID_A)),
        ),
      ),
    )
    const kAuthor = ref.hkdf(content, new Uint8Array(), utf8(`weft-content/1\n${ID_A}`), 32)
    const iv = new Uint8Array(12).fill(0x22)
    const head = new Uint8Array([0x01])
    const sealedRef = concatBytes(
      head,
      iv,
      ref.seal(kAuthor, iv, utf8('{"name":"Alice"}'), concatBytes(head, aad)),
    )
    expect(new TextDecoder().decode((await keys.openContent(ID_A, sealedRef, aad)) ?? new Uint8Array())).toBe(
      '{"name":"Alice"}',
    )
    const mine = await keys.sealContent(ID_A, utf8('x'), aad)
    expect(
      new TextDecoder().decode(
        ref.open(kAuthor, mine.subarray(1, 13), mine.subarray(13), concatBytes(head, aad)),
      ),
    ).toBe('x')
  })

  it('the network tag', async () => {
    const t = toHex(ref.sha256(utf8('weft-network-tag/1\nteam')).subarray(0, 16))
    expect(await networkTag('team')).toBe(t)
    expect(t).toBe('b2e1db87d21a255a3d3c887ca5254c39')
  })
})
