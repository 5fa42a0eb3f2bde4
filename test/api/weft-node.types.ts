/**
 * Type-level tests of the public node (client/weft-node.ts): tsc checks this
 * file (`npx tsc -p tsconfig.json --noEmit`), it is never run. Each
 * `@ts-expect-error` line must fail to compile; an unused one is an error,
 * so a type that got looser fails the check.
 */
import type {
  FileDownload,
  FileInfo,
  FilesApi,
  NodeEvents,
  NodeInspection,
  PresenceEvent,
  PresenceInfo,
  SignalState,
  Value,
  WeftNode,
} from '../../client/index.ts'

declare const node: WeftNode

// Events are typed by name, and so are their payloads.
// @ts-expect-error a misspelt event name does not compile
node.on('peer:conect', () => {})
// @ts-expect-error nor does one that does not exist
node.off('message', () => {})
node.on('peer:connect', ({ id }) => id.toUpperCase())
// @ts-expect-error the payload of peer:disconnect has an id, nothing else
node.on('peer:disconnect', (p) => p.transport)
node.on('signal', (state) => {
  const s: SignalState = state
  return s
})
const closedPayload: NodeEvents['closed'] = undefined
void closedPayload

// Presence: typed events and states; its internals are not reachable.
node.on('presence', (e) => {
  const ev: PresenceEvent = e
  const kind: 'join' | 'update' | 'leave' = e.kind
  const state: Value | undefined = e.state
  return [ev, kind, state]
})
// @ts-expect-error a presence event has no 'from' (its node is 'id')
node.on('presence', (e) => e.from)
// @ts-expect-error kinds are join, update and leave
node.on('presence', (e) => e.kind === 'joined')
const present: Map<string, PresenceInfo<{ name: string }>> = node.presence.get<{ name: string }>()
const since: number | undefined = present.get(node.id)?.since
void since
const untypedPresence = node.presence.get()
// @ts-expect-error without a type parameter a state is a Value
const names: Map<string, PresenceInfo<{ name: string }>> = untypedPresence
void names
void node.presence.set({ name: 'alice' })
// @ts-expect-error a state must be a Value
void node.presence.set(new Date())
// @ts-expect-error presence's internals are not part of it
void node.presence.leave
// @ts-expect-error
void node.presenceNode

// The node's internals are not part of it.
// @ts-expect-error
void node.mesh
// @ts-expect-error
void node.chord
// @ts-expect-error
void node.syncTable
// @ts-expect-error
void node.signalClient
// @ts-expect-error
void node.core
// @ts-expect-error
void node.neighbourLinks

// Files: add takes a Blob or bytes; get answers a download at once; its events are typed.
// Their types are exported, so an app can name them.
const files: FilesApi = node.files
const dl: FileDownload = files.get(`weft:?xt=urn:weft:${'ab'.repeat(32)}`)
const added: Promise<FileInfo> = files.add(new Uint8Array(1))
void added
dl.on('progress', ({ have, total, peers, bytesPerSec }) => have + total + peers + bytesPerSec)
dl.on('piece', ({ index, from }) => `${index} ${from}`)
// @ts-expect-error a piece event has no 'data'
dl.on('piece', (e) => e.data)
// @ts-expect-error add takes a Blob or a Uint8Array, not a string
void node.files.add('text')
// @ts-expect-error the files front's engine is not part of it
void node.files.engine

// Payloads take type parameters; without them they are Values.
node.subscribe<{ text: string }>('chat', (m, { from, hops }) => `${m.text} ${from} ${hops}`)
// @ts-expect-error a subscriber of { text: string } has no body
node.subscribe<{ text: string }>('chat', (m) => m.body)
node.subscribe('raw', (v) => {
  const value: Value = v
  return value
})
node.handle<{ x: number; y: number }, number>('add', ({ x, y }) => x + y)
node.handle<{ x: number }, number>('async', async ({ x }) => x)
// @ts-expect-error the answer must be the declared Res
node.handle<{ x: number }, number>('add', ({ x }) => String(x))
// @ts-expect-error an answer must be a Value (a Date is not)
node.handle('date', () => new Date())
const answer: Promise<number> = node.request<number>('0'.repeat(40), 'add', { x: 1, y: 2 })
void answer
const untyped = node.request('0'.repeat(40), 'add', { x: 1, y: 2 })
// @ts-expect-error without a type parameter an answer is a Value, not a number
const asNumber: Promise<number> = untyped
void asNumber
// @ts-expect-error what is sent must be a Value
void node.broadcast('t', new Date())
// @ts-expect-error publish takes a Value too
void node.publish('t', () => 1)
const title: string | undefined = node.sync.get<string>('room/title')
void title
const raw = node.sync.get('room/title')
// @ts-expect-error sync.get is a Value without a type parameter
const notString: string | undefined = raw
void notString
const profile: Promise<{ name: string } | undefined> = node.dht.get<{ name: string }>('profile/alice')
void profile

// inspect() has the demo's diagnostics, typed.
const seen: NodeInspection = node.inspect()
const rtts: number[] = seen.links.map((l) => l.rtt)
const ring: string[] = [...seen.ring.successors, ...seen.ring.fingers]
const pred: string | null = seen.ring.predecessor
const topo: Record<string, string[]> = seen.topology
void [rtts, ring, pred, topo]
