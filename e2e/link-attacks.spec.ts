/**
 * Issue 9, item 5 against a real browser: a Node attacker (this test
 * process) and a Chromium tab joined to the built signal server. Once, ten
 * small deflated frames that inflate to 4 MiB of MessagePack froze a tab for
 * 8 s. The tab measures the longest task on its main thread (the Long
 * Tasks API) and its event-loop lag (a 10 ms interval timer) while it is
 * attacked. The bound is on the task: the lag also counts the time the tab
 * waited for a CPU, and on a loaded 2-core machine that alone passed 250 ms
 * (337 ms, beside another test run, once):
 * - by a stranger, before any link is authenticated (a `relay` signal, then
 *   the frames on that session): nothing may be inflated or decoded;
 * - by a peer with an authenticated link: the frames, and frames of the
 *   costliest shape under the per-frame object limit, within the link's budget.
 */
import { deflateRawSync } from 'node:zlib'
import { expect, test } from '@playwright/test'
import { io } from 'socket.io-client'
import { NodeFacade } from '../client/facade.ts'
import { joinOverlay } from '../client/index.ts'
import type { Link } from '../client/links/link.ts'
import type { RelayPipe } from '../client/links/relay.ts'
import type { OverlayNode } from '../client/overlay.ts'
import { SignalClient } from '../client/signal-client.ts'
import { concatBytes } from '../shared/bytes.ts'
import { networkTag } from '../shared/crypto/network.ts'
import { generateIdentity } from '../shared/identity/keys.ts'
import { splitMessage } from '../shared/wire/chunk.ts'
import { FLAG_DEFLATE, Kind, WIRE_VERSION } from '../shared/wire/frame.ts'
import { MAX_VALUE_ITEMS } from '../shared/wire/value.ts'
import { openPeer, type Peer, serverAndPeers, until } from './fixtures.ts'

const env = serverAndPeers()
const NETWORK = 'link-attacks'

type W = {
  node: { id: string; stats(): Record<string, number>; peers(): { id: string }[] }
  lag: { max: number; task: number; stop(): void }
}

/** Start the tab's probes: the longest main-thread task, and the longest a 10 ms interval timer came late (ms). */
async function probe(p: Peer): Promise<void> {
  await p.page.evaluate(() => {
    const w = window as unknown as W
    let last = performance.now()
    const tasks = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) lag.task = Math.max(lag.task, e.duration)
    })
    const lag = {
      max: 0,
      task: 0,
      stop: () => {
        clearInterval(t)
        tasks.disconnect()
      },
    }
    tasks.observe({ type: 'longtask' })
    const t = setInterval(() => {
      const now = performance.now()
      lag.max = Math.max(lag.max, now - last - 10)
      last = now
    }, 10)
    w.lag = lag
  })
}

/** The longest main-thread task (only tasks over 50 ms are reported: 0 when none was) and timer lag, in ms. */
async function lagOf(p: Peer): Promise<{ task: number; lag: number }> {
  return p.page.evaluate(() => {
    const w = window as unknown as W
    w.lag.stop()
    return { task: w.lag.task, lag: w.lag.max }
  })
}

async function statsOf(p: Peer): Promise<Record<string, number>> {
  return p.page.evaluate(() => (window as unknown as W).node.stats())
}

function withSid(sid: number, piece: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + piece.length)
  new DataView(out.buffer).setUint32(0, sid)
  out.set(piece, 4)
  return out
}

/** 4 KiB deflated, 4 MiB of msgpack: one array of four million nils. */
function nilBomb(): Uint8Array {
  const n = 4 * 1024 * 1024 - 16
  const body = new Uint8Array(5 + n).fill(0xc0)
  body[0] = 0xdd
  new DataView(body.buffer).setUint32(1, n)
  return concatBytes(new Uint8Array([WIRE_VERSION, Kind.Mesh, FLAG_DEFLATE]), deflateRawSync(body))
}

/** The costliest body under the object limit: one map of 32,767 distinct short keys. */
function costlyFrame(salt: number): Uint8Array {
  const entries = (MAX_VALUE_ITEMS - 2) / 2
  const body = new Uint8Array(5 + entries * 6)
  body[0] = 0xdf
  new DataView(body.buffer).setUint32(1, entries)
  for (let i = 0; i < entries; i++) {
    const o = 5 + i * 6
    body.set(
      [0xa4, 0x61 + ((i + salt) % 26), 0x61 + (Math.floor(i / 26) % 26), 0x61 + (Math.floor(i / 676) % 26)],
      o,
    )
    body.set([0x61 + (Math.floor(i / 17_576) % 26), 0xc0], o + 4)
  }
  return concatBytes(new Uint8Array([WIRE_VERSION, Kind.Mesh, FLAG_DEFLATE]), deflateRawSync(body))
}

