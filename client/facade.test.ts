/**
 * The object joinOverlay resolves to (facade.ts): exactly WeftNode's members
 * at run time, none of the node's internals; inspect() with the diagnostics
 * the demo draws; publish reaching a topic's subscribers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSignalServer, type SignalServer } from '../signal-server/index.ts'
import { until } from '../test/until.ts'
import { NodeFacade } from './facade.ts'
import { joinOverlay } from './index.ts'
import type { WeftNode } from './weft-node.ts'

/** WeftNode's members (weft-node.ts): what the application can reach, and nothing else. */
const MEMBERS = [
  'broadcast',
  'close',
  'dht',
  'files',
  'handle',
  'id',
  'inspect',
  'off',
  'on',
  'peers',
  'presence',
  'publish',
  'request',
  'send',
  'stats',
  'subscribe',
  'sync',
]

let server: SignalServer
let a: WeftNode
let b: WeftNode

/** Every property name reachable on `o` (own and inherited), but Object's. */
function reachable(o: object): string[] {
  const names = new Set<string>()
  for (let p: object | null = o; p && p !== Object.prototype; p = Object.getPrototypeOf(p))
    for (const k of Reflect.ownKeys(p)) if (typeof k === 'string' && k !== 'constructor') names.add(k)
  return [...names].sort()
}

beforeAll(async () => {
  server = await createSignalServer({ port: 0, host: '127.0.0.1', log: () => {} })
  const opts = { signal: server.address, network: 'facade', relay: 'force' as const }
  a = await joinOverlay(opts)
  b = await joinOverlay(opts)
  await until('a and b linked', () => a.peers().some((p) => p.id === b.id))
})

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()])
  await server?.close()
})

describe('the node joinOverlay returns', () => {
  it('has exactly the members of WeftNode: no mesh, chord, syncTable, signalClient, core or links', () => {
    expect(reachable(a)).toEqual(MEMBERS)
    for (const k of ['mesh', 'chord', 'syncTable', 'signalClient', 'core', 'neighbourLinks', 'links'])
      expect(k in a).toBe(false)
    // The tables it hands out are API objects too, not the protocols.
    expect(Object.keys(a.sync).sort()).toEqual(['delete', 'entries', 'get', 'lease', 'on', 'owner', 'set'])
    expect(Object.keys(a.dht).sort()).toEqual([
      'delete',
      'findProviders',
      'get',
      'getRecord',
      'lookup',
      'provide',
      'put',
    ])
    expect(Object.keys(a.presence).sort()).toEqual(['get', 'set'])
    for (const k of ['presenceNode', 'presence']) expect(k in a.presence).toBe(false)
    // node.files: the four operations and usage; not the front's engine.
    expect(Object.keys(a.files).sort()).toEqual(['add', 'get', 'list', 'remove', 'usage'])
    for (const k of ['engine', 'loaded', 'swarm']) expect(k in a.files).toBe(false)
  })

  it('inspect(): links with RTT and mesh role, the topology, the ring and the signal state', async () => {
    await until('the ring of two', () => a.inspect().ring.successors.includes(b.id))
    await until('a measured RTT', () => a.inspect().links.some((l) => Number.isFinite(l.rtt)))
    const seen = a.inspect()
    expect(seen.id).toBe(a.id)
    expect(seen.network).toBe('facade')
    expect(seen.closed).toBe(false)
    expect(seen.signal).toBe('registered')
    const link = seen.links.find((l) => l.id === b.id)
    expect(link).toMatchObject({ id: b.id, transport: 'relay', mesh: true })
    expect(link?.rtt).toBeGreaterThanOrEqual(0)
    expect(seen.topology[a.id]).toEqual([b.id])
    expect(seen.ring.joined).toBe(true)
    expect(seen.ring.successors[0]).toBe(b.id)
    // Two nodes: every finger there is is the other one.
    for (const f of seen.ring.fingers) expect(f).toBe(b.id)
    // A snapshot: changing it changes nothing in the node.
    seen.links.length = 0
    seen.ring.successors.length = 0
    expect(a.inspect().links).toHaveLength(1)
    expect(a.inspect().ring.successors[0]).toBe(b.id)
  })

  it('publish reaches the subscribers of its topic; typed payloads round-trip through request', async () => {
    const got: { text: string; from: string }[] = []
    const off = b.subscribe<{ text: string }>('news', (m, { from }) => got.push({ text: m.text, from }))
    await a.publish('news', { text: 'hello' })
    await until('the publication', () => got.length === 1)
    expect(got).toEqual([{ text: 'hello', from: a.id }])
    off()
    const stop = b.handle<{ x: number; y: number }, number>('add', ({ x, y }) => x + y)
    expect(await a.request<number>(b.id, 'add', { x: 2, y: 40 })).toBe(42)
    stop()
  })

  it('events: on returns the unsubscribe, off removes a listener; internals are for this package only', async () => {
    const seen: string[] = []
    const fn = (s: string) => seen.push(s)
    const offSignal = a.on('signal', fn)
    expect(typeof offSignal).toBe('function')
    a.off('signal', fn)
    offSignal()
    expect(NodeFacade.internals(a).id).toBe(a.id)
    expect(() => NodeFacade.internals({ ...a })).toThrow(TypeError)
  })
})
