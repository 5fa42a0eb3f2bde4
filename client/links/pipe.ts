/**
 * A Pipe is a raw, ordered, reliable byte-message transport between this
 * node and one peer: a WebRTC data channel or the signal server's relay.
 * Links (link.ts) add authentication, chunking and heartbeats on top, so
 * nothing above a Link knows which pipe carries it.
 */
export interface Pipe {
  readonly transport: 'webrtc' | 'relay'
  /** Send one message of at most 16 KiB (the link chunks larger ones). */
  send(bytes: Uint8Array): void
  /** Bytes queued and not yet sent. */
  bufferedAmount(): number
  /** Resolves when the buffer drops below the low-water mark (or the pipe closes). */
  drained(): Promise<void>
  onData(fn: (bytes: Uint8Array) => void): void
  onClose(fn: (reason: string) => void): void
  close(reason?: string): void
  /**
   * The DTLS certificate fingerprints of both ends, from the SDP, that the
   * key proof binds to; null for pipes without DTLS (the relay).
   */
  fingerprints(): { local: string; remote: string } | null
  /**
   * `fn` is called when the transport stops hearing the peer and may not
   * recover (WebRTC: ICE `disconnected`); the link then checks (liveness.ts).
   * Pipes that cannot tell (the relay) leave it out.
   */
  onStall?(fn: () => void): void
}

/**
 * The `a=fingerprint:` value of an SDP, or null: none, or lines (session
 * and media level) that do not all agree. WebRTC stacks use the media
 * level's and may ignore a different session-level one, so an SDP whose
 * lines disagree binds nothing.
 */
export function sdpFingerprint(sdp: string | undefined | null): string | null {
  if (!sdp) return null
  let found: string | null = null
  for (const m of sdp.matchAll(/^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\s*$/gm)) {
    const fp = `${(m[1] as string).toLowerCase()} ${(m[2] as string).toUpperCase()}`
    if (found !== null && fp !== found) return null
    found = fp
  }
  return found
}

/**
 * A pipe's data handler slot. Data that arrives before the Link attaches
 * (the other end opened first and already spoke) is held, up to 64
 * messages and 64 KiB (a hello and a proof are a few hundred bytes; the
 * rest is dropped), and handed over when the handler is set.
 */
export function dataSlot(): { emit(b: Uint8Array): void; set(fn: (b: Uint8Array) => void): void } {
  let early: Uint8Array[] | undefined = []
  let earlyBytes = 0
  let handler: ((b: Uint8Array) => void) | undefined
  return {
    emit(b) {
      if (handler) handler(b)
      else if (early && early.length < 64 && earlyBytes + b.length <= 64 * 1024) {
        early.push(b)
        earlyBytes += b.length
      }
    },
    set(fn) {
      handler = fn
      const held = early ?? []
      early = undefined
      for (const b of held) fn(b)
    },
  }
}
