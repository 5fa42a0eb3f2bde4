/**
 * The Chord message grammar (PROTOCOL-chord.md) and its wire-boundary
 * validator. Every message is a plain Value object tagged by `t`; requests
 * carry a request id `r` (a positive integer chosen by the sender) and the
 * answer echoes it. `parseChordMsg` rebuilds each message from the fields it
 * knows, so nothing a peer attaches beyond the grammar is kept; it never
 * throws, and bounds every list so a hostile message cannot make us hold
 * much.
 */
import { isNodeId } from '../bytes.ts'

/**
 * A signed DHT record as it travels and is stored (see records.ts for what
 * is signed). It lives in its author's namespace, at id160(utf8(a ":" k)).
 */
export type RecordWire = {
  /** The key as the application wrote it, in the author's namespace. */
  k: string
  /** encodeValue(value); empty for a tombstone. */
  vb: Uint8Array
  /** Tombstone: the key was deleted. */
  d: boolean
  /** Author node id (must equal idOf(pk)). */
  a: string
  /** Author's raw public key (32 bytes). */
  pk: Uint8Array
  /** Sequence number: the highest one wins (BEP 44's seq). */
  q: number
  /** When the author signed it, ms since the epoch (refused when beyond the skew ahead of ours). */
  t: number
  /** Signature (64 bytes) over recordSigningBytes. */
  s: Uint8Array
}

/** A signed provider record: node `p` provides key `k` from time `t` for `ttl` ms. */
export type ProviderWire = {
  k: string
  /** Provider node id (must equal idOf(pk)). */
  p: string
  pk: Uint8Array
  /** Issue time, ms since the epoch on the provider's clock. */
  t: number
  /** Lifetime in ms from `t`. */
  ttl: number
  s: Uint8Array
}

/** A record digest in an offer: key, author, sequence, signing time. */
export type OfferRec = [key: string, author: string, seq: number, time: number]
/** A record named in a want: key, author. */
export type WantRec = [key: string, author: string]
/** A provider digest in an offer: key, provider, issue time. */
export type OfferProv = [key: string, provider: string, t: number]

export type ChordMsg =
  // liveness
  | { t: 'ping'; r: number }
  | { t: 'pong'; r: number }
  // one step of an iterative lookup for position k
  | { t: 'find'; r: number; k: string }
  /** The answer: p precedes k, s = the successor of k followed by its successors. */
  | { t: 'found'; r: number; p: string; s: string[] }
  /** Not known here: nodes closer to k, closest first. */
  | { t: 'closer'; r: number; n: string[] }
  // a recursive lookup (options.iterative = false): forwarded node to node, answered to the origin o
  | { t: 'route'; r: number; k: string; o: string; h: number }
  | { t: 'routed'; r: number; p: string; s: string[]; h: number }
  // stabilization
  | { t: 'getPred'; r: number }
  | { t: 'pred'; r: number; p: string | null; s: string[] }
  /** One-way: the sender thinks it might be our predecessor. */
  | { t: 'notify' }
  /** One-way: the sender has just joined and thinks it is our successor. */
  | { t: 'newSucc' }
  /** One-way: the sender leaves the ring; p was its predecessor, s its successor list. */
  | { t: 'leave'; p: string | null; s: string[] }
  /** Ask for finger hints (used by a joining node). */
  | { t: 'table'; r: number }
  | { t: 'fingers'; r: number; f: string[] }
  // storage
  | { t: 'offer'; r: number; recs: OfferRec[]; provs: OfferProv[] }
  | { t: 'want'; r: number; recs: WantRec[]; provs: [string, string][] }
  /** r = 0: no answer wanted. */
  | { t: 'store'; r: number; recs: RecordWire[]; provs: ProviderWire[] }
  /**
   * ok: how many records were accepted (new, newer or already held); err: why others were not;
   * q: for a record refused as older than the one held ('stale'), the sequence held (the highest).
   */
  | { t: 'stored'; r: number; ok: number; err: string | null; q: number | null }
  /** Read author a's record for key k. */
  | { t: 'get'; r: number; k: string; a: string }
  | { t: 'got'; r: number; rec: RecordWire | null }
  | { t: 'getProv'; r: number; k: string }
  | { t: 'provs'; r: number; provs: ProviderWire[] }
  /** A request was refused: 'busy' (over the reply budget), 'left' (the node has left the ring). */
  | { t: 'err'; r: number; code: string }

