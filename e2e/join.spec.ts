/**
 * What a new user meets when a browser joins (issue 12): the operator's
 * STUN/TURN servers reach the page's RTCPeerConnections; the first join
 * waits for a server that starts late; and what cannot work is named (an
 * insecure page, a browser without Ed25519, relay 'never' among relay
 * 'force' tabs, a bad network name).
 */
import { createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, test } from '@playwright/test'
import {
  blankPage,
  closePeer,
  freePort,
  openPeer,
  type Peer,
  peersOf,
  type SignalServerProcess,
  startSignalServer,
  until,
} from './fixtures.ts'

const web = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'web')

type W = Window & {
  node: { id: string }
  rtcPcs: RTCPeerConnection[]
  pcs: { pc: RTCPeerConnection; at: number; cert: string }[]
  certsMade: number
  statuses: { state: string; server?: string; retryInMs?: number }[]
  weft: { joinOverlay(o: unknown): Promise<{ id: string }> }
}

const servers: SignalServerProcess[] = []
const peers: Peer[] = []
test.afterEach(async () => {
  for (const p of peers.splice(0)) await closePeer(p)
  for (const s of servers.splice(0)) await s.stop()
})

/** An error thrown in a page, as data. */
interface Thrown {
  name: string
  message: string
  feature?: string
}

test("the operator's STUN/TURN servers (ICE_SERVERS, TURN_SECRET) reach each tab's RTCPeerConnections", async ({
  browser,
}) => {
  const secret = 'correct-horse-battery-staple'
  // Nothing answers on port 9: ICE finds no server-reflexive or relayed candidate and links over host ones.
  const server = await startSignalServer(undefined, {
    ICE_SERVERS: JSON.stringify([{ urls: 'stun:127.0.0.1:9' }, { urls: 'turn:127.0.0.1:9?transport=udp' }]),
    TURN_SECRET: secret,
  })
  servers.push(server)
  for (let i = 0; i < 2; i++) {
    const ctx = await browser.newContext()
    // Keep every RTCPeerConnection, to read the configuration it ended with (the first offer's is
    // made before the registration's answer, and given its ICE servers after: native-peer.ts).
    await ctx.addInitScript(() => {
      const w = window as unknown as W
      w.rtcPcs = []
      const Native = window.RTCPeerConnection
      window.RTCPeerConnection = class extends Native {
        constructor(config?: RTCConfiguration) {
          super(config)
          w.rtcPcs.push(this)
        }
      }
    })
    const page = await blankPage(ctx, server.url)
    const { join_ } = await import('./fixtures.ts')
    peers.push({ ctx, page, id: await join_(page, server.url, { network: 'ice' }) })
  }
  await until(
    async () => (await Promise.all(peers.map(peersOf))).every((l) => l.some((p) => p.transport === 'webrtc')),
    30_000,
    'a direct link',
  )
  for (const p of peers) {
    const configs = await p.page.evaluate(() =>
      (window as unknown as W).rtcPcs
        .filter((pc) => pc.connectionState === 'connected')
        .map((pc) => JSON.parse(JSON.stringify(pc.getConfiguration())) as RTCConfiguration),
    )
    expect(configs.length).toBeGreaterThan(0)
    for (const c of configs) {
      const [stun, turn] = c.iceServers ?? []
      expect(stun?.urls).toEqual(['stun:127.0.0.1:9'])
      expect(turn?.urls).toEqual(['turn:127.0.0.1:9?transport=udp'])
      expect(turn?.username).toMatch(new RegExp(`^\\d+:${p.id}$`))
      expect(turn?.credential).toBe(
        createHmac('sha1', secret)
          .update(turn?.username ?? '')
          .digest('base64'),
      )
    }
  }
})

