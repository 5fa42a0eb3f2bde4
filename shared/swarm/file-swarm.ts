/**
 * One file's swarm as this node sees it: the manifest (once verified), our
 * have-map, the peers we exchange with and their have-maps, how many of our
 * connected peers have each piece (availability, for rarest first), and
 * which pieces are requested from whom. Every change to a peer or a request
 * goes through this class, so the counts stay consistent with the maps.
 */
import { Bitfield } from './bitfield.ts'
import type { DownloadState } from './download-state.ts'
import type { Manifest } from './manifest.ts'

/** A connected peer of one file. */
export interface Peer {
  readonly id: string
  /** Its have-map; empty until it sends one. Null while we lack the manifest (then `rawBits`). */
  bits: Bitfield | null
  /** Its have-map as received before we knew the piece count (checked once the manifest is here). */
  rawBits: Uint8Array | undefined
  /** Our requests to it: piece -> deadline. */
  readonly inflight: Map<number, number>
  /** Pieces requested from it that timed out or were cancelled: accepted if they still come. */
  readonly late: Set<number>
  /** Requests we let be in flight to it (grows on pieces, shrinks on `busy`). */
  window: number
  /** After a `busy` with nothing in flight: no request before this time. */
  busyUntil: number
  busyStreak: number
  /** Request timeouts in a row, with no piece between. */
  timeouts: number
  /** When it last sent us pex (pex faster than half the interval is dropped). */
  pexAt: number
  /** When we send it pex next. */
  nextPexAt: number
  /** Manifests we sent it (at most two). */
  metaSent: number
  readonly since: number
}

export interface Candidate {
  /** Not dialled before this time. */
  retryAt: number
  failures: number
}

export class FileSwarm {
  manifest: Manifest | undefined
  manifestBytes: Uint8Array | undefined
  have: Bitfield | undefined
  /** Per piece: connected peers that have it. */
  avail: Uint16Array | undefined
  /** Per piece: peers it is requested from now, and since when (the first of them). */
  requested: Uint8Array | undefined
  askedAt: Float64Array | undefined
  /**
   * Per piece: times we uploaded it (saturating). 0 only for pieces of a
   * file this node added (the first copies of a new file): `unsent` counts
   * those, which may exist nowhere else yet.
   */
  sent: Uint8Array | undefined
  unsent = 0
  readonly peers = new Map<string, Peer>()
  /** Peers we said hello to: id -> deadline for their answer. */
  readonly connecting = new Map<string, number>()
  /** Peers we may dial (from the DHT, pex, the host). */
  readonly candidates = new Map<string, Candidate>()
  /** Peers that sent bad data: never again for this file. */
  readonly banned = new Set<string>()
  /** Pieces being verified and stored now. */
  readonly storing = new Set<number>()
  /** The download of this file, while one runs. */
  download: DownloadState | undefined
  lastActive: number
  nextPexAt: number

  constructor(
    readonly id: string,
    now: number,
  ) {
    this.lastActive = now
    this.nextPexAt = now
  }

  get pieces(): number {
    return this.manifest?.pieces ?? 0
  }

  get complete(): boolean {
    return this.have?.complete ?? false
  }

  /** The manifest is known: set up the maps and check the have-maps peers sent before. Returns peers whose have-map was wrong. */
  setManifest(m: Manifest, bytes: Uint8Array, held: Iterable<number>): Peer[] {
    this.manifest = m
    this.manifestBytes = bytes
    this.have = new Bitfield(m.pieces)
    for (const i of held) this.have.set(i)
    this.avail = new Uint16Array(m.pieces)
    this.requested = new Uint8Array(m.pieces)
    this.askedAt = new Float64Array(m.pieces)
    this.sent = new Uint8Array(m.pieces).fill(1)
    this.unsent = 0
    const bad: Peer[] = []
    for (const p of this.peers.values()) {
      const raw = p.rawBits
      p.rawBits = undefined
      p.bits = new Bitfield(m.pieces)
      if (raw && !this.setBits(p, raw)) bad.push(p)
    }
    return bad
  }

  addPeer(id: string, now: number, window: number): Peer {
    const p: Peer = {
      id,
      bits: this.manifest ? new Bitfield(this.manifest.pieces) : null,
      rawBits: undefined,
      inflight: new Map(),
      late: new Set(),
      window,
      busyUntil: 0,
      busyStreak: 0,
      timeouts: 0,
      pexAt: Number.NEGATIVE_INFINITY,
      nextPexAt: now,
      metaSent: 0,
      since: now,
    }
    this.peers.set(id, p)
    this.candidates.delete(id)
    this.connecting.delete(id)
    return p
  }

