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
import { relayPair } from '../../test/pipes.ts'
import { Link } from './link.ts'

const links: Link[] = []
afterEach(() => {
  for (const l of links.splice(0)) l.close()
})

it('uses ephemeral keys made beforehand in its hello, and the secure channel made from them works', async () => {
  const [ia, ib] = [await generateIdentity(), await generateIdentity()]
  const hellos: Uint8Array[] = []
  const [pa, pb] = relayPair((bytes, from) => {
    const c = from === 'a' ? (decodeValue(bytes.subarray(3)) as { t?: string; ek?: Uint8Array } | null) : null
    if (c?.t === 'hello' && c.ek) hellos.push(c.ek)
    return bytes
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
