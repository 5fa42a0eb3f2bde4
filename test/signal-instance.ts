/**
 * One signal server in a process of its own, for tests that kill an
 * instance outright (signal-server/cluster-overlay.test.ts): options as JSON
 * in argv[2]; it sends `{ address }` over IPC once listening, answers
 * `'metrics'` with `{ metrics }`, and exits when its parent goes.
 */
import { createSignalServer } from '../signal-server/index.ts'

const server = await createSignalServer({ ...JSON.parse(process.argv[2] ?? '{}'), log: () => {} })
process.on('message', (m) => {
  if (m === 'metrics') process.send?.({ metrics: server.metrics() })
})
process.on('disconnect', () => process.exit(0))
process.send?.({ address: server.address })