/** Relay pieces at about 200 KiB/s (the server's quota per node is 256 KiB/s). */
async function paced(send: (p: Uint8Array) => void, pieces: Uint8Array[]): Promise<void> {
  let bytes = 0
  for (const p of pieces) {
    send(p)
    bytes += p.length
    if (bytes >= 20 * 1024) {
      bytes = 0
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

test('a stranger sends a tab a relay signal and ten deflate bombs: nothing is decoded, no freeze', async ({
  browser,
}) => {
  const tab = await openPeer(browser, env.server.url, { network: NETWORK, relay: 'force' })
  env.peers.push(tab)
  const identity = await generateIdentity()
  const attacker = new SignalClient({
    servers: [env.server.url],
    // The network as nodes register it with the server (the name's hash).
    network: networkTag(NETWORK),
    identity,
    io: io as never,
  })
  try {
    await attacker.start()
    const sid = 0xbad
    await attacker.signal(tab.id, { t: 'relay', mesh: true, sid })
    await probe(tab)
    const bomb = nilBomb()
    for (let i = 0; i < 10; i++) attacker.relay(tab.id, withSid(sid, bomb))
    await until(
      async () => {
        const s = await statsOf(tab)
        return (s['drop.before-auth'] ?? 0) === 1 && (s['drop.relay-frame'] ?? 0) >= 9
      },
      30_000,
      'the tab to refuse all ten',
    )
    const { task, lag } = await lagOf(tab)
    console.log(
      `tab under pre-auth bombs: longest task ${task.toFixed(0)} ms, longest lag ${lag.toFixed(0)} ms`,
    )
    expect(task).toBeLessThan(250)
    const s = await statsOf(tab)
    expect(Object.keys(s).filter((k) => k.startsWith('drop.frame.'))).toEqual([])
  } finally {
    attacker.close()
  }
})

test('a linked peer sends a tab ten deflate bombs and ten of the costliest frames: no freeze', async ({
  browser,
}) => {
  const tab = await openPeer(browser, env.server.url, { network: NETWORK, relay: 'force' })
  env.peers.push(tab)
  let attacker: OverlayNode | undefined
  try {
    attacker = NodeFacade.internals(
      await joinOverlay({ signal: env.server.url, network: NETWORK, relay: 'force' }),
    )
    const a = attacker
    await until(
      async () => a.peers().some((p) => p.id === tab.id),
      30_000,
      'the attacker to link with the tab',
    )
    const link = (a as unknown as { links: Map<string, Link> }).links.get(tab.id)
    if (!link) throw new Error('no link')
    const sid = (link.pipe as RelayPipe).sid
    const before = await statsOf(tab)
    const bomb = nilBomb()
    const costly = Array.from({ length: 10 }, (_, i) => splitMessage(costlyFrame(i), 0x7000_0000 + i)).flat()
    await probe(tab)
    // Sealed on the link's secure channel (the attacker holds its keys), in order with the link's own.
    const send = (p: Uint8Array) =>
      void link.sendPiece(p, (b) => a.signalClient.relay(tab.id, withSid(sid, b))).catch(() => {})
    await paced(send, [...Array.from({ length: 10 }, () => bomb), ...costly])
    const d = (s: Record<string, number>, k: string) => (s[k] ?? 0) - (before[k] ?? 0)
    await until(
      async () => {
        const s = await statsOf(tab)
        return d(s, 'drop.frame.items') === 10 && d(s, 'drop.frame.invalid') === 10
      },
      60_000,
      'the tab to refuse all twenty',
    )
    const { task, lag } = await lagOf(tab)
    const s = await statsOf(tab)
    console.log(
      `tab under post-auth bombs and costly frames: longest task ${task.toFixed(0)} ms, longest lag ${lag.toFixed(0)} ms; ` +
        `throttled decode ${d(s, 'link.recv-throttled.decode')}, inflate ${d(s, 'link.recv-throttled.inflate')}`,
    )
    expect(task).toBeLessThan(250)
    // Still linked.
    expect(a.peers().some((p) => p.id === tab.id)).toBe(true)
  } finally {
    await attacker?.close()
  }
})
