/**
 * The router's sealed envelopes (option `seal`; PROTOCOL-route.md, "Sealed
 * envelopes"): this node's box keys and signed record, the records of
 * others (a bounded directory), sealing a body to a destination, opening
 * what was sealed to us, and the answers to our sealed requests.
 *
 * - Our box key pair is made at once and its record signed with the
 *   identity key; the record is signed again every 12 h (readers refuse one
 *   older than 24 h).
 * - A destination's record comes from its hello (a link we had: `learn`) or
 *   from a first routed request for it (BOX_METHOD, itself plain: a signed
 *   public record), one request per destination at a time.
 * - A body sealed to a destination's box key (shared/crypto/seal.ts, a
 *   session cached per destination) takes the signed head as its aad; the
 *   answer to a sealed request is sealed under the request's session and
 *   names the request's nonce (`re`), by which the requester finds the keys
 *   to open it while the request waits.
 */
import { toHex } from '../bytes.ts'
import {
  type BoxKeyPair,
  type BoxRecord,
  boxRecordValue,
  createBoxDirectory,
  createBoxKeyPair,
  parseBoxRecord,
  signBoxRecord,
} from '../crypto/box-record.ts'
import {
  createOpener,
  createSealer,
  type OpenedMessage,
  type Opener,
  REPLY_TAG,
  SEALED_TAG,
} from '../crypto/seal.ts'
import { NoRouteError } from '../errors.ts'
import { bump, type Counters } from '../protocol.ts'
import type { Value } from '../types.ts'
import { type Envelope, envelopeAad, type InnerMsg } from './messages.ts'
import type { RouterDeps } from './options.ts'
import type { createResponder } from './responder.ts'

/**
 * The internal method that answers with this node's signed box record (and
 * learns the asker's, which the request carries). It starts with NUL, which
 * the API refuses in method names, so no application handler can take it.
 */
export const BOX_METHOD = '\u0000box'

/** A node re-signs its box record this often (a reader refuses one older than 24 h). */
const BOX_RESIGN_MS = 12 * 60 * 60 * 1000

/** A source whose envelope did not open here is sent our record at most this often. */
const BOX_TELL_MS = 60_000
/** Sources remembered for that (the oldest go first). */
const BOX_TELL_MAX = 1024

/** How an answer goes back sealed: under the session of the sealed request it answers. */
export interface ReplySeal {
  sealReply: OpenedMessage['sealReply']
  /** The request envelope's nonce: the requester finds the session's keys by it. */
  re: Uint8Array
}

/** An envelope's body as its destination reads it. */
export interface Unsealed {
  plain: Uint8Array
  /** It came sealed to us: its answer goes back sealed this way. */
  seal?: ReplySeal
  /** It is the sealed answer to one of our requests. */
  reply?: boolean
}

export interface SealingDeps {
  readonly keys: RouterDeps['keys']
  now(): number
  /** The router's own counters (seal.*, drop.route.* land there). */
  readonly counters: Counters
  /** A plain routed request (for a box record). */
  request(to: string, method: string, data: Value, opts: { timeoutMs: number }): Promise<Value>
  /** Is the request with this id still waiting for its answer? */
  waiting(id: number): boolean
}

export interface Sealing {
  /**
   * Does `inner`, in an envelope to `dst`, go sealed? Messages and requests
   * (but the box request) always: their record is fetched first if need be.
   * A link-setup signal only when the record is at hand: it must not wait
   * for (or fail on) a fetch over a ring that may not yet carry the answer
   * back, and it says no more than the signal server sees of it anyway. Not
   * an answer to a plain request, nor a noroute.
   */
  sealable(dst: string, inner: InnerMsg): boolean
  /** `body` sealed to `dst` (its record fetched if need be); a request's answer will open by `n`. */
  seal(dst: string, inner: InnerMsg, body: Uint8Array, aad: Uint8Array, n: Uint8Array): Promise<Uint8Array>
  /** The plaintext of an envelope addressed here, or null (counted) when it does not open. */
  unseal(e: Envelope): Promise<Unsealed | null>
  /** Answer BOX_METHOD with our record (and learn the asker's). */
  serve(responder: ReturnType<typeof createResponder>): void
  /** A record from a hello. */
  learn(id: string, record: BoxRecord): void
  boxRecord(): BoxRecord | undefined
  tick(now: number): void
  /** The sealing parts' own counters (seal.*, box.*, drop.seal.*, drop.box.*). */
  counters(): Counters
}