test('a returning page links with the DTLS certificate its first visit saved, its first offer is made as its certificate is read, before it registers, and both hellos ride on the offer and answer', async ({
  browser,
}) => {
  const server = await startSignalServer()
  servers.push(server)
  const { join_, openPeer } = await import('./fixtures.ts')
  peers.push(await openPeer(browser, server.url, { network: 'cert' }))
  const ctx = await browser.newContext()
  // Record each RTCPeerConnection (when it was made, its certificate's fingerprint) and every certificate made.
  await ctx.addInitScript(() => {
    const w = window as unknown as W
    w.pcs = []
    w.certsMade = 0
    const Native = window.RTCPeerConnection
    const generate = Native.generateCertificate.bind(Native)
    window.RTCPeerConnection = class extends Native {
      constructor(config?: RTCConfiguration) {
        const c = config?.certificates?.[0]
        super(config)
        w.pcs.push({
          pc: this,
          at: performance.now(),
          cert: c ? (c.getFingerprints()[0]?.value ?? '?') : 'none',
        })
      }
      static override generateCertificate(k: AlgorithmIdentifier): Promise<RTCCertificate> {
        w.certsMade++
        return generate(k)
      }
    }
  })
  const visit = async () => {
    const page = await blankPage(ctx, server.url)
    const id = await join_(page, server.url, { network: 'cert' })
    const p = { ctx, page, id }
    await until(async () => (await peersOf(p)).some((l) => l.transport === 'webrtc'), 30_000, 'a direct link')
    const seen = await page.evaluate(() => {
      const w = window as unknown as W
      const registered = performance.getEntriesByName('weft:registered')[0]?.startTime ?? Number.NaN
      const identity = performance.getEntriesByName('weft:identity')[0]?.startTime ?? Number.NaN
      return {
        certs: w.pcs.map((x) => x.cert),
        made: w.certsMade,
        // The first connection: made before the registration's answer came, and the one that linked.
        firstBeforeRegistered: (w.pcs[0]?.at ?? Number.NaN) < registered,
        // A returning page makes it as soon as its certificate is read: before its identity is.
        firstBeforeIdentity: (w.pcs[0]?.at ?? Number.NaN) < identity,
        firstConnected: w.pcs[0]?.pc.connectionState === 'connected',
        connected: w.pcs.filter((x) => x.pc.connectionState === 'connected').length,
        // Both hellos went with the offer and answer (attempt-hello.ts): the link started with them.
        helloSignalled: (window as unknown as { node: { stats(): Record<string, number> } }).node.stats()[
          'link.hello-signalled'
        ],
        // This page's own dial yielded to the peer's offer (glare; the peer may have been dialling this
        // identity's previous session): then the page's answering connection linked, not its first.
        glareYield:
          (window as unknown as { node: { stats(): Record<string, number> } }).node.stats()[
            'link.glare-yield'
          ] ?? 0,
      }
    })
    await page.evaluate(() => (window as unknown as { node: { close(): Promise<void> } }).node.close())
    await page.close()
    return { id, ...seen }
  }
  const first = await visit()
  expect(first.made).toBe(1)
  expect(first.certs.length).toBeGreaterThan(0)
  const fingerprint = first.certs[0] as string
  expect(fingerprint).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){31}$/i)
  expect(new Set(first.certs)).toEqual(new Set([fingerprint]))
  // The same identity, and the same certificate, read from IndexedDB: none made on the way.
  const again = await visit()
  expect(again.id).toBe(first.id)
  expect(again.made).toBe(0)
  expect(new Set(again.certs)).toEqual(new Set([fingerprint]))
  expect(again.firstBeforeIdentity).toBe(true)
  for (const v of [first, again]) {
    expect(v.firstBeforeRegistered).toBe(true)
    expect(v.firstConnected || v.glareYield > 0).toBe(true)
    expect(v.connected).toBe(1)
    expect(v.helloSignalled).toBe(1)
  }
  await ctx.close()
})

