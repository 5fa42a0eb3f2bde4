/**
 * Signing and checking a publication: the mesh's signed body (origin, key,
 * topic, data, nonce, signed time) with the topic marked PUB_PREFIX + topic.
 * A check runs in the order the mesh uses: shape, replay window (before any
 * costly work), origin = id of the key, signature. The id is the first 160
 * bits of the signature (msgIdOf), so a duplicate is known before decoding.
 */
import { MessageTooLargeError } from '../errors.ts'
import { createIdCache } from '../identity/id-cache.ts'
import type { Keyring } from '../identity/keys.ts'
import { type BroadcastBody, bodyValue, msgIdOf, NONCE_BYTES, parseBody } from '../mesh/messages.ts'
import type { SeenCache } from '../mesh/seen-cache.ts'
import type { Value } from '../types.ts'
import { encodeValue } from '../wire/value.ts'
import { MAX_TOPIC_CHARS, PUB_PREFIX } from './messages.ts'

export interface Signed {
  id: string
  body: BroadcastBody
  payload: Uint8Array
  sig: Uint8Array
}

export type CheckResult =
  | { ok: true; id: string; body: BroadcastBody }
  | {
      ok: false
      reason:
        | 'badPayload'
        | 'wrongTopic'
        | 'tooOld'
        | 'future'
        | 'forgotten'
        | 'originMismatch'
        | 'badSignature'
    }

export function createPublications(deps: {
  id: string
  keys: Keyring
  now(): number
  random(): number
  seen: SeenCache
  maxPayloadBytes: number
}) {
  const originOf = createIdCache(deps.keys)

  return {
    async sign(topic: string, data: Value): Promise<Signed> {
      const nonce = new Uint8Array(NONCE_BYTES)
      for (let i = 0; i < NONCE_BYTES; i++) nonce[i] = Math.floor(deps.random() * 256)
      const time = Math.floor(deps.now())
      const body: BroadcastBody = {
        origin: deps.id,
        key: deps.keys.publicKey,
        topic: PUB_PREFIX + topic,
        data,
        nonce,
        time,
      }
      const payload = encodeValue(bodyValue(body))
      if (payload.length > deps.maxPayloadBytes)
        throw new MessageTooLargeError(payload.length, deps.maxPayloadBytes)
      const sig = await deps.keys.sign(payload)
      return { id: msgIdOf(sig), body, payload, sig }
    },

    async check(topic: string, payload: Uint8Array, sig: Uint8Array): Promise<CheckResult> {
      if (payload.length > deps.maxPayloadBytes) return { ok: false, reason: 'badPayload' }
      const body = parseBody(payload, MAX_TOPIC_CHARS + PUB_PREFIX.length)
      if (!body) return { ok: false, reason: 'badPayload' }
      if (body.topic !== PUB_PREFIX + topic) return { ok: false, reason: 'wrongTopic' }
      const id = msgIdOf(sig)
      const admission = deps.seen.admit(body.origin, id, body.time, deps.now())
      if (admission !== 'ok') return { ok: false, reason: admission }
      try {
        if ((await originOf(body.key)) !== body.origin) return { ok: false, reason: 'originMismatch' }
        if (!(await deps.keys.verify(body.key, payload, sig))) return { ok: false, reason: 'badSignature' }
      } catch {
        return { ok: false, reason: 'badSignature' }
      }
      return { ok: true, id, body }
    },
  }
}
