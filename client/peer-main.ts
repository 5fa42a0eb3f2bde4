#!/usr/bin/env node
/**
 * weft-peer: an always-on Node peer. It joins a network like a browser tab,
 * serves its share of the DHT and keeps it (and its identity and the sync
 * table) on disk, so a network of short-lived tabs keeps its data.
 *
 *   npx weft-peer --signal http://localhost:8080 --network demo --data ./peer-data
 */
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { joinOverlay } from './index.ts'

const HELP = `weft-peer: an always-on weft peer that keeps its share of the DHT on disk

  --signal URL     signal server (repeat for several; env WEFT_SIGNAL)      required
  --network NAME   network to join (env WEFT_NETWORK)                       default: default
  --data DIR       folder for the identity, the table and the DHT share     default: ./weft-peer-data
  --relay MODE     auto | force | never                                     default: auto
  --max-peers N    mesh degree bound                                        default: 8
  --help           this text
`

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      signal: { type: 'string', multiple: true },
      network: { type: 'string' },
      data: { type: 'string' },
      relay: { type: 'string' },
      'max-peers': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(HELP)
    return
  }
  const signal = values.signal ?? (process.env.WEFT_SIGNAL ? process.env.WEFT_SIGNAL.split(',') : [])
  if (signal.length === 0) {
    process.stderr.write(`weft-peer: --signal URL is required\n\n${HELP}`)
    process.exit(2)
  }
  const relay = (values.relay ?? 'auto') as 'auto' | 'force' | 'never'
  if (!['auto', 'force', 'never'].includes(relay)) {
    process.stderr.write('weft-peer: --relay must be auto, force or never\n')
    process.exit(2)
  }
  const maxPeers = values['max-peers'] ? Number(values['max-peers']) : 8
  if (!Number.isInteger(maxPeers) || maxPeers < 1) {
    process.stderr.write('weft-peer: --max-peers must be a positive integer\n')
    process.exit(2)
  }
  let wrtc: unknown
  try {
    wrtc = createRequire(import.meta.url)('@roamhq/wrtc')
  } catch {
    process.stderr.write('weft-peer: @roamhq/wrtc is not installed; using relay links only\n')
  }
  const node = await joinOverlay({
    signal,
    network: values.network ?? process.env.WEFT_NETWORK ?? 'default',
    relay: wrtc ? relay : 'force',
    maxPeers,
    dataDir: values.data ?? 'weft-peer-data',
    persistDht: true,
    ...(wrtc ? { wrtc } : {}),
  })
  const line = () => {
    const s = node.stats()
    return `peers ${s.peers} records ${s.dhtRecords} table ${s.syncEntries} in ${s.bytesIn} B out ${s.bytesOut} B`
  }
  console.log(`weft-peer ${node.id} joined ${values.network ?? 'default'}: ${line()}`)
  const status = setInterval(() => console.log(line()), 30_000)
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    clearInterval(status)
    await node.close()
    console.log('weft-peer: saved and closed')
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

main().catch((err) => {
  process.stderr.write(`weft-peer: ${err?.name ?? 'Error'}: ${err?.message ?? err}\n`)
  process.exit(1)
})
