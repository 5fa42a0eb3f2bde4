/**
 * The signal server of a Playwright worker: weft's own `weft-signal`
 * (`dist/signal-server/main.js` of the installed package, or of a built
 * checkout) as a child process on a free loopback port, its output kept (the
 * newest lines) so that a failing test can print it.
 *
 * The first start asks for port 0 and reads the port the server logs; a
 * restart takes the same port again, so pages that know the URL reconnect.
 * Every peer of a test comes from 127.0.0.1, one source to the server, so
 * the per-source limits (which stand for the users behind one NAT) are
 * lifted; the per-node limits stay as in production.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The worker's signal server, as a test sees it (`weft.server`). */
export interface WeftSignalServer {
  /** `http://localhost:PORT`: what pages join with. */
  readonly url: string
  /** Its port (the same across restarts). */
  readonly port: number
  /** The process id while it runs. */
  readonly pid: number | undefined
  /** Whether the process is running. */
  readonly running: boolean
  /** Its output so far (the newest `logLines` lines), each as `[+12.345s] text`. */
  log(): string[]
  /** `/metrics`, parsed: `{ 'weft_rejected_total{reason="weak-identity"}': 2, ... }`. */
  metrics(): Promise<Record<string, number>>
  /** Stop it (SIGTERM, then SIGKILL after 5 s). Peers see it go, as in an outage. */
  stop(): Promise<void>
  /** Start it again on the same port (no-op while it runs). */
  start(): Promise<void>
  /** stop() then start(). */
  restart(): Promise<void>
}

export interface ServerProcessOptions {
  /** The folder served at the server's origin (STATIC_DIR), absolute. */
  serve?: string | undefined
  /** Environment set last. @default {} */
  env?: Record<string, string>
  /** @default 20000 */
  startTimeoutMs?: number
  /** @default 5000 */
  logLines?: number
  /** The port; 0 takes a free one. @default 0 */
  port?: number
  /** Lift the per-source limits (every page comes from 127.0.0.1). @default true */
  liftSourceLimits?: boolean
}

/** Per-source limits, lifted: every page of every test of the worker is one source, 127.0.0.1. */
const LOOPBACK_ENV: Record<string, string> = {
  MAX_CONNECTIONS_PER_SOURCE: '100000',
  MAX_SOCKETS_PER_SOURCE: '100000',
  REGISTRATIONS_PER_SOURCE_PER_MIN: '100000',
  MAX_IDENTITIES_PER_SOURCE: '100000',
  RELAY_BYTES_PER_SOURCE_PER_SEC: String(1 << 30),
}

/** The weft package this file belongs to (testing/playwright/ from source, dist/testing/playwright/ built). */
export function weftPackageRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'weft') return dir
      } catch {}
    }
    dir = dirname(dir)
  }
  throw new Error(`weft/testing/playwright: no weft package.json above ${from}`)
}

/** `weft-signal`'s entry: the built one, in the package and in a built checkout. */
export function signalServerMain(root = weftPackageRoot()): string {
  const main = join(root, 'dist', 'signal-server', 'main.js')
  if (!existsSync(main))
    throw new Error(
      `weft/testing/playwright: the signal server is not built (no ${main}); in a checkout of weft, run npm run build`,
    )
  return main
}

/** Prometheus text to `{ 'name{labels}': value }` (comments and unparsable lines left out). */
export function parseMetrics(text: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?)\s+(\S+)$/.exec(line)
    if (!m) continue
    const v = Number(m[2])
    if (!Number.isNaN(v)) out[m[1] as string] = v
  }
  return out
}

/** The kit's own handle: the test's, and dispose() for the worker's end. */
export interface ServerProcess extends WeftSignalServer {
  /** The folder it serves (STATIC_DIR), if any. */
  readonly serving: string | undefined
  /** Lines written so far (kept or not): a mark for linesSince. */
  lineCount(): number
  /** The kept lines from mark `n` on. */
  linesSince(n: number): string[]
  /** The marks of the last start: its first line, and the first after it answered /healthz. */
  lastStart(): { from: number; ready: number }
  /** Stop for good (the worker ends). */
  dispose(): Promise<void>
}

