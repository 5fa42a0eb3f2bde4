import { io } from 'socket.io-client'
import { afterEach, describe, expect, it } from 'vitest'
import { generateIdentity } from '../shared/identity/keys.ts'
import { meetsPuzzle } from '../shared/identity/puzzle.ts'
import { createSignalServer, type SignalServerOptions } from '../signal-server/index.ts'
import { type IoFactory, SignalClient } from './signal-client.ts'

const cleanup: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

/** Poll `cond` until it holds, with a deadline generous for a loaded machine. */
async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
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

  it('rejects with SignalError naming the reason when no server is reachable', async () => {
    const identity = await generateIdentity()
    const c = new SignalClient({
      servers: ['http://127.0.0.1:1'],
      network: 'sc',
      identity,
      io: io as unknown as IoFactory,
      // Refused at once; the timeout is long enough not to win that race on a loaded machine.
      connectTimeoutMs: 5000,
    })
    cleanup.push(() => c.close())
    const err = await c.start().catch((e: Error & { reason?: string }) => e)
    expect((err as Error).name).toBe('SignalError')
    expect((err as { reason?: string }).reason).toBe('unreachable')
  })

  it('surfaces a refused registration (bad network name) as SignalError with the server reason', async () => {
    const s = await server()
    const identity = await generateIdentity()
    const c = new SignalClient({
      servers: [s.address],
      network: 'no spaces allowed',
      identity,
      io: io as unknown as IoFactory,
    })
    cleanup.push(() => c.close())
    const err = (await c.start().catch((e) => e)) as Error & { reason?: string }
    expect(err.name).toBe('SignalError')
    expect(err.reason).toBe('bad-payload')
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
})
