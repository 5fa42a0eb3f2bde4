import { afterEach, describe, expect, it } from 'vitest'
import { createChannelKeys } from '../../shared/crypto/channel.ts'
import { generateIdentity, type Identity } from '../../shared/identity/keys.ts'
import { meetsPuzzle } from '../../shared/identity/puzzle.ts'
import type { Counters } from '../../shared/protocol.ts'
import type { Value } from '../../shared/types.ts'
import { encodeFrame, Kind, WIRE_VERSION } from '../../shared/wire/frame.ts'
import { decodeValue, encodeValue } from '../../shared/wire/value.ts'
import { pipePair, pipes, relayPair, type Tap } from '../../test/pipes.ts'
import { until } from '../../test/until.ts'
import { Link, SEALED_PIECE } from './link.ts'
import type { Pipe } from './pipe.ts'

const links: Link[] = []
afterEach(() => {
  for (const l of links.splice(0)) l.close()
})

function link(pipe: Pipe, identity: Identity, peer: string, counters: Counters = {}): Link {
  const l = new Link({ pipe, identity, peer, mesh: true, validators: {}, counters, heartbeatMs: 60_000 })
  links.push(l)
  return l
}

function opened(l: Link): Promise<void> {
  return new Promise((resolve, reject) => {
    l.on('open', () => resolve())
    l.on('close', (r) => reject(new Error(r)))
  })
}

function closedWith(l: Link): Promise<string> {
  return new Promise((resolve) => l.on('close', resolve))
}

