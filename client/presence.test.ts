/**
 * Presence wired into whole nodes (host, core, public API) over the
 * in-memory transport (test/mem-transport.ts), with no signal server: every
 * node sees every other with its state, updates reach all, close() sends the
 * leave and keeps its links long enough for it to arrive, bounds are
 * enforced, and presence frames from a link that is not a mesh link are
 * refused and counted. (Crashes are in e2e/presence.spec.ts and
 * shared/presence/presence.sim.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ValueTooLargeError } from '../shared/errors.ts'
import { generateIdentity } from '../shared/identity/keys.ts'
import { Kind } from '../shared/wire/frame.ts'
import { MemNet } from '../test/mem-transport.ts'
import { until } from '../test/until.ts'
import { NodeFacade } from './facade.ts'
import { OverlayNode } from './overlay.ts'
import type { PresenceEvent, WeftNode } from './weft-node.ts'

const net = new MemNet()
const inner: OverlayNode[] = []
const nodes: WeftNode[] = []
/** Every presence event each node emitted, by index. */
const events: PresenceEvent[][] = []

async function addNode(): Promise<WeftNode> {
  const identity = await generateIdentity({ puzzleBits: 0 })
  const node = new OverlayNode(
    { identity, transport: net.transport },
    { signal: [], network: 'mem', puzzleBits: 0, presence: { intervalMs: 1000 } },
  )
  const seen: PresenceEvent[] = []
  events.push(seen)
  // Listening before start(): a node's first joins come with its first links.
  node.on('presence', (e) => seen.push(e))
  await node.start()
  inner.push(node)
  const facade = new NodeFacade(node)
  nodes.push(facade)
  return facade
}

beforeAll(async () => {
  for (let i = 0; i < 3; i++) await addNode()
})

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()))
})

const ids = () => nodes.map((n) => n.id).sort()

describe('presence in a node', () => {
  it('every node sees every node (itself included), each seen join once', async () => {
    await until('all see all', () =>
      nodes.every((n) => [...n.presence.get().keys()].sort().join() === ids().join()),
    )
    for (const [i, n] of nodes.entries()) {
      const joins = (events[i] ?? []).filter((e) => e.kind === 'join').map((e) => e.id)
      expect(joins.sort()).toEqual(ids().filter((id) => id !== n.id))
      const me = n.presence.get().get(n.id)
      expect(me?.state).toBeNull()
      expect(me?.since).toBeLessThanOrEqual(Date.now())
    }
    const stats = nodes[0]?.stats() ?? {}
    expect(stats['presence.announced']).toBeGreaterThanOrEqual(1)
    expect(stats['presence.joined']).toBe(2)
  })

  it('an update reaches every node, as an update event and in get()', async () => {
    const [a, b, c] = nodes as [WeftNode, WeftNode, WeftNode]
    await a.presence.set({ name: 'alice', cursor: [1, 2] })
    expect(a.presence.get().get(a.id)?.state).toEqual({ name: 'alice', cursor: [1, 2] })
    await until('b and c see the update', () =>
      [b, c].every((n) => (n.presence.get<{ name?: string }>().get(a.id)?.state?.name ?? '') === 'alice'),
    )
    for (const i of [1, 2])
      expect(events[i]?.filter((e) => e.kind === 'update' && e.id === a.id).at(-1)?.state).toEqual({
        name: 'alice',
        cursor: [1, 2],
      })
  })

  it('refuses a state over 1 KiB (ValueTooLargeError) and one that is not a Value (TypeError)', async () => {
    const [a] = nodes as [WeftNode]
    await expect(a.presence.set('x'.repeat(2000))).rejects.toBeInstanceOf(ValueTooLargeError)
    await expect(a.presence.set(new Date() as never)).rejects.toBeInstanceOf(TypeError)
    expect(a.presence.get().get(a.id)?.state).toEqual({ name: 'alice', cursor: [1, 2] })
  })

  it('refuses presence frames from a node that is not a mesh neighbour, and counts them', async () => {
    const [a] = inner as [OverlayNode]
    const stranger = '0'.repeat(40)
    const pullsBefore = a.stats()['presence.pullIn'] ?? 0
    await a.core.handle(stranger, { kind: Kind.Presence, msg: { t: 'pull' } })
    expect(a.stats()['drop.presence.not-mesh']).toBe(1)
    expect(a.stats()['presence.pullIn'] ?? 0).toBe(pullsBefore)
  })

  it('close() sends the leave, and keeps its links until it has reached the others', async () => {
    const d = await addNode()
    await until('d is seen by all', () => nodes.every((n) => n.presence.get().size === 4))
    const others = nodes.filter((n) => n !== d)
    const leftAt = new Map<string, number>()
    for (const [i, n] of nodes.entries())
      if (n !== d)
        n.on('presence', (e) => {
          if (e.id === d.id && e.kind === 'leave') {
            expect(e.reason, `${i}`).toBe('left')
            leftAt.set(n.id, Date.now())
          }
        })
    const t0 = Date.now()
    await d.close()
    // Every other node had the leave before close() resolved (not after the 5 s crash bound).
    expect(leftAt.size).toBe(3)
    for (const t of leftAt.values()) expect(t - t0).toBeLessThan(1_500)
    for (const n of others) expect(n.presence.get().has(d.id)).toBe(false)
    expect(d.presence.get().size).toBe(0)
    nodes.splice(nodes.indexOf(d), 1)
  })
})
