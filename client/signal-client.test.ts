import { createServer as createNetServer } from 'node:net'
import { io } from 'socket.io-client'
import { afterEach, describe, expect, it } from 'vitest'
import type { SignalError } from '../shared/errors.ts'
import { generateIdentity, nodeIdOf } from '../shared/identity/keys.ts'
import { meetsPuzzle } from '../shared/identity/puzzle.ts'
import { createSignalServer, type SignalServerOptions } from '../signal-server/index.ts'
import { until } from '../test/until.ts'
import { type IoFactory, preconnect, SignalClient, type SignalStatus } from './signal-client.ts'

const cleanup: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

/** A port nothing listens on (for now): taken from the OS, then freed. */
async function deadPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address()
      srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0))
    })
  })
}

/**
 * A socket.io stand-in for a server that answers a registration with `extra` in its ack
 * (what the client does with what a server sends, hostile or broken).
 */
function fakeServer(
  extra: Record<string, unknown>,
  /** Given each socket's listeners, by event (for the test to play the server's part). */
  onSocket?: (handlers: Map<string, (...args: unknown[]) => void>) => void,
): IoFactory {
  return () => {
    const handlers = new Map<string, (...args: unknown[]) => void>()
    onSocket?.(handlers)
    const socket = {
      connected: true,
      on(event: string, fn: (...args: unknown[]) => void) {
        handlers.set(event, fn)
        if (event === 'challenge') setTimeout(() => fn({ nonce: new Uint8Array(32) }), 0)
        return socket
      },
      emit(event: string, payload: unknown, ack?: (a: unknown) => void) {
        if (event === 'register' && ack)
          void nodeIdOf((payload as { publicKey: Uint8Array }).publicKey).then((id) =>
            ack({ ok: true, id, peers: [], servers: [], ...extra }),
          )
        return socket
      },
      removeAllListeners() {
        handlers.clear()
        return socket
      },
      disconnect() {
        socket.connected = false
        return socket
      },
    }
    return socket as unknown as ReturnType<IoFactory>
  }
}

async function server(opts: SignalServerOptions = {}) {
  const s = await createSignalServer({ port: 0, host: '127.0.0.1', log: () => {}, ...opts })
  cleanup.push(() => s.close())
  return s
}

