/**
 * Sealed envelopes: the body of a routed message encrypted to its
 * recipient's box key (box-record.ts), so the nodes that forward it read
 * only what forwarding needs. Grammar in PROTOCOL-crypto.md ("Sealed
 * envelopes").
 *
 * ECIES-style, with the derived keys cached so that a second message to the
 * same node costs one AES-GCM call instead of an X25519 exchange:
 *
 *   sender, once per (recipient, session):
 *     e          = a fresh X25519 key pair (the session's; its private half is dropped after this)
 *     ss         = X25519(e, R)                     R = the recipient's box key
 *     kReq ‖ kRep = HKDF-SHA-256(ss, salt = e.pub ‖ R, info = "weft-seal/1", 64)
 *   each message:
 *     sealed = 0x01 ‖ e.pub ‖ iv ‖ AES-GCM(kReq, iv, body, aad = 0x01 ‖ e.pub ‖ aad)    iv random, 12 bytes
 *   the recipient derives the same keys from its box private key and e.pub
 *   (cached per e.pub), and may answer under the same session:
 *     reply  = 0x02 ‖ iv' ‖ AES-GCM(kRep, iv', answer, aad = 0x02 ‖ iv ‖ aad')
 *
 * A reply is sealed to the sender as surely as a message to its box key
 * would be (only the holder of e's session keys, the sender, can open it),
 * and costs the answering node no key lookup, no record check and no
 * exchange. It names the request's iv in its aad, so a reply cannot be
 * passed off as the answer to another request of the same session.
 *
 * A session lasts `maxUses` messages or `maxAgeMs` (by `tick(now)`),
 * whichever comes first; then the next message starts a new one. Dropping a
 * session drops its keys, so what was sent under it cannot be read from
 * this node's memory later (forward secrecy per session, not per message).
 *
 * Sealing gives confidentiality only: anyone can seal to a box key. Who sent
 * an envelope is the envelope's signature's business (the router signs the
 * sealed bytes), and `aad` must bind what the signature and the forwarding
 * expose (source and destination ids, the envelope's nonce and signed time),
 * so a sealed body cannot be moved into another envelope. Replays are the
 * router's replay window's business: a replayed sealed body opens again.
 */
import { concatBytes, toHex } from '../bytes.ts'
import { bump, type Counters } from '../protocol.ts'
import type { BoxKeyPair } from './box-record.ts'
import {
  aesKey,
  aesOpen,
  aesSeal,
  generateX25519,
  hkdf,
  IV_BYTES,
  isX25519PublicKey,
  KEY_BYTES,
  label,
  randomBytes,
  TAG_BYTES,
  x25519,
} from './primitives.ts'

/** First byte of a sealed message. */
export const SEALED_TAG = 0x01
/** First byte of a sealed reply. */
export const REPLY_TAG = 0x02
/** Bytes a sealed message adds to its plaintext: tag byte, ephemeral key, iv, AES-GCM tag. */
export const SEAL_OVERHEAD = 1 + KEY_BYTES + IV_BYTES + TAG_BYTES
/** Bytes a sealed reply adds: tag byte, iv, AES-GCM tag. */
export const REPLY_OVERHEAD = 1 + IV_BYTES + TAG_BYTES

interface SessionKeys {
  readonly request: CryptoKey
  readonly reply: CryptoKey
}

async function sessionKeys(
  ss: Uint8Array,
  ephemeral: Uint8Array,
  recipient: Uint8Array,
): Promise<SessionKeys> {
  const okm = await hkdf(ss, concatBytes(ephemeral, recipient), label('weft-seal/1'), 2 * KEY_BYTES)
  ss.fill(0)
  const [request, reply] = await Promise.all([
    aesKey(okm.subarray(0, KEY_BYTES)),
    aesKey(okm.subarray(KEY_BYTES)),
  ])
  okm.fill(0)
  return { request, reply }
}

const replyAad = (requestIv: Uint8Array, aad: Uint8Array) =>
  concatBytes(new Uint8Array([REPLY_TAG]), requestIv, aad)

