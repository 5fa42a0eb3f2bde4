/**
 * Attacks on a peer's link layer by strangers, over a real signal server
 * (in process, relay links), as issue 9 reproduced them:
 *
 * - item 5, decode before authentication: a stranger sends the victim a
 *   `relay` signal, then small deflated frames that inflate to 4 MiB of
 *   MessagePack (once: 40 s of stalled event loop and 1 GiB from 20 frames).
 *   The same from a peer that did authenticate, and frames of the costliest
 *   shape just under the per-frame object limit. The victim's event-loop
 *   stall (monitorEventLoopDelay) and its memory are measured: for the
 *   stranger, of this whole process (attacker and server included); for the
 *   authenticated peer, of a victim in its own process, where the stall
 *   counted is what its own work caused (see that test).
 * - item 7, link-slot exhaustion: 64 throw-away identities fire relay signals
 *   at a newcomer; it must still link with the honest peers promptly.
 * - item 8: a too-large send with another in flight must reject the caller's
 *   promise and nothing else (an unhandled rejection kills a Node process).
 * - item 11 (the link's share): a peer whose key fails the network's identity
 *   puzzle cannot open a link, even through a server that does not check it.
 *
 * The identities here are made with puzzleBits 0 (the puzzle is under test
 * only in the last case), and the nodes and server are configured alike.
 */
import { spawn } from 'node:child_process'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { deflateRawSync } from 'node:zlib'
import SimplePeer from 'simple-peer'
import { io } from 'socket.io-client'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { concatBytes } from '../shared/bytes.ts'
import { networkTag } from '../shared/crypto/network.ts'
import { generateIdentity, type Identity } from '../shared/identity/keys.ts'
import { meetsPuzzle } from '../shared/identity/puzzle.ts'
import { splitMessage } from '../shared/wire/chunk.ts'
import { encodeFrame, FLAG_DEFLATE, Kind, WIRE_VERSION } from '../shared/wire/frame.ts'
import { MAX_VALUE_ITEMS } from '../shared/wire/value.ts'
import { createSignalServer, type SignalServer, type SignalServerOptions } from '../signal-server/index.ts'
import { until } from '../test/until.ts'
import type { Link } from './links/link.ts'
import type { RelayPipe } from './links/relay.ts'
import { type JoinOptions, OverlayNode } from './overlay.ts'
import { SignalClient } from './signal-client.ts'

const NETWORK = 'link-attacks'

const processErrors: unknown[] = []
const onProcessError = (err: unknown) => void processErrors.push(err)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let server: SignalServer
const started: { close(): unknown }[] = []

beforeAll(async () => {
  process.on('unhandledRejection', onProcessError)
  process.on('uncaughtException', onProcessError)
  server = await createSignalServer({
    port: 0,
    host: '127.0.0.1',
    log: () => {},
    // The attacks below push MBs through the relay at once; the server's own quotas are not under test.
    relayBytesPerSec: 256 * 1024 * 1024,
    congestionMaxPackets: 1_000_000,
    congestionMaxBytes: 2 ** 40,
    // Identities here have puzzleBits 0, like the nodes (option of servers that check the puzzle).
    ...({ puzzleBits: 0 } as Partial<SignalServerOptions>),
  })
})

afterEach(async () => {
  await Promise.all(started.splice(0).map((n) => n.close()))
})

afterAll(async () => {
  await server?.close()
  process.off('unhandledRejection', onProcessError)
  process.off('uncaughtException', onProcessError)
})

/** A node of the test network, not started yet (its id is known before it registers). */
async function makeNode(opts: Partial<JoinOptions> = {}, identity?: Identity): Promise<OverlayNode> {
  const node = new OverlayNode(
    {
      SimplePeer: SimplePeer as never,
      io: io as never,
      identity: identity ?? (await generateIdentity({ puzzleBits: opts.puzzleBits ?? 0 })),
    },
    { signal: server.address, network: NETWORK, relay: 'force', puzzleBits: 0, ...opts },
  )
  started.push(node)
  return node
}

async function join(opts: Partial<JoinOptions> = {}): Promise<OverlayNode> {
  const node = await makeNode(opts)
  await node.start()
  return node
}

