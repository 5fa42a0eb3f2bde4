/**
 * The answering side of request/response: the handler registry, running a
 * request's handler at most once, and answering its copies from memory
 * (served.ts; the rules are in PROTOCOL-route.md). The router hands it each
 * request with a way to reply; how the answer travels is the router's.
 */
import { RemoteError } from '../errors.ts'
import { bump, type Counters } from '../protocol.ts'
import { isValue, type Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import { type AnswerMsg, MAX_ERROR_MESSAGE, type RequestMsg, routeMsgValue } from './messages.ts'
import type { RequestHandler } from './options.ts'
import { type Served, ServedMemory, type ServedOptions } from './served.ts'

export type Reply = (m: AnswerMsg) => Promise<void>

export interface Responder {
  /** Answer requests for `method` (one handler per method, the last wins); returns the undo. */
  serve(method: string, fn: RequestHandler): () => void
  /** Run `method`'s handler here and now (a request to ourselves). */
  call(method: string, data: Value, from: string): Promise<Value>
  /** A request from `from` (`sigKey`: the envelope it came in): run once, or answered from memory. */
  answer(from: string, m: RequestMsg, reply: Reply, sigKey: string | undefined): Promise<void>
  /** A copy of the envelope `sigKey` from `src` came again: if it was a request that has answered, answer again. */
  copy(src: string, sigKey: string, reply: Reply): void
  prune(now: number): void
  readonly size: { entries: number; bytes: number }
}

export function createResponder(deps: {
  served: ServedOptions
  now(): number
  counters: Counters
}): Responder {
  const handlers = new Map<string, RequestHandler>()
  const served = new ServedMemory(deps.served)
  const count = (key: string) => bump(deps.counters, key)

  async function call(method: string, data: Value, from: string): Promise<Value> {
    const h = handlers.get(method)
    if (!h) throw new RemoteError(`no handler for ${method}`)
    const out = await h(data, { from })
    const v = out === undefined ? null : out
    if (!isValue(v)) throw new TypeError(`handler for ${method} returned a value weft cannot carry`)
    return v
  }

  function again(e: Served, reply: Reply): void {
    if (!e.done) return count('route.request-running')
    if (!e.answer || !served.mayResend(e, deps.now())) return count('route.answer-not-resent')
    count('route.answer-resent')
    reply(e.answer).catch(() => count('route.reply-failed'))
  }

  return {
    serve(method, fn) {
      handlers.set(method, fn)
      return () => {
        if (handlers.get(method) === fn) handlers.delete(method)
      }
    },

    call,

    async answer(from, m, reply, sigKey) {
      const known = served.get(from, m.id)
      if (known) {
        count('route.request-again')
        return again(known, reply)
      }
      let answer: AnswerMsg
      if (!handlers.has(m.method)) {
        // Nothing runs, so nothing is remembered: a copy gets the same answer.
        answer = { t: 'err', id: m.id, code: 'no-handler', message: `no handler for ${m.method}` }
      } else {
        const e = served.start(from, m.id, sigKey, deps.now())
        try {
          answer = { t: 'res', id: m.id, data: await call(m.method, m.data, from) }
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err)
          // Room left for the rest of the message within MAX_ERROR_MESSAGE.
          answer = { t: 'err', id: m.id, code: 'remote', message: message.slice(0, MAX_ERROR_MESSAGE - 96) }
        }
        served.finish(e, answer, encodeValue(routeMsgValue(answer)).length)
      }
      await reply(answer).catch(() => count('route.reply-failed'))
    },

    copy(src, sigKey, reply) {
      const e = served.bySignature(src, sigKey)
      if (e) again(e, reply)
    },

    prune: (now) => served.prune(now),

    get size() {
      return served.size
    },
  }
}
