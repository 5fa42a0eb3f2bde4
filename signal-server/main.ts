#!/usr/bin/env node
/**
 * `npm start`: the signal server as a process. Options come from the
 * environment (PORT, HOST, REDIS_URL, …) and flags (`--port 9000`); `--help`
 * lists them. Serves the built demo from `dist/web` unless told otherwise.
 * Runs compiled (`node dist/signal-server/main.js`) or from source
 * (`npx tsx signal-server/main.ts`).
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { helpText, parseCli } from './cli.ts'
import { createSignalServer } from './index.ts'

/** The folder holding package.json, above this file (signal-server/ from source, dist/signal-server/ built). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir
    dir = dirname(dir)
  }
  return process.cwd()
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
  options.log ??= (line) => console.error(`[weft-signal] ${line}`)
  const server = await createSignalServer(options)
  const built = existsSync(join(options.staticDir, 'index.html'))
  console.log(
    `weft signal server listening on ${server.address}` +
      `${options.redisUrl ? ` (redis ${new URL(options.redisUrl).host})` : ''}` +
      `${built ? '' : ' (demo not built: npm run build)'}`,
  )
  // Registrations are bound to these: a client that reaches the server by any other name is refused.
  console.log(
    `registrations accepted for ${server.publicUrls.join(', ')}` +
      `${options.publicUrls?.length ? '' : ' (set PUBLIC_URL to the address clients use)'}`,
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