/** A bare registered client: a stranger who speaks only to the signal server. */
async function stranger(
  address = server.address,
): Promise<{ client: SignalClient; id: string; identity: Identity }> {
  const identity = await generateIdentity({ puzzleBits: 0 })
  // The network as the nodes register it with the server (the name's hash).
  const client = new SignalClient({
    servers: [address],
    network: networkTag(NETWORK),
    identity,
    io: io as never,
  })
  started.push(client)
  await client.start()
  return { client, id: identity.id, identity }
}

function withSid(sid: number, piece: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + piece.length)
  new DataView(out.buffer).setUint32(0, sid)
  out.set(piece, 4)
  return out
}

/** A mesh frame whose 4 KiB deflated body inflates to 4 MiB of msgpack: one array of four million nils. */
function nilBomb(): Uint8Array {
  const n = 4 * 1024 * 1024 - 16
  const body = new Uint8Array(5 + n).fill(0xc0)
  body[0] = 0xdd
  new DataView(body.buffer).setUint32(1, n)
  return concatBytes(new Uint8Array([WIRE_VERSION, Kind.Mesh, FLAG_DEFLATE]), deflateRawSync(body))
}

/**
 * The costliest body under the object limit: a map of 32,767 distinct short
 * keys (65,535 objects; V8 builds a dictionary object key by key).
 */
function costlyFrame(salt: number): Uint8Array {
  const entries = (MAX_VALUE_ITEMS - 2) / 2
  const body = new Uint8Array(5 + entries * 6)
  body[0] = 0xdf
  new DataView(body.buffer).setUint32(1, entries)
  for (let i = 0; i < entries; i++) {
    const o = 5 + i * 6
    body[o] = 0xa4
    body[o + 1] = 0x61 + ((i + salt) % 26)
    body[o + 2] = 0x61 + (Math.floor(i / 26) % 26)
    body[o + 3] = 0x61 + (Math.floor(i / 676) % 26)
    body[o + 4] = 0x61 + (Math.floor(i / 17_576) % 26)
    body[o + 5] = 0xc0
  }
  return concatBytes(new Uint8Array([WIRE_VERSION, Kind.Mesh, FLAG_DEFLATE]), deflateRawSync(body))
}

/** Run `attack` and measure the process's longest event-loop stall (ms) and RSS growth (MiB) meanwhile. */
async function measured(attack: () => Promise<void>): Promise<{ stallMs: number; rssMiB: number }> {
  const h = monitorEventLoopDelay({ resolution: 5 })
  const rss0 = process.memoryUsage().rss
  let rssPeak = rss0
  const probe = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
  }, 20)
  h.enable()
  try {
    await attack()
  } finally {
    h.disable()
    clearInterval(probe)
  }
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
  return { stallMs: h.max / 1e6, rssMiB: (rssPeak - rss0) / 2 ** 20 }
}

/**
 * Send pieces through `client`'s relay to `to`, a burst at a time (no pacing: the attacker does not
 * pace). Given the attacker's open `link`, each piece is sealed on its secure channel first (an
 * authenticated peer holds the channel's keys), in order with what the link sends itself.
 */
async function blast(
  client: SignalClient,
  to: string,
  sid: number,
  pieces: Uint8Array[],
  link?: Link,
): Promise<void> {
  let bytes = 0
  const relay = (b: Uint8Array) => void client.relay(to, withSid(sid, b))
  for (const p of pieces) {
    if (link) await link.sendPiece(p, relay)
    else relay(p)
    bytes += p.length
    if (bytes > 512 * 1024) {
      bytes = 0
      await sleep(5)
    } else await new Promise((r) => setImmediate(r))
  }
}

/**
 * A victim node in a child process (Node with tsx), driven over IPC: it
 * joins the test network and, between 'start' and 'stop', measures its own
 * event loop (monitorEventLoopDelay) and RSS.
 */
