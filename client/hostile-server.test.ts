/**
 * A hostile signal server (test/hostile-server.ts: plain socket.io, someone
 * else's) against the signalling client and the node: what it sends is
 * untrusted, and it may send it at any time, as often and as fast as it likes.
 * (A server in the middle of a link: node/hello-mitm.test.ts.)
 */
import SimplePeer from 'simple-peer'
import { io } from 'socket.io-client'
import { expect, it, vi } from 'vitest'
import { generateIdentity, type Identity, nodeIdOf } from '../shared/identity/keys.ts'
import { hostileServer } from '../test/hostile-server.ts'
import { until, useCleanup } from '../test/until.ts'
import { MAX_REMOTE_CANDIDATES } from './links/webrtc.ts'
import { loadWrtc } from './links/wrtc-adapter.ts'
import { OverlayNode } from './overlay.ts'
import { type IoFactory, SignalClient } from './signal-client.ts'

const cleanup = useCleanup()

/** A made-up peer the hostile server lists and speaks for. */
const FAKE = 'ab'.repeat(20)

/**
 * A node (simple-peer over @roamhq/wrtc, as Node peers run) registered with `address`, whose
 * server lists FAKE; `fed` counts the ICE candidates that reach a WebRTC stack, `peers` its stacks.
 */
async function nodeOf(address: string, id?: Identity) {
  const wrtc = await loadWrtc('@roamhq/wrtc')
  const fed = { candidates: 0 }
  const peers: SimplePeer.Instance[] = []
  class Counting extends SimplePeer {
    constructor(opts: SimplePeer.Options) {
      super(opts)
      peers.push(this)
    }
    override signal(data: string | SimplePeer.SignalData): void {
      if (typeof data === 'object' && 'candidate' in data) fed.candidates++
      super.signal(data)
    }
  }
  const identity = id ?? (await generateIdentity({ puzzleBits: 0 }))
  const node = new OverlayNode(
    { SimplePeer: Counting as never, io: io as never, identity },
    { signal: address, network: 'hostile', puzzleBits: 0, wrtc, directTimeoutMs: 15_000 },
  )
  cleanup.push(() => node.close())
  return { node, fed, peers }
}

function client(address: string, identity: Identity): SignalClient {
  const c = new SignalClient({
    servers: [address],
    network: 'hostile',
    identity,
    io: io as unknown as IoFactory,
  })
  cleanup.push(() => c.close())
  return c
}

it('answers one challenge per connection: more, before or after registration, neither sign nor register again', async () => {
  // 200 challenges at once, every registration acknowledged: each used to be signed and sent, and
  // each ok answer adopted the socket again (one more set of listeners: a signal came out 200 times).
  const s = await hostileServer({ challenges: 200 })
  cleanup.push(() => s.close())
  const identity = await generateIdentity({ puzzleBits: 0 })
  let signatures = 0
  const sign = identity.sign.bind(identity)
  identity.sign = (m) => {
    signatures++
    return sign(m)
  }
  const c = client(s.address, identity)
  let registered = 0
  c.on('registered', () => registered++)
  await c.start()
  const sock = s.sockets[0]
  if (!sock) throw new Error('no socket')
  for (let i = 0; i < 200; i++) sock.emit('challenge', { nonce: crypto.getRandomValues(new Uint8Array(32)) })
  const got: unknown[] = []
  c.on('signal', (d) => got.push(d))
  await new Promise((r) => setTimeout(r, 300))
  sock.emit('signal', { from: 'ab'.repeat(20), data: { t: 'probe' } })
  await until('the signal', () => got.length > 0)
  await new Promise((r) => setTimeout(r, 100))
  expect(got).toHaveLength(1)
  expect(s.registers).toBe(1)
  expect(signatures).toBe(1)
  expect(registered).toBe(1)
  expect(c.state).toBe('registered')
})

