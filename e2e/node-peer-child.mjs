// A Node peer (the built package on @roamhq/wrtc) in a process of its own, driven by the
// scale test over stdin/stdout, one JSON line a call: {"c": n, "op": name, "a": [args]}
// answered {"c": n, "ok": value} or {"c": n, "err": message}. Its own process because
// @roamhq/wrtc can crash with SIGSEGV when many peer connections close (node-webrtc
// issues 360, 576; WonderInventions/node-webrtc 35): in the test runner's process that
// takes the Playwright worker, and whatever test it runs, down with it.
//
//   node e2e/node-peer-child.mjs <signal url> <network>
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'

const [signal, network] = process.argv.slice(2)
const require = createRequire(import.meta.url)
const { joinOverlay } = await import('../dist/client/index.js')
const node = await joinOverlay({ signal, network, wrtc: require('@roamhq/wrtc') })
/** What the peer got on the topics it subscribed to: "topic:data". */
const got = []

const ops = {
  id: () => node.id,
  peers: () => node.peers(),
  inspect: () => node.inspect(),
  stats: () => node.stats(),
  got: () => got,
  subscribe: (topic) => void node.subscribe(topic, (d) => got.push(`${topic}:${String(d)}`)),
  dhtPut: (k, v) => node.dht.put(k, v),
  dhtGet: (k, o) => node.dht.get(k, o),
  close: async () => {
    await node.close()
    setTimeout(() => process.exit(0), 100)
  },
}

const reply = (m) => process.stdout.write(`${JSON.stringify(m)}\n`)
for await (const line of createInterface({ input: process.stdin })) {
  const { c, op, a = [] } = JSON.parse(line)
  Promise.resolve()
    .then(() => ops[op](...a))
    .then(
      (ok) => reply({ c, ok: ok ?? null }),
      (err) => reply({ c, err: String(err?.message ?? err) }),
    )
}
