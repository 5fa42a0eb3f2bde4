#!/usr/bin/env node
/**
 * weft-peer: an always-on Node peer. It joins a network like a browser tab,
 * serves its share of the DHT and keeps it (and its identity and the sync
 * table) on disk, so a network of short-lived tabs keeps its data.
 *
 *   npx weft-peer --signal http://localhost:8080 --network demo --data ./peer-data
 *
 * Files it holds (node.files, issue 13) live in <data>/files: one folder per
 * file, the manifest and each piece a file of its own (client/files/folder-store.ts),
 * at most --files-max-bytes (4 GiB by default).
 *
 * WebRTC: --wrtc names the stack; without it, the first installed of
 * node-datachannel, werift and @roamhq/wrtc; with none, relay links only.
 */
import { parseArgs } from 'node:util'
import { DEFAULT_FOLDER_MAX_BYTES } from './files/folder-store.ts'
import { type AdaptedWrtc, joinOverlay, loadWrtc, WRTC_STACKS } from './index.ts'

const HELP = `weft-peer: an always-on weft peer that keeps its share of the DHT on disk

  --signal URL     signal server (repeat for several; env WEFT_SIGNAL)      required
  --network NAME   network to join (env WEFT_NETWORK)                       default: default
  --data DIR       folder for the identity, the table and the DHT share,
                   and the files it holds (in DIR/files)                    default: ./weft-peer-data
  --relay MODE     auto | force | never                                     default: auto
  --max-peers N    mesh degree bound                                        default: 8
  --files-max-bytes N
                   most bytes of the files kept in DIR/files                default: ${DEFAULT_FOLDER_MAX_BYTES} (4 GiB)
  --wrtc STACK     WebRTC for Node: node-datachannel, werift, @roamhq/wrtc,
                   or none (relay links only) (env WEFT_WRTC)               default: the first installed
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
      'files-max-bytes': { type: 'string' },
      wrtc: { type: 'string' },
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
  const filesMaxBytes = values['files-max-bytes'] ? Number(values['files-max-bytes']) : undefined
  if (filesMaxBytes !== undefined && (!Number.isSafeInteger(filesMaxBytes) || filesMaxBytes < 1)) {
    process.stderr.write('weft-peer: --files-max-bytes must be a positive integer (bytes)\n')
    process.exit(2)
  }
  const wanted = values.wrtc ?? process.env.WEFT_WRTC
  const stacks: readonly string[] = WRTC_STACKS
  if (wanted !== undefined && wanted !== 'none' && !stacks.includes(wanted)) {
    process.stderr.write(`weft-peer: --wrtc must be one of ${WRTC_STACKS.join(', ')} or none\n`)
    process.exit(2)
  }
  let wrtc: AdaptedWrtc | undefined
  if (wanted !== 'none') {
    const tried: string[] = []
    try {
      wrtc = await loadWrtc(wanted as (typeof WRTC_STACKS)[number] | undefined, tried)
    } catch (err) {
      process.stderr.write(`weft-peer: ${(err as Error).message}; install it with npm install ${wanted}\n`)
      process.exit(2)
    }
    if (!wrtc)
      process.stderr.write(
        `weft-peer: no WebRTC stack loaded (${tried.join('; ')}); using relay links only. npm install node-datachannel gives direct links\n`,
      )
  }
  const dataDir = values.data ?? 'weft-peer-data'
  const node = await joinOverlay({
    signal,
    network: values.network ?? process.env.WEFT_NETWORK ?? 'default',
    relay: wrtc ? relay : 'force',
    maxPeers,
    dataDir,
    persistDht: true,
    ...(filesMaxBytes === undefined ? {} : { files: { maxBytes: filesMaxBytes } }),
    wrtc: wrtc ?? false,
  })
  const line = () => {
    const s = node.stats()
    return `peers ${s.peers} records ${s.dhtRecords} table ${s.syncEntries} in ${s.bytesIn} B out ${s.bytesOut} B`
  }
  // The files this peer holds (in <data>/files), served from now on.
  const held = await node.files.usage()
  console.log(
    `weft-peer ${node.id} joined ${values.network ?? 'default'} (WebRTC: ${wrtc?.stack ?? 'none, relay only'}): ${line()}; files ${held.used} of ${held.limit} B`,
  )
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
