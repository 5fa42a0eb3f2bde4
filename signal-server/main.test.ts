import { spawn, spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const main = join(root, 'signal-server', 'main.ts')

it('--help lists the settings', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', main, '--help'], { cwd: root, encoding: 'utf8' })
  expect(r.status).toBe(0)
  for (const s of [
    'PORT',
    'HOST',
    'REDIS_URL',
    'REDIS_SECRET',
    'RELAY_BYTES_PER_SEC',
    '--max-peers',
    'PUBLIC_URL',
    'PUZZLE_BITS',
    'TRUST_PROXY',
    'MAX_SOCKETS_PER_SOURCE',
    'MAX_IDENTITIES_PER_SOURCE',
    'HEADERS_TIMEOUT_MS',
  ])
    expect(r.stdout).toContain(s)
  // Usage as an installed package's bin, not a path inside this repository.
  expect(r.stdout).toMatch(/^usage: weft-signal /m)
  expect(r.stdout).not.toContain('node dist/')
})

it('logs the address it really listens on: every interface by default', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    cwd: root,
    env: { ...process.env, PORT: '0', HOST: '', MAX_PEERS: '10' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stderr.on('data', (d) => {
    out += d
  })
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no address logged: ${out}`)), 20_000)
      child.stdout.on('data', (d) => {
        out += d
        const m = /listening on .*/.exec(out)
        if (m) {
          clearTimeout(t)
          resolve(m[0])
        }
      })
    })
    // Node listens on :: (dual stack) where the machine has IPv6, else 0.0.0.0.
    const m =
      /^listening on http:\/\/(\[::\]|0\.0\.0\.0):(\d+) \(every (IPv4 )?interface.*here: (http:\/\/localhost:\d+)\)( \(demo not built: npm run build\))?$/.exec(
        line,
      )
    expect(m, line).not.toBeNull()
    expect(m?.[4]).toBe(`http://localhost:${m?.[2]}`)
    expect((await fetch(`http://127.0.0.1:${m?.[2]}/healthz`)).status).toBe(200)
  } finally {
    child.kill('SIGKILL')
  }
})

it('refuses to start with Redis but no secret, saying why', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', main], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', REDIS_URL: 'redis://127.0.0.1:1' },
  })
  expect(r.status).toBe(1)
  expect(r.stderr).toContain('REDIS_SECRET')
})

it('refuses to start with a TURN server it cannot give credentials for, naming the entry', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', main], {
    cwd: root,
    encoding: 'utf8',
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      ICE_SERVERS: '[{"urls":"stun:stun.example.org"},{"urls":"turn:turn.example.org:3478"}]',
    },
  })
  expect(r.status).toBe(1)
  expect(r.stderr).toContain('failed to start: iceServers (ICE_SERVERS) entry 2: a TURN server needs')
})

it('refuses unknown flags', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', main, '--nope'], { cwd: root, encoding: 'utf8' })
  expect(r.status).toBe(2)
  expect(r.stderr).toContain('unknown argument: --nope')
})

it('starts from the environment, logs its address, serves /healthz, and stops cleanly on SIGTERM', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    cwd: root,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', MAX_PEERS: '10' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d) => {
    out += d
  })
  child.stderr.on('data', (d) => {
    out += d
  })
  try {
    const address = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no address logged: ${out}`)), 20_000)
      child.stdout.on('data', () => {
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
        if (m?.[1]) {
          clearTimeout(t)
          resolve(m[1])
        }
      })
    })
    const health = await fetch(`${address}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({ ok: true, peers: 0 })
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
  }
})
