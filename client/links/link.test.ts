import { afterEach, describe, expect, it } from 'vitest'
import { generateIdentity, type Identity } from '../../shared/identity/keys.ts'
import type { Counters } from '../../shared/protocol.ts'
import type { Value } from '../../shared/types.ts'
import { encodeFrame, Kind } from '../../shared/wire/frame.ts'
import { Link } from './link.ts'
import type { Pipe } from './pipe.ts'

/** Two in-memory pipes wired back to back, with the DTLS fingerprints each end would see. */
function pipePair(fpA = 'sha-256 AA', fpB = 'sha-256 BB', seenByA = fpB, seenByB = fpA): [Pipe, Pipe] {
  const mk = (local: string, remote: string) => {
    let onData: (b: Uint8Array) => void = () => {}
    let onClose: (r: string) => void = () => {}
    let closed = false
    const p = {
      transport: 'webrtc' as const,
      other: undefined as unknown as { deliver(b: Uint8Array): void; end(r: string): void },
      send(b: Uint8Array) {
        if (!closed) queueMicrotask(() => p.other.deliver(b.slice()))
      },
      bufferedAmount: () => 0,
      drained: () => Promise.resolve(),
      onData(fn: (b: Uint8Array) => void) {
        onData = fn
      },
      onClose(fn: (r: string) => void) {
        onClose = fn
      },
      close(reason = 'closed') {
        if (closed) return
        closed = true
        onClose(reason)
        queueMicrotask(() => p.other.end('remote-closed'))
      },
      deliver(b: Uint8Array) {
        if (!closed) onData(b)
      },
      end(r: string) {
        if (closed) return
        closed = true
        onClose(r)
      },
      fingerprints: () => ({ local, remote }),
    }
    return p
  }
  const a = mk(fpA, seenByA)
  const b = mk(fpB, seenByB)
  a.other = b
  b.other = a
  return [a, b]
}

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

/** Poll `cond` until it holds; the deadline is generous for a loaded machine (decoding runs on zlib's thread pool). */
async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
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

  it('delivers nothing but the handshake before authentication', async () => {
    const [ia, ib] = [await generateIdentity(), await generateIdentity()]
    const counters: Counters = {}
    const [pa, pb] = pipePair()
    const b = link(pb, ib, ia.id, counters)
    const got: unknown[] = []
    b.on('frame', (f) => got.push(f))
    b.start()
    // A raw frame pushed before any hello is dropped and counted, never delivered.
    pa.send(await encodeFrame({ kind: Kind.Route, body: { sneaky: true } }))
    pa.send(new Uint8Array([1, 2, 3, 4, 5])) // junk
    // Both were decoded (in arrival order) once the junk's drop is counted too.
    const junkDrops = () =>
      Object.entries(counters)
        .filter(([k]) => /^drop\.(frame|chunk)\./.test(k))
        .reduce((n, [, v]) => n + v, 0)
    await until('both to be dropped', () => (counters['drop.before-auth'] ?? 0) >= 1 && junkDrops() >= 1)
    expect(got).toEqual([])
    expect(counters['drop.before-auth']).toBe(1)
  })
})
