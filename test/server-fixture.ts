/**
 * Signal servers and test clients a test file starts, closed after each test.
 * Call at the top level of a vitest file: `const { start, track } = serverFixture()`.
 * (Apart from signal-kit.ts, which the benchmark also loads without vitest.)
 */
import { afterEach } from 'vitest'
import { createSignalServer, type SignalServer, type SignalServerOptions } from '../signal-server/index.ts'
import type { TestClient } from './signal-kit.ts'

export function serverFixture(defaults: SignalServerOptions = {}) {
  const servers: SignalServer[] = []
  const clients: TestClient[] = []
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close()
    for (const s of servers.splice(0)) await s.close()
  })
  return {
    /** A server on a free loopback port, with the file's defaults and `opts`. */
    async start(opts: SignalServerOptions = {}): Promise<SignalServer> {
      const s = await createSignalServer({ port: 0, host: '127.0.0.1', ...defaults, ...opts })
      servers.push(s)
      return s
    },
    /** `c`, closed after the test. */
    track<T extends TestClient>(c: T): T {
      clients.push(c)
      return c
    },
  }
}
