/**
 * What a new user meets when joining (issue 12): the first join retries a
 * server that is down, argument mistakes say what to write instead, the
 * operator's STUN/TURN servers reach the RTCPeerConnection, and a node that
 * cannot link with anyone (relay 'never' among relay 'force' nodes) is told.
 */
import { createHmac } from 'node:crypto'
import { createRequire } from 'node:module'
import { createServer as createNetServer } from 'node:net'
import SimplePeer from 'simple-peer'
import { io } from 'socket.io-client'
import { afterEach, describe, expect, it } from 'vitest'
import { generateIdentity } from '../shared/identity/keys.ts'
import { createSignalServer, type SignalServer, type SignalServerOptions } from '../signal-server/index.ts'
import { joinOverlay } from './index.ts'
import { type JoinOptions, OverlayNode } from './overlay.ts'
import type { SignalStatus } from './signal-client.ts'

const cleanup: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

async function server(opts: SignalServerOptions = {}): Promise<SignalServer> {
  const s = await createSignalServer({ port: 0, host: '127.0.0.1', puzzleBits: 0, ...opts })
  cleanup.push(() => s.close())
  return s
}

/** A port nothing listens on (for now). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address()
      srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0))
    })
  })
}

/** A node, not started; closed after the test. */
async function makeNode(opts: JoinOptions): Promise<OverlayNode> {
  const node = new OverlayNode(
    { SimplePeer: SimplePeer as never, io: io as never, identity: await generateIdentity({ puzzleBits: 0 }) },
    { puzzleBits: 0, ...opts },
  )
  cleanup.push(() => node.close())
  return node
}

/**
 * WebRTC for Node that records the configuration of every RTCPeerConnection
 * made and then fails it (the dial falls back to the relay): what the
 * node hands to WebRTC, without WebRTC.
 */
function recordingWrtc(): { wrtc: object; configs: RTCConfiguration[] } {
  const configs: RTCConfiguration[] = []
  class RTCPeerConnection {
    constructor(config: RTCConfiguration) {
      configs.push(config)
      throw new Error('recording only')
    }
  }
  return { wrtc: { RTCPeerConnection, RTCSessionDescription: class {}, RTCIceCandidate: class {} }, configs }
}

describe('the first join', () => {
  it('keeps trying a signal server that starts late, through signal: [..], and reports each step', async () => {
    const [dead, late] = [await freePort(), await freePort()]
    const statuses: SignalStatus[] = []
    const t0 = Date.now()
    const joining = joinOverlay({
      signal: [`http://127.0.0.1:${dead}`, `http://127.0.0.1:${late}`],
      network: 'late',
      relay: 'force',
      puzzleBits: 0,
      onSignal: (st) => statuses.push(st),
    })
    // The server comes up once the node has been turned away (a round over both URLs, and a wait).
    while (!statuses.some((st) => st.state === 'down' && st.retryInMs !== undefined))
      await new Promise((r) => setTimeout(r, 20))
    const s = await server({ port: late })
    const node = await joining
    cleanup.push(() => node.close())
    expect(node.stats().signalConnected).toBe(1)
    expect(Date.now() - t0).toBeLessThan(30_000)
    const tried = new Set(statuses.filter((st) => st.state === 'connecting').map((st) => st.server))
    expect(tried).toEqual(new Set([`http://127.0.0.1:${dead}`, s.address]))
    const wait = statuses.find((st) => st.state === 'down')
    expect(wait?.error?.reason).toBe('unreachable')
    expect(statuses.at(-1)).toMatchObject({ state: 'registered', server: s.address })
  })

  it('gives up when timeoutMs runs out, with a SignalError naming the servers and the last reason', async () => {
    const urls = [`http://127.0.0.1:${await freePort()}`, `http://localhost:${await freePort()}`]
    const t0 = Date.now()
    const err = await joinOverlay({ signal: urls, relay: 'force', puzzleBits: 0, timeoutMs: 1500 }).then(
      () => new Error('joined'),
      (e: Error) => e,
    )
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1200)
    expect(Date.now() - t0).toBeLessThan(2500)
    expect(err.name).toBe('SignalError')
    expect((err as Error & { reason: string }).reason).toBe('unreachable')
    for (const u of urls) expect(err.message).toContain(u)
    expect(err.message).toContain('timeoutMs 1500')
  })

  it('says which server refused us and what to do (a server bound to another public URL)', async () => {
    const s = await server({ publicUrls: ['https://signal.example.org'] })
    const err = await joinOverlay({
      signal: s.address,
      relay: 'force',
      puzzleBits: 0,
      timeoutMs: 3000,
    }).catch((e: Error) => e)
    expect(err).toMatchObject({ name: 'SignalError', reason: 'wrong-server' })
    expect((err as Error).message).toContain(
      `${s.address} refused us (wrong-server): it accepts registrations only at its own public URL(s) (its PUBLIC_URL)`,
    )
  })
})

