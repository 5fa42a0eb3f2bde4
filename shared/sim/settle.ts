/** Running a simulation until promises made in it settle. */
import type { Sim } from './sim.ts'

/** Run until every promise settles; those still unsettled after `maxMs` of virtual time are rejected with an Error. */
export async function settleAll<M, T>(
  sim: Sim<M>,
  ps: Promise<T>[],
  maxMs = 120_000,
): Promise<PromiseSettledResult<T>[]> {
  const out: (PromiseSettledResult<T> | undefined)[] = ps.map(() => undefined)
  let left = ps.length
  ps.forEach((p, i) => {
    p.then(
      (value) => {
        out[i] = { status: 'fulfilled', value }
        left--
      },
      (reason: unknown) => {
        out[i] = { status: 'rejected', reason }
        left--
      },
    )
  })
  // Let promises that are settled already report before the first event.
  await Promise.resolve()
  await sim.runUntilTrue(() => left === 0, maxMs)
  return out.map((r) => r ?? { status: 'rejected', reason: new Error(`did not settle within ${maxMs} ms`) })
}

/** Run until `p` settles (or `maxMs` of virtual time pass); then return or throw its outcome. */
export async function settle<M, T>(sim: Sim<M>, p: Promise<T>, maxMs = 120_000): Promise<T> {
  const [r] = await settleAll(sim, [p], maxMs)
  if (!r) throw new Error('unreachable')
  if (r.status === 'rejected') throw r.reason
  return r.value
}
