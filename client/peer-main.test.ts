/**
 * weft-peer picks its WebRTC stack by --wrtc (or WEFT_WRTC), else the first
 * installed one, and says which in its first line. Runs the real command
 * (through tsx) against an in-process signal server.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSignalServer, type SignalServer } from '../signal-server/index.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
let server: SignalServer
const dirs: string[] = []

beforeAll(async () => {
  server = await createSignalServer({ port: 0, host: '127.0.0.1', log: () => {} })
})
afterAll(async () => {
  await server.close()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/** Run weft-peer until its first line (or its exit); then stop it. */
async function firstLine(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ out: string; err: string; code: number | null }> {
  const data = mkdtempSync(join(tmpdir(), 'weft-peer-test-'))
  dirs.push(data)
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(root, 'client/peer-main.ts'),
      '--signal',
      server.address,
      '--data',
      data,
      ...args,
    ],
    { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let out = ''
  let err = ''
  child.stderr?.on('data', (d) => {
    err += d
  })
  return new Promise((resolve) => {
    const done = (code: number | null) => resolve({ out, err, code })
    child.once('exit', done)
    child.stdout?.on('data', (d) => {
      out += d
      if (out.includes('\n')) {
        child.off('exit', done)
        child.once('exit', () => done(null))
        child.kill('SIGTERM')
      }
    })
  })
}

describe('weft-peer: the WebRTC stack', () => {
  it('takes the first installed stack without --wrtc', async () => {
    const r = await firstLine(['--network', 'peer-main-default'])
    expect(r.out).toMatch(/^weft-peer [0-9a-f]{40} joined peer-main-default \(WebRTC: node-datachannel\)/)
  })

  it('takes the stack --wrtc names, or WEFT_WRTC', async () => {
    // Three peers at once, each in its own network.
    const [flag, env, none] = await Promise.all([
      firstLine(['--network', 'peer-main-flag', '--wrtc', 'werift']),
      firstLine(['--network', 'peer-main-env'], { WEFT_WRTC: '@roamhq/wrtc' }),
      firstLine(['--network', 'peer-main-none', '--wrtc', 'none']),
    ])
    expect(flag.out).toContain('(WebRTC: werift)')
    expect(env.out).toContain('(WebRTC: @roamhq/wrtc)')
    expect(none.out).toContain('(WebRTC: none, relay only)')
  })

  it('refuses a stack it does not know, naming the ones it does', async () => {
    const r = await firstLine(['--wrtc', 'wrtc'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('--wrtc must be one of node-datachannel, werift, @roamhq/wrtc or none')
  })
})

describe('weft-peer: files', () => {
  it('keeps files in <data>/files within --files-max-bytes, and says how much it holds', async () => {
    const [r, byDefault] = await Promise.all([
      firstLine(['--network', 'peer-main-files', '--wrtc', 'none', '--files-max-bytes', '5000000']),
      firstLine(['--network', 'peer-main-files-default', '--wrtc', 'none']),
    ])
    expect(r.out).toMatch(/; files 0 of 5000000 B\n/)
    expect(byDefault.out).toContain(`files 0 of ${4 * 2 ** 30} B`)
  })

  it('refuses a --files-max-bytes that is not a positive integer', async () => {
    const bads = ['0', '-5', '1.5', 'lots']
    const rs = await Promise.all(bads.map((bad) => firstLine([`--files-max-bytes=${bad}`])))
    for (const [i, r] of rs.entries()) {
      expect(r.code, bads[i]).toBe(2)
      expect(r.err, bads[i]).toContain('--files-max-bytes must be a positive integer')
    }
  })
})