/** What `Sealer.seal` gives: the bytes to send, and how to open the answer to them. */
export interface SealedMessage {
  readonly bytes: Uint8Array
  /** Open the recipient's reply to this message; null (never a throw) when it is not one. */
  openReply(sealed: Uint8Array, aad: Uint8Array): Promise<Uint8Array | null>
}

/** What `Opener.open` gives: the plaintext, and how to seal the answer to it. */
export interface OpenedMessage {
  readonly plaintext: Uint8Array
  /** Seal an answer that only this message's sender can open. */
  sealReply(plain: Uint8Array, aad: Uint8Array): Promise<Uint8Array>
}

export interface SealerOptions {
  /** Recipients with a live session (least recently used go first). @default 256 */
  readonly maxSessions?: number
  /** Messages per session (random 96-bit ivs stay far from colliding). @default 2^20 */
  readonly maxUses?: number
  /** A session's lifetime, by tick(now). @default 600000 (10 min) */
  readonly maxAgeMs?: number
}

/**
 * Seals messages to box keys, keeping one session per recipient. Counters:
 * `seal.session` (new sessions), `seal.sealed`, `drop.seal.reply-forged`,
 * `drop.seal.reply-malformed`.
 */
export interface Sealer {
  /** Seal `plain` to the box key `to`. Rejects (RangeError) when `to` is not a usable X25519 key. */
  seal(to: Uint8Array, plain: Uint8Array, aad: Uint8Array): Promise<SealedMessage>
  /** Time passes: sessions older than maxAgeMs end. */
  tick(now: number): void
  readonly sessions: number
  readonly counters: Counters
}

interface Session {
  readonly ephemeral: Promise<Uint8Array>
  readonly keys: Promise<SessionKeys | null>
  uses: number
  born: number
}

export function createSealer(opts: SealerOptions = {}): Sealer {
  const maxSessions = opts.maxSessions ?? 256
  const maxUses = opts.maxUses ?? 2 ** 20
  const maxAgeMs = opts.maxAgeMs ?? 600_000
  const sessions = new Map<string, Session>()
  const counters: Counters = {}
  let clock = Number.NaN

  const start = (recipient: Uint8Array): Session => {
    const to = new Uint8Array(recipient) // the caller may reuse its buffer while the exchange runs
    const e = generateX25519()
    const keys = e.then(async ({ publicKey, privateKey }) => {
      const ss = await x25519(privateKey, to)
      return ss && sessionKeys(ss, publicKey, to)
    })
    bump(counters, 'seal.session')
    return { ephemeral: e.then((x) => x.publicKey), keys, uses: 0, born: clock }
  }

  const openReply =
    (keys: SessionKeys, requestIv: Uint8Array) =>
    async (sealed: Uint8Array, aad: Uint8Array): Promise<Uint8Array | null> => {
      if (!(sealed instanceof Uint8Array) || sealed.length < REPLY_OVERHEAD || sealed[0] !== REPLY_TAG) {
        bump(counters, 'drop.seal.reply-malformed')
        return null
      }
      const iv = sealed.subarray(1, 1 + IV_BYTES)
      const plain = await aesOpen(keys.reply, iv, sealed.subarray(1 + IV_BYTES), replyAad(requestIv, aad))
      if (!plain) bump(counters, 'drop.seal.reply-forged')
      return plain
    }

  return {
    counters,
    get sessions() {
      return sessions.size
    },
    async seal(to, plain, aad) {
      if (!isX25519PublicKey(to)) throw new RangeError('seal: not an X25519 public key')
      const k = toHex(to)
      let s = sessions.get(k)
      if (!s || s.uses >= maxUses) s = start(to)
      s.uses++
      sessions.delete(k)
      sessions.set(k, s)
      if (sessions.size > maxSessions) {
        const oldest = sessions.keys().next().value
        if (oldest !== undefined) sessions.delete(oldest)
      }
      const [ephemeral, keys] = await Promise.all([s.ephemeral, s.keys])
      if (!keys) {
        if (sessions.get(k) === s) sessions.delete(k)
        throw new RangeError('seal: the recipient key gives no shared secret')
      }
      const iv = randomBytes(IV_BYTES)
      const header = concatBytes(new Uint8Array([SEALED_TAG]), ephemeral)
      const ct = await aesSeal(keys.request, iv, plain, concatBytes(header, aad))
      bump(counters, 'seal.sealed')
      return { bytes: concatBytes(header, iv, ct), openReply: openReply(keys, iv) }
    },
    tick(now) {
      clock = now
      for (const [k, s] of sessions) {
        if (Number.isNaN(s.born)) s.born = now
        else if (s.born < now - maxAgeMs) sessions.delete(k)
      }
    },
  }
}