export type ChordMsgType = ChordMsg['t']

/** Limits enforced by the parser. */
export const LIMITS = {
  /** Node ids in one list (a finger table has at most 160 distinct nodes). */
  ids: 160,
  /** Digests in one offer or want. */
  offer: 512,
  /** Records or provider records in one store or provs message. */
  records: 256,
  /** Characters in a key (the store also limits its UTF-8 bytes). */
  keyChars: 4096,
  /** Characters in an error code. */
  code: 64,
} as const

/** Answers: each is matched to a pending request by (r, sender). */
const REPLY_TAGS = {
  pong: true,
  found: true,
  closer: true,
  routed: true,
  pred: true,
  fingers: true,
  want: true,
  stored: true,
  got: true,
  provs: true,
  err: true,
} as const

export type ChordReplyType = keyof typeof REPLY_TAGS
/** An answer to one of our requests. */
export type ChordReply = Extract<ChordMsg, { t: ChordReplyType }>
/** A request or a one-way message: what the handler table takes. */
export type ChordRequest = Exclude<ChordMsg, ChordReply>
export type ChordRequestType = ChordRequest['t']

/** Reply types: matched to a pending request by (r, sender). */
export const REPLY_TYPES: ReadonlySet<string> = new Set(Object.keys(REPLY_TAGS))

export function isReply(m: ChordMsg): m is ChordReply {
  return Object.hasOwn(REPLY_TAGS, m.t)
}

type Obj = Record<string, unknown>

function isObj(v: unknown): v is Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