describe('link handshake', () => {
  it('opens when both ends prove their keys, and carries frames of any size in order', async () => {
    const [ia, ib] = [await generateIdentity(), await generateIdentity()]
    const [pa, pb] = pipePair()
    const a = link(pa, ia, ib.id)
    const b = link(pb, ib, ia.id)
    a.start()
    b.start()
    await Promise.all([opened(a), opened(b)])
    expect(a.isMesh && b.isMesh).toBe(true)
    const got: Value[] = []
    b.on('frame', (f) => got.push(f.body))
    const big = new Uint8Array(100_000)
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 255
    await a.send({ kind: Kind.Route, body: { n: 1 } })
    await a.send({ kind: Kind.Route, body: { big } })
    await a.send({ kind: Kind.Route, body: { n: 3 } })
    await until('three frames', () => got.length >= 3)
    expect(got).toHaveLength(3)
    expect(got[0]).toEqual({ n: 1 })
    expect((got[1] as { big: Uint8Array }).big).toEqual(big)
    expect(got[2]).toEqual({ n: 3 })
  })

  it('closes and counts a link whose other end has another key than the id we dialled', async () => {
    const [ia, ib, imposter] = [await generateIdentity(), await generateIdentity(), await generateIdentity()]
    const counters: Counters = {}
    const [pa, pb] = pipePair()
    const a = link(pa, ia, ib.id, counters) // a expects ib...
    const b = link(pb, imposter, ia.id) // ...but imposter answers
    a.start()
    b.start()
    expect(await closedWith(a)).toBe('wrong-key')
    expect(counters['link.auth-failed']).toBe(1)
  })

  it('detects a man in the middle: the fingerprints each end signed do not match what the other sees', async () => {
    const [ia, ib] = [await generateIdentity(), await generateIdentity()]
    const counters: Counters = {}
    // A relaying attacker terminates DTLS on both sides: a sees fingerprint MM for its peer, b sees NN.
    const [pa, pb] = pipePair('sha-256 AA', 'sha-256 BB', 'sha-256 MM', 'sha-256 NN')
    const a = link(pa, ia, ib.id, counters)
    const b = link(pb, ib, ia.id, counters)
    a.start()
    b.start()
    // Wait for both ends to settle (open or close, whichever comes first): whichever end checks the
    // other's proof first closes with bad-proof, the other follows; neither may open.
    const outcome = (l: Link) =>
      new Promise<string>((resolve) => {
        l.on('open', () => resolve('opened'))
        l.on('close', resolve)
      })
    const reasons = await Promise.all([outcome(a), outcome(b)])
    expect(reasons).not.toContain('opened')
    expect(reasons).toContain('bad-proof')
    expect(counters['link.auth-failed']).toBeGreaterThanOrEqual(1)
  })

  it('reads nothing but the small handshake before authentication: anything else closes the link unread', async () => {
    const [ia, ib] = [await generateIdentity(), await generateIdentity()]
    const counters: Counters = {}
    const [pa, pb] = pipePair()
    const b = link(pb, ib, ia.id, counters)
    const got: unknown[] = []
    b.on('frame', (f) => got.push(f))
    const closed = closedWith(b)
    b.start()
    // A stranger's first message is a routed frame, not a hello: the link closes, the frame undelivered.
    pa.send(await encodeFrame({ kind: Kind.Route, body: { sneaky: true } }))
    pa.send(new Uint8Array([1, 2, 3, 4, 5])) // junk behind it is never looked at
    expect(await closed).toBe('before-auth')
    expect(got).toEqual([])
    expect(counters['drop.before-auth']).toBe(1)
    expect(Object.keys(counters).filter((k) => /^drop\.(frame|chunk)\./.test(k))).toEqual([])
  })

  it('does not inflate or decode a compressed frame before authentication (the 4 KiB -> 4 MiB bomb)', async () => {
    const [ia, ib] = [await generateIdentity(), await generateIdentity()]
    const counters: Counters = {}
    const [pa, pb] = pipePair()
    const b = link(pb, ib, ia.id, counters)
    const closed = closedWith(b)
    b.start()
    // Even a Link-kind frame: compressed (or over HANDSHAKE_MAX_BYTES) is refused by its header alone.
    const bomb = new Uint8Array(3 + 4096)
    bomb.set([1, Kind.Link, 1])
    pa.send(bomb)
    expect(await closed).toBe('before-auth')
    expect(counters['drop.before-auth']).toBe(1)
    // Had it been inflated, the junk deflate stream would have been counted as drop.frame.inflate.
    expect(Object.keys(counters).filter((k) => k.startsWith('drop.frame.'))).toEqual([])
    // A chunk (the first piece of a large frame) is refused the same way, never reassembled.
    const [pc, pd] = pipePair()
    const d = link(pd, ib, ia.id, counters)
    const dClosed = closedWith(d)
    d.start()
    const chunk = new Uint8Array(16 * 1024)
    chunk.set([0xc1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0x80, 0])
    pc.send(chunk)
    expect(await dClosed).toBe('before-auth')
    expect(counters['drop.before-auth']).toBe(2)
    expect(Object.keys(counters).filter((k) => k.startsWith('drop.chunk.'))).toEqual([])
  })

  it("refuses a hello whose key fails the network's identity puzzle, before any signature work", async () => {
    const bits = 8
    const good = await generateIdentity({ puzzleBits: bits })
    // A key below the puzzle: generated until one fails it (half of all keys fail the first bit).
    let weak = await generateIdentity({ puzzleBits: 0 })
    while (meetsPuzzle(weak.publicKey, bits)) weak = await generateIdentity({ puzzleBits: 0 })
    const counters: Counters = {}
    const [pa, pb] = pipePair()
    let signed = 0
    let verified = 0
    const spied: Identity = {
      ...good,
      sign: (d) => {
        signed++
        return good.sign(d)
      },
      verify: (pk, d, sig) => {
        verified++
        return good.verify(pk, d, sig)
      },
    }
    const b = new Link({
      pipe: pb,
      identity: spied,
      peer: weak.id,
      mesh: true,
      validators: {},
      counters,
      puzzleBits: bits,
    })
    links.push(b)
    const a = link(pa, weak, good.id)
    const closed = closedWith(b)
    b.start()
    a.start()
    expect(await closed).toBe('puzzle')
    expect(counters['link.refused.puzzle']).toBe(1)
    expect(signed).toBe(0)
    expect(verified).toBe(0)
  })
})