/** Start the server; resolves once it answers /healthz. */
export async function startServerProcess(o: ServerProcessOptions = {}): Promise<ServerProcess> {
  const main = signalServerMain()
  const logLines = o.logLines ?? 5000
  const startTimeoutMs = o.startTimeoutMs ?? 20_000
  const t0 = Date.now()
  // The newest logLines lines; `written` counts all, so marks stay valid as old lines go.
  const lines: string[] = []
  let written = 0
  const keep = (text: string) => {
    const at = `[+${((Date.now() - t0) / 1000).toFixed(3)}s]`
    for (const line of text.split('\n')) {
      if (line === '') continue
      lines.push(`${at} ${line}`)
      written++
      if (lines.length > logLines) lines.splice(0, lines.length - logLines)
    }
  }
  const since = (n: number) => lines.slice(Math.max(0, lines.length - (written - n)))
  let lastStart = { from: 0, ready: 0 }
  let port = o.port ?? 0
  let child: ChildProcess | undefined
  // A worker that ends without tearing down (process.exit) still takes its server with it.
  const killOnExit = () => child?.kill('SIGKILL')

  const launch = async (): Promise<void> => {
    const from = written
    const env: Record<string, string | undefined> = {
      ...process.env,
      ...(o.liftSourceLimits === false ? {} : LOOPBACK_ENV),
      PORT: String(port),
      HOST: '127.0.0.1',
      ...(o.serve === undefined ? {} : { STATIC_DIR: o.serve }),
      ...o.env,
    }
    const c = spawn(process.execPath, [main], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    child = c
    process.removeListener('exit', killOnExit)
    process.once('exit', killOnExit)
    let out = ''
    const onData = (d: Buffer) => {
      const s = d.toString()
      keep(s)
      if (port === 0 && out.length < 65_536) out += s
    }
    c.stdout?.on('data', onData)
    c.stderr?.on('data', onData)
    c.on('exit', (code, signal) => keep(`(weft-signal exited: ${signal ?? `code ${code}`})`))
    const deadline = Date.now() + startTimeoutMs
    // The port: ours on a restart, else the one it logs (`listening on http://127.0.0.1:PORT`).
    while (port === 0) {
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      if (m) port = Number(m[1])
      else await settle(c, deadline, lines)
    }
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) {
          lastStart = { from, ready: written }
          return
        }
      } catch {}
      await settle(c, deadline, lines)
    }
  }

  const stop = async (): Promise<void> => {
    const c = child
    child = undefined
    process.removeListener('exit', killOnExit)
    if (!c || c.exitCode !== null || c.signalCode !== null) return
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve())
      c.kill('SIGTERM')
      setTimeout(() => c.kill('SIGKILL'), 5000).unref()
    })
  }

  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null
  const server: ServerProcess = {
    serving: o.serve,
    lineCount: () => written,
    linesSince: since,
    lastStart: () => lastStart,
    get url() {
      return `http://localhost:${port}`
    },
    get port() {
      return port
    },
    get pid() {
      return running() ? child?.pid : undefined
    },
    get running() {
      return running()
    },
    log: () => [...lines],
    async metrics() {
      const r = await fetch(`http://127.0.0.1:${port}/metrics`)
      return parseMetrics(await r.text())
    },
    stop: async () => {
      await stop()
    },
    async start() {
      if (!running()) await launch()
    },
    async restart() {
      await stop()
      await launch()
    },
    async dispose() {
      await stop()
    },
  }
  try {
    await launch()
  } catch (err) {
    await server.dispose()
    throw err
  }
  return server
}

/** Wait a little for the server, or fail: it exited, or the deadline passed. */
async function settle(c: ChildProcess, deadline: number, lines: string[]): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null)
    throw new Error(`weft-signal exited while starting:\n${lines.slice(-40).join('\n')}`)
  if (Date.now() > deadline) {
    c.kill('SIGKILL')
    throw new Error(`weft-signal did not start in time:\n${lines.slice(-40).join('\n')}`)
  }
  await new Promise((r) => setTimeout(r, 50))
}