describe('argument errors', () => {
  const bad = (opts: unknown) =>
    joinOverlay(opts as JoinOptions).then(
      () => new Error('joined'),
      (e: Error) => e,
    )

  it('checks the network name in the client, with the rule in the message', async () => {
    const err = await bad({ signal: 'http://localhost:8080', network: 'bad name' })
    expect(err.name).toBe('TypeError')
    expect(err.message).toBe(
      `network: 1 to 64 characters of letters A-Z a-z, digits 0-9, '.', '_' and '-' (got "bad name")`,
    )
  })

  it('says what is wrong with a signal URL, and what to write instead', async () => {
    expect((await bad({ signal: 'ws://localhost:8080' })).message).toBe(
      `signal: "ws://localhost:8080" is a WebSocket URL; give the server's http(s) URL (http://localhost:8080): weft opens the WebSocket itself`,
    )
    expect((await bad({ signal: 'http://localhost:8080/socket.io/' })).message).toBe(
      `signal: a signal server URL is the server's address alone, without a path or query: got "http://localhost:8080/socket.io/", use 'http://localhost:8080'`,
    )
    expect((await bad({ signal: 'localhost:8080' })).message).toBe(
      `signal: a signal server URL starts with http:// or https:// (got "localhost:8080"; did you mean 'http://localhost:8080'?)`,
    )
    expect((await bad({ signal: 'example.org' })).message).toBe(
      `signal: not a URL: "example.org"; write it in full, e.g. 'https://example.org'`,
    )
    expect((await bad({})).message).toMatch(/^joinOverlay needs \{ signal: URL or URLs of signal servers \}/)
    expect((await bad({ signal: [] })).message).toBe('signal: give 1 to 16 signal server URLs (got 0)')
  })

  it('checks the other options', async () => {
    const base = { signal: 'http://localhost:8080' }
    expect((await bad({ ...base, relay: 'sometimes' })).message).toBe(
      `relay: 'auto', 'force' or 'never' (got "sometimes")`,
    )
    expect((await bad({ ...base, maxPeers: 0 })).message).toBe(
      'maxPeers: a whole number of at least 1 (got 0)',
    )
    expect((await bad({ ...base, timeoutMs: -1 })).message).toBe(
      'timeoutMs: milliseconds, a number above 0 (got -1)',
    )
    expect((await bad({ ...base, iceServers: [{ urls: 'http://stun.example.org' }] })).message).toBe(
      'iceServers[0]: not a STUN or TURN URL: "http://stun.example.org" (stun:host:port, turn:host:port, turns:host:port)',
    )
    expect((await bad({ ...base, presence: { intervalMs: 50 } })).message).toBe(
      'presence.intervalMs: milliseconds from 1000 to 120000 (got 50)',
    )
    expect((await bad({ ...base, presence: { interval: 1000 } })).message).toBe(
      'presence: unknown option "interval" (it takes intervalMs)',
    )
    expect((await bad({ ...base, presence: 1000 })).message).toBe(
      'presence: an object such as { intervalMs: 10000 } (got 1000)',
    )
    expect((await bad({ ...base, files: { maxBytes: 1000 } })).message).toBe(
      'files.maxBytes: a whole number of bytes, at least 1 MiB (1048576) (got 1000)',
    )
    expect((await bad({ ...base, files: { max: 1 } })).message).toBe(
      'files: unknown option "max" (it takes maxBytes)',
    )
    for (const e of await Promise.all([bad({ ...base, relay: 'x' }), bad({ ...base, iceServers: {} })]))
      expect(e.name).toBe('TypeError')
  })

  it('checks the flags, dataDir, and targetPeers against maxPeers', async () => {
    const base = { signal: 'http://localhost:8080' }
    expect((await bad({ ...base, overlaySignals: 'no' })).message).toBe(
      'overlaySignals: true or false (got "no")',
    )
    expect((await bad({ ...base, persistDht: 1 })).message).toBe('persistDht: true or false (got 1)')
    expect((await bad({ ...base, dataDir: 5 })).message).toBe(
      "dataDir: a folder's path, such as './weft-data' (got 5)",
    )
    expect((await bad({ ...base, maxpeers: 4 })).message).toBe(
      'maxpeers: not an option of joinOverlay; did you mean maxPeers?',
    )
    expect((await bad({ ...base, requestTimeout: 5000 })).message).toBe(
      'requestTimeout: not an option of joinOverlay; did you mean requestTimeoutMs?',
    )
    expect((await bad({ ...base, iceServer: [] })).message).toBe(
      'iceServer: not an option of joinOverlay; did you mean iceServers?',
    )
    expect((await bad({ ...base, Network: 'x' })).message).toBe(
      'Network: not an option of joinOverlay; did you mean network?',
    )
    // A key of the app's own, unlike any option, passes (the next check speaks).
    expect((await bad({ ...base, theme: 'dark', maxPeers: 0 })).message).toBe(
      'maxPeers: a whole number of at least 1 (got 0)',
    )
    expect((await bad({ ...base, maxPeers: 4, targetPeers: 6 })).message).toBe(
      'targetPeers: at most maxPeers (4) (got 6)',
    )
    expect((await bad({ ...base, targetPeers: 9 })).message).toBe('targetPeers: at most maxPeers (8) (got 9)')
  })
})