describe('link receive budget', () => {
  async function openPair(recv: ConstructorParameters<typeof Link>[0]['recv'], counters: Counters) {
    const [ia, ib] = [await generateIdentity(), await generateIdentity()]
    const [pa, pb] = pipePair()
    const a = link(pa, ia, ib.id)
    const b = new Link({
      pipe: pb,
      identity: ib,
      peer: ia.id,
      mesh: true,
      validators: {},
      counters,
      heartbeatMs: 60_000,
      ...(recv ? { recv } : {}),
    })
    links.push(b)
    a.start()
    b.start()
    await Promise.all([opened(a), opened(b)])
    return { a, b, pa }
  }

  it('spends at most its decode budget: past the burst, frames wait (in order) instead of holding the event loop', async () => {
    const counters: Counters = {}
    // 10 ms of decoding per second after a 1 ms burst: every costly frame waits its turn.
    const { a, b } = await openPair({ decodeMsPerSec: 10, decodeBurstMs: 1 }, counters)
    const got: number[] = []
    b.on('frame', (f) => got.push((f.body as { n: number }).n))
    const costly = (n: number) => ({ n, junk: Array.from({ length: 10_000 }, (_, i) => ({ i })) })
    const t0 = Date.now()
    for (let n = 0; n < 3; n++) await a.send({ kind: Kind.Route, body: costly(n) })
    await until('three frames', () => got.length === 3, 50_000)
    expect(got).toEqual([0, 1, 2])
    expect(counters['link.recv-throttled.decode'] ?? 0).toBeGreaterThan(0)
    // Each 30,000-object frame costs several ms to decode, repaid at 10 ms per second.
    expect(Date.now() - t0).toBeGreaterThan(500)
  })

  it('bounds the receive queue: past it messages are dropped and counted, and the link goes on', async () => {
    const counters: Counters = {}
    const { a, b } = await openPair({ maxQueueMessages: 8, decodeMsPerSec: 1, decodeBurstMs: 0 }, counters)
    const got: number[] = []
    b.on('frame', (f) => got.push((f.body as { n: number }).n))
    for (let n = 0; n < 40; n++) void a.send({ kind: Kind.Route, body: { n } })
    await until('the queue to overflow', () => (counters['drop.link.recv-queue'] ?? 0) > 0)
    await until(
      'what was queued to be delivered',
      () => got.length + (counters['drop.link.recv-queue'] ?? 0) >= 40,
      30_000,
    )
    expect(got.length).toBeLessThanOrEqual(9)
    expect(got).toEqual([...got].sort((x, y) => x - y))
  })

  it('drops what waits when the link closes, and stops', async () => {
    const counters: Counters = {}
    const { a, b } = await openPair({ decodeMsPerSec: 1, decodeBurstMs: 0 }, counters)
    const got: number[] = []
    b.on('frame', (f) => got.push((f.body as { n: number }).n))
    for (let n = 0; n < 20; n++) await a.send({ kind: Kind.Route, body: { n, pad: 'x'.repeat(100) } })
    await until('a frame to wait for the budget', () => (counters['link.recv-throttled.decode'] ?? 0) > 0)
    b.close('test')
    const n = got.length
    expect(b.queuedBytes).toBe(0)
    await new Promise((r) => setTimeout(r, 1500))
    expect(got.length).toBe(n)
    expect(n).toBeLessThan(20)
  })
})