it('feeds a WebRTC attempt a bounded number of ICE candidates, however many the server makes up', async () => {
  const s = await hostileServer({
    onRegister: (_socket, p, ack) =>
      void nodeIdOf(new Uint8Array(p.publicKey)).then((id) =>
        ack({ ok: true, id, quietSignals: true, servers: [], peers: [{ id: FAKE, lastSeen: Date.now() }] }),
      ),
  })
  cleanup.push(() => s.close())
  const offered: unknown[] = []
  const { node, fed, peers } = await nodeOf(s.address)
  void node.start().catch(() => {})
  await until('a socket', () => s.sockets.length > 0)
  const sock = s.sockets[0]
  if (!sock) throw new Error('no socket')
  sock.on('signal', (p: { to: string }) => {
    if (p.to === FAKE) offered.push(p)
  })
  await until('the offer to the listed peer', () => offered.length > 0)
  // Candidates "from" the peer the node offers to, as fast as the socket takes them (an honest
  // server passes on 64 KiB/s of signals per sender; this one, what it likes): each used to be
  // kept by simple-peer until the answer came (or given to the stack after it), without bound.
  const N = 5000
  for (let i = 0; i < N; i++) {
    const candidate = `candidate:${i} 1 udp 2122260223 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} ${1024 + (i % 60000)} typ host`
    sock.emit('signal', {
      from: FAKE,
      data: {
        t: 'rtc',
        s: { type: 'candidate', candidate: { candidate, sdpMLineIndex: 0, sdpMid: '0' } },
        mesh: true,
      },
    })
  }
  await until(
    'the candidates handled',
    () => (node.stats()['drop.signal.candidate'] ?? 0) + fed.candidates >= N,
    20_000,
  )
  expect(fed.candidates).toBeLessThanOrEqual(MAX_REMOTE_CANDIDATES)
  const pending = peers.map(
    (p) => (p as unknown as { _pendingCandidates: unknown[] })._pendingCandidates.length,
  )
  expect(Math.max(...pending)).toBeLessThanOrEqual(MAX_REMOTE_CANDIDATES)
  expect(node.stats()['drop.signal.candidate']).toBe(N - fed.candidates)
}, 40_000)

/** Nodes a and b, linked through a hostile server that forwards what they send (honest unless told). */
async function linkedPair() {
  const s = await hostileServer({ forward: true })
  cleanup.push(() => s.close())
  const { node: a } = await nodeOf(s.address)
  await a.start()
  const bId = await generateIdentity({ puzzleBits: 0 })
  const { node: b } = await nodeOf(s.address, bId)
  await b.start()
  await until('the link', () => a.links.get(b.id)?.state === 'open')
  return { s, a, b, bId, link: a.links.get(b.id) }
}

it("cannot end a node's open link by making up a new-link signal from its peer, nor turn it into a relayed one", async () => {
  const { s, a, b, link } = await linkedPair()
  expect(link?.transport).toBe('webrtc')
  const toA = s.byId.get(a.id)
  if (!toA) throw new Error('a is not registered')
  // "From b": a relay session of its own, and an offer. Each used to close a's link to b at once
  // ('superseded'), though b never sent them and its link was well.
  toA.emit('signal', { from: b.id, data: { t: 'relay', mesh: true, sid: 7 } })
  toA.emit('signal', {
    from: b.id,
    data: { t: 'rtc', s: { type: 'offer', sdp: 'v=0\r\n' }, mesh: true, o: true },
  })
  await new Promise((r) => setTimeout(r, 1000))
  expect(a.links.get(b.id)).toBe(link)
  expect(link?.state).toBe('open')
  expect(a.stats()['link.superseded']).toBeUndefined()
  b.handle('who', () => 'b')
  expect(await a.request(b.id, 'who', null)).toBe('b')
  expect(a.stats()['dial.supersede-failed']).toBe(1) // the offer's setup: not to the relay instead
}, 30_000)

