/**
 * `node.files` on whole nodes (the production host, connection manager and
 * core) over the in-memory transport (test/mem-transport.ts): the swarm
 * hosted beside the core's protocols, its frames (Kind.Swarm) through the
 * wire encoding and the link's validator, providers found through the DHT.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateIdentity } from '../../shared/identity/keys.ts'
import { MemNet } from '../../test/mem-transport.ts'
import { until } from '../../test/until.ts'
import { OverlayNode } from '../overlay.ts'

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i += 65_536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65_536)))
  return out
}

/** Byte-for-byte equal (expect's deep equality walks a megabyte element by element, for seconds). */
const same = (x: Uint8Array, y: Uint8Array) => Buffer.from(x).equals(Buffer.from(y))

const net = new MemNet()
const nodes: OverlayNode[] = []

beforeAll(async () => {
  for (let i = 0; i < 4; i++) {
    const identity = await generateIdentity({ puzzleBits: 0 })
    const node = new OverlayNode(
      { identity, transport: net.transport },
      { signal: [], network: 'files', puzzleBits: 0, files: { maxBytes: 3 * 1024 * 1024 } },
    )
    await node.start()
    nodes.push(node)
  }
  await until('a ring of four', () => nodes.every((n) => n.inspect().ring.successors.length >= 3))
})

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.close()))
})

describe('node.files over whole nodes', () => {
  it('a file added on one node is fetched whole by two others at once, and then served by them', async () => {
    const [a, b, c, d] = nodes as [OverlayNode, OverlayNode, OverlayNode, OverlayNode]
    expect(a.files.loaded).toBeUndefined() // nothing loads the swarm until files are used
    const data = randomBytes(1_000_000) // 4 pieces of 256 KiB
    const f = await a.files.add(data, { name: 'noise.bin', type: 'application/octet-stream' })
    expect(f.id).toMatch(/^[0-9a-f]{64}$/)
    expect(f.uri).toBe(`weft:?xt=urn:weft:${f.id}&dn=noise.bin&xl=1000000`)
    const pieces: { index: number; from: string }[] = []
    const db = b.files.get(f.uri)
    db.on('piece', (e) => pieces.push(e))
    const dc = c.files.get(f.id)
    const [gotB, gotC] = await Promise.all([db.bytes(), dc.bytes()])
    expect(same(gotB, data)).toBe(true)
    expect(same(gotC, data)).toBe(true)
    expect(pieces.map((p) => p.index).sort()).toEqual([0, 1, 2, 3])
    expect(db.progress()).toMatchObject({ have: 4, total: 4, size: 1_000_000 })
    expect(db.manifest()).toEqual({
      size: 1_000_000,
      pieceSize: 262_144,
      pieces: 4,
      name: 'noise.bin',
      type: 'application/octet-stream',
    })
    const blob = await db.blob()
    expect(blob.type).toBe('application/octet-stream')
    expect(same(new Uint8Array(await blob.arrayBuffer()), data)).toBe(true)
    // A stream gives the pieces in order.
    const parts: Uint8Array[] = []
    for await (const p of dc.stream() as unknown as AsyncIterable<Uint8Array>) parts.push(p)
    expect(parts.map((p) => p.length)).toEqual([262_144, 262_144, 262_144, 1_000_000 - 3 * 262_144])
    // b and c now hold it and serve it: with a gone (its files removed), d still gets it.
    expect((await b.files.list()).map((x) => [x.id, x.complete, x.have, x.total])).toEqual([
      [f.id, true, 4, 4],
    ])
    await a.files.remove(f.id)
    expect(await a.files.list()).toEqual([])
    const got = await d.files.get(f.uri).bytes()
    expect(same(got, data)).toBe(true)
    const stats = d.stats()
    expect(stats['swarm.in.piece']).toBeGreaterThanOrEqual(4)
    expect(stats['drop.kind'] ?? 0).toBe(0)
  })

  it('refuses bad input with a named error, and keeps within its store limit', async () => {
    const [a] = nodes as [OverlayNode]
    expect(() => a.files.get('weft:?dn=x')).toThrow(TypeError)
    expect(() => a.files.get('not a link')).toThrow(TypeError)
    await expect(a.files.add('text' as unknown as Uint8Array)).rejects.toThrow(TypeError)
    // 3 MiB limit: a 4 MiB file does not fit, and nothing of it stays.
    await expect(a.files.add(randomBytes(4 * 1024 * 1024))).rejects.toMatchObject({
      name: 'StorageFullError',
    })
    expect(await a.files.list()).toEqual([])
    // An aborted download rejects AbortError.
    const ctl = new AbortController()
    const dl = a.files.get('ab'.repeat(32), { signal: ctl.signal })
    ctl.abort()
    await expect(dl.done()).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('a swarm frame from a node whose files are not loaded is dropped at the link, and a malformed one is counted', async () => {
    const [, b] = nodes as [OverlayNode, OverlayNode]
    const fresh = new OverlayNode(
      { identity: await generateIdentity({ puzzleBits: 0 }), transport: net.transport },
      { signal: [], network: 'files', puzzleBits: 0 },
    )
    await fresh.start()
    try {
      await until('a link to the fresh node', () => fresh.links.isOpen(b.id) || fresh.links.size > 0)
      const peer = [...fresh.links.values()][0]
      expect(peer).toBeDefined()
      const other = nodes.find((n) => n.id === peer?.peer) as OverlayNode
      // The fresh node never used files: a hello is refused by its link's validator.
      await other.sendDirect(fresh.id, { kind: 7, body: { t: 'hello', file: 'ab'.repeat(32) } })
      await until('the drop', () => (fresh.stats()['drop.mem.invalid'] ?? 0) >= 1)
      // Loaded: a malformed swarm message is dropped and counted by reason.
      await fresh.files.list()
      await other.sendDirect(fresh.id, { kind: 7, body: { t: 'piece', file: 'zz', index: -1 } })
      await until('the counted drop', () => (fresh.stats()['drop.swarm.file'] ?? 0) >= 1)
    } finally {
      await fresh.close()
    }
  })
})
