/**
 * Private networks: what a network's secret gives its members. Grammar in
 * PROTOCOL-crypto.md ("Private networks").
 *
 *   root      = PBKDF2-HMAC-SHA-256(utf8(secret), salt = "weft-network/1\n" ‖ utf8(name), iterations, 32)
 *   admission = HKDF-SHA-256(root, salt = "", info = "weft-network/1 admission", 32)   an HMAC-SHA-256 key
 *   content   = HKDF-SHA-256(root, salt = "", info = "weft-network/1 content", 32)     the root of content keys
 *
 * - Admission: at link setup each end sends, beside its identity proof,
 *   HMAC(admission, "weft-admit/1\n" ‖ its id ‖ th) over the link
 *   transcript hash th (transcript.ts: both ids, nonces and ephemeral keys),
 *   and checks the other's in constant time. The tag is fresh per link and
 *   says nothing about the secret beyond "the sender knows it"; a node
 *   without the secret cannot make one, and the link closes with
 *   'access-denied' (AccessDeniedError on the side that tried).
 * - Content: broadcasts, table values and DHT values of the network are
 *   sealed under a key per author, HKDF(content, info = "weft-content/1\n" ‖
 *   author id), with AES-256-GCM and random 96-bit ivs; the aad names the
 *   record (contentAad: its kind, and fields such as topic, key, author), so
 *   a ciphertext cannot be moved to another record. Relays, the signal
 *   server and outsiders can neither read nor make them; a member can make
 *   them only under its own signature (the record's), as before.
 * - The server is given `networkTag(name)` (the name's hash, not the
 *   secret's): see PROTOCOL-crypto.md for why members and non-members of a
 *   name meet at the server and are kept apart by the links.
 *
 * The secret is stretched with PBKDF2 because people choose secrets: anyone
 * who sees one admission tag (any node that links with a member) can test
 * guesses offline, each guess costing `iterations` HMACs. A generated secret
 * of 128 bits or more (what the demo makes) is beyond guessing anyway.
 */
import { concatBytes, toHex, utf8 } from '../bytes.ts'
import { sha256Sync } from '../chord/sha256-sync.ts'
import { bump, type Counters } from '../protocol.ts'
import {
  aesKey,
  aesOpen,
  aesSeal,
  hkdf,
  hmac,
  hmacKey,
  hmacVerify,
  IV_BYTES,
  KEY_BYTES,
  label,
  lp,
  pbkdf2,
  randomBytes,
  TAG_BYTES,
} from './primitives.ts'

/**
 * PBKDF2 iterations for the network root key: 30–60 ms in Chromium and
 * 75–150 ms in Node on the loaded 2-core test machine, once per join
 * (bench/crypto.ts). Every member must use the same count: it is part of the key.
 */
export const DEFAULT_NETWORK_ITERATIONS = 100_000

/** Bytes of an admission tag. */
export const ADMISSION_TAG_BYTES = KEY_BYTES

/** First byte of sealed content. */
export const CONTENT_TAG = 0x01
/** Bytes sealed content adds to its plaintext: tag byte, iv, AES-GCM tag. */
export const CONTENT_OVERHEAD = 1 + IV_BYTES + TAG_BYTES

/** The kinds of record content is sealed for (part of every content aad). */
export type ContentKind = 'broadcast' | 'table' | 'dht'

export interface NetworkKeys {
  /** The network's name (the server sees networkTag(name)). */
  readonly name: string
  /** Our admission tag for a link whose transcript hash is `th`. */
  admissionProof(th: Uint8Array, proverId: string): Promise<Uint8Array>
  /** Does `tag` prove that `proverId` knows the secret, on this link? Constant-time; never throws. */
  checkAdmission(th: Uint8Array, proverId: string, tag: Uint8Array): Promise<boolean>
  /** Seal a record's content (its author is part of the key, `aad` from contentAad). */
  sealContent(author: string, plain: Uint8Array, aad: Uint8Array): Promise<Uint8Array>
  /** Open sealed content; null (never a throw) when it was not sealed by a member for this author and aad. */
  openContent(author: string, sealed: Uint8Array, aad: Uint8Array): Promise<Uint8Array | null>
  /** `network.admitted`, `drop.network.admission` (a tag that does not prove the secret), `drop.network.content` (content that does not open). */
  readonly counters: Counters
}