export interface OpenerOptions {
  /** Sessions (senders' ephemeral keys) whose keys are kept (least recently used go first). @default 1024 */
  readonly maxSessions?: number
  /** Forget a session unused this long, by tick(now). @default 600000 (10 min) */
  readonly maxIdleMs?: number
}

/**
 * Opens messages sealed to our box key, caching each sender session's keys.
 * Counters: `seal.opened`, `seal.session-derived`, `drop.seal.malformed`,
 * `drop.seal.bad-key` (an ephemeral key that gives no shared secret),
 * `drop.seal.forged` (the tag does not verify: tampered, wrong key, wrong aad).
 */
export interface Opener {
  /** Open a sealed message; null (never a throw) when it does not open. */
  open(sealed: Uint8Array, aad: Uint8Array): Promise<OpenedMessage | null>
  tick(now: number): void
  readonly sessions: number
  readonly counters: Counters
}

interface OpenSession {
  readonly keys: Promise<SessionKeys | null>
  lastUsed: number
}

export function createOpener(box: BoxKeyPair, opts: OpenerOptions = {}): Opener {
  const maxSessions = opts.maxSessions ?? 1024
  const maxIdleMs = opts.maxIdleMs ?? 600_000
  const cache = new Map<string, OpenSession>()
  const counters: Counters = {}
  let clock = Number.NaN

  const keysFor = (ephemeral: Uint8Array): OpenSession => {
    const k = toHex(ephemeral)
    let s = cache.get(k)
    if (s) cache.delete(k)
    else {
      const e = new Uint8Array(ephemeral)
      s = {
        keys: x25519(box.privateKey, e).then((ss) => ss && sessionKeys(ss, e, box.publicKey)),
        lastUsed: clock,
      }
      bump(counters, 'seal.session-derived')
    }
    s.lastUsed = clock
    cache.set(k, s)
    if (cache.size > maxSessions) {
      const oldest = cache.keys().next().value
      if (oldest !== undefined) cache.delete(oldest)
    }
    return s
  }

  return {
    counters,
    get sessions() {
      return cache.size
    },
    async open(sealed, aad) {
      if (!(sealed instanceof Uint8Array) || sealed.length < SEAL_OVERHEAD || sealed[0] !== SEALED_TAG) {
        bump(counters, 'drop.seal.malformed')
        return null
      }
      const header = sealed.subarray(0, 1 + KEY_BYTES)
      const ephemeral = header.subarray(1)
      if (!isX25519PublicKey(ephemeral)) {
        bump(counters, 'drop.seal.bad-key')
        return null
      }
      const s = keysFor(ephemeral)
      const keys = await s.keys
      if (!keys) {
        const k = toHex(ephemeral)
        if (cache.get(k) === s) cache.delete(k)
        bump(counters, 'drop.seal.bad-key')
        return null
      }
      const iv = sealed.slice(1 + KEY_BYTES, 1 + KEY_BYTES + IV_BYTES)
      const plaintext = await aesOpen(
        keys.request,
        iv,
        sealed.subarray(1 + KEY_BYTES + IV_BYTES),
        concatBytes(header, aad),
      )
      if (!plaintext) {
        bump(counters, 'drop.seal.forged')
        return null
      }
      bump(counters, 'seal.opened')
      return {
        plaintext,
        async sealReply(plain, replyAadIn) {
          const riv = randomBytes(IV_BYTES)
          const ct = await aesSeal(keys.reply, riv, plain, replyAad(iv, replyAadIn))
          return concatBytes(new Uint8Array([REPLY_TAG]), riv, ct)
        },
      }
    },
    tick(now) {
      clock = now
      for (const [k, s] of cache) {
        if (Number.isNaN(s.lastUsed)) s.lastUsed = now
        else if (s.lastUsed < now - maxIdleMs) cache.delete(k)
      }
    },
  }
}