describe('link send errors', () => {
  it('a too-large send while another is in flight rejects its own promise, and nothing goes unhandled', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (e: unknown) => void unhandled.push(e)
    process.on('unhandledRejection', onUnhandled)
    try {
      const [ia, ib] = [await generateIdentity(), await generateIdentity()]
      const [pa, pb] = pipePair()
      const a = link(pa, ia, ib.id)
      const b = link(pb, ib, ia.id)
      a.start()
      b.start()
      await Promise.all([opened(a), opened(b)])
      // One send in flight (a large compressible frame: deflating takes a while), then one too large.
      const inFlight = a.send({ kind: Kind.Route, body: { big: 'x'.repeat(2_000_000) } })
      let caught: unknown
      try {
        await a.send({ kind: Kind.Route, body: new Uint8Array(5e6) })
      } catch (err) {
        caught = err
      }
      expect((caught as Error)?.name).toBe('MessageTooLargeError')
      await inFlight
      // Give an unhandled rejection time to be reported (Node reports after the microtask queue drains).
      await new Promise((r) => setTimeout(r, 100))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })
})

/** Does `hay` contain the bytes of `needle`? */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer
    return true
  }
  return false
}

/** A plain Kind.Link frame's message, or null (a sealed piece, a chunk, another kind). */
function linkMessage(b: Uint8Array): Record<string, unknown> | null {
  if (b[0] !== WIRE_VERSION || b[1] !== Kind.Link || b[2] !== 0) return null
  return decodeValue(b.subarray(3)) as Record<string, unknown> | null
}