  /** Replace a peer's have-map. False (nothing changed) when it does not fit the manifest. */
  setBits(p: Peer, bytes: Uint8Array): boolean {
    if (!this.manifest) {
      p.rawBits = bytes.slice()
      return true
    }
    const next = Bitfield.from(bytes, this.manifest.pieces)
    if (!next) return false
    const avail = this.avail as Uint16Array
    if (p.bits) for (const i of p.bits.indices()) avail[i] = (avail[i] as number) - 1
    for (const i of next.indices()) avail[i] = (avail[i] as number) + 1
    p.bits = next
    return true
  }

  /** A peer's `have`. Returns false when the index is out of range. */
  peerHas(p: Peer, i: number): boolean {
    if (!this.manifest) {
      // Before the manifest: mark it in the raw have-map if that is long enough (checked later).
      if (!p.rawBits || i >= p.rawBits.length * 8) return false
      p.rawBits[i >> 3] = (p.rawBits[i >> 3] as number) | (1 << (7 - (i & 7)))
      return true
    }
    if (i >= this.manifest.pieces) return false
    if ((p.bits as Bitfield).set(i)) {
      const avail = this.avail as Uint16Array
      avail[i] = (avail[i] as number) + 1
    }
    return true
  }

  /** A peer's `none` for piece i: it does not have it after all. */
  peerLacks(p: Peer, i: number): void {
    if (p.bits?.clear(i)) {
      const avail = this.avail as Uint16Array
      avail[i] = (avail[i] as number) - 1
    }
  }

  request(p: Peer, i: number, now: number, deadline: number): void {
    p.inflight.set(i, deadline)
    p.late.delete(i)
    const r = this.requested as Uint8Array
    if (r[i] === 0) (this.askedAt as Float64Array)[i] = now
    r[i] = (r[i] as number) + 1
  }

  /** Forget our request of piece i to p; `late`: a piece still on its way is welcome. */
  unrequest(p: Peer, i: number, late: boolean, lateMax: number): boolean {
    if (!p.inflight.delete(i)) return false
    const r = this.requested as Uint8Array
    r[i] = (r[i] as number) - 1
    if (late) {
      p.late.add(i)
      // Bounded: the oldest late piece is forgotten first (a Set iterates in insertion order).
      if (p.late.size > lateMax) p.late.delete(p.late.values().next().value as number)
    }
    return true
  }

  /** Take a peer out: its requests and its share of availability go. */
  removePeer(id: string): Peer | undefined {
    const p = this.peers.get(id)
    if (!p) return undefined
    this.peers.delete(id)
    if (this.requested)
      for (const i of p.inflight.keys()) this.requested[i] = (this.requested[i] as number) - 1
    p.inflight.clear()
    if (p.bits && this.avail) for (const i of p.bits.indices()) this.avail[i] = (this.avail[i] as number) - 1
    return p
  }

  /** We kept piece i. */
  gained(i: number): boolean {
    return this.have?.set(i) ?? false
  }

  /** This node added the file: the pieces it holds have not left it yet. */
  markOrigin(): void {
    const have = this.have
    const s = this.sent
    if (!have || !s) return
    this.unsent = 0
    for (let i = 0; i < have.size; i++)
      if (have.has(i)) {
        s[i] = 0
        this.unsent++
      }
  }

  /** We lost piece i (the store failed it). */
  lost(i: number): void {
    if (this.have?.clear(i) && this.sent?.[i] === 0) this.unsent--
  }

  /** Count an upload of piece i. */
  uploaded(i: number): void {
    const s = this.sent
    if (!s) return
    if (s[i] === 0) this.unsent--
    if ((s[i] as number) < 255) s[i] = (s[i] as number) + 1
  }

  /** A piece we hold and never sent, that p lacks and is not being sent: -1 when none. Random among them. */
  unsentFor(p: Peer, busy: (i: number) => boolean, random: () => number): number {
    const have = this.have
    const s = this.sent
    if (!have || !s || this.unsent === 0) return -1
    let pick = -1
    let seen = 0
    for (let i = 0; i < have.size; i++) {
      if (s[i] !== 0 || !have.has(i) || p.bits?.has(i) || busy(i)) continue
      if (random() * ++seen < 1) pick = i
    }
    return pick
  }

  /** Does p have a piece we lack? */
  useful(p: Peer): boolean {
    if (!p.bits || !this.have) return false
    const theirs = p.bits.bytes
    const ours = this.have.bytes
    for (let k = 0; k < theirs.length; k++)
      if (((theirs[k] as number) & ~(ours[k] as number)) !== 0) return true
    return false
  }

  /** Is every piece we lack requested from someone (or being stored)? Then the endgame may ask twice. */
  allRequested(): boolean {
    const have = this.have
    const r = this.requested
    if (!have || !r) return false
    for (let i = 0; i < have.size; i++) if (!have.has(i) && r[i] === 0 && !this.storing.has(i)) return false
    return true
  }
}