export interface NetworkKeyOptions {
  /** PBKDF2 iterations. Every member must use the same. @default DEFAULT_NETWORK_ITERATIONS */
  readonly iterations?: number
  /** Authors whose content keys are kept derived. @default 1024 */
  readonly maxAuthorKeys?: number
}

const admitBytes = (th: Uint8Array, proverId: string) => concatBytes(utf8(`weft-admit/1\n${proverId}`), th)

/**
 * Derive a network's keys from its name and secret (a string, as UTF-8 with
 * no normalisation, or bytes). Throws RangeError for an empty secret.
 */
export async function deriveNetworkKeys(
  name: string,
  secret: string | Uint8Array,
  opts: NetworkKeyOptions = {},
): Promise<NetworkKeys> {
  const s = typeof secret === 'string' ? utf8(secret) : secret
  if (s.length === 0) throw new RangeError('a network secret may not be empty')
  const iterations = opts.iterations ?? DEFAULT_NETWORK_ITERATIONS
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError(`iterations: ${iterations}`)
  const maxAuthorKeys = opts.maxAuthorKeys ?? 1024

  const root = await pbkdf2(s, utf8(`weft-network/1\n${name}`), iterations, KEY_BYTES)
  const none = new Uint8Array(0)
  const [admissionRaw, content] = await Promise.all([
    hkdf(root, none, label('weft-network/1 admission'), KEY_BYTES),
    hkdf(root, none, label('weft-network/1 content'), KEY_BYTES),
  ])
  root.fill(0)
  const admission = await hmacKey(admissionRaw)
  admissionRaw.fill(0)

  // Per-author content keys, derived on first use and kept (bounded, least recently used first).
  const authorKeys = new Map<string, Promise<CryptoKey>>()
  const keyOf = (author: string): Promise<CryptoKey> => {
    let k = authorKeys.get(author)
    if (k) authorKeys.delete(author)
    else k = hkdf(content, none, utf8(`weft-content/1\n${author}`), KEY_BYTES).then(aesKey)
    authorKeys.set(author, k)
    if (authorKeys.size > maxAuthorKeys) {
      const oldest = authorKeys.keys().next().value
      if (oldest !== undefined) authorKeys.delete(oldest)
    }
    return k
  }
  const head = new Uint8Array([CONTENT_TAG])

  const counters: Counters = {}

  return {
    name,
    counters,
    admissionProof: (th, proverId) => hmac(admission, admitBytes(th, proverId)),
    async checkAdmission(th, proverId, tag) {
      const ok = await hmacVerify(admission, tag, admitBytes(th, proverId))
      bump(counters, ok ? 'network.admitted' : 'drop.network.admission')
      return ok
    },
    async sealContent(author, plain, aad) {
      const iv = randomBytes(IV_BYTES)
      const ct = await aesSeal(await keyOf(author), iv, plain, concatBytes(head, aad))
      return concatBytes(head, iv, ct)
    },
    async openContent(author, sealed, aad) {
      const plain =
        sealed instanceof Uint8Array && sealed.length >= CONTENT_OVERHEAD && sealed[0] === CONTENT_TAG
          ? await aesOpen(
              await keyOf(author),
              sealed.subarray(1, 1 + IV_BYTES),
              sealed.subarray(1 + IV_BYTES),
              concatBytes(head, aad),
            )
          : null
      if (!plain) bump(counters, 'drop.network.content')
      return plain
    },
  }
}

/**
 * The additional data that names a record whose content is sealed:
 * "weft-content/1\n" ‖ lp(kind) ‖ lp(field)…, e.g.
 * `contentAad('broadcast', topic, author, msgId)`, `contentAad('table', key, author)`,
 * `contentAad('dht', key, author)`. Length prefixes keep ('ab','c') apart from ('a','bc').
 */
export function contentAad(kind: ContentKind, ...fields: (string | Uint8Array)[]): Uint8Array {
  return concatBytes(label('weft-content/1\n'), lp(kind), ...fields.map(lp))
}

/**
 * What the signal server is told instead of a private network's name: 32 hex
 * characters of SHA-256("weft-network-tag/1\n" ‖ name). It depends on the
 * name only, never on the secret.
 */
export function networkTag(name: string): string {
  // Synchronous (the puzzle's SHA-256, already in the bundle): the signal client needs it at once.
  return toHex(sha256Sync(utf8(`weft-network-tag/1\n${name}`)).subarray(0, 16))
}

/** AccessDeniedError lives with the other named errors; exported here too, where it was first. */
export { AccessDeniedError } from '../errors.ts'
