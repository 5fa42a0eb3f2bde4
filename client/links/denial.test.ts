/**
 * A refusal for a private network's secret (`bye access-denied`) comes
 * before the link is authenticated, in the clear: on a relay link the
 * signal server carries it, and could write one of its own to make two
 * members believe they hold different secrets (AccessDeniedError, and each
 * remembering the other as denied for a while). The refusal is signed over
 * the link's transcript; an unsigned or forged one only ends the link
 * ('bye:unproven-denial').
 */
import { afterEach, describe, expect, it } from 'vitest'
import { deriveNetworkKeys, type NetworkKeys } from '../../shared/crypto/network.ts'
import { generateIdentity, type Identity } from '../../shared/identity/keys.ts'
import type { Counters } from '../../shared/protocol.ts'
import { decodeValue } from '../../shared/wire/value.ts'
import { relayPair } from '../../test/pipes.ts'
import { Link } from './link.ts'
import { ACCESS_DENIED, plainControl } from './link-control.ts'
import type { Pipe } from './pipe.ts'

/** The handshake message a plain piece holds (`t`), if it is one. */
function handshakeType(bytes: Uint8Array): string | undefined {
  try {
    const v = decodeValue(bytes.subarray(3)) as { t?: unknown } | undefined
    return typeof v?.t === 'string' ? v.t : undefined
  } catch {
    return undefined
  }
}

const links: Link[] = []
afterEach(() => {
  for (const l of links.splice(0)) l.close()
})

function link(pipe: Pipe, identity: Identity, peer: string, counters: Counters, keys?: NetworkKeys): Link {
  const l = new Link({
    pipe,
    identity,
    peer,
    mesh: true,
    validators: {},
    counters,
    heartbeatMs: 60_000,
    // One network's name at both ends (the server meets only those); the secret, if any, is each end's.
    network: 'club',
    ...(keys ? { networkKeys: keys } : {}),
  })
  links.push(l)
  return l
}

const closedWith = (l: Link) => new Promise<string>((resolve) => l.on('close', resolve))

describe('a refusal for the secret before the link is authenticated', () => {
  it('an unsigned one written by the relay only ends the link: no access-denied', async () => {
    const [ia, ib] = [await generateIdentity(), await generateIdentity()]
    const keys = await deriveNetworkKeys('club', 'shared secret', { iterations: 1 })
    const forged = plainControl({ t: 'bye', reason: ACCESS_DENIED })
    // The relay adds a refusal after b's hello, as if b had refused a.
    const [pa, pb] = relayPair((bytes, from) =>
      from === 'b' && handshakeType(bytes) === 'hello' ? [bytes, forged] : [bytes],
    )
    const ca: Counters = {}
    const a = link(pa, ia, ib.id, ca, keys)
    const b = link(pb, ib, ia.id, {}, keys)
    const reason = closedWith(a)
    a.start()
    b.start()
    expect(await reason).toBe('bye:unproven-denial')
    expect(ca['drop.link.unproven-denial']).toBe(1)
  })

  it('one signed by another key (or over another link) is as unsigned', async () => {
    const [ia, ib, other] = [await generateIdentity(), await generateIdentity(), await generateIdentity()]
    const keys = await deriveNetworkKeys('club', 'shared secret', { iterations: 1 })
    const sig = await other.sign(new Uint8Array(32))
    const forged = plainControl({ t: 'bye', reason: ACCESS_DENIED, sig })
    const [pa, pb] = relayPair((bytes, from) =>
      from === 'b' && handshakeType(bytes) === 'hello' ? [bytes, forged] : [bytes],
    )
    const a = link(pa, ia, ib.id, {}, keys)
    const b = link(pb, ib, ia.id, {}, keys)
    const reason = closedWith(a)
    a.start()
    b.start()
    expect(await reason).toBe('bye:unproven-denial')
  })

  it("the peer's own refusal, signed over the transcript, is an access-denied", async () => {
    const [outsider, member] = [await generateIdentity(), await generateIdentity()]
    const keys = await deriveNetworkKeys('club', 'shared secret', { iterations: 1 })
    // The member's proof is held back, so the outsider learns of the refusal from the bye alone.
    const [pa, pb] = relayPair((bytes, from) =>
      from === 'b' && handshakeType(bytes) === 'proof' ? null : [bytes],
    )
    const a = link(pa, outsider, member.id, {})
    const b = link(pb, member, outsider.id, {}, keys)
    const [ra, rb] = [closedWith(a), closedWith(b)]
    a.start()
    b.start()
    expect(await rb).toBe('outsider')
    expect(await ra).toBe(`bye:${ACCESS_DENIED}`)
  })
})
