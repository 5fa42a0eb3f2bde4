/**
 * A destination that restarted (same identity, a new box key: box keys live
 * in memory only) is not sealed to with its dead key for the 24 h its old
 * record stays valid: the first envelope that no longer opens there makes it
 * send its current record to the (checked) source, and what follows opens.
 */
import { expect, it } from 'vitest'
import { lineNet, real, type StubNet } from '../../test/router-stub.ts'
import type { Value } from '../types.ts'

const pause = (net: StubNet, ms = 150) => real(net, new Promise((r) => setTimeout(r, ms)))
const stat = (n: { router: { counters: Record<string, number> } }, k: string) => n.router.counters[k] ?? 0

it('after the destination restarts with a new box key, envelopes to it open again (it tells the source its record)', async () => {
  const { net, a, b, c } = lineNet(1, { seal: true })
  await real(net, a.router.send(c.id, 't', 'before'))
  await pause(net)
  expect(stat(c, 'seal.opened')).toBe(1)

  // c restarts a minute later: the same identity, a new router, a new box key (a still holds the old record).
  await net.advance(60_000)
  const c2 = net.add(c.id)
  net.link(b.id, c2.id)
  c2.hops.set(a.id, b.id)
  const got: Value[] = []
  c2.router.onMessage((m) => void got.push(m.data))
  await pause(net)

  // The first envelope is sealed to the dead key: it cannot open, and is lost.
  await real(net, a.router.send(c.id, 't', 'lost'))
  await pause(net, 300)
  expect(stat(c2, 'drop.route.sealed')).toBe(1)
  // What a sends next is sealed to c's current key, and c reads it.
  await real(net, a.router.send(c.id, 't', 'after'))
  await pause(net, 300)
  expect(got).toEqual(['after'])
  // A request too, answered.
  c2.router.serve('echo', (d) => d)
  expect(await real(net, a.router.request(c.id, 'echo', 'hi'))).toBe('hi')
})