export function createSealing(deps: SealingDeps, timeoutMs: number): Sealing {
  const count = (key: string) => bump(deps.counters, key)
  const failed = (key: string) => () => count(key)
  const sealer = createSealer()
  const directory = createBoxDirectory({ keys: deps.keys })
  let ownRecord: BoxRecord | undefined
  const own: Promise<{ keys: BoxKeyPair; opener: Opener }> = (async () => {
    const keys = await createBoxKeyPair()
    ownRecord = await signBoxRecord(deps.keys, keys.publicKey, Math.floor(deps.now()))
    return { keys, opener: createOpener(keys) }
  })()
  let opener: Opener | undefined
  let resigning = false
  own.then((x) => {
    opener = x.opener
  }, failed('seal.no-box-key'))
  /** Box records being asked for, by node: one request each at a time. */
  const boxAsks = new Map<string, Promise<BoxRecord>>()
  /** Sources told our record lately (a body of theirs did not open here) -> when. */
  const told = new Map<string, number>()
  /** Request envelope nonce (hex) -> how to open its sealed answer, while the request waits. */
  const replyOpeners = new Map<
    string,
    { id: number; open: (b: Uint8Array, aad: Uint8Array) => Promise<Uint8Array | null> }
  >()

  /**
   * The box record of `dst`: held, or asked for with a (plain) routed request
   * that carries ours. Rejects with NoRouteError when `dst` shows none that
   * verifies: nothing is then sent to it in the clear.
   */
  function boxOf(dst: string): Promise<BoxRecord> {
    const held = directory.get(dst)
    if (held) return Promise.resolve(held)
    const asking = boxAsks.get(dst)
    if (asking) return asking
    const ask = (async () => {
      await own
      const answer = await deps.request(dst, BOX_METHOD, ownRecord ? boxRecordValue(ownRecord) : null, {
        timeoutMs,
      })
      const rec = parseBoxRecord(answer)
      const verdict = rec ? await directory.learn(dst, rec, deps.now()) : 'malformed'
      const got = directory.get(dst)
      if (!got) throw new NoRouteError(dst, `${dst} showed no box key to seal to (${verdict})`)
      return got
    })()
    boxAsks.set(dst, ask)
    const done = () => {
      if (boxAsks.get(dst) === ask) boxAsks.delete(dst)
    }
    ask.then(done, done)
    return ask
  }

  /**
   * A body `src` sealed to us did not open: most likely it holds the record
   * of an earlier run of ours (box keys live in memory only, and a record
   * stays valid 24 h). Our box request carries our current record, which its
   * BOX_METHOD handler keeps in place of the older one; at most once a
   * minute per source (`src` is the envelope's checked signer).
   */
  function tellBox(src: string): void {
    const now = deps.now()
    if ((told.get(src) ?? Number.NEGATIVE_INFINITY) > now - BOX_TELL_MS) return
    told.delete(src)
    told.set(src, now)
    if (told.size > BOX_TELL_MAX) {
      const oldest = told.keys().next().value
      if (oldest !== undefined) told.delete(oldest)
    }
    count('box.told')
    ;(async () => {
      await own
      const answer = await deps.request(src, BOX_METHOD, ownRecord ? boxRecordValue(ownRecord) : null, {
        timeoutMs,
      })
      const rec = parseBoxRecord(answer)
      if (rec) await directory.learn(src, rec, deps.now())
    })().catch(failed('box.tell-failed'))
  }

  return {
    sealable: (dst, inner) =>
      inner.t === 'msg' ||
      (inner.t === 'sig' && directory.get(dst) !== undefined) ||
      (inner.t === 'req' && inner.method !== BOX_METHOD),

    async seal(dst, inner, body, aad, n) {
      const rec = await boxOf(dst)
      const sealed = await sealer.seal(rec.boxKey, body, aad)
      if (inner.t === 'req') replyOpeners.set(toHex(n), { id: inner.id, open: sealed.openReply })
      return sealed.bytes
    },

    async unseal(e) {
      const aad = envelopeAad(e.src, e.dst, e.nonce, e.signedAt)
      if (e.body[0] === SEALED_TAG) {
        const mine = (await own.catch(() => undefined))?.opener
        const opened = mine ? await mine.open(e.body, aad) : null
        if (!opened) {
          count('drop.route.sealed')
          if (mine) tellBox(e.src)
          return null
        }
        return { plain: opened.plaintext, seal: { sealReply: opened.sealReply, re: e.nonce } }
      }
      if (e.body[0] === REPLY_TAG) {
        const waiting = e.re && replyOpeners.get(toHex(e.re))
        if (!waiting) {
          count('drop.route.unexpected-answer')
          return null
        }
        const plain = await waiting.open(e.body, aad)
        if (!plain) {
          count('drop.route.sealed')
          return null
        }
        return { plain, reply: true }
      }
      return { plain: e.body }
    },

    serve(responder) {
      // Our box record, for whoever asks (it seals to us then); the asker's comes along.
      responder.serve(BOX_METHOD, async (data, { from }) => {
        const theirs = parseBoxRecord(data ?? undefined)
        if (theirs) await directory.learn(from, theirs, deps.now())
        await own
        return ownRecord ? boxRecordValue(ownRecord) : null
      })
    },

    learn(id, record) {
      directory.learn(id, record, deps.now()).catch(failed('drop.box.error'))
    },

    boxRecord: () => ownRecord,

    tick(now) {
      sealer.tick(now)
      opener?.tick(now)
      directory.tick(now)
      for (const [k, w] of replyOpeners) if (!deps.waiting(w.id)) replyOpeners.delete(k)
      for (const [src, at] of told) if (at <= now - BOX_TELL_MS) told.delete(src)
      // Re-sign our record well before readers would refuse it (24 h).
      if (ownRecord && !resigning && now - ownRecord.issuedAt > BOX_RESIGN_MS) {
        resigning = true
        own
          .then(({ keys }) => signBoxRecord(deps.keys, keys.publicKey, Math.floor(now)))
          .then((r) => {
            ownRecord = r
          }, failed('seal.resign-failed'))
          .finally(() => {
            resigning = false
          })
      }
    },

    counters: () => ({ ...directory.counters, ...sealer.counters, ...(opener?.counters ?? {}) }),
  }
}