it("a peer's own new link (a reloaded page) takes the place of the one a node still has with it", async () => {
  const { s, a, b, bId, link } = await linkedPair() // the server honest, this time
  // b again (a reloaded page: the same identity, a new session) while a still has the old link:
  // the new link, once open and proven, takes the old one's place.
  expect(link?.transport).toBe('webrtc')
  const { node: b2 } = await nodeOf(s.address, bId)
  b2.handle('who', () => 'b2')
  await b2.start()
  await until('the new link', () => a.links.get(b.id) !== link && a.links.get(b.id)?.state === 'open')
  expect(link?.state).toBe('closed')
  expect(a.links.get(b.id)?.transport).toBe('webrtc')
  expect(a.stats()['link.superseded']).toBe(1)
  expect(await a.request(b.id, 'who', null)).toBe('b2')
}, 30_000)

/**
 * A server that registers the node and kicks it at once, `kicks` times (all of them when undefined),
 * then keeps the session `stayMs` before it kicks again. Returns the server and the client's
 * reconnect delays (status retryInMs), with Math.random at 0.5: every delay is the middle of its range.
 */
async function kicker(kicks: number | undefined, stayMs = 0) {
  const s = await hostileServer({
    onRegister: (socket, p, ack) =>
      void nodeIdOf(new Uint8Array(p.publicKey)).then((id) => {
        ack({ ok: true, id, peers: [], servers: [] })
        const at = kicks === undefined || s.registers <= kicks ? 50 : stayMs
        setTimeout(() => socket.disconnect(true), at)
      }),
  })
  cleanup.push(() => s.close())
  const random = vi.spyOn(Math, 'random').mockReturnValue(0.5)
  cleanup.push(() => random.mockRestore())
  const c = new SignalClient({
    servers: [s.address],
    network: 'hostile',
    identity: await generateIdentity({ puzzleBits: 0 }),
    io: io as unknown as IoFactory,
    minBackoffMs: 500,
    maxBackoffMs: 2000,
  })
  cleanup.push(() => c.close())
  const delays: number[] = []
  c.on('status', (st) => {
    if (st.state === 'down' && st.retryInMs !== undefined) delays.push(st.retryInMs)
  })
  await c.start()
  return { s, c, delays }
}

it('backs off from a server that kicks it right after each registration, up to maxBackoffMs', async () => {
  // The backoff used to start over at each registration: a reconnect every 250-750 ms, for ever.
  const { s, delays } = await kicker(undefined)
  await new Promise((r) => setTimeout(r, 6000))
  // 500, 750, 1250, 1250, ... ms (min 500, max 2000, the middle of each range): 5 or 6 in 6 s, not 12.
  expect(delays.slice(0, 4)).toEqual([500, 750, 1250, 1250])
  expect(s.registers).toBeLessThanOrEqual(7)
}, 20_000)

it('reconnects at once (the first backoff) after a session that lasted, even after kicks', async () => {
  // Kicked 4 times at once (the backoff grows), then a session of 2.5 s (past maxBackoffMs): the
  // reconnect after it waits the first delay again.
  const { s, delays } = await kicker(4, 2500)
  await until('the kick after the long session', () => s.registers >= 6, 15_000)
  expect(delays.slice(0, 5)).toEqual([500, 750, 1250, 1250, 500])
}, 20_000)

it("cannot fail a node's join by making up a refusal ('no-relay') from the peers it lists", async () => {
  // As b's offer to a goes out, "a" refuses: it would run relay 'never' and b relay 'force' (they
  // both run 'auto'). It used to fail b's dial and b's join at once: NoRouteError, "relay: 'auto'
  // cannot reach this network".
  let forged = 0
  let aId = ''
  const s = await hostileServer({
    forward: true,
    onSocket: (toB) =>
      toB.on('signal', (p: { to: string }) => {
        if (p.to !== aId || forged++ > 0) return
        toB.emit('signal', { from: aId, data: { t: 'refuse', reason: 'no-relay' } })
      }),
  })
  cleanup.push(() => s.close())
  const { node: a } = await nodeOf(s.address)
  await a.start()
  aId = a.id
  const { node: b } = await nodeOf(s.address)
  await b.start()
  await until('the link', () => b.links.get(a.id)?.state === 'open')
  expect(forged).toBeGreaterThan(0)
  expect(b.stats()['dial.relay-mismatch']).toBeUndefined()
  expect(b.stats()['drop.signal.refuse']).toBe(1)
}, 30_000)