describe('signal client', () => {
  it('moves on to the next server when the first is unreachable, and registers there', async () => {
    const s = await server()
    const identity = await generateIdentity()
    const c = new SignalClient({
      servers: ['http://127.0.0.1:1', s.address],
      network: 'sc',
      identity,
      io: io as unknown as IoFactory,
      // The dead server fails at once (connection refused); the live one must register within this,
      // which a loaded machine may take a while to do.
      connectTimeoutMs: 10_000,
    })
    cleanup.push(() => c.close())
    const peers = await c.start()
    expect(peers).toEqual([])
    expect(c.state).toBe('registered')
    expect(c.server).toBe(s.address)
  })

  it('keeps trying until joinTimeoutMs, then rejects with SignalError naming the servers tried and the last reason', async () => {
    const identity = await generateIdentity()
    const dead = [`http://127.0.0.1:${await deadPort()}`, `http://127.0.0.1:${await deadPort()}`]
    const c = new SignalClient({
      servers: dead,
      network: 'sc',
      identity,
      io: io as unknown as IoFactory,
      // Refused at once; the timeout is long enough not to win that race on a loaded machine.
      connectTimeoutMs: 5000,
      minBackoffMs: 100,
      maxBackoffMs: 400,
      joinTimeoutMs: 2000,
    })
    cleanup.push(() => c.close())
    const statuses: SignalStatus[] = []
    c.on('status', (st) => statuses.push(st))
    const t0 = Date.now()
    const err = (await c.start().catch((e) => e)) as SignalError
    // Until the time runs out (the last round starts at most 250 ms before: an attempt needs some),
    // and no later.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1700)
    expect(Date.now() - t0).toBeLessThan(3000)
    expect(err.name).toBe('SignalError')
    expect(err.reason).toBe('unreachable')
    expect(err.message).toMatch(
      /^no signal server registered this node within \d+ ms \(timeoutMs 2000\); tried /,
    )
    for (const u of dead) expect(err.message).toMatch(new RegExp(`${u} \\(\\d+ times\\)`))
    expect(err.message).toMatch(
      /the last said: http:\/\/127\.0\.0\.1:\d+: .*is a weft signal server running there/,
    )
    // Rotation: both servers tried, round after round, each attempt and each wait reported.
    const tries = statuses.filter((st) => st.state === 'connecting')
    expect(new Set(tries.map((st) => st.server))).toEqual(new Set(dead))
    expect(tries.length).toBeGreaterThanOrEqual(4)
    expect(tries.map((st) => st.attempt)).toEqual(tries.map((_, i) => i + 1))
    const waits = statuses.filter((st) => st.state === 'down' && st.retryInMs !== undefined)
    expect(waits.length).toBeGreaterThanOrEqual(1)
    expect(waits[0]?.error?.reason).toBe('unreachable')
  })

  it('joins a server that starts late, trying the servers in turn meanwhile', async () => {
    const identity = await generateIdentity()
    const [deadUrl, latePort] = [`http://127.0.0.1:${await deadPort()}`, await deadPort()]
    const c = new SignalClient({
      servers: [deadUrl, `http://127.0.0.1:${latePort}`],
      network: 'sc',
      identity,
      io: io as unknown as IoFactory,
      connectTimeoutMs: 10_000,
      minBackoffMs: 100,
      maxBackoffMs: 500,
      joinTimeoutMs: 30_000,
    })
    cleanup.push(() => c.close())
    const statuses: SignalStatus[] = []
    c.on('status', (st) => statuses.push(st))
    const joined = c.start()
    // Start the server once the client has been turned away from both at least twice.
    await until('two failed rounds', () => statuses.filter((st) => st.state === 'down').length >= 2)
    const s = await server({ port: latePort })
    expect(await joined).toEqual([])
    expect(c.server).toBe(s.address)
    expect(statuses.at(-1)).toMatchObject({ state: 'registered', server: s.address })
    expect(statuses.some((st) => st.state === 'connecting' && st.server === deadUrl)).toBe(true)
  })

  it('stops at once when the client is closed while it waits to retry', async () => {
    const c = new SignalClient({
      servers: [`http://127.0.0.1:${await deadPort()}`],
      network: 'sc',
      identity: await generateIdentity(),
      io: io as unknown as IoFactory,
      minBackoffMs: 5000,
      joinTimeoutMs: 60_000,
    })
    const joined = c.start().catch((e) => e)
    await until('the first wait', () => c.state === 'down')
    const t0 = Date.now()
    c.close()
    expect(((await joined) as Error).name).toBe('ClosedError')
    expect(Date.now() - t0).toBeLessThan(1000)
  })

  it('checks the network name and the URLs itself, with the rule in the message', async () => {
    const identity = await generateIdentity({ puzzleBits: 0 })
    const mk =
      (servers: string[], network = 'ok') =>
      () =>
        new SignalClient({ servers, network, identity, io: io as unknown as IoFactory })
    expect(mk(['http://localhost:8080'], 'bad name')).toThrow(
      /^network: 1 to 64 characters of letters A-Z a-z, digits 0-9, '\.', '_' and '-' \(got "bad name"\)$/,
    )
    expect(mk(['http://localhost:8080/weft'])).toThrow(
      "signal: a signal server URL is the server's address alone, without a path or query: got \"http://localhost:8080/weft\", use 'http://localhost:8080'",
    )
    expect(mk(['ws://localhost:8080'])).toThrow(
      /WebSocket URL; give the server's http\(s\) URL \(http:\/\/localhost:8080\)/,
    )
    expect(mk(['ftp://example.org'])).toThrow(/starts with http:\/\/ or https:\/\//)
    expect(mk(['localhost:8080'])).toThrow(/did you mean 'http:\/\/localhost:8080'\?/)
    expect(mk([])).toThrow(TypeError)
  })

  it("gets the operator's STUN/TURN servers at registration, and fresh credentials from peers()", async () => {
    const s = await server({
      iceServers: [{ urls: 'stun:stun.example.org:3478' }, { urls: 'turn:turn.example.org:3478' }],
      turnSecret: 'correct-horse-battery-staple',
    })
    const identity = await generateIdentity()
    const c = new SignalClient({
      servers: [s.address],
      network: 'sc',
      identity,
      io: io as unknown as IoFactory,
    })
    cleanup.push(() => c.close())
    await c.start()
    expect(c.iceServers?.[0]).toEqual({ urls: ['stun:stun.example.org:3478'] })
    expect(c.iceServers?.[1]?.username).toMatch(new RegExp(`^\\d+:${identity.id}$`))
    const first = c.iceServers?.[1]?.username
    await new Promise((r) => setTimeout(r, 1100)) // the next whole second: a later expiry
    await c.peers(0)
    expect(c.iceServers?.[1]?.username).not.toBe(first)
    expect(c.stats.dropped).toBe(0)
  })

  it('leaves out and counts STUN/TURN entries a server gets wrong, and keeps the good ones', async () => {
    const identity = await generateIdentity({ puzzleBits: 0 })
    // A hostile (or broken) server, as far as the client can tell: it answers the registration itself.
    const fake = fakeServer({
      iceServers: [
        { urls: 'stun:good.example:3478' },
        { urls: 'javascript:alert(1)' },
        { urls: ['turn:t.example'], username: 'u', credential: 'x'.repeat(10_000) },
      ],
      iceTtlMs: 1,
    })
    const c = new SignalClient({ servers: ['http://fake.example'], network: 'sc', identity, io: fake })
    cleanup.push(() => c.close())
    const dropped: string[] = []
    c.on('dropped', (why) => dropped.push(why))
    await c.start()
    expect(c.iceServers).toEqual([{ urls: ['stun:good.example:3478'] }])
    expect(c.stats.dropped).toBe(1)
    expect(dropped).toEqual(['bad-ice-servers'])
  })

  it('leaves out and counts STUN/TURN URLs on local addresses from a server on a public host', async () => {
    const identity = await generateIdentity({ puzzleBits: 0 })
    // Every node's WebRTC checks (STUN binding requests, TURN allocations) would otherwise go
    // where the server likes inside the node's own networks: its cloud metadata, its router.
    const iceServers = [
      { urls: ['stun:169.254.169.254', 'stun:stun.example.org:3478'] },
      { urls: 'turn:192.168.1.1:3478?transport=tcp', username: 'u', credential: 'c' },
      { urls: ['stuns:[fe80::1]:5349', 'turns:localhost', 'stun:printer.local', 'stun:2130706433'] },
      { urls: 'turns:turn.example.org:443?transport=tcp', username: 'u', credential: 'c' },
    ]
    const c = new SignalClient({
      servers: ['https://signal.example.org'],
      network: 'sc',
      identity,
      io: fakeServer({ iceServers }),
    })
    cleanup.push(() => c.close())
    const dropped: string[] = []
    c.on('dropped', (why) => dropped.push(why))
    await c.start()
    expect(c.iceServers).toEqual([
      { urls: ['stun:stun.example.org:3478'] },
      { urls: ['turns:turn.example.org:443?transport=tcp'], username: 'u', credential: 'c' },
    ])
    expect(dropped).toEqual(Array(6).fill('local-ice-url'))
    expect(c.stats.dropped).toBe(6)
    // A server on a local address (a developer machine, a LAN, the tests) may name local ones.
    const local = new SignalClient({
      servers: ['http://127.0.0.1:9'],
      network: 'sc',
      identity,
      io: fakeServer({ iceServers }),
    })
    cleanup.push(() => local.close())
    await local.start()
    expect(local.iceServers?.flatMap((e) => e.urls)).toHaveLength(8)
    expect(local.stats.dropped).toBe(0)
  })

  it('drops and counts a signal-error a server gets wrong, and passes on a good one', async () => {
    const identity = await generateIdentity({ puzzleBits: 0 })
    let handlers = new Map<string, (...args: unknown[]) => void>()
    const fake = fakeServer({ quietSignals: true }, (h) => {
      handlers = h
    })
    const c = new SignalClient({ servers: ['http://fake.example'], network: 'sc', identity, io: fake })
    cleanup.push(() => c.close())
    const dropped: string[] = []
    const errors: unknown[] = []
    c.on('dropped', (why) => dropped.push(why))
    c.on('signal-error', (e) => errors.push(e))
    await c.start()
    const serverSays = handlers.get('signal-error')
    for (const bad of [null, { to: 'x', reason: 'unknown-peer' }, { to: 'ab'.repeat(20), reason: 'weird' }])
      serverSays?.(bad)
    serverSays?.({ to: 'ab'.repeat(20), reason: 'congested', extra: 1 })
    expect(dropped).toEqual(['bad-signal-error', 'bad-signal-error', 'bad-signal-error'])
    expect(c.stats.dropped).toBe(3)
    expect(errors).toEqual([{ to: 'ab'.repeat(20), reason: 'congested' }])
  })

  it('reconnects and re-registers after the server drops it, and signals flow again', async () => {
    const s = await server()
    const [ia, ib] = [await generateIdentity(), await generateIdentity()]
    const mk = (identity: typeof ia) =>
      new SignalClient({
        servers: [s.address],
        network: 'sc',
        identity,
        io: io as unknown as IoFactory,
        minBackoffMs: 50,
      })
    const a = mk(ia)
    const b = mk(ib)
    cleanup.push(
      () => a.close(),
      () => b.close(),
    )
    await a.start()
    await b.start()
    const got: unknown[] = []
    b.on('signal', (d) => got.push(d.data))
    // The server forgets b (as a restart would): b must come back by itself.
    ;(b as unknown as { socket: { disconnect(): void } }).socket.disconnect()
    await new Promise<void>((resolve) => {
      const off = b.on('registered', () => {
        off()
        resolve()
      })
    })
    await a.signal(ib.id, { hello: 1 })
    await until('the signal to reach b', () => got.length > 0)
    expect(got).toEqual([{ hello: 1 }])
    expect(b.stats.reconnects).toBe(1)
  })

  it('takes over a connection opened before the identity existed, and answers the challenge that waited there', async () => {
    const s = await server()
    let sockets = 0
    const counting: IoFactory = (url, opts) => {
      sockets++
      return (io as unknown as IoFactory)(url, opts)
    }
    const identity = await generateIdentity()
    // The challenge comes before the client exists (a slow identity), or after it took the socket.
    for (const early of [true, false]) {
      sockets = 0
      const pre = preconnect(counting, s.address)
      if (early) {
        await until('the connection', () => pre.socket.connected)
        await new Promise((r) => setTimeout(r, 50))
      }
      const c = new SignalClient({
        servers: [s.address],
        network: 'sc',
        identity,
        io: counting,
        preconnection: pre,
        connectTimeoutMs: 20_000,
      })
      cleanup.push(() => c.close())
      const t0 = Date.now()
      expect(await c.start()).toEqual([])
      expect(c.state).toBe('registered')
      expect(sockets).toBe(1) // no second socket: the preconnection was used
      expect(c.stats.reconnects).toBe(0)
      // Registered on the first try (a lost challenge would wait for the attempt's timeout).
      expect(Date.now() - t0).toBeLessThan(10_000)
      c.close()
    }
  })

  it('opens its own socket when the preconnection was dropped, or is for another server; close() closes an unused one', async () => {
    const s = await server()
    const identity = await generateIdentity()
    const dropped = preconnect(io as unknown as IoFactory, s.address)
    await until('the connection', () => dropped.socket.connected)
    dropped.socket.disconnect() // as a server does when its registration deadline passes
    const c = new SignalClient({
      servers: [s.address],
      network: 'sc',
      identity,
      io: io as unknown as IoFactory,
      preconnection: dropped,
    })
    cleanup.push(() => c.close())
    expect(await c.start()).toEqual([])
    expect(c.state).toBe('registered')

    const elsewhere = preconnect(io as unknown as IoFactory, s.address)
    await until('the connection', () => elsewhere.socket.connected)
    const d = new SignalClient({
      servers: ['http://127.0.0.1:1'],
      network: 'sc',
      identity,
      io: io as unknown as IoFactory,
      preconnection: elsewhere,
      joinTimeoutMs: 1000,
    })
    d.close()
    expect(elsewhere.socket.connected).toBe(false)
  })

  it('a key that fails the puzzle is refused with weak-identity, and no other server is bothered', async () => {
    const [s1, s2] = [await server(), await server()]
    let weak = await generateIdentity({ puzzleBits: 0 })
    while (meetsPuzzle(weak.publicKey, 10)) weak = await generateIdentity({ puzzleBits: 0 })
    const c = new SignalClient({
      servers: [s1.address, s2.address],
      network: 'sc',
      identity: weak,
      io: io as unknown as IoFactory,
    })
    cleanup.push(() => c.close())
    const err = (await c.start().catch((e) => e)) as Error & { reason?: string }
    expect(err.name).toBe('SignalError')
    expect(err.reason).toBe('weak-identity')
    expect(s1.metrics()['rejected.weak-identity']).toBe(1)
    expect(s2.metrics().connections).toBe(0)
  })

  it('knows only its configured servers and what the server it registered with lists, which replaces an earlier list', async () => {
    const a = await server({ servers: ['https://listed-by-a.example'] })
    const b = await server({ servers: ['https://listed-by-b.example'] })
    const c = new SignalClient({
      servers: [a.address, b.address],
      network: 'sc',
      identity: await generateIdentity(),
      io: io as unknown as IoFactory,
      minBackoffMs: 20,
      maxBackoffMs: 100,
      connectTimeoutMs: 10_000,
    })
    cleanup.push(() => c.close())
    await c.start()
    expect(c.server).toBe(a.address)
    expect(c.knownServers()).toEqual([a.address, b.address, 'https://listed-by-a.example'])
    // a goes away: the client moves on to b, and a's list no longer counts.
    await a.close()
    await until('c to register with b', () => c.state === 'registered' && c.server === b.address, 20_000)
    expect(c.knownServers()).toEqual([a.address, b.address, 'https://listed-by-b.example'])
  })

  it('sends signals without an ack to a quietSignals server (failures come as signal-error), with one to others', async () => {
    const s = await server()
    const [ia, ib] = [await generateIdentity(), await generateIdentity()]
    /** What each client's socket emitted: event, and whether it asked for an ack. */
    const sent: [string, boolean][] = []
    /** `io`, recording emits; `older` hides quietSignals from the register ack (an older server). */
    const recording =
      (older: boolean): IoFactory =>
      (url, opts) => {
        const socket = io(url, opts)
        const emit = socket.emit.bind(socket)
        Reflect.set(socket, 'emit', (event: string, ...args: unknown[]) => {
          const last = args[args.length - 1]
          sent.push([event, typeof last === 'function'])
          if (event === 'register' && older && typeof last === 'function')
            args[args.length - 1] = (ack: Record<string, unknown>) => {
              delete ack.quietSignals
              last(ack)
            }
          return emit(event, ...args)
        })
        return socket
      }
    const mk = (identity: typeof ia, older: boolean) =>
      new SignalClient({ servers: [s.address], network: 'q', identity, io: recording(older) })
    const a = mk(ia, false)
    const b = mk(ib, true)
    cleanup.push(
      () => a.close(),
      () => b.close(),
    )
    await a.start()
    await b.start()
    const got: unknown[] = []
    b.on('signal', (d) => got.push(d.data))
    const errors: unknown[] = []
    a.on('signal-error', (e) => errors.push(e))
    const ghost = 'ab'.repeat(20)
    sent.length = 0
    await a.signal(ib.id, { hello: 1 })
    await expect(a.signal(ghost, 1)).resolves.toBeUndefined()
    await until('the signal to reach b', () => got.length > 0)
    await until('the failure to come back', () => errors.length > 0)
    expect(errors).toEqual([{ to: ghost, reason: 'unknown-peer' }])
    // b's server is "older": b asks for acks, and an unknown peer rejects its signal().
    await expect(b.signal(ghost, 1)).rejects.toMatchObject({ name: 'NoRouteError' })
    expect(sent).toEqual([
      ['signal', false],
      ['signal', false],
      ['signal', true],
    ])
  })
})