test('a certificate made after the join gave up waiting for it makes no offer ahead', async ({ browser }) => {
  const server = await startSignalServer()
  servers.push(server)
  peers.push(await openPeer(browser, server.url, { network: 'late-cert' }))
  const ctx = await browser.newContext()
  // A first visit whose certificate takes 1.6 s (the join waits 1 s for it), and every connection made.
  await ctx.addInitScript(() => {
    const w = window as unknown as W
    w.pcs = []
    const Native = window.RTCPeerConnection
    const generate = Native.generateCertificate.bind(Native)
    window.RTCPeerConnection = class extends Native {
      constructor(config?: RTCConfiguration) {
        super(config)
        const c = config?.certificates?.[0]
        w.pcs.push({ pc: this, at: performance.now(), cert: c ? 'late' : 'none' })
      }
      static override generateCertificate(k: AlgorithmIdentifier): Promise<RTCCertificate> {
        return new Promise((resolve, reject) => setTimeout(() => generate(k).then(resolve, reject), 1600))
      }
    }
  })
  const page = await blankPage(ctx, server.url)
  const { join_ } = await import('./fixtures.ts')
  await join_(page, server.url, { network: 'late-cert' })
  await until(
    async () => (await peersOf({ ctx, page, id: '' })).some((l) => l.transport === 'webrtc'),
    30_000,
    'a direct link',
  )
  // Well past the certificate's arrival: no connection was made with it.
  await page.waitForTimeout(1500)
  const certs = await page.evaluate(() => (window as unknown as W).pcs.map((x) => x.cert))
  expect(certs.length).toBeGreaterThan(0)
  expect(certs.filter((c) => c === 'late')).toEqual([])
  await ctx.close()
})

test('the first join keeps trying a signal server that starts late, and says so on the way', async ({
  browser,
}) => {
  // The page and the bundle come from one server; the node joins another, not started yet.
  const pages = await startSignalServer()
  servers.push(pages)
  const port = await freePort()
  const ctx = await browser.newContext()
  const page = await blankPage(ctx, pages.url)
  const signal = `http://localhost:${port}`
  const joined = page.evaluate(
    async ({ origin, signal }) => {
      const w = window as unknown as W
      w.statuses = []
      const weft = await import(/* @vite-ignore */ `${origin}/weft.mjs`)
      const node = await weft.joinOverlay({
        signal,
        network: 'late',
        timeoutMs: 60_000,
        onSignal: (s: { state: string }) => w.statuses.push(s),
      })
      w.node = node
      return node.id as string
    },
    { origin: pages.url, signal },
  )
  await until(
    async () =>
      (await page.evaluate(
        () => (window as unknown as W).statuses?.filter((s) => s.state === 'down').length ?? 0,
      )) >= 2,
    30_000,
    'two failed attempts',
  )
  const late = await startSignalServer(port)
  servers.push(late)
  const id = await joined
  peers.push({ ctx, page, id })
  const statuses = await page.evaluate(() => (window as unknown as W).statuses)
  expect(statuses.filter((s) => s.state === 'connecting').length).toBeGreaterThanOrEqual(3)
  expect(statuses.find((s) => s.state === 'down')?.retryInMs).toBeGreaterThan(0)
  expect(statuses.at(-1)).toMatchObject({ state: 'registered', server: signal })
  expect(await (await fetch(`${late.url}/healthz`)).json()).toMatchObject({ peers: 1 })
})

test('an insecure page is told it needs a secure context, naming its origin', async ({ browser }) => {
  const server = await startSignalServer()
  servers.push(server)
  const ctx = await browser.newContext()
  const page = await ctx.newPage()
  // A plain-http origin that is not this machine (served by the test, not resolved by DNS).
  const origin = 'http://weft-insecure.test'
  await page.route(`${origin}/**`, (route) => {
    const path = new URL(route.request().url()).pathname
    if (path === '/weft.mjs')
      return route.fulfill({ contentType: 'text/javascript', body: readFileSync(join(web, 'weft.mjs')) })
    return route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>insecure</title>' })
  })
  await page.goto(`${origin}/`)
  expect(await page.evaluate(() => window.isSecureContext)).toBe(false)
  const thrown = await page.evaluate(async (signal) => {
    const weft = await import(/* @vite-ignore */ '/weft.mjs')
    return weft.joinOverlay({ signal }).then(
      () => null,
      (e: Error & { feature?: string }) => ({ name: e.name, message: e.message, feature: e.feature }),
    )
  }, server.url)
  expect(thrown).toEqual({
    name: 'UnsupportedError',
    feature: 'secure-context',
    message:
      'weft needs a secure context, and http://weft-insecure.test is not one: serve the page over https: ' +
      '(or from http://localhost while developing). WebCrypto, IndexedDB keys and Web Locks exist only there.',
  } satisfies Thrown)
  await ctx.close()
})

