/**
 * A real redis-server for the tests that need one: started on a free port
 * below the kernel's ephemeral range, probed until it answers, killed
 * afterwards. Each test file starts its own.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { createClient } from 'redis'

/** The secret the test instances share. */
export const redisSecret = 'the instances share this secret'

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Whether a listener can bind 127.0.0.1:`port` right now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/**
 * A free port for redis-server, below the kernel's ephemeral range. A port from listen(0) is in
 * that range, and between our check and redis-server's bind the kernel could hand it out again:
 * to another test file's listen(0), or as the local end of any outgoing connection (the suite
 * opens hundreds). Nothing here binds a fixed port below the range.
 */
async function freePort(): Promise<number> {
  let low = 32_768
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
  } catch {}
  const [from, to] = low > 11_000 ? [10_000, low - 1] : [1024, low - 1]
  for (let i = 0; i < 100; i++) {
    const port = from + Math.floor(Math.random() * (to - from + 1))
    if (await canListen(port)) return port
  }
  throw new Error(`no free port in ${from}-${to}`)
}

export interface RedisProcess {
  url: string
  stop(): void
}

/** Start redis-server (it must be installed: apt-get install -y redis-server). */
export async function startRedis(): Promise<RedisProcess> {
  if (spawnSync('redis-server', ['--version']).error) {
    throw new Error(
      'redis-server is not installed; the multi-instance tests need it: apt-get install -y redis-server',
    )
  }
  const port = await freePort()
  const redis: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  )
  let exited: number | null | undefined
  redis.once('exit', (code) => {
    exited = code
  })
  const url = `redis://127.0.0.1:${port}`
  const probe = createClient({ url })
  probe.on('error', () => {})
  const deadline = Date.now() + 20_000
  for (;;) {
    if (exited !== undefined)
      throw new Error(`redis-server exited (code ${exited}) before listening on ${port}`)
    try {
      await probe.connect()
      break
    } catch (err) {
      if (Date.now() > deadline) {
        redis.kill('SIGKILL')
        throw err
      }
      await sleep(50)
    }
  }
  await probe.close()
  return { url, stop: () => redis.kill('SIGKILL') }
}