const VICTIM_SCRIPT = `
import { monitorEventLoopDelay } from 'node:perf_hooks'
const { joinOverlay } = await import(process.env.WEFT_CLIENT)
const node = await joinOverlay({ signal: process.env.WEFT_SIGNAL, network: process.env.WEFT_NETWORK, relay: 'force', puzzleBits: 0 })
node.handle('echo', (d) => d)
let h, rss0 = 0, rssPeak = 0, busyMax = 0, probe
process.on('message', async ({ n, op }) => {
  let out = null
  if (op === 'stats') out = node.stats()
  else if (op === 'start') {
    h = monitorEventLoopDelay({ resolution: 5 })
    h.enable()
    rss0 = rssPeak = process.memoryUsage().rss
    let wall = performance.now(), cpu = process.cpuUsage()
    probe = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
      const w = performance.now(), c = process.cpuUsage()
      const cpuMs = (c.user - cpu.user + c.system - cpu.system) / 1000
      busyMax = Math.max(busyMax, Math.min(w - wall, cpuMs))
      wall = w
      cpu = c
    }, 5)
  } else if (op === 'stop') {
    h.disable()
    clearInterval(probe)
    out = { stallMs: h.max / 1e6, busyMs: busyMax, rssMiB: (Math.max(rssPeak, process.memoryUsage().rss) - rss0) / 2 ** 20 }
  } else if (op === 'close') {
    await node.close()
    process.send({ n, out }, () => process.exit(0))
    return
  }
  process.send({ n, out })
})
process.send({ ready: node.id })
`

interface Victim {
  id: string
  call(op: string): Promise<unknown>
  stats(): Promise<Record<string, number>>
  close(): Promise<void>
}

async function spawnVictim(): Promise<Victim> {
  // At a higher priority where allowed (root; elsewhere nice warns and runs it as it is): what is
  // measured is the victim's own work, not how long other processes on a loaded machine keep it off
  // the CPU.
  const node = [process.execPath, '--import', 'tsx', '--input-type=module', '-e', VICTIM_SCRIPT]
  const child = spawn('nice', ['-n', '-10', ...node], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      WEFT_CLIENT: new URL('./index.ts', import.meta.url).href,
      WEFT_SIGNAL: server.address,
      WEFT_NETWORK: NETWORK,
    },
  })
  const waiting = new Map<number, (out: unknown) => void>()
  let n = 0
  const id = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`victim exited (${code})`)))
    child.on('message', (m: { ready?: string; n?: number; out?: unknown }) => {
      if (m.ready) resolve(m.ready)
      else if (m.n !== undefined) waiting.get(m.n)?.(m.out)
    })
  })
  const call = (op: string) =>
    new Promise<unknown>((resolve) => {
      const k = n++
      waiting.set(k, resolve)
      child.send({ n: k, op })
    })
  return {
    id,
    call,
    stats: () => call('stats') as Promise<Record<string, number>>,
    async close() {
      if (child.exitCode !== null) return
      const exited = new Promise((r) => child.once('exit', r))
      void call('close')
      await Promise.race([exited, sleep(8000)])
      if (child.exitCode === null) child.kill('SIGKILL')
    },
  }
}