test('a browser whose WebCrypto lacks Ed25519 is told which feature is missing', async ({ browser }) => {
  const server = await startSignalServer()
  servers.push(server)
  const ctx = await browser.newContext()
  // An older browser, as far as weft can tell: Ed25519 is not a recognised algorithm.
  await ctx.addInitScript(() => {
    const subtle = crypto.subtle
    const refuse = (alg: unknown) =>
      (typeof alg === 'string' ? alg : (alg as { name?: string })?.name)?.toLowerCase() === 'ed25519'
    for (const m of ['importKey', 'generateKey'] as const) {
      const native = subtle[m].bind(subtle) as (...a: unknown[]) => Promise<unknown>
      Object.defineProperty(subtle, m, {
        value: (...args: unknown[]) =>
          refuse(args[m === 'importKey' ? 2 : 0])
            ? Promise.reject(new DOMException('Algorithm: Unrecognized name', 'NotSupportedError'))
            : native(...args),
      })
    }
  })
  const page = await blankPage(ctx, server.url)
  const thrown = await page.evaluate(async (signal) => {
    const weft = await import(/* @vite-ignore */ `${signal}/weft.mjs`)
    return weft.joinOverlay({ signal }).then(
      () => null,
      (e: Error & { feature?: string }) => ({ name: e.name, message: e.message, feature: e.feature }),
    )
  }, server.url)
  expect(thrown).toEqual({
    name: 'UnsupportedError',
    feature: 'Ed25519',
    message:
      "this browser's WebCrypto has no Ed25519 (NotSupportedError), which a weft identity is: " +
      'it needs Chrome or Edge 137+, Firefox 129+ or Safari 17+',
  } satisfies Thrown)
  await ctx.close()
})

test("argument errors in the browser, and a relay 'never' tab among relay 'force' tabs", async ({
  browser,
}) => {
  const server = await startSignalServer()
  servers.push(server)
  peers.push(await openPeer(browser, server.url, { network: 'mix', relay: 'force' }))
  const ctx = await browser.newContext()
  const page = await blankPage(ctx, server.url)
  const attempt = (opts: Record<string, unknown>) =>
    page.evaluate(
      async ({ signal, opts }) => {
        const weft = await import(/* @vite-ignore */ `${signal}/weft.mjs`)
        return weft.joinOverlay({ signal, ...opts }).then(
          // Joined after all: what the node saw, so that a failure says why (its counters, its links).
          (n: { stats(): Record<string, number>; peers(): unknown[] }) => ({
            joined: true,
            peers: n.peers(),
            stats: Object.fromEntries(
              Object.entries(n.stats()).filter(([k]) => /dial|signal|drop|link|relay/.test(k)),
            ),
          }),
          (e: Error) => ({ name: e.name, message: e.message }),
        )
      },
      { signal: server.url, opts },
    )
  expect(await attempt({ network: 'bad name' })).toEqual({
    name: 'TypeError',
    message: `network: 1 to 64 characters of letters A-Z a-z, digits 0-9, '.', '_' and '-' (got "bad name")`,
  })
  expect(await attempt({ network: 'mix', relay: 'never' })).toEqual({
    name: 'NoRouteError',
    message:
      "relay: 'never' cannot reach this network: 1 of the 1 peers the signal server offered link only through its relay " +
      "(they run relay: 'force'); with relay: 'auto' this node links with both",
  })
  await ctx.close()
})
