/**
 * Counters of the signal server and their Prometheus text rendering. Pure:
 * the caller passes gauges (peers per network, memory) in when rendering.
 */
export interface ServerCounters {
  signals: number
  /** What the signals counted in `signals` cost (signalBytesPerSec): their data as JSON, plus 64 each. */
  signalBytes: number
  relayBytes: number
  relayFrames: number
  /** Relay frames another instance forwarded that were delivered to a node here. */
  relayFramesRemote: number
  /** Signals another instance forwarded that were delivered to a node here. */
  signalsRemote: number
  registered: number
  replaced: number
  connections: number
  /** Invalid or refused events, by reason. */
  rejected: Map<string, number>
  /** Relay frames dropped, by reason (`congested-remote`, `remote-bad-payload`: frames from another instance). */
  relayErrors: Map<string, number>
  /** Sockets the server hung up on, by reason. */
  kicked: Map<string, number>
  /** socket.io packets refused before decoding (packet-guard.ts), by reason; each closed its connection. */
  packetsRefused: Map<string, number>
  /** Connections refused by a per-source or global limit before any event: `connections`, `sockets`. */
  limited: Map<string, number>
  /** Messages from Redis refused (inter-server.ts), by reason: bad-mac, replay, stale, malformed, too-large. */
  interServer: Map<string, number>
}

export function createCounters(): ServerCounters {
  return {
    signals: 0,
    signalBytes: 0,
    relayBytes: 0,
    relayFrames: 0,
    relayFramesRemote: 0,
    signalsRemote: 0,
    registered: 0,
    replaced: 0,
    connections: 0,
    rejected: new Map(),
    relayErrors: new Map(),
    kicked: new Map(),
    packetsRefused: new Map(),
    limited: new Map(),
    interServer: new Map(),
  }
}

export function inc(m: Map<string, number>, key: string, n = 1): void {
  m.set(key, (m.get(key) ?? 0) + n)
}

export interface Gauges {
  peersByNetwork: ReadonlyMap<string, number>
  sockets: number
  /** The longest engine.io write buffer (packets not yet taken by the transport) of any socket here. */
  unsentPacketsMax: number
  /** The most bytes held for any socket here and not yet written: its write buffer and its TCP stream's. */
  unsentBytesMax: number
  uptimeS: number
  memory: NodeJS.MemoryUsage
  /** Source addresses remembered (sources.ts). */
  sources: number
  /** Bytes of unfinished binary packets held (packet-guard.ts). */
  pendingBinaryBytes: number
}

/** A flat view for `metrics()` and tests: `rejected.bad-payload`, `relayErrors.quota`, … */
export function flatMetrics(c: ServerCounters, g: Gauges): Record<string, number> {
  let peers = 0
  for (const n of g.peersByNetwork.values()) peers += n
  const out: Record<string, number> = {
    peers,
    networks: g.peersByNetwork.size,
    sockets: g.sockets,
    connections: c.connections,
    registered: c.registered,
    replaced: c.replaced,
    signals: c.signals,
    signalBytes: c.signalBytes,
    relayBytes: c.relayBytes,
    relayFrames: c.relayFrames,
    relayFramesRemote: c.relayFramesRemote,
    signalsRemote: c.signalsRemote,
    unsentPacketsMax: g.unsentPacketsMax,
    unsentBytesMax: g.unsentBytesMax,
    sources: g.sources,
    pendingBinaryBytes: g.pendingBinaryBytes,
    heapUsedBytes: g.memory.heapUsed,
    rssBytes: g.memory.rss,
  }
  for (const [k, v] of c.rejected) out[`rejected.${k}`] = v
  for (const [k, v] of c.relayErrors) out[`relayErrors.${k}`] = v
  for (const [k, v] of c.kicked) out[`kicked.${k}`] = v
  for (const [k, v] of c.packetsRefused) out[`packetsRefused.${k}`] = v
  for (const [k, v] of c.limited) out[`limited.${k}`] = v
  for (const [k, v] of c.interServer) out[`interServer.${k}`] = v
  return out
}

/**
 * Networks named in weft_peers at most. Anyone may register in a network of their choosing: without a
 * bound, every name is a series in the operator's Prometheus and a line of every scrape.
 */
const MAX_NETWORK_SERIES = 100

/**
 * The MAX_NETWORK_SERIES networks with the most peers (ties: the first met), and the others summed as
 * `(others)`, which is no network's name. Sorts numbers only: ~1 ms at 20,000 networks.
 */