describe('decode before authentication (issue 9, item 5)', () => {
  it("a stranger's relay signal and 20 deflate bombs: nothing is inflated or decoded, the loop stalls < 250 ms", async () => {
    const victim = await join()
    const attacker = await stranger()
    const bomb = nilBomb()
    expect(bomb.length).toBeLessThan(8 * 1024)
    const sid = 0x5eed
    await attacker.client.signal(victim.id, { t: 'relay', mesh: true, sid })
    await until('the victim to note the relay session', () => victim.inbound.pendingRelays.has(attacker.id))
    const before = victim.stats()
    const m = await measured(async () => {
      await blast(
        attacker.client,
        victim.id,
        sid,
        Array.from({ length: 20 }, () => bomb),
      )
      // The first bomb ends the announced session (no hello: nothing was set up); the other 19 find
      // no session (dropped unread).
      await until(
        'all 20 to be refused',
        () =>
          (victim.counters['drop.before-auth'] ?? 0) === 1 &&
          (victim.counters['drop.relay-frame'] ?? 0) - (before['drop.relay-frame'] ?? 0) === 19,
      )
    })
    console.log(`pre-auth bombs: stall ${m.stallMs.toFixed(0)} ms, rss +${m.rssMiB.toFixed(0)} MiB`)
    expect(m.stallMs).toBeLessThan(250)
    expect(m.rssMiB).toBeLessThan(100)
    const s = victim.stats()
    // Never inflated, never decoded: no frame-level drop at all.
    expect(Object.keys(s).filter((k) => k.startsWith('drop.frame.'))).toEqual([])
    expect(victim.dialer.dials.has(attacker.id)).toBe(false)
    // And the stranger may not start another setup for a while.
    await attacker.client.signal(victim.id, { t: 'relay', mesh: true, sid: sid + 1 })
    await until('the retry to be refused', () => (victim.counters['drop.signal.inbound-backoff'] ?? 0) === 1)
    expect(victim.dialer.dials.has(attacker.id)).toBe(false)
    expect(processErrors).toEqual([])
  })

  it('an authenticated peer: 20 bombs and 20 of the costliest frames stall the loop < 250 ms; the victim stays responsive', async () => {
    // The victim runs in its own process, so its event loop is measured alone (not this one,
    // where the attacker and the signal server work too).
    const victim = await spawnVictim()
    try {
      const attacker = await join()
      await until('the two to link', () => attacker.peers().some((p) => p.id === victim.id))
      const link = attacker.links.get(victim.id) as Link | undefined
      if (!link) throw new Error('no link')
      const sid = (link.pipe as RelayPipe).sid
      const bombs = Array.from({ length: 20 }, () => nilBomb())
      const costly = Array.from({ length: 20 }, (_, i) => splitMessage(costlyFrame(i), 0x7000_0000 + i))
      const before = await victim.stats()
      const d = (s: Record<string, number>, k: string) => (s[k] ?? 0) - (before[k] ?? 0)
      await victim.call('start')
      await blast(attacker.signalClient, victim.id, sid, bombs, link)
      await blast(attacker.signalClient, victim.id, sid, costly.flat(), link)
      let after = before
      const end = Date.now() + 120_000
      while (d(after, 'drop.frame.items') < 20 || d(after, 'drop.frame.invalid') < 20) {
        if (Date.now() > end) throw new Error(`the victim did not refuse all 40: ${JSON.stringify(after)}`)
        await sleep(100)
        after = await victim.stats()
      }
      const m = (await victim.call('stop')) as { stallMs: number; busyMs: number; rssMiB: number }
      console.log(
        `post-auth bombs + costly frames: victim stall ${m.busyMs.toFixed(0)} ms of its own work ` +
          `(${m.stallMs.toFixed(0)} ms of wall-clock event-loop delay), rss +${m.rssMiB.toFixed(0)} MiB, ` +
          `throttled decode ${d(after, 'link.recv-throttled.decode')}, inflate ${d(after, 'link.recv-throttled.inflate')}`,
      )
      expect(d(after, 'drop.frame.items')).toBe(20)
      expect(d(after, 'drop.frame.invalid')).toBe(20)
      // The stall the victim's own work caused: between two ticks of a 5 ms timer, the wall-clock gap
      // or the CPU time the process used in it, whichever is less. On a machine shared with other
      // sessions the wall-clock delay alone also counts the time the victim waited for a CPU (once
      // 543 ms around a decode of about 30 ms); unloaded the two agree (55-86 ms seen here).
      expect(m.busyMs).toBeLessThan(250)
      expect(m.rssMiB).toBeLessThan(200)
      // The budgets, not luck, spread the work: the link waited for them. Which one depends on how
      // the frames arrive (the costly frames are deflated too: when the inflate budget spaced them
      // out, the decode budget refilled between them; one fresh-clone run saw inflate 25, decode 0).
      expect(
        d(after, 'link.recv-throttled.decode') + d(after, 'link.recv-throttled.inflate'),
      ).toBeGreaterThan(0)
      // Still linked, and another peer's request is answered at once.
      expect(attacker.peers().some((p) => p.id === victim.id)).toBe(true)
      const other = await join()
      const t0 = Date.now()
      expect(await other.request(victim.id, 'echo', 42)).toBe(42)
      expect(Date.now() - t0).toBeLessThan(3000)
      expect(processErrors).toEqual([])
    } finally {
      await victim.close()
    }
  })
})

