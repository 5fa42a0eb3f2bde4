/**
 * The requests this node ran, and their answers, kept for a while: the
 * destination's half of at-most-once requests (PROTOCOL-route.md).
 *
 * A source whose request goes unanswered sends it again (an answer, or the
 * request itself, may have been lost on the way). The copy must not run the
 * handler a second time; it should get the answer again. So each request is
 * remembered by its source and id (and, when it came in an envelope, by the
 * envelope's signature: an identical copy is recognised before it is
 * decoded): while the handler runs, a copy is ignored; once it has answered,
 * a copy gets the kept answer, at most `maxResends` times and not more often
 * than every `resendGapMs` (a replayed request cannot make this node send a
 * large answer again and again).
 *
 * Bounded: entries are kept `keepMs`; at most `maxPerSource` per source (its
 * own oldest go first, so a flooding source pushes out only its own), at
 * most `maxEntries` in all (the oldest go first), and answers of at most
 * `maxBytes` in all (an answer over `maxAnswerBytes` is not kept: its entry
 * remains, so a copy is still not run again, but it gets no answer).
 */
import type { AnswerMsg } from './messages.ts'

export interface ServedOptions {
  /** How long a request is remembered after it arrived. */
  keepMs: number
  /** Most requests remembered. */
  maxEntries: number
  /** Most requests remembered per source. */
  maxPerSource: number
  /** Most bytes of answers kept. */
  maxBytes: number
  /** Largest answer kept. */
  maxAnswerBytes: number
  /** Least time between two resends of one answer. */
  resendGapMs: number
  /** Most resends of one answer. */
  maxResends: number
}

export interface Served {
  readonly src: string
  readonly id: number
  /** The envelope's signature key, when the request came in one. */
  readonly sigKey: string | undefined
  readonly at: number
  /** The answer once the handler is done (undefined while it runs, or when it was too large to keep). */
  answer: AnswerMsg | undefined
  done: boolean
  bytes: number
  resends: number
  lastResend: number
}

export class ServedMemory {
  /** Every entry, oldest first, by `src/id`. */
  private readonly all = new Map<string, Served>()
  /** Per source, its entries oldest first, by id. */
  private readonly bySource = new Map<string, Map<number, Served>>()
  private readonly bySig = new Map<string, Served>()
  private answerBytes = 0

  constructor(private readonly opts: ServedOptions) {}

  get size(): { entries: number; sources: number; bytes: number } {
    return { entries: this.all.size, sources: this.bySource.size, bytes: this.answerBytes }
  }

  /** The request `id` of `src`, if remembered. */
  get(src: string, id: number): Served | undefined {
    return this.bySource.get(src)?.get(id)
  }

  /** The request that came in the envelope with signature key `sigKey` from `src`, if remembered. */
  bySignature(src: string, sigKey: string): Served | undefined {
    const e = this.bySig.get(sigKey)
    return e?.src === src ? e : undefined
  }

  /** Remember a request that starts running now. */
  start(src: string, id: number, sigKey: string | undefined, now: number): Served {
    this.forget(this.get(src, id))
    const e: Served = {
      src,
      id,
      sigKey,
      at: now,
      answer: undefined,
      done: false,
      bytes: 0,
      resends: 0,
      lastResend: now,
    }
    this.all.set(`${src}/${id}`, e)
    let mine = this.bySource.get(src)
    if (!mine) {
      mine = new Map()
      this.bySource.set(src, mine)
    }
    mine.set(id, e)
    if (sigKey !== undefined) this.bySig.set(sigKey, e)
    while (mine.size > this.opts.maxPerSource) this.forget(mine.values().next().value)
    while (this.all.size > this.opts.maxEntries) this.forget(this.all.values().next().value)
    return e
  }

  /** The handler answered: keep the answer (of `bytes` on the wire) if it fits. */
  finish(e: Served, answer: AnswerMsg, bytes: number): void {
    e.done = true
    if (this.all.get(`${e.src}/${e.id}`) !== e || bytes > this.opts.maxAnswerBytes) return
    e.answer = answer
    e.bytes = bytes
    this.answerBytes += bytes
    // Over the byte budget, the oldest answers go (their entries stay: a copy is still not run).
    for (const old of this.all.values()) {
      if (this.answerBytes <= this.opts.maxBytes) break
      if (old.answer === undefined) continue
      this.answerBytes -= old.bytes
      old.answer = undefined
      old.bytes = 0
    }
  }

  /** May the kept answer of `e` be sent again now? (Counts the resend when it may.) */
  mayResend(e: Served, now: number): boolean {
    if (e.answer === undefined || e.resends >= this.opts.maxResends) return false
    if (e.resends > 0 && now - e.lastResend < this.opts.resendGapMs) return false
    e.resends++
    e.lastResend = now
    return true
  }

  /** Forget what arrived more than keepMs ago. */
  prune(now: number): void {
    for (const e of this.all.values()) {
      if (now - e.at < this.opts.keepMs) break
      this.forget(e)
    }
  }

  private forget(e: Served | undefined): void {
    if (!e) return
    this.all.delete(`${e.src}/${e.id}`)
    const mine = this.bySource.get(e.src)
    mine?.delete(e.id)
    if (mine?.size === 0) this.bySource.delete(e.src)
    if (e.sigKey !== undefined && this.bySig.get(e.sigKey) === e) this.bySig.delete(e.sigKey)
    this.answerBytes -= e.bytes
  }
}