function largestNetworks(m: ReadonlyMap<string, number>): ReadonlyMap<string, number> {
  if (m.size <= MAX_NETWORK_SERIES) return m
  const counts = Float64Array.from(m.values()).sort()
  const threshold = counts[counts.length - MAX_NETWORK_SERIES] as number
  let ties = 0
  for (let i = counts.length - MAX_NETWORK_SERIES; i < counts.length && counts[i] === threshold; i++) ties++
  const out = new Map<string, number>()
  let others = 0
  for (const [k, v] of m) {
    if (v > threshold || (v === threshold && ties-- > 0)) out.set(k, v)
    else others += v
  }
  out.set('(others)', others)
  return out
}

// Label values here are network names ([A-Za-z0-9._-]) and fixed reason codes, but escape anyway.
const label = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')

/** Prometheus text exposition format (version 0.0.4). */
export function renderPrometheus(c: ServerCounters, g: Gauges): string {
  const lines: string[] = []
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`)
  }
  const byLabel = (key: string, m: ReadonlyMap<string, number>): [string, number][] =>
    [...m].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [`{${key}="${label(k)}"}`, v])

  metric(
    'weft_peers',
    'gauge',
    `Registered peers on this instance, by network (the ${MAX_NETWORK_SERIES} largest; the rest summed as "(others)").`,
    byLabel('network', largestNetworks(g.peersByNetwork)),
  )
  metric('weft_networks', 'gauge', 'Networks with peers on this instance.', [['', g.peersByNetwork.size]])
  metric('weft_sockets', 'gauge', 'Open socket.io connections (registered or not).', [['', g.sockets]])
  metric('weft_connections_total', 'counter', 'Connections accepted.', [['', c.connections]])
  metric('weft_registrations_total', 'counter', 'Successful registrations.', [['', c.registered]])
  metric('weft_replaced_total', 'counter', 'Sockets replaced by a new registration of the same id.', [
    ['', c.replaced],
  ])
  metric('weft_signals_total', 'counter', 'Signals relayed.', [['', c.signals]])
  metric(
    'weft_signal_bytes_total',
    'counter',
    'Bytes of the signals relayed, as the signal quota counts them (data as JSON, plus 64 each).',
    [['', c.signalBytes]],
  )
  metric('weft_relay_bytes_total', 'counter', 'Relayed frame bytes.', [['', c.relayBytes]])
  metric('weft_relay_frames_total', 'counter', 'Relayed frames.', [['', c.relayFrames]])
  metric(
    'weft_relay_remote_frames_total',
    'counter',
    'Relay frames from another instance delivered to a node here.',
    [['', c.relayFramesRemote]],
  )
  metric('weft_signals_remote_total', 'counter', 'Signals from another instance delivered to a node here.', [
    ['', c.signalsRemote],
  ])
  metric('weft_unsent_packets_max', 'gauge', 'Longest write buffer of any socket here, in packets.', [
    ['', g.unsentPacketsMax],
  ])
  metric(
    'weft_unsent_bytes_max',
    'gauge',
    'Most bytes held for any socket here and not yet written (write buffer and TCP stream).',
    [['', g.unsentBytesMax]],
  )
  metric(
    'weft_relay_dropped_total',
    'counter',
    'Relay frames dropped, by reason.',
    byLabel('reason', c.relayErrors),
  )
  metric(
    'weft_rejected_total',
    'counter',
    'Invalid or refused events, by reason.',
    byLabel('reason', c.rejected),
  )
  metric(
    'weft_kicked_total',
    'counter',
    'Sockets disconnected by the server, by reason.',
    byLabel('reason', c.kicked),
  )
  metric(
    'weft_packets_refused_total',
    'counter',
    'socket.io packets refused before decoding (the connection is closed), by reason.',
    byLabel('reason', c.packetsRefused),
  )
  metric(
    'weft_limited_total',
    'counter',
    'Connections refused by a per-source or global limit, by which.',
    byLabel('limit', c.limited),
  )
  metric(
    'weft_inter_server_refused_total',
    'counter',
    'Messages from Redis refused (forged, replayed, stale, malformed), by reason.',
    byLabel('reason', c.interServer),
  )
  metric('weft_sources', 'gauge', 'Source addresses remembered.', [['', g.sources]])
  metric('weft_pending_binary_bytes', 'gauge', 'Bytes of unfinished binary packets held.', [
    ['', g.pendingBinaryBytes],
  ])
  metric('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', [['', g.memory.rss]])
  metric('nodejs_heap_size_used_bytes', 'gauge', 'V8 heap used in bytes.', [['', g.memory.heapUsed]])
  metric('nodejs_heap_size_total_bytes', 'gauge', 'V8 heap total in bytes.', [['', g.memory.heapTotal]])
  metric('nodejs_external_memory_bytes', 'gauge', 'Memory of C++ objects bound to JS objects.', [
    ['', g.memory.external],
  ])
  metric('process_uptime_seconds', 'gauge', 'Seconds since the server started.', [
    ['', Math.round(g.uptimeS)],
  ])
  return `${lines.join('\n')}\n`
}
