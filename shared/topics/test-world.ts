/**
 * Topic nodes wired by hand for the unit tests (topics.test.ts,
 * repair.test.ts): frames queue until flushed, routed requests call the
 * target's handler directly, time moves only when told.
 */
import { bodyValue, NONCE_BYTES } from '../mesh/messages.ts'
import { createFakeKeyring } from '../sim/fake-keys.ts'
import type { Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import type { TopicMsg } from './messages.ts'
import { createTopics, type Topics, type TopicsOptions } from './topics.ts'

export const id = (n: number) => n.toString(16).padStart(40, '0')

/** Nodes wired by hand: frames queue, routed requests call the target's handler directly. */
export function world(n: number, opts: { owner: string; options?: TopicsOptions }) {
  const nodes = new Map<string, Topics>()
  const handlers = new Map<
    string,
    Map<string, (d: Value, m: { from: string }) => Promise<Value | undefined>>
  >()
  const delivered = new Map<string, Value[]>()
  const queue: [string, string, TopicMsg][] = []
  let now = 1_000_000
  for (let i = 0; i < n; i++) {
    const me = id(i + 1)
    handlers.set(me, new Map())
    delivered.set(me, [])
    nodes.set(
      me,
      createTopics(
        {
          id: me,
          keys: createFakeKeyring(me),
          now: () => now,
          random: Math.random,
          send: (to, msg) => queue.push([me, to, msg]),
          lookup: async () => opts.owner,
          owns: () => me === opts.owner,
          request: async (to, method, data) => {
            const fn = handlers.get(to)?.get(method)
            if (!fn) throw new Error('no route')
            return (await fn(data, { from: me })) ?? null
          },
          serve: (method, fn) => {
            handlers.get(me)?.set(method, fn)
            return () => {}
          },
          keyPosition: () => id(0),
          deliver: (_t, data) => delivered.get(me)?.push(data),
        },
        opts.options,
      ),
    )
  }
  const node = (k: string) => nodes.get(k) as Topics
  return {
    node,
    delivered,
    queue,
    handlers,
    advance: (ms: number) => {
      now += ms
    },
    now: () => now,
    async flush() {
      for (let i = 0; i < 1000 && queue.length > 0; i++) {
        const [from, to, msg] = queue.shift() as [string, string, TopicMsg]
        await nodes.get(to)?.handle(from, msg)
      }
    },
    async tickAll() {
      for (const t of nodes.values()) await t.tick(now)
      // Let the joins' chains of promises settle (the fake keyring is synchronous underneath).
      for (let i = 0; i < 200; i++) await Promise.resolve()
    },
  }
}

/** A publication as `origin` would sign it (signedTopic: what goes into the body's `t`). */
export async function signedPub(
  origin: string,
  topic: string,
  data: Value,
  time: number,
  signedTopic = `\u0000pub/${topic}`,
) {
  const keys = createFakeKeyring(origin)
  const payload = encodeValue(
    bodyValue({
      origin,
      key: keys.publicKey,
      topic: signedTopic,
      data,
      nonce: new Uint8Array(NONCE_BYTES),
      time,
    }),
  )
  const sig = await keys.sign(payload)
  return { type: 'pub' as const, topic, payload, sig, hops: 1 }
}
