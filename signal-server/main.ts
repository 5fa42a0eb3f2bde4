#!/usr/bin/env node
/**
 * `weft-signal` (and `npm start` in a checkout): the signal server as a
 * process. Options come from the environment (PORT, HOST, REDIS_URL, …) and
 * flags (`--port 9000`); `--help` lists them. Serves the built demo from
 * weft's `dist/web` unless told otherwise. Runs compiled
 * (`node dist/signal-server/main.js`, the `weft-signal` bin) or from source
 * (`npx tsx signal-server/main.ts`).
 *
 * socket.io (and redis, for several instances) are optional peer
 * dependencies of the weft package, so that an app using weft in the browser
 * installs no server: the server is loaded only once the options are read,
 * and when socket.io is missing this says what to install.
 */
import { existsSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { helpText, parseCli } from './cli.ts'
import { missingPackage } from './optional-deps.ts'

/** The folder holding package.json, above this file (signal-server/ from source, dist/signal-server/ built). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir
    dir = dirname(dir)
  }
  return process.cwd()
}

/** Where the server really listens: `http://127.0.0.1:8080`, or every interface and a URL that reaches it here. */
function listeningOn(a: AddressInfo): string {
  const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
  if (a.address === '::') return `${url} (every interface, IPv6 and IPv4; here: http://localhost:${a.port})`
  if (a.address === '0.0.0.0') return `${url} (every IPv4 interface; here: http://localhost:${a.port})`
  return url
}

async function main(): Promise<void> {
  const { options, help, errors } = parseCli(process.argv.slice(2), process.env)
  if (help) {
    console.log(helpText())
    return
  }
  if (errors.length > 0) {
    for (const e of errors) console.error(e)
    console.error('try --help')
    process.exitCode = 2
    return
  }
  options.staticDir ??= join(packageRoot(), 'dist', 'web')
  // An app served from STATIC_DIR still finds /weft.js and /weft.mjs here.
  options.bundleDir ??= join(packageRoot(), 'dist', 'web')
  options.log ??= (line) => console.error(`[weft-signal] ${line}`)
  let createSignalServer: typeof import('./index.ts').createSignalServer
  try {
    ;({ createSignalServer } = await import('./index.ts'))
  } catch (err) {
    const missing = missingPackage(err)
    if (missing === undefined) throw err
    console.error(
      `weft signal server: the package ${missing} is not installed. The server's packages are optional ` +
        `peer dependencies of weft (a browser app needs none of them): npm install socket.io@^4.8.4` +
        ` (and redis@^5.12.1 to run several instances with REDIS_URL)`,
    )
    process.exitCode = 1
    return
  }
  const server = await createSignalServer(options)
  const built = existsSync(join(options.staticDir, 'index.html'))
  console.log(
    `weft signal server listening on ${listeningOn(server.httpServer.address() as AddressInfo)}` +
      `${options.redisUrl ? ` (redis ${new URL(options.redisUrl).host})` : ''}` +
      `${built ? '' : ' (demo not built: npm run build)'}`,
  )
  // Registrations are bound to these: a client that reaches the server by any other name is refused.
  console.log(
    `registrations accepted for ${server.publicUrls.join(', ')}` +
      `${options.publicUrls?.length ? '' : ' (set PUBLIC_URL to the address clients use)'}`,
  )
  const ice = (options.iceServers ?? []).flatMap((e) => (typeof e.urls === 'string' ? [e.urls] : e.urls))
  console.log(
    ice.length > 0
      ? `ICE servers handed to clients: ${ice.join(', ')}` +
          `${options.turnSecret ? `; TURN credentials made per client, valid ${options.turnCredentialTtlS ?? 86_400} s` : ''}`
      : "no ICE servers configured (ICE_SERVERS): peers that cannot link directly (behind NATs) use this server's relay, within its quota",
  )
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    console.log(`${signal}: closing`)
    const force = setTimeout(() => process.exit(1), 5000)
    force.unref()
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
}

main().catch((err: unknown) => {
  console.error(`weft signal server failed to start: ${(err as Error).message ?? err}`)
  process.exit(1)
})