function isRid(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

function isKey(v: unknown): v is string {
  return typeof v === 'string' && v.length <= LIMITS.keyChars
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/** Hop counts of recursive lookups are small; 255 is far beyond any ring's diameter in hops. */
function isHops(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255
}

function ids(v: unknown, max: number = LIMITS.ids): string[] | null {
  if (!Array.isArray(v) || v.length > max) return null
  for (const x of v) if (!isNodeId(x)) return null
  return [...(v as string[])]
}

function bytes(v: unknown, len?: number): v is Uint8Array {
  return v instanceof Uint8Array && (len === undefined || v.length === len)
}

/** Validate and copy a record's fields; null when any is malformed. Signatures are checked later. */
export function parseRecord(v: unknown): RecordWire | null {
  if (!isObj(v)) return null
  const { k, vb, d, a, pk, q, t, s } = v
  if (!isKey(k) || !bytes(vb) || typeof d !== 'boolean' || !isNodeId(a)) return null
  if (!bytes(pk, 32) || !isUint(q) || !isUint(t) || !bytes(s, 64)) return null
  if (d && vb.length !== 0) return null
  return { k, vb, d, a, pk, q, t, s }
}

export function parseProvider(v: unknown): ProviderWire | null {
  if (!isObj(v)) return null
  const { k, p, pk, t, ttl, s } = v
  if (!isKey(k) || !isNodeId(p) || !bytes(pk, 32) || !isUint(t) || !isUint(ttl) || !bytes(s, 64)) return null
  return { k, p, pk, t, ttl, s }
}

function list<T>(v: unknown, max: number, item: (x: unknown) => T | null): T[] | null {
  if (!Array.isArray(v) || v.length > max) return null
  const out: T[] = []
  for (const x of v) {
    const y = item(x)
    if (y === null) return null
    out.push(y)
  }
  return out
}

function offerRec(x: unknown): OfferRec | null {
  if (!Array.isArray(x) || x.length !== 4) return null
  const [k, a, q, t]: unknown[] = x
  if (!isKey(k) || !isNodeId(a) || !isUint(q) || !isUint(t)) return null
  return [k, a, q, t]
}

function wantRec(x: unknown): WantRec | null {
  if (!Array.isArray(x) || x.length !== 2) return null
  const [k, a]: unknown[] = x
  return isKey(k) && isNodeId(a) ? [k, a] : null
}

function offerProv(x: unknown): OfferProv | null {
  if (!Array.isArray(x) || x.length !== 3) return null
  const [k, p, t]: unknown[] = x
  if (!isKey(k) || !isNodeId(p) || !isUint(t)) return null
  return [k, p, t]
}

function wantProv(x: unknown): [string, string] | null {
  if (!Array.isArray(x) || x.length !== 2) return null
  const [k, p]: unknown[] = x
  return isKey(k) && isNodeId(p) ? [k, p] : null
}

/** Validate a message from a peer. Returns a fresh, well-formed message or null; never throws. */
export function parseChordMsg(v: unknown): ChordMsg | null {
  try {
    return parse(v)
  } catch {
    return null
  }
}

function parse(v: unknown): ChordMsg | null {
  if (!isObj(v)) return null
  const t = v.t
  if (typeof t !== 'string') return null
  if (t === 'notify' || t === 'newSucc') return { t }
  if (t === 'leave') {
    const s = ids(v.s)
    const p = v.p
    return s && (p === null || isNodeId(p)) ? { t, p, s } : null
  }
  const r = v.r
  if (!isRid(r)) return null
  switch (t) {
    case 'ping':
    case 'pong':
    case 'getPred':
    case 'table':
      return { t, r }
    case 'find':
      return isNodeId(v.k) ? { t, r, k: v.k } : null
    case 'found': {
      const s = ids(v.s)
      return isNodeId(v.p) && s && s.length > 0 ? { t, r, p: v.p, s } : null
    }
    case 'route':
      return isNodeId(v.k) && isNodeId(v.o) && isHops(v.h) ? { t, r, k: v.k, o: v.o, h: v.h } : null
    case 'routed': {
      const s = ids(v.s)
      return isNodeId(v.p) && s && s.length > 0 && isHops(v.h) ? { t, r, p: v.p, s, h: v.h } : null
    }
    case 'closer': {
      const n = ids(v.n)
      return n ? { t, r, n } : null
    }
    case 'pred': {
      const s = ids(v.s)
      const p = v.p
      return s && (p === null || isNodeId(p)) ? { t, r, p, s } : null
    }
    case 'fingers': {
      const f = ids(v.f)
      return f ? { t, r, f } : null
    }
    case 'offer': {
      const recs = list(v.recs, LIMITS.offer, offerRec)
      const provs = list(v.provs, LIMITS.offer, offerProv)
      return recs && provs ? { t, r, recs, provs } : null
    }
    case 'want': {
      const recs = list(v.recs, LIMITS.offer, wantRec)
      const provs = list(v.provs, LIMITS.offer, wantProv)
      return recs && provs ? { t, r, recs, provs } : null
    }
    case 'store': {
      const recs = list(v.recs, LIMITS.records, parseRecord)
      const provs = list(v.provs, LIMITS.records, parseProvider)
      return recs && provs ? { t, r, recs, provs } : null
    }
    case 'stored': {
      const { ok, err, q } = v
      if (!isUint(ok) || !(q === null || isUint(q))) return null
      if (err !== null && !(typeof err === 'string' && err.length <= LIMITS.code)) return null
      return { t, r, ok, err, q }
    }
    case 'get':
      return isKey(v.k) && isNodeId(v.a) ? { t, r, k: v.k, a: v.a } : null
    case 'getProv':
      return isKey(v.k) ? { t, r, k: v.k } : null
    case 'got': {
      if (v.rec === null) return { t, r, rec: null }
      const rec = parseRecord(v.rec)
      return rec ? { t, r, rec } : null
    }
    case 'provs': {
      const provs = list(v.provs, LIMITS.records, parseProvider)
      return provs ? { t, r, provs } : null
    }
    case 'err':
      return typeof v.code === 'string' && v.code.length <= LIMITS.code ? { t, r, code: v.code } : null
    default:
      return null
  }
}
