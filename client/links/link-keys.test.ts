/**
 * A link's ephemeral keys made before its pipe opened (LinkOptions.channelKeys:
 * the dialer starts them with the WebRTC attempt, so the hello leaves as the
 * channel opens; join time, issue 14).
 */
import { afterEach, expect, it } from 'vitest'
import { createChannelKeys } from '../../shared/crypto/channel.ts'
import { generateIdentity } from '../../shared/identity/keys.ts'
import type { Value } from '../../shared/types.ts'
import { Kind } from '../../shared/wire/frame.ts'
import { decodeValue } from '../../shared/wire/value.ts'
import { Link } from './link.ts'
import type { Pipe } from './pipe.ts'

/** Two relay pipes back to back; `seen` gets what `a` writes. */
function relayPair(seen: (bytes: Uint8Array) => void): [Pipe, Pipe] {
  const mk = () => {
    let onData: (b: Uint8Array) => void = () => {}
    let onClose: (r: string) => void = () => {}
    const p = {
      transport: 'relay' as const,
      other: undefined as unknown as { deliver(b: Uint8Array): void },
      send(b: Uint8Array) {
        if (p === ends[0]) seen(b.slice())
        const copy = b.slice()
        queueMicrotask(() => p.other.deliver(copy))
      },
      bufferedAmount: () => 0,
      drained: () => Promise.resolve(),
      onData(fn: (b: Uint8Array) => void) {
        onData = fn
      },
      onClose(fn: (r: string) => void) {
        onClose = fn
      },
      close: (reason = 'closed') => onClose(reason),
      deliver: (b: Uint8Array) => onData(b),
      fingerprints: () => null,
    }
    return p
  }
  const ends = [mk(), mk()] as const
  ends[0].other = ends[1]
  ends[1].other = ends[0]
  return [ends[0], ends[1]]
}

const links: Link[] = []
afterEach(() => {
  for (const l of links.splice(0)) l.close()
})

it('uses ephemeral keys made beforehand in its hello, and the secure channel made from them works', async () => {
  const [ia, ib] = [await generateIdentity(), await generateIdentity()]
  const hellos: Uint8Array[] = []
  const [pa, pb] = relayPair((bytes) => {
    const c = decodeValue(bytes.subarray(3)) as { t?: string; ek?: Uint8Array } | null
    if (c?.t === 'hello' && c.ek) hellos.push(c.ek)
  })
  const early = createChannelKeys()
  const common = { mesh: true, validators: {}, counters: {}, heartbeatMs: 60_000 }
  const a = new Link({ ...common, pipe: pa, identity: ia, peer: ib.id, channelKeys: early })
  const b = new Link({ ...common, pipe: pb, identity: ib, peer: ia.id })
  links.push(a, b)
  const opened = (l: Link) => new Promise<void>((resolve) => l.on('open', () => resolve()))
  a.start()
  b.start()
  await Promise.all([opened(a), opened(b)])
  expect(hellos).toEqual([(await early).publicKey])
  const got: Value[] = []
  b.on('frame', (f) => got.push(f.body))
  await a.send({ kind: Kind.Route, body: { n: 1 } })
  const end = Date.now() + 10_000
  while (got.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
  expect(got).toEqual([{ n: 1 }])
})
