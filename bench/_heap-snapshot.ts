/**
 * A heap snapshot (v8.writeHeapSnapshot) reduced to bytes by kind, for the
 * server benchmark's breakdown of what a peer costs (bench/server.ts,
 * BENCH_HEAPSNAP=1): two snapshots, with and without the peers, are
 * subtracted kind by kind.
 *
 * A kind is an object's constructor ("Socket", "Map", "closure onData");
 * the backing stores that have no constructor of their own (arrays, hash
 * tables, property stores, strings, numbers) are charged to the object that
 * holds them, as "Socket.properties [array]" or "Map.table [array]", so the
 * table reads as what owns the bytes. Self sizes only: every byte is counted
 * once.
 */
import { readFileSync } from 'node:fs'

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[]
      node_types: [string[], ...unknown[]]
      edge_fields: string[]
      edge_types: [string[], ...unknown[]]
    }
  }
  nodes: number[]
  edges: number[]
  strings: string[]
}

/** Bytes and objects by kind (see the header). */
export function heapByKind(path: string): Map<string, { bytes: number; count: number }> {
  const s = JSON.parse(readFileSync(path, 'utf8')) as Snapshot
  const nf = s.snapshot.meta.node_fields
  const ef = s.snapshot.meta.edge_fields
  const N = nf.length
  const E = ef.length
  const [fType, fName, fSize, fEdges] = ['type', 'name', 'self_size', 'edge_count'].map((f) => nf.indexOf(f))
  const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map((f) => ef.indexOf(f))
  const nodeTypes = s.snapshot.meta.node_types[0]
  const edgeTypes = s.snapshot.meta.edge_types[0]
  const count = s.nodes.length / N
  const GENERIC = new Set([
    'Object',
    'Array',
    'closure ',
    'closure native_bind',
    'system / Context',
    'Node / CleanupQueue',
  ])
  // The first holder of every node, and the edge it is held by.
  const holder = new Int32Array(count).fill(-1)
  const holderEdge = new Array<string>(count)
  let edge = 0
  for (let i = 0; i < count; i++) {
    const edges = s.nodes[i * N + (fEdges as number)] as number
    for (let k = 0; k < edges; k++, edge += E) {
      const to = (s.edges[edge + (eTo as number)] as number) / N
      const et = edgeTypes[s.edges[edge + (eType as number)] as number]
      if (holder[to] !== -1 || et === 'weak' || et === 'shortcut') continue
      holder[to] = i
      const name = s.edges[edge + (eName as number)] as number
      holderEdge[to] = et === 'element' || et === 'hidden' ? `[${et}]` : (s.strings[name] ?? '?')
    }
  }
  const typeOf = (i: number) => nodeTypes[s.nodes[i * N + (fType as number)] as number] ?? '?'
  const nameOf = (i: number) => {
    const t = typeOf(i)
    const n = s.strings[s.nodes[i * N + (fName as number)] as number] ?? '?'
    return t === 'closure' ? `closure ${n}` : t === 'object' || t === 'native' ? n : `(${t})`
  }
  const owned = (i: number) => {
    const t = typeOf(i)
    return !['object', 'closure', 'native', 'synthetic'].includes(t) || GENERIC.has(nameOf(i))
  }
  const out = new Map<string, { bytes: number; count: number }>()
  for (let i = 0; i < count; i++) {
    const t = typeOf(i)
    let key = nameOf(i)
    if (owned(i) && t !== 'code') {
      // Up the chain of holders until one with a constructor (a few steps at most).
      let h = i
      let path = ''
      for (let step = 0; step < 6 && holder[h] !== -1; step++) {
        path = `.${holderEdge[h]}${path}`
        h = holder[h] as number
        if (!owned(h)) break
      }
      key = `${nameOf(h)}${path} ${key}`
    }
    const e = out.get(key) ?? { bytes: 0, count: 0 }
    e.bytes += s.nodes[i * N + (fSize as number)] as number
    e.count++
    out.set(key, e)
  }
  return out
}

/** `after` − `before`, per `peers`, largest first (kinds under `minBytes` per peer left out). */
export function perPeer(
  before: Map<string, { bytes: number; count: number }>,
  after: Map<string, { bytes: number; count: number }>,
  peers: number,
  minBytes = 8,
): { kind: string; bytesPerPeer: number; objectsPerPeer: number }[] {
  const rows: { kind: string; bytesPerPeer: number; objectsPerPeer: number }[] = []
  for (const [kind, a] of after) {
    const b = before.get(kind) ?? { bytes: 0, count: 0 }
    const bytesPerPeer = (a.bytes - b.bytes) / peers
    if (Math.abs(bytesPerPeer) >= minBytes)
      rows.push({ kind, bytesPerPeer: Math.round(bytesPerPeer), objectsPerPeer: (a.count - b.count) / peers })
  }
  return rows.sort((x, y) => y.bytesPerPeer - x.bytesPerPeer)
}
