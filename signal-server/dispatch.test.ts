/**
 * dispatch.ts on fakes: a signal to a node on this instance is served before
 * dispatch returns (no promise in between), one elsewhere through the
 * cluster, and a failure in either never escapes dispatch.
 */
import { describe, expect, it } from 'vitest'
import { TokenBucket } from '../shared/token-bucket.ts'
import { type Conn, State } from './connections.ts'
import type { ServerContext } from './context.ts'
import { dispatch } from './dispatch.ts'
import { createCounters } from './metrics.ts'

const ID = (c: string) => c.repeat(40)

function setup(opts: { touch?: () => unknown; signal?: () => Promise<string> } = {}) {
  const sent: { to: string; event: string; payload: unknown }[] = []
  const conn = (id: string): Conn =>
    ({
      socket: {
        emit: (event: string, payload: unknown) => sent.push({ to: id, event, payload }),
        // engine.io's socket, as sendSignal writes a signal to it: `2["signal",{…}]`.
        conn: {
          readyState: 'open',
          write: (text: string) => {
            const [event, payload] = JSON.parse(text.slice(1)) as [string, unknown]
            sent.push({ to: id, event, payload })
          },
        },
      },
      state: State.Registered,
      nonce: null,
      host: '',
      source: 's',
      network: 'n',
      id,
      events: new TokenBucket(100, 100, 0),
      strikes: null,
      bytes: null,
      signalBytes: null,
      timer: null,
      lastTouch: -1e9,
    }) as unknown as Conn
  const a = conn(ID('a'))
  const b = conn(ID('b'))
  const counters = createCounters()
  const ctx = {
    o: { signalMaxBytes: 100, signalBytesPerSec: 1000, signalBurstBytes: 1000 },
    counters,
    conns: {
      get: (_n: string, id: string) => (id === b.id ? b : undefined),
      congested: () => false,
      refuse: () => {},
      strike: () => {},
    },
    cluster: {
      touchEveryMs: 1000,
      hosts: { touch: opts.touch ?? (() => {}) },
      signal: opts.signal ?? (async () => 'unknown-peer'),
    },
  } as unknown as ServerContext
  return { ctx, a, b, sent, counters }
}

describe('dispatch: signal', () => {
  it('serves a local target before it returns', () => {
    const { ctx, a, b, sent, counters } = setup()
    const acks: unknown[] = []
    dispatch(ctx, a, 'signal', [{ to: b.id, data: { x: 1 } }, (x: unknown) => acks.push(x)])
    expect(sent).toEqual([{ to: b.id, event: 'signal', payload: { from: a.id, data: { x: 1 } } }])
    expect(acks).toEqual([{ ok: true }])
    expect(counters.signals).toBe(1)
  })

  it('refuses a signal over signalMaxBytes at once', () => {
    const { ctx, a, b, sent } = setup()
    const acks: unknown[] = []
    dispatch(ctx, a, 'signal', [{ to: b.id, data: 'x'.repeat(200) }, (x: unknown) => acks.push(x)])
    expect(sent).toEqual([])
    expect(acks).toEqual([{ ok: false, reason: 'too-large' }])
  })

  it('a host cache whose touch throws: dispatch does not throw, and the signal still goes', () => {
    const { ctx, a, b, sent } = setup({
      touch: () => {
        throw new Error('redis down')
      },
    })
    const acks: unknown[] = []
    expect(() =>
      dispatch(ctx, a, 'signal', [{ to: b.id, data: 1 }, (x: unknown) => acks.push(x)]),
    ).not.toThrow()
    expect(sent).toEqual([{ to: b.id, event: 'signal', payload: { from: a.id, data: 1 } }])
    expect(acks).toEqual([{ ok: true }])
  })

  it('a target elsewhere goes through the cluster, answered once it did; a rejection is dropped', async () => {
    const { ctx, a, counters } = setup({ signal: async () => 'ok' })
    const acks: unknown[] = []
    dispatch(ctx, a, 'signal', [{ to: ID('c'), data: 1 }, (x: unknown) => acks.push(x)])
    expect(acks).toEqual([])
    await new Promise((r) => setTimeout(r, 0))
    expect(acks).toEqual([{ ok: true }])
    expect(counters.signals).toBe(1)

    const failing = setup({ signal: () => Promise.reject(new Error('x')) })
    const acks2: unknown[] = []
    dispatch(failing.ctx, failing.a, 'signal', [{ to: ID('c'), data: 1 }, (x: unknown) => acks2.push(x)])
    await new Promise((r) => setTimeout(r, 0))
    expect(acks2).toEqual([{ ok: false, reason: 'unknown-peer' }])
  })
})