describe('secure channel over the relay', () => {
  const SECRET = new TextEncoder().encode('attack at dawn, table 7')

  async function relayLinks(tap: Tap, counters: [Counters, Counters] = [{}, {}]) {
    const [ia, ib] = [await generateIdentity(), await generateIdentity()]
    const [pa, pb] = relayPair(tap)
    const a = link(pa, ia, ib.id, counters[0])
    const b = link(pb, ib, ia.id, counters[1])
    return { a, b, ia, ib }
  }

  it('a recording relay sees the handshake and then only sealed pieces: none of the plaintext, small or chunked', async () => {
    const seen: Uint8Array[] = []
    const { a, b } = await relayLinks((bytes) => {
      seen.push(bytes)
      return bytes
    })
    a.start()
    b.start()
    await Promise.all([opened(a), opened(b)])
    const got: Value[] = []
    const back: Value[] = []
    b.on('frame', (f) => got.push(f.body))
    a.on('frame', (f) => back.push(f.body))
    // Incompressible filler, so the large frame is chunked and not deflated (the marker stays in clear bytes).
    const filler = crypto.getRandomValues(new Uint8Array(40_000))
    await a.send({ kind: Kind.Route, body: { t: 'req', secret: SECRET } })
    await a.send({ kind: Kind.Mesh, body: { t: 'gossip', big: [filler, SECRET, filler] } })
    await b.send({ kind: Kind.Route, body: { t: 'res', secret: SECRET } })
    await until('both ways', () => got.length === 2 && back.length === 1)
    expect((got[0] as { secret: Uint8Array }).secret).toEqual(SECRET)
    expect((back[0] as { secret: Uint8Array }).secret).toEqual(SECRET)
    // Everything but the two hellos and two proofs went sealed, and no piece holds the secret.
    const plain = seen.filter((p) => p[0] !== SEALED_PIECE)
    expect(plain.map((p) => linkMessage(p)?.t).sort()).toEqual(['hello', 'hello', 'proof', 'proof'])
    expect(seen.length).toBeGreaterThan(8)
    expect(seen.some((p) => contains(p, SECRET))).toBe(false)
    expect(seen.some((p) => contains(p, filler.subarray(0, 64)))).toBe(false)
  })

  it('WebRTC links are not sealed a second time (DTLS encrypts them, bound to the proofs by the fingerprints)', async () => {
    const [ia, ib] = [await generateIdentity(), await generateIdentity()]
    const seen: Uint8Array[] = []
    const [pa, pb] = pipes('webrtc', 'sha-256 AA', 'sha-256 BB', 'sha-256 BB', 'sha-256 AA', (bytes) => {
      seen.push(bytes)
      return bytes
    })
    const a = link(pa, ia, ib.id)
    const b = link(pb, ib, ia.id)
    a.start()
    b.start()
    await Promise.all([opened(a), opened(b)])
    const got: Value[] = []
    b.on('frame', (f) => got.push(f.body))
    await a.send({ kind: Kind.Route, body: { secret: SECRET } })
    await until('the frame', () => got.length === 1)
    expect(seen.some((p) => p[0] === SEALED_PIECE)).toBe(false)
    expect(seen.some((p) => contains(p, SECRET))).toBe(true)
  })

  type Meddle = 'flip' | 'replay' | 'drop' | 'plain' | 'truncate'
  it.each<[Meddle, string, string]>([
    ['flip', 'channel-forged', 'drop.channel.forged'],
    ['replay', 'channel-forged', 'drop.channel.forged'],
    ['drop', 'channel-forged', 'drop.channel.forged'],
    ['truncate', 'channel-short', 'drop.channel.short'],
    ['plain', 'channel-plain', 'drop.channel.plain'],
  ])(
    'a relay that meddles (%s) is detected: the link closes (%s), counted, nothing forged delivered',
    async (how, reason, counter) => {
      let armed = false
      const counters: Counters = {}
      const { a, b } = await relayLinks(
        (bytes, from) => {
          if (!armed || from !== 'a' || bytes[0] !== SEALED_PIECE) return bytes
          armed = false
          switch (how) {
            case 'flip': {
              const out = bytes.slice()
              const i = out.length - 20
              out[i] = (out[i] as number) ^ 1
              return out
            }
            case 'replay':
              return [bytes, bytes]
            case 'drop':
              return null
            case 'truncate':
              return bytes.subarray(0, 10)
            default:
              // The relay forges a plain frame of its own instead.
              return concatFrame({ t: 'pex', peers: [] })
          }
        },
        [{}, counters],
      )
      a.start()
      b.start()
      await Promise.all([opened(a), opened(b)])
      const got: Value[] = []
      b.on('frame', (f) => got.push(f.body))
      b.on('control', (c) => got.push(c.t))
      const closed = closedWith(b)
      armed = true
      await a.send({ kind: Kind.Route, body: { n: 1 } })
      // After a dropped piece, the next one is what fails (its counter is one ahead).
      if (how === 'drop') await a.send({ kind: Kind.Route, body: { n: 2 } })
      expect(await closed).toBe(reason)
      expect(counters[counter]).toBe(1)
      // Nothing forged got through; of a replayed piece, at most the genuine first copy (the piece
      // replayed may be a pong that was under way when the relay armed, or the frame).
      if (how === 'replay') expect(got.filter((v) => JSON.stringify(v) !== '{"n":1}')).toEqual([])
      else expect(got).toEqual([])
    },
  )

  it('a relay that swaps in its own ephemeral keys is caught by both proofs: neither end opens', async () => {
    const counters: Counters = {}
    const { a, b } = await relayLinks(
      (bytes) => {
        const m = linkMessage(bytes)
        if (m?.t !== 'hello') return bytes
        return concatFrame({ ...(m as Record<string, Value>), ek: mitm })
      },
      [counters, counters],
    )
    const mitm = (await createChannelKeys()).publicKey
    const outcome = (l: Link) =>
      new Promise<string>((resolve) => {
        l.on('open', () => resolve('opened'))
        l.on('close', resolve)
      })
    a.start()
    b.start()
    const reasons = await Promise.all([outcome(a), outcome(b)])
    expect(reasons).not.toContain('opened')
    expect(reasons).toContain('bad-proof')
    expect(counters['link.auth-failed']).toBeGreaterThanOrEqual(1)
  })
})

/** A plain, uncompressed Kind.Link frame. */
function concatFrame(v: Value): Uint8Array {
  const body = encodeValue(v)
  const out = new Uint8Array(3 + body.length)
  out.set([WIRE_VERSION, Kind.Link, 0])
  out.set(body, 3)
  return out
}
