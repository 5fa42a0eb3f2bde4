/**
 * The public API's argument checks (node/checks.ts): a bad argument is a
 * TypeError at the call that says what to write instead (README, "errors"),
 * not a request that never times out or a crash when the first message comes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestNetwork, type TestNetwork } from '../testing/node/index.ts'
import type { WeftNode } from './weft-node.ts'

describe('bad arguments are TypeErrors at the call', () => {
  let net: TestNetwork
  let a: WeftNode
  let b: WeftNode
  beforeAll(async () => {
    net = await createTestNetwork(2, { seed: 1 })
    await net.linked()
    ;[a, b] = net.nodes as [WeftNode, WeftNode]
    b.handle('slow', () => new Promise<null>(() => {}))
  })
  afterAll(() => net?.close())

  it.each(['5000', Number.NaN, -1, 0, Number.POSITIVE_INFINITY])(
    'request(…, { timeoutMs: %s }) rejects with a TypeError naming timeoutMs',
    async (timeoutMs) => {
      // net.run moves virtual time (a minute at most): a request let through would settle too.
      const asked = net.run(a.request(b.id, 'slow', null, { timeoutMs: timeoutMs as number }))
      await expect(asked).rejects.toThrow(TypeError)
      await expect(asked).rejects.toThrow(/timeoutMs/)
    },
  )

  it('subscribe and handle take a function', () => {
    expect(() => a.subscribe('t', 'not a function' as never)).toThrow(TypeError)
    expect(() => a.handle('m', 5 as never)).toThrow(/function/)
  })

  it('a node id in the wrong case is refused with what a node id is', async () => {
    await expect(a.request(b.id.toUpperCase(), 'slow', null)).rejects.toThrow(/40 lowercase hex/)
  })
})
