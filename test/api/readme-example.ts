/**
 * The README's "API by example", compiled (never run) by
 * `npx tsc -p tsconfig.json --noEmit` under the project's strict settings,
 * so that the example stays true to the API. Only the import differs: the
 * README imports from 'weft'. Keep the two in step.
 */
import { joinOverlay, LeaseHeldError, TimeoutError, type WeftNode } from '../../client/index.ts'

declare const otherId: string

// --- README example begins
const node: WeftNode = await joinOverlay({
  signal: 'http://localhost:8080', // or several URLs (1 to 16), tried in order
  network: 'demo', // networks never mix
  relay: 'auto', // 'force': act as a firewalled node, every link relayed
  maxPeers: 8,
  timeoutMs: 30_000, // the first join retries until then, then throws SignalError
  onSignal: (s) => console.log(s.state, s.server, s.retryInMs), // connecting | registered | down | closed
})
node.id // 40 hex characters: SHA-256(public key), first 160 bits
node.peers() // [{ id, transport: 'webrtc' | 'relay' }]
node.on('peer:connect', ({ id }) => console.log('linked with', id))

// broadcast to every node, or publish to a topic's subscribers only; signed by the origin
type Chat = { text: string; picture?: Uint8Array }
const off = node.subscribe<Chat>('chat', (msg, { from, hops }) => console.log(from, hops, msg.text))
await node.broadcast('chat', { text: 'hello', picture: new Uint8Array([1, 2, 3]) })
await node.publish('chat', { text: 'to the subscribers of chat' })
off()

// routed unicast and RPC to any node of the network
await node.send(otherId, 'inbox', 'direct message')
node.handle<{ x: number; y: number }, number>('add', ({ x, y }) => x + y)
const sum = await node.request<number>(otherId, 'add', { x: 2, y: 40 }, { timeoutMs: 5000 }) // 42

// the replicated table, with leases
await node.sync.set('room/topic', 'weft', { leaseMs: 30_000 }) // this node owns the key for 30 s
const topic = node.sync.get<string>('room/topic') // string | undefined
node.sync.owner('room/topic') // our id while the lease lives
node.sync.on('change', ({ key, value, from }) => console.log(key, value, from))
await node.sync.delete('room/topic')

// the DHT: records owned by their author (BitTorrent BEP 44 style), and service discovery
await node.dht.put('profile', { name: 'Alice' }) // our own record: signed, sequence-numbered
const mine = await node.dht.get<{ name: string }>('profile') // ours: { name } | undefined
await node.dht.get('profile', { author: otherId }) // another node's record under the same key
await node.dht.getRecord('profile', { author: otherId }) // { key, author, value, deleted, seq, time }
await node.dht.delete('profile') // a signed tombstone, only ever our own
await node.dht.provide('service:chat') // provider records: a set many nodes write
await node.dht.findProviders('service:chat') // node ids

// errors are classes with a stable name
try {
  await node.request(otherId, 'slow', null, { timeoutMs: 100 })
} catch (err) {
  if (err instanceof TimeoutError) console.log('no answer in time')
  if (err instanceof LeaseHeldError) console.log(err.owner, err.expires)
}

node.stats() // peers, messagesIn/Out, bytesIn/Out, per-protocol and drop.* counters
const { links, topology, ring, signal } = node.inspect() // diagnostics: see "Inspecting a node"
await node.close()
// --- README example ends

export const used = [sum, topic, mine?.name, links, topology, ring, signal]