describe('link-slot exhaustion (issue 9, item 7)', () => {
  /**
   * 64 throw-away identities fire relay signals at a newcomer every 100 ms
   * from its first moment on the server; with `hello`, each also sends a
   * valid hello for its session (and then nothing), so each setup takes an
   * inbound slot until it expires. The newcomer must still link with
   * honest peers promptly.
   */
  async function flooded(withHello: boolean): Promise<void> {
    // Its own server, whose bootstrap samples of 6 draw 3 from the 12 most recent registrations.
    // The attackers register first and 8 honest peers after them, so the newcomer's sample holds
    // some honest peers: what is under test is the flood of link setups, not the sample (that the
    // server hands out throw-away identities at all is the server's and the puzzle's part).
    const own = await createSignalServer({
      port: 0,
      host: '127.0.0.1',
      log: () => {},
      sampleSize: 6,
      ...({ puzzleBits: 0 } as Partial<SignalServerOptions>),
    })
    started.push(own)
    const attackers = await Promise.all(Array.from({ length: 64 }, () => stranger(own.address)))
    const honest = await Promise.all(Array.from({ length: 8 }, () => join({ signal: own.address })))
    await until('the honest peers to link', () => honest.every((n) => n.peers().length >= 1), 30_000)
    const newcomer = await makeNode({ signal: own.address })
    let flooding = true
    const flood = attackers.map(async (a, i) => {
      const hello = await encodeFrame({
        kind: Kind.Link,
        body: {
          t: 'hello',
          pk: a.identity.publicKey,
          nonce: new Uint8Array(32),
          mesh: true,
          ek: crypto.getRandomValues(new Uint8Array(32)),
        },
      })
      let sid = i * 1_000_000
      while (flooding) {
        const s = sid++
        a.client
          .signal(newcomer.id, { t: 'relay', mesh: true, sid: s })
          .then(() => withHello && a.client.relay(newcomer.id, withSid(s, hello)))
          .catch(() => {})
        await sleep(100)
      }
    })
    let inboundPeak = 0
    let pendingPeak = 0
    const watch = setInterval(() => {
      let n = 0
      for (const d of newcomer.dialer.dials.values()) if (d.inbound) n++
      inboundPeak = Math.max(inboundPeak, n)
      pendingPeak = Math.max(pendingPeak, newcomer.inbound.pendingRelays.size)
    }, 10)
    try {
      await sleep(300) // the flood is on before the newcomer registers
      const t0 = Date.now()
      await newcomer.start()
      const honestIds = new Set(honest.map((n) => n.id))
      const linked = () => newcomer.peers().filter((p) => honestIds.has(p.id)).length
      await until('links to two honest peers', () => linked() >= 2, 25_000)
      const took = Date.now() - t0
      // Let the flood run on a while, so the bounds are measured under it.
      await sleep(withHello ? 3000 : 6000)
      const refusals = Object.entries(newcomer.stats()).filter(([k]) =>
        /^(drop\.signal\.(inbound|relay)|dial\.inbound)/.test(k),
      )
      console.log(
        `newcomer under a 64-identity flood${withHello ? ' (with hellos)' : ''}: 2 honest links after ${took} ms ` +
          `(${linked()} after the flood went on); ` +
          `inbound peak ${inboundPeak}, pending relays peak ${pendingPeak}; ` +
          refusals.map(([k, v]) => `${k}=${v}`).join(' '),
      )
      // Promptly: a relay link takes a few round trips through the server (typically 0.1-4 s here);
      // the bound allows for the sample (some of its 6 are attackers, whose dials are given up after
      // 6 s of silence, or 15 s when they answer with a hello and stop) and for a loaded machine.
      // Before this fix the newcomer had fewer than 2 honest links 15 s after its start had waited
      // 15 s for a first link. Alone this takes 1.5-10 s; beside the suite's other worker on two
      // cores, with the link handshake's key exchange, it once took 18.7 s: the bound is 25 s.
      expect(took).toBeLessThan(25_000)
      expect(inboundPeak).toBeLessThanOrEqual(16)
      expect(refusals.reduce((n, [, v]) => n + v, 0)).toBeGreaterThan(0)
      // The flood took none of them away.
      expect(linked()).toBeGreaterThanOrEqual(2)
    } finally {
      flooding = false
      clearInterval(watch)
      await Promise.all(flood)
    }
    expect(processErrors).toEqual([])
  }

  it('keeps inbound slots for peers the server sampled: strangers holding theirs do not keep a sampled peer out', async () => {
    // The sampled peer registers before the node, the strangers after it: the node's bootstrap
    // sample holds the one and none of the others. The node makes no dials of its own (target 0),
    // so every link it gets is one a peer set up.
    const honest = await join({ targetPeers: 0 })
    const node = await makeNode({ targetPeers: 0 })
    // (Its start waits for a first link, which only the request below makes: not awaited.)
    node.start().catch(() => {})
    await until('the node to register', () => node.signalClient.state === 'registered')
    expect(node.manager.sampled.has(honest.id)).toBe(true)
    const strangers = await Promise.all(Array.from({ length: 12 }, () => stranger()))
    let flooding = true
    const flood = strangers.map(async (a, i) => {
      const hello = await encodeFrame({
        kind: Kind.Link,
        body: {
          t: 'hello',
          pk: a.identity.publicKey,
          nonce: new Uint8Array(32),
          mesh: true,
          ek: crypto.getRandomValues(new Uint8Array(32)),
        },
      })
      let sid = i * 1_000_000
      while (flooding) {
        const s = sid++
        a.client
          .signal(node.id, { t: 'relay', mesh: true, sid: s })
          .then(() => a.client.relay(node.id, withSid(s, hello)))
          .catch(() => {})
        await sleep(100)
      }
    })
    let strangersPeak = 0
    const watch = setInterval(() => {
      let n = 0
      for (const [id, d] of node.dialer.dials) if (d.inbound && id !== honest.id) n++
      strangersPeak = Math.max(strangersPeak, n)
    }, 10)
    try {
      await until(
        'the strangers to fill their slots',
        () => (node.counters['drop.signal.inbound-full.strangers'] ?? 0) > 0,
      )
      node.handle('echo', (d) => d)
      expect(node.peers()).toEqual([])
      const t0 = Date.now()
      expect(await honest.request(node.id, 'echo', 7)).toBe(7)
      console.log(
        `sampled peer linked in ${Date.now() - t0} ms while ${strangersPeak} strangers held their slots`,
      )
      expect(Date.now() - t0).toBeLessThan(5000)
      expect(strangersPeak).toBe(8)
      expect(node.peers().some((p) => p.id === honest.id)).toBe(true)
    } finally {
      flooding = false
      clearInterval(watch)
      await Promise.all(flood)
    }
    expect(processErrors).toEqual([])
  })

  it('64 throw-away identities fire relay signals at a newcomer: it links with the honest peers promptly', async () => {
    await flooded(false)
  })

  it('the same flood with a valid hello in every session: the setups are bounded, the newcomer still links', async () => {
    await flooded(true)
  })
})