describe('ICE servers', () => {
  it("a node's RTCPeerConnections get the operator's STUN/TURN servers, with TURN credentials for its own id", async () => {
    const secret = 'correct-horse-battery-staple'
    const s = await server({
      iceServers: [{ urls: 'stun:stun.example.org:3478' }, { urls: 'turn:turn.example.org:3478' }],
      turnSecret: secret,
    })
    const nodes = [recordingWrtc(), recordingWrtc()]
    const [a, b] = await Promise.all(
      nodes.map(({ wrtc }) => makeNode({ signal: s.address, network: 'ice', wrtc, directTimeoutMs: 1000 })),
    )
    if (!a || !b) throw new Error('no nodes')
    await a.start()
    await b.start() // b dials a: whichever of the two offers builds an RTCPeerConnection
    const made = nodes.flatMap((n, i) => n.configs.map((c) => ({ node: i === 0 ? a : b, config: c })))
    expect(made.length).toBeGreaterThan(0)
    for (const { node, config } of made) {
      const [stun, turn] = config.iceServers ?? []
      expect(stun).toEqual({ urls: ['stun:stun.example.org:3478'] })
      expect(turn?.urls).toEqual(['turn:turn.example.org:3478'])
      expect(turn?.username).toMatch(new RegExp(`^\\d+:${node.id}$`))
      expect(turn?.credential).toBe(
        createHmac('sha1', secret)
          .update(turn?.username ?? '')
          .digest('base64'),
      )
    }
    // Linked all the same, over the relay (the recording WebRTC never connects).
    expect(b.peers()).toEqual([{ id: a.id, transport: 'relay' }])
  })

  it('joinOverlay({ iceServers }) overrides what the server hands out ([] for none)', async () => {
    const s = await server({ iceServers: [{ urls: 'stun:from-the-operator.example' }] })
    const mine = [{ urls: 'stun:mine.example:3478' }]
    const nodes = [recordingWrtc(), recordingWrtc()]
    const [a, b] = await Promise.all([
      makeNode({
        signal: s.address,
        network: 'ice2',
        wrtc: nodes[0]?.wrtc,
        directTimeoutMs: 1000,
        iceServers: mine,
      }),
      makeNode({
        signal: s.address,
        network: 'ice2',
        wrtc: nodes[1]?.wrtc,
        directTimeoutMs: 1000,
        iceServers: [],
      }),
    ])
    await a?.start()
    await b?.start()
    for (const c of nodes[0]?.configs ?? []) expect(c.iceServers).toEqual(mine)
    for (const c of nodes[1]?.configs ?? []) expect(c.iceServers).toEqual([])
    expect((nodes[0]?.configs.length ?? 0) + (nodes[1]?.configs.length ?? 0)).toBeGreaterThan(0)
  })
})

