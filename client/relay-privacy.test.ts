/**
 * Relay links are secure channels (issue 11): two real nodes with
 * `relay: 'force'` through an in-process signal server, whose relay is
 * played hostile. Every byte the server relays is what a node hands to
 * `signalClient.relay` (the `frame` of the `relay` event, carried as it is),
 * so the test records and rewrites there: a recording server finds none of
 * the plaintext of a unicast, a request, its reply or a broadcast; a
 * rewriting server is detected, the link closes with a counted reason, and
 * the forged frame is not delivered.
 */
import SimplePeer from 'simple-peer'
import { io } from 'socket.io-client'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { generateIdentity } from '../shared/identity/keys.ts'
import type { Value } from '../shared/types.ts'
import { createSignalServer, type SignalServer, type SignalServerOptions } from '../signal-server/index.ts'
import { SEALED_PIECE } from './links/link.ts'
import { type JoinOptions, OverlayNode } from './overlay.ts'

const NETWORK = 'relay-privacy'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

let server: SignalServer
const started: OverlayNode[] = []

beforeAll(async () => {
  server = await createSignalServer({
    port: 0,
    host: '127.0.0.1',
    log: () => {},
    ...({ puzzleBits: 0 } as Partial<SignalServerOptions>),
  })
})
afterEach(async () => {
  await Promise.all(started.splice(0).map((n) => n.close()))
})
afterAll(async () => {
  await server?.close()
})

/** What `node` hands the server to relay: recorded, and passed through `rewrite`. */
type Rewrite = (frame: Uint8Array) => Uint8Array
async function node(
  recorded: Uint8Array[],
  rewrite: Rewrite = (f) => f,
  opts: Partial<JoinOptions> = {},
): Promise<OverlayNode> {
  const n = new OverlayNode(
    { SimplePeer: SimplePeer as never, io: io as never, identity: await generateIdentity({ puzzleBits: 0 }) },
    { signal: server.address, network: NETWORK, relay: 'force', puzzleBits: 0, ...opts },
  )
  const relay = n.signalClient.relay.bind(n.signalClient)
  n.signalClient.relay = (to, frame) => {
    recorded.push(frame.slice())
    return relay(to, rewrite(frame))
  }
  started.push(n)
  return n
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer
    return true
  }
  return false
}

const utf8 = (s: string) => new TextEncoder().encode(s)

describe('relay links are secure channels', () => {
  it('a recording server finds none of the plaintext of unicast, request, reply and broadcast', async () => {
    const recorded: Uint8Array[] = []
    const a = await node(recorded)
    const b = await node(recorded)
    await a.start()
    await b.start()
    await until('a and b to link', () => a.peers().some((p) => p.id === b.id && p.transport === 'relay'))
    await until('b to see a', () => b.peers().some((p) => p.id === a.id))
    const secrets = {
      unicast: 'unicast: the vault code is 4711',
      request: 'request: where is the key?',
      reply: 'reply: under the third flowerpot',
      broadcast: 'broadcast: meet at the old mill',
    }
    const got: Value[] = []
    b.subscribe('notes', (d) => got.push(d))
    a.subscribe('news', (d) => got.push(d))
    b.subscribe('news', (d) => got.push(d))
    b.handle('ask', (d) => (d === secrets.request ? secrets.reply : 'no'))
    await a.send(b.id, 'notes', secrets.unicast)
    expect(await a.request(b.id, 'ask', secrets.request)).toBe(secrets.reply)
    await a.broadcast('news', secrets.broadcast)
    await until(
      'the unicast and the broadcast',
      () => got.includes(secrets.unicast) && got.includes(secrets.broadcast),
    )
    // The recording holds the link's traffic: the handshake (identity keys in the clear)...
    expect(recorded.some((f) => contains(f, a.identity.publicKey))).toBe(true)
    // ...and then sealed pieces only (after the 4-byte relay session id), none holding a secret.
    const sealed = recorded.filter((f) => f[4] === SEALED_PIECE)
    expect(sealed.length).toBeGreaterThan(4)
    for (const s of Object.values(secrets)) expect(recorded.some((f) => contains(f, utf8(s)))).toBe(false)
  })

  it('a rewriting server is detected: the link closes (channel-forged), counted, the forged frame undelivered', async () => {
    let armed = false
    let rewritten = 0
    const a = await node([], (f) => {
      // The first sealed piece from a while armed: one bit of its ciphertext flipped.
      if (!armed || f[4] !== SEALED_PIECE || f.length < 40) return f
      armed = false
      rewritten++
      const out = f.slice()
      out[out.length - 20] = (out[out.length - 20] as number) ^ 0x01
      return out
    })
    const b = await node([])
    await a.start()
    await b.start()
    await until(
      'a and b to link',
      () => a.peers().some((p) => p.id === b.id) && b.peers().some((p) => p.id === a.id),
    )
    const got: Value[] = []
    b.subscribe('notes', (d) => got.push(d))
    armed = true
    await a.send(b.id, 'notes', 'pay 10 to carol')
    await until('b to refuse the rewritten piece', () => (b.stats()['drop.channel.forged'] ?? 0) === 1)
    expect(rewritten).toBe(1)
    // The link closed for it, and said so (the nodes may set up a new one at once, with new keys).
    await until('the link to close at b', () => (b.stats()['link.closed.channel-forged'] ?? 0) === 1)
    // Nothing but the genuine message (the router may send it again over a new link) is delivered.
    await sleep(200)
    expect(got.filter((d) => d !== 'pay 10 to carol')).toEqual([])
  })
})