describe('no unhandled rejection (issue 9, item 8)', () => {
  it('node.send of 5 MB while a send is in flight: MessageTooLargeError to the caller, nothing unhandled', async () => {
    const a = await join()
    const b = await join()
    await until('the two to link', () => a.peers().some((p) => p.id === b.id))
    const inFlight = a.send(b.id, 'x', { big: 'y'.repeat(2_000_000) })
    let caught: unknown
    try {
      await a.send(b.id, 'x', new Uint8Array(5e6))
    } catch (err) {
      caught = err
    }
    expect((caught as Error)?.name).toBe('MessageTooLargeError')
    await inFlight
    // The same through a link that is still opening (a dial in progress).
    const c = await join()
    let caught2: unknown
    try {
      await a.send(c.id, 'x', new Uint8Array(5e6))
    } catch (err) {
      caught2 = err
    }
    expect((caught2 as Error)?.name).toBe('MessageTooLargeError')
    await sleep(200)
    expect(processErrors).toEqual([])
  })
})

describe("the network's identity puzzle at link setup (issue 9, item 11)", () => {
  it('a peer whose key fails the puzzle cannot open a link, even through a server that does not check it', async () => {
    const bits = 8
    const victim = await join({ puzzleBits: bits })
    let weak = await generateIdentity({ puzzleBits: 0 })
    while (meetsPuzzle(weak.publicKey, bits)) weak = await generateIdentity({ puzzleBits: 0 })
    // The weak node runs with puzzleBits 0 itself (its own setting); its connection manager dials the
    // victim, the only other node (its start waits for a first link that never opens: not awaited).
    const attacker = await makeNode({ puzzleBits: 0 }, weak)
    attacker.start().catch(() => {})
    await until('the refusal to be counted', () => (victim.counters['link.refused.puzzle'] ?? 0) >= 1)
    expect(victim.peers().some((p) => p.id === attacker.id)).toBe(false)
    expect(victim.counters['link.handshake-closed.puzzle']).toBeGreaterThanOrEqual(1)
    expect(processErrors).toEqual([])
  })
})