describe('nodes that cannot link', () => {
  it("a relay 'never' node among relay 'force' nodes is told it cannot reach them, and the other way round", async () => {
    const wrtc = createRequire(import.meta.url)('@roamhq/wrtc')
    const s = await server()
    const forced = [
      await makeNode({ signal: s.address, network: 'mix', relay: 'force' }),
      await makeNode({ signal: s.address, network: 'mix', relay: 'force' }),
    ]
    for (const f of forced) await f.start()
    const never = await makeNode({ signal: s.address, network: 'mix', relay: 'never', wrtc })
    const t0 = Date.now()
    const err = await never.start().then(
      () => new Error('joined'),
      (e: Error) => e,
    )
    expect(err.name).toBe('NoRouteError')
    expect(err.message).toBe(
      "relay: 'never' cannot reach this network: 2 of the 2 peers the signal server offered link only through its relay " +
        "(they run relay: 'force'); with relay: 'auto' this node links with both",
    )
    // Told as soon as both answered, not after the first-link wait (directTimeoutMs + 10 s).
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(never.stats()['dial.relay-mismatch']).toBe(2)
    await never.close()

    // And a relay 'force' node among relay 'never' nodes.
    const lone = await makeNode({ signal: s.address, network: 'mix2', relay: 'never', wrtc })
    await lone.start()
    const force = await makeNode({ signal: s.address, network: 'mix2', relay: 'force' })
    const err2 = await force.start().then(
      () => new Error('joined'),
      (e: Error) => e,
    )
    expect(err2.name).toBe('NoRouteError')
    expect(err2.message).toMatch(
      /^relay: 'force' cannot reach this network: 1 of the 1 peers the signal server offered take direct links only \(they run relay: 'never'\)/,
    )
    expect(force.stats()['dial.relay-mismatch']).toBe(1)
    expect(lone.stats()['dial.relay-mismatch']).toBe(1)
  })

  it('send to an id nobody has fails like request does while there is no ring to route on (NoRouteError)', async () => {
    const s = await server()
    const node = await makeNode({ signal: s.address, network: 'alone', relay: 'force' })
    await node.start()
    const nobody = 'ab'.repeat(20)
    const t0 = Date.now()
    await expect(node.send(nobody, 'inbox', 'hello')).rejects.toMatchObject({ name: 'NoRouteError' })
    await expect(node.request(nobody, 'echo', 1)).rejects.toMatchObject({ name: 'NoRouteError' })
    // The relay announcement went without an ack (quietSignals): the server's signal-error ended
    // each dial at once, not the relay's 15 s wait for a link that cannot open.
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(node.stats()['signal-error.unknown-peer']).toBe(2)
  })
})
